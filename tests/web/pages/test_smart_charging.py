"""Driver and operator pages of smart charging: start by a deadline (plan and saving shown before
confirming), the plan on the live page and its JSON, battery settings, buy-and-charge by a
deadline with the packages that fit, and the admin (prices import, grid events, enrollments)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client

from payments import services as payment_services
from payments.models import Purchase
from prepaid.models import EnergyPackage, Wallet
from sessions import clock, operator
from sessions import services as session_services
from sessions.grid import services as grid
from sessions.models import ChargingSession
from sessions.models.grid import (
    DemandResponseEnrollment,
    DemandResponseEvent,
    DemandResponseParticipation,
    PricePoint,
    SmartPlan,
)

pytestmark = pytest.mark.django_db

T = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _times_in_utc(client):
    """These pages' times are asserted in UTC: the browser says so (static/js/tz.js's cookie);
    the region's zone would shift them (tests/web/pages/test_time_zones.py covers the zones)."""
    client.cookies["tz"] = "UTC"


@pytest.fixture(autouse=True)
def now():
    """The controller's clock and the wall clock (the dashboard and the admin read it) both at T."""
    with time_machine.travel(T, tick=False), clock.use(lambda: T):
        yield T


@pytest.fixture
def prices(db):
    """Hourly DE prices from T: 40 ct/kWh, except 10 ct from 16:00 to 18:00; 24 hours known."""
    rows = [(T + i * H, T + (i + 1) * H, 10_000 if i in (4, 5) else 40_000) for i in range(24)]
    grid.prices_import(region="DE", rows=rows, source="test")


@pytest.fixture
def logged_in(client, driver):
    client.force_login(driver)
    return client


@pytest.fixture
def vehicle(driver, car, credit):
    credit(driver, energy_wh=20_000)
    return car(driver)


def _start(client, vehicle, **extra):
    data = {"vehicle": vehicle.pk, "energy_kwh": "11", "when": "cheapest", "deadline": "2026-11-25T22:00", **extra}
    return client.post("/charge/", data)


# --- start a charge by a deadline --------------------------------------------------------------


def test_the_start_page_offers_now_or_a_deadline(logged_in, vehicle):
    content = logged_in.get("/charge/").content.decode()
    assert 'value="now"' in content and 'value="cheapest"' in content
    assert 'type="datetime-local"' in content
    assert 'value="2026-11-26T07:00"' in content  # the suggested deadline: the next morning


def test_a_deadline_shows_the_planned_windows_and_the_saving_before_anything_starts(logged_in, vehicle, prices):
    response = _start(logged_in, vehicle)
    content = response.content.decode()
    assert response.status_code == 200
    assert "Wed 25 Nov 16:00–17:00 UTC: about 11.0 kWh" in content
    # 11 kWh at 10 instead of 40 ct/kWh.
    assert "Expected saving against charging now: <strong>3.30 EUR</strong> (1.10 EUR instead of 4.40 EUR" in content
    assert 'name="confirm"' in content
    assert not ChargingSession.objects.exists()
    assert Wallet.objects.get(user=vehicle.owner).held_wh == 0


def test_confirming_starts_a_smart_session_with_the_deadline_and_region(logged_in, vehicle, prices):
    response = _start(logged_in, vehicle, confirm="1")
    session = ChargingSession.objects.get(vehicle=vehicle)
    assert response.status_code == 302 and response["Location"] == f"/charge/{session.public_id}/"
    plan = SmartPlan.objects.get(session=session)
    assert (plan.deadline, plan.region) == (datetime(2026, 11, 25, 22, 0, tzinfo=UTC), "DE")
    assert session.purchased_wh == 11_000


