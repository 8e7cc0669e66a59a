"""Smart charging in a real browser: a driver chooses "cheapest by a deadline", sees the planned
windows and the saving before confirming, follows the plan on the live page; and sets a car's
battery limits (a refused value first). On a desktop and on a phone-sized screen; screenshots of
each step go to test-artifacts/<test name>/."""

from datetime import timedelta

import pytest

from payments.models import Purchase
from prepaid.models import EnergyPackage
from sessions import clock
from sessions.grid import services as grid
from sessions.models import ChargingSession, Vehicle
from sessions.models.grid import DemandResponseEnrollment, DemandResponseEvent, SmartPlan
from tests.plugins.wallet import paid_credit

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

H = timedelta(hours=1)


def _driver_with_credit(django_user_model, username: str, energy_wh: int = 20_000):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", PASSWORD)
    package = EnergyPackage.objects.create(name=f"{energy_wh // 1000} kWh", energy_wh=energy_wh, price_minor=900)
    paid_credit(user, package=package)
    return user


def _log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/vehicles/")


def _connect(page, simulator) -> None:
    simulator.create_vehicle("generic", soc=0.3, plugged=True, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.click("#connect-link")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Connected 1 vehicle")


def _prices_from_now():
    """30 hourly DE prices from the current hour: 40 ct/kWh, 10 ct in hours +5 and +6."""
    anchor = clock.now().replace(minute=0, second=0, microsecond=0)
    rows = [(anchor + i * H, anchor + (i + 1) * H, 10_000 if i in (5, 6) else 40_000) for i in range(30)]
    grid.prices_import(region="DE", rows=rows, source="browser-test")
    return anchor


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("viewport", ["browser_page", "phone_page"])
def test_a_driver_charges_by_a_deadline_after_seeing_the_plan_and_the_saving(
    request, viewport, live_server, simulator, controller, shots, db_lock, django_user_model
):
    page = request.getfixturevalue(viewport)
    name = f"sam{viewport[0]}"
    with db_lock:
        _driver_with_credit(django_user_model, name)
        anchor = _prices_from_now()
    _log_in(page, live_server, name)
    _connect(page, simulator)
    page.goto(f"{live_server.url}/charge/")
    page.fill("#id_energy_kwh", "11")
    # Without a choice it charges now; the deadline appears only for "cheapest".
    assert page.is_hidden("#id_deadline")
    page.check("input[name=when][value=cheapest]")
    assert page.is_visible("#id_deadline")
    assert page.inner_text("#start-button") == "See the plan"

    # A deadline past the known prices is refused with the reason.
    page.fill("#id_deadline", f"{anchor + 40 * H:%Y-%m-%dT%H:%M}")
    page.click("#start-button")
    page.wait_for_selector("#deadline-error")
    assert "Prices for region DE are known until" in page.inner_text("#deadline-error")
    shots(page, "deadline-refused")

    page.fill("#id_deadline", f"{anchor + 12 * H:%Y-%m-%dT%H:%M}")
    page.click("#start-button")
    page.wait_for_selector("#plan-preview")
    window = f"{anchor + 5 * H:%a %d %b %H:%M}–{anchor + 6 * H:%H:%M} UTC: about 11.0 kWh"
    assert page.inner_text("#preview-windows") == window
    saving = page.inner_text("#preview-saving")
    assert "Expected saving against charging now: 3.30 EUR (1.10 EUR instead of 4.40 EUR" in saving
    assert _no_horizontal_scroll(page)
    shots(page, "plan-before-confirming")
    with db_lock:
        assert not ChargingSession.objects.filter(user__username=name).exists()

    page.click("#confirm-button")
    page.wait_for_selector("#smart-plan")
    with db_lock:
        session = ChargingSession.objects.get(user__username=name)
        assert SmartPlan.objects.get(session=session).deadline == anchor + 12 * H
    shots(page, "live-planning")

    # The controller reads the car and plans; the live page picks the plan up by itself.
    controller.run_until(lambda: SmartPlan.objects.get(session=session).windows != [])
    page.wait_for_selector("#plan-state-label:has-text('Waiting for cheap hours')")
    assert page.inner_text("#plan-windows") == window
    assert page.inner_text("#plan-saving-amount") == "3.30 EUR"
    assert page.get_attribute("#plan-state", "aria-live") == "polite"
    assert _no_horizontal_scroll(page)
    shots(page, "live-waiting-for-cheap-hours")


@pytest.mark.parametrize("viewport", ["browser_page", "phone_page"])
def test_a_driver_sets_battery_limits_and_joins_grid_events(
    request, viewport, live_server, simulator, shots, db_lock, django_user_model
):
    page = request.getfixturevalue(viewport)
    name = f"bea{viewport[0]}"
    with db_lock:
        _driver_with_credit(django_user_model, name)
    _log_in(page, live_server, name)
    _connect(page, simulator)
    page.click("text=Battery settings")
    page.wait_for_selector("h1:has-text('Battery settings')")
    assert page.input_value("#id_max_soc") == "80"
    shots(page, "battery-settings")

    page.fill("#id_max_soc", "60")
    page.fill("#id_min_soc", "70")
    page.click("#save-battery")
    page.wait_for_selector("#id_min_soc-error")
    assert page.inner_text("#id_min_soc-error") == "The minimum (70 %) must be below the maximum (60 %)."
    assert page.get_attribute("#id_min_soc", "aria-invalid") == "true"
    assert _no_horizontal_scroll(page)
    shots(page, "battery-refused")

    page.fill("#id_max_soc", "90")
    page.fill("#id_min_soc", "20")
    page.check("#id_demand_response")
    page.click("#save-battery")
    page.wait_for_selector("text=charged to at most 90 %, at once up to 20 %, taking part in grid events.")
    assert "taking part (DE)" in page.inner_text(".card")
    assert _no_horizontal_scroll(page)
    shots(page, "vehicles-after-saving")
    with db_lock:
        vehicle = Vehicle.objects.get(owner__username=name)
        assert (vehicle.max_soc_bp, vehicle.min_soc_bp) == (9_000, 2_000)
        assert DemandResponseEnrollment.objects.get(vehicle=vehicle).active


def test_buy_and_charge_offers_a_deadline_once_a_car_is_chosen(
    browser_page, live_server, simulator, shots, db_lock, django_user_model
):
    page = browser_page
    with db_lock:
        _driver_with_credit(django_user_model, "bo")
        EnergyPackage.objects.create(name="50 kWh", energy_wh=50_000, price_minor=2_000)
        anchor = _prices_from_now()
    _log_in(page, live_server, "bo")
    _connect(page, simulator)
    page.goto(f"{live_server.url}/payments/buy/")
    assert page.is_hidden("#timing-block")  # only buying credit: nothing to time
    with db_lock:
        vehicle = Vehicle.objects.get(owner__username="bo")
        vehicle.capacity_wh = 60_000
        vehicle.save(update_fields=["capacity_wh"])
    page.goto(f"{live_server.url}/payments/buy/?vehicle={vehicle.pk}")
    # 30 % of 60 kWh: 30 kWh fit under the 80 % maximum, so the 20 kWh package does, 50 kWh does not.
    assert "it takes about 30 kWh. Packages that fit: 20 kWh." in page.inner_text(f"#fit-{vehicle.pk}")
    assert page.is_visible("#timing-block")
    page.check("input[name=package][value='']")
    page.fill("#id_energy_kwh", "11")
    page.check("input[name=when][value=cheapest]")
    page.fill("#id_deadline", f"{anchor + 12 * H:%Y-%m-%dT%H:%M}")
    page.click("#start-button")
    page.wait_for_selector("#plan-preview")
    assert "3.30 EUR" in page.inner_text("#preview-saving")
    shots(page, "buy-plan-before-paying")
    page.click("#confirm-button")
    page.wait_for_selector("h1:has-text('Pay ')")
    with db_lock:
        purchase = Purchase.objects.get(user__username="bo", charge_vehicle__isnull=False)
        assert (purchase.charge_vehicle_id, purchase.charge_deadline) == (vehicle.pk, anchor + 12 * H)


def test_an_operator_imports_prices_and_declares_a_grid_event_in_the_admin(
    browser_page, live_server, shots, db_lock, django_user_model, tmp_path
):
    page = browser_page
    with db_lock:
        django_user_model.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True, is_superuser=True)
    anchor = clock.now().replace(minute=0, second=0, microsecond=0) + H
    lines = ["start,price"] + [f"{(anchor + i * H).isoformat()},{20 + i}" for i in range(4)]
    upload = tmp_path / "prices.csv"
    upload.write_text("\n".join(lines) + "\n")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/charging/pricepoint/")
    page.click("text=Import prices (CSV or JSON)")
    page.set_input_files("#id_file", str(upload))
    page.fill("#id_region", "AT")
    page.select_option("#id_unit", "ct_per_kwh")
    shots(page, "import-form")
    page.click("input[value=Import]")
    page.wait_for_selector("text=Imported 4 prices (AT: 4).")
    assert "20.000" in page.inner_text("#result_list")
    shots(page, "prices")

    page.goto(f"{live_server.url}/admin/charging/demandresponseevent/add/")
    page.fill("#id_region", "AT")
    page.fill("#id_starts_at_0", f"{anchor:%Y-%m-%d}")
    page.fill("#id_starts_at_1", f"{anchor:%H:%M:%S}")
    page.fill("#id_ends_at_0", f"{anchor + H:%Y-%m-%d}")
    page.fill("#id_ends_at_1", f"{anchor + H:%H:%M:%S}")
    page.click("input[name=_save]")
    page.wait_for_selector("#result_list")
    page.click("#result_list a:has-text('report')")
    page.wait_for_selector("#event-summary")
    assert "AT" in page.inner_text("#event-summary")
    shots(page, "event-report")
    with db_lock:
        event = DemandResponseEvent.objects.get(region="AT")
        assert (event.source, event.declared_by.username) == ("operator", "ops")
    page.goto(f"{live_server.url}/dashboard/")
    assert "ahead" in page.inner_text("#grid-events")
    shots(page, "dashboard")