def test_charge_now_starts_at_once_without_a_plan(logged_in, vehicle, prices):
    response = logged_in.post("/charge/", {"vehicle": vehicle.pk, "energy_kwh": "5", "when": "now"})
    session = ChargingSession.objects.get(vehicle=vehicle)
    assert response.status_code == 302
    assert not SmartPlan.objects.filter(session=session).exists()


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        ("2026-11-25T11:00", "That time has passed (it is now Wed 25 Nov 12:00 UTC). Choose a later one."),
        ("2026-11-29T12:00", "Choose a deadline at most three days ahead."),
        ("2026-11-26T18:00", "Prices for region DE are known until Thu 26 Nov 12:00 UTC."),
        ("", "Choose when the car must be ready"),
        ("tomorrow", "Enter a valid date/time."),
    ],
)
def test_a_bad_deadline_is_refused_with_the_reason_and_nothing_is_held(logged_in, vehicle, prices, deadline, message):
    response = _start(logged_in, vehicle, deadline=deadline, confirm="1")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'aria-invalid="true"' in response.content.decode()
    assert not ChargingSession.objects.exists()
    assert Wallet.objects.get(user=vehicle.owner).held_wh == 0


def test_without_prices_the_page_says_so_and_confirming_charges_now(logged_in, vehicle):
    content = _start(logged_in, vehicle).content.decode()
    assert "No prices are known for your region (DE), so there is nothing to plan" in content
    assert "Confirm: charge now" in content
    response = _start(logged_in, vehicle, confirm="1")
    session = ChargingSession.objects.get(vehicle=vehicle)
    assert response.status_code == 302
    assert not SmartPlan.objects.filter(session=session).exists()
    assert "nothing to plan: charging now" in logged_in.get(response["Location"]).content.decode()


def test_the_plan_stops_at_the_battery_maximum_and_says_the_rest_stays_credit(logged_in, vehicle, prices):
    vehicle.soc_bp, vehicle.capacity_wh = 7_000, 60_000  # 70 % of 60 kWh: 6 kWh to the 80 % maximum
    vehicle.save()
    content = _start(logged_in, vehicle).content.decode()
    assert "Your car stops at its maximum of 80 %: about 6 kWh of the 11 kWh is planned" in content
    assert "Wed 25 Nov 16:00–16:33 UTC: about 6.0 kWh" in content


def test_another_drivers_car_cannot_be_planned_or_started(logged_in, vehicle, other, car, prices):
    theirs = car(other, external_id="theirs")
    response = _start(logged_in, theirs, confirm="1")
    assert "Select a valid choice" in response.content.decode()
    assert not ChargingSession.objects.exists()


def test_starting_needs_the_csrf_token(driver, vehicle, prices):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert _start(strict, vehicle, confirm="1").status_code == 403
    assert not ChargingSession.objects.exists()


# --- the live page -----------------------------------------------------------------------------


@pytest.fixture
def smart_session(driver, vehicle, prices):
    return session_services.smart_session_request(
        user=driver, vehicle_id=vehicle.pk, energy_wh=11_000, deadline=T + 10 * H
    )


def _plan_windows(session, windows, **fields):
    rows = [
        {"start": a.isoformat(), "end": b.isoformat(), "energy_wh": wh, "cost_millis": c} for a, b, wh, c in windows
    ]
    SmartPlan.objects.filter(session=session).update(windows=rows, **fields)


def test_the_live_page_shows_the_plan_state_windows_and_saving(logged_in, smart_session):
    content = logged_in.get(f"/charge/{smart_session.public_id}/").content.decode()
    assert 'id="smart-plan"' in content
    assert "Planning: the windows are chosen at the car&#x27;s first reading." in content

    _plan_windows(
        smart_session,
        [(T + 4 * H, T + 5 * H, 11_000, 110_000)],
        cost_millis=110_000,
        immediate_cost_millis=440_000,
        planned_at=T,
    )
    content = logged_in.get(f"/charge/{smart_session.public_id}/").content.decode()
    assert 'id="plan-state" aria-live="polite"' in content
    assert "Waiting for cheap hours: charging starts Wed 25 Nov 16:00 UTC." in content
    assert "Wed 25 Nov 16:00–17:00 UTC: about 11.0 kWh" in content
    assert "Ready by Wed 25 Nov 22:00 UTC." in content
    assert '<strong id="plan-saving-amount">3.30 EUR</strong>' in content


def test_the_status_json_follows_re_plans_and_grid_pauses(logged_in, smart_session):
    url = f"/charge/{smart_session.public_id}/status/"
    _plan_windows(
        smart_session, [(T + 4 * H, T + 5 * H, 11_000, 110_000)], cost_millis=110_000, immediate_cost_millis=440_000
    )
    plan = logged_in.get(url).json()["plan"]
    assert plan["state"] == "waiting" and plan["saving"] == "3.30 EUR"
    assert plan["windows"] == ["Wed 25 Nov 16:00–17:00 UTC: about 11.0 kWh"]

    # A grid event moved the window: re-planned, and the session (now charging) is paused for it.
    _plan_windows(
        smart_session,
        [(T + 5 * H, T + 6 * H, 11_000, 110_000)],
        replans=1,
        paused=True,
        pause_reason="grid",
        resume_at=T + 5 * H,
    )
    ChargingSession.objects.filter(pk=smart_session.pk).update(status="charging")
    plan = logged_in.get(url).json()["plan"]
    assert plan["state"] == "paused_grid"
    assert plan["state_label"] == "Paused for a grid event; resumes at Wed 25 Nov 17:00 UTC."
    assert plan["windows"] == ["Wed 25 Nov 17:00–18:00 UTC: about 11.0 kWh"]
    assert plan["replans"] == 1

    SmartPlan.objects.filter(session=smart_session).update(paused=False, pause_reason="", resume_at=None)
    assert logged_in.get(url).json()["plan"]["state"] == "charging"


def test_a_plain_session_has_no_plan(logged_in, driver, vehicle):
    session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=1_000)
    assert logged_in.get(f"/charge/{session.public_id}/status/").json()["plan"] is None
    assert 'id="smart-plan"' not in logged_in.get(f"/charge/{session.public_id}/").content.decode()


def test_another_drivers_plan_is_not_found(client, other, smart_session):
    client.force_login(other)
    assert client.get(f"/charge/{smart_session.public_id}/status/").status_code == 404


# --- battery settings --------------------------------------------------------------------------


def _battery(client, vehicle, **data):
    return client.post(f"/vehicles/{vehicle.pk}/battery/", {"region": "DE", **data})


def test_the_vehicles_page_shows_the_limits_and_links_the_settings(logged_in, vehicle):
    content = logged_in.get("/vehicles/").content.decode()
    assert "80 %" in content and "not taking part" in content
    assert f"/vehicles/{vehicle.pk}/battery/" in content


def test_battery_limits_and_the_grid_opt_in_are_saved(logged_in, vehicle):
    response = _battery(logged_in, vehicle, max_soc="90", min_soc="20", demand_response="on")
    assert response.status_code == 302 and response["Location"] == "/vehicles/"
    vehicle.refresh_from_db()
    assert (vehicle.max_soc_bp, vehicle.min_soc_bp) == (9_000, 2_000)
    enrollment = DemandResponseEnrollment.objects.get(vehicle=vehicle)
    assert (enrollment.active, enrollment.region) == (True, "DE")
    content = logged_in.get("/vehicles/").content.decode()
    assert (
        "Saved for your Tesla Model 3: charged to at most 90 %, at once up to 20 %, taking part in grid events."
        in content
    )
    assert "taking part (DE)" in content

    _battery(logged_in, vehicle, max_soc="80", min_soc="0")  # opt out
    enrollment.refresh_from_db()
    assert enrollment.active is False


def test_not_opting_in_creates_no_enrollment(logged_in, vehicle):
    _battery(logged_in, vehicle, max_soc="85", min_soc="10")
    assert not DemandResponseEnrollment.objects.exists()


@pytest.mark.parametrize(
    ("max_soc", "min_soc", "message"),
    [
        ("80", "80", "The minimum (80 %) must be below the maximum (80 %)."),
        ("60", "70", "The minimum (70 %) must be below the maximum (60 %)."),
        ("40", "10", "Ensure this value is greater than or equal to 50."),
        ("101", "10", "Ensure this value is less than or equal to 100."),
        ("80", "-5", "Ensure this value is greater than or equal to 0."),
        ("eighty", "10", "Enter a whole number."),
    ],
)
def test_bad_limits_are_refused_with_the_reason_and_nothing_changes(logged_in, vehicle, max_soc, min_soc, message):
    response = _battery(logged_in, vehicle, max_soc=max_soc, min_soc=min_soc, demand_response="on")
    assert response.status_code == 200
    assert message in response.content.decode()
    vehicle.refresh_from_db()
    assert (vehicle.max_soc_bp, vehicle.min_soc_bp) == (8_000, 0)
    assert not DemandResponseEnrollment.objects.exists()


def test_an_unknown_region_is_refused(logged_in, vehicle):
    response = _battery(logged_in, vehicle, max_soc="80", min_soc="0", demand_response="on", region="XX")
    assert "Select a valid choice" in response.content.decode()
    assert not DemandResponseEnrollment.objects.exists()


def test_another_drivers_battery_settings_are_not_found(logged_in, other, car):
    theirs = car(other, external_id="theirs")
    assert logged_in.get(f"/vehicles/{theirs.pk}/battery/").status_code == 404
    assert _battery(logged_in, theirs, max_soc="100", min_soc="0").status_code == 404
    theirs.refresh_from_db()
    assert theirs.max_soc_bp == 8_000


def test_battery_settings_need_the_csrf_token(driver, vehicle):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(driver)
    assert _battery(strict, vehicle, max_soc="100", min_soc="0").status_code == 403
    vehicle.refresh_from_db()
    assert vehicle.max_soc_bp == 8_000


def test_the_region_follows_the_enrollment_in_the_plan(logged_in, vehicle, prices):
    grid.prices_import(region="NL", rows=[(T + i * H, T + (i + 1) * H, 20_000) for i in range(24)], source="t")
    _battery(logged_in, vehicle, max_soc="80", min_soc="0", demand_response="on", region="NL")
    content = _start(logged_in, vehicle).content.decode()
    assert "Charging now costs the same at region NL's prices (2.20 EUR): no saving by waiting." in content


# --- buy and charge ----------------------------------------------------------------------------


@pytest.fixture
def packages(db):
    return [
        EnergyPackage.objects.create(name="5 kWh", energy_wh=5_000, price_minor=225, currency="eur"),
        EnergyPackage.objects.create(name="20 kWh", energy_wh=20_000, price_minor=800, currency="eur"),
    ]


def test_the_buy_page_shows_which_packages_fit_under_the_maximum(logged_in, driver, car, packages):
    mine = car(driver)
    mine.soc_bp, mine.capacity_wh = 6_000, 60_000  # 60 % of 60 kWh: 12 kWh to 80 %
    mine.save()
    content = logged_in.get("/payments/buy/").content.decode()
    assert "is at 60 %: up to its 80 % maximum it takes about <strong>12 kWh</strong>." in content
    assert "Packages that fit: 5 kWh." in content


def test_buy_and_charge_by_a_deadline_shows_the_plan_then_records_the_deadline(
    logged_in,
    driver,
    car,
    packages,
    prices,
):
    mine = car(driver)
    data = {"package": packages[0].pk, "vehicle": mine.pk, "when": "cheapest", "deadline": "2026-11-25T22:00"}
    content = logged_in.post("/payments/buy/", data).content.decode()
    assert "Wed 25 Nov 16:00–16:28 UTC: about 5.1 kWh" in content
    assert not Purchase.objects.exists()
    response = logged_in.post("/payments/buy/", {**data, "confirm": "1"})
    purchase = Purchase.objects.get(user=driver)
    assert response.status_code == 302
    assert purchase.charge_deadline == datetime(2026, 11, 25, 22, 0, tzinfo=UTC)


def test_buy_without_a_car_ignores_the_deadline(logged_in, driver, packages):
    data = {"package": packages[0].pk, "vehicle": "", "when": "cheapest", "deadline": "garbage"}
    assert logged_in.post("/payments/buy/", data).status_code == 302
    assert Purchase.objects.get(user=driver).charge_deadline is None


def test_buy_and_charge_refuses_a_deadline_past_the_prices(logged_in, driver, car, packages, prices):
    data = {"package": packages[0].pk, "vehicle": car(driver).pk, "when": "cheapest", "deadline": "2026-11-27T08:00"}
    content = logged_in.post("/payments/buy/", {**data, "confirm": "1"}).content.decode()
    assert "Prices for region DE are known until Thu 26 Nov 12:00 UTC." in content
    assert not Purchase.objects.exists()


def _paid(purchase):
    payment_services.purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
    payment_services.purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
    from prepaid import services as wallet_services

    wallet_services.wallet_credit_purchase(purchase=Purchase.objects.get(pk=purchase.pk))
    payment_services.purchase_start_charge(purchase_id=purchase.pk)
    return Purchase.objects.get(pk=purchase.pk)


def test_a_paid_purchase_with_a_deadline_starts_a_smart_session(driver, car, packages, prices):
    purchase = payment_services.purchase_create(
        user=driver, package=packages[0], charge_vehicle=car(driver), charge_deadline=T + 10 * H
    )
    session = _paid(purchase).charge_session
    assert SmartPlan.objects.get(session=session).deadline == T + 10 * H


def test_a_deadline_that_passed_while_paying_charges_now(driver, car, packages, prices):
    purchase = payment_services.purchase_create(
        user=driver, package=packages[0], charge_vehicle=car(driver), charge_deadline=T - H
    )
    session = _paid(purchase).charge_session
    assert session is not None and not SmartPlan.objects.filter(session=session).exists()


# --- operator: admin and dashboard -------------------------------------------------------------


@pytest.fixture
def staff(client, operator):
    operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    return client


def _upload(client, name, body, **data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile(name, body.encode(), content_type="text/plain")
    return client.post(
        "/admin/charging/pricepoint/import/", {"file": upload, "unit": "ct_per_kwh", "interval": "60", **data}
    )


def test_prices_are_imported_from_a_file_in_the_admin(staff):
    body = "start,price\n2026-11-26T00:00:00+00:00,21.5\n2026-11-26T01:00:00+00:00,19.25\n"
    response = _upload(staff, "day.csv", body, region="NL")
    assert response.status_code == 302
    rows = list(PricePoint.objects.filter(region="NL").values_list("starts_at", "ends_at", "price_millis"))
    assert rows == [
        (T + 12 * H, T + 13 * H, 21_500),
        (T + 13 * H, T + 14 * H, 19_250),
    ]
    listing = staff.get("/admin/charging/pricepoint/?region=NL").content.decode()
    assert "21.500" in listing and "Import prices" in listing


def test_a_bad_price_file_imports_nothing_and_names_the_row(staff):
    body = '[{"start": "2026-11-26T00:00:00+00:00", "price": 20}, {"start": "2026-11-26T01:00:00", "price": 2}]'
    response = _upload(staff, "day.json", body)
    assert response.status_code == 200
    assert "Nothing was imported: row 2: timestamp without UTC offset" in response.content.decode()
    assert not PricePoint.objects.exists()


def test_drivers_cannot_import_prices(logged_in):
    response = logged_in.get("/admin/charging/pricepoint/import/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_operator_declares_an_event_that_enrolled_sessions_join_and_reads_its_report(staff, smart_session):
    grid.enrollment_set(vehicle=smart_session.vehicle, region="DE")
    data = {
        "external_id": "",
        "region": "DE",
        "starts_at_0": "2026-11-25",
        "starts_at_1": "16:00",
        "ends_at_0": "2026-11-25",
        "ends_at_1": "18:00",
        "bonus_minor_per_kwh": "12",
    }
    response = staff.post("/admin/charging/demandresponseevent/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = DemandResponseEvent.objects.get()
    assert event.source == "operator" and event.external_id.startswith("admin-")
    assert DemandResponseParticipation.objects.get(event=event).session_id == smart_session.pk
    report = staff.get(f"/admin/charging/demandresponseevent/{event.pk}/report/").content.decode()
    assert "Vehicles taking part</th><td>1</td>" in report
    assert f"/grid/events/{event.public_id}/report/" in report
    assert "Bonus credited</th><td>0 Wh of wallet credit" in report  # nothing shifted yet
    with time_machine.travel(T, tick=False):  # the dashboard lists events ahead of the wall clock
        dashboard = staff.get("/dashboard/").content.decode()
    assert 'id="grid-events"' in dashboard and f"/admin/charging/demandresponseevent/{event.pk}/report/" in dashboard


def test_an_event_window_over_six_hours_is_refused(staff):
    data = {
        "region": "DE",
        "starts_at_0": "2026-11-25",
        "starts_at_1": "13:00",
        "ends_at_0": "2026-11-25",
        "ends_at_1": "20:00",
        "bonus_minor_per_kwh": "10",
    }
    response = staff.post("/admin/charging/demandresponseevent/add/", data)
    assert "An event lasts at most six hours." in response.content.decode()
    assert not DemandResponseEvent.objects.exists()


def test_cancelling_removes_an_event_ahead_and_ends_one_in_progress(staff, smart_session):
    grid.enrollment_set(vehicle=smart_session.vehicle, region="DE")
    ahead, _ = grid.grid_event_declare(
        source="operator", external_id="a", starts_at=T + 2 * H, ends_at=T + 3 * H, region="DE"
    )
    running, _ = grid.grid_event_declare(
        source="operator", external_id="b", starts_at=T - H, ends_at=T + H, region="DE"
    )
    SmartPlan.objects.filter(session=smart_session).update(paused=True, pause_reason="grid", resume_at=T + H)
    response = staff.post(
        "/admin/charging/demandresponseevent/",
        {"action": "cancel_events", "_selected_action": [ahead.pk, running.pk]},
    )
    assert response.status_code == 302
    assert not DemandResponseEvent.objects.filter(pk=ahead.pk).exists()
    running.refresh_from_db()
    assert running.ends_at == T
    assert SmartPlan.objects.get(session=smart_session).resume_at == T
    assert operator.grid_event_cancel(event_id=running.pk) == ""  # over now: nothing more to do


def test_enrollments_are_listed_for_the_operator(staff, vehicle):
    grid.enrollment_set(vehicle=vehicle, region="DE")
    content = staff.get("/admin/charging/demandresponseenrollment/?region=DE").content.decode()
    assert "driver" in content and "DE" in content


def test_a_plain_session_in_a_grid_event_is_not_called_cheap_hours(logged_in, driver, vehicle):
    session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=2_000)
    SmartPlan.objects.create(session=session, region="DE", deadline=None)  # what joining an event makes
    _plan_windows(session, [(T + 2 * H, T + 3 * H, 2_000, 0)])
    plan = logged_in.get(f"/charge/{session.public_id}/status/").json()["plan"]
    assert plan["state_label"] == "Waiting for the grid event to end: charging starts Wed 25 Nov 14:00 UTC."
    assert plan["deadline"] == "" and plan["saving"] == "0.00 EUR"
    ChargingSession.objects.filter(pk=session.pk).update(status="charging")
    assert logged_in.get(f"/charge/{session.public_id}/status/").json()["plan"]["state_label"] == "Charging."
