"""Honest live figures (issue 19 §3): between the car's readings the live page shows the
controller's estimate (power x time, with its band) and when the next reading is due; a stop
says what it does and the figure the car ends at; a slow-reporting make is said to be slow; the
receipt, the REST API and the email give the same numbers; a chart of energy over time."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.template.defaultfilters import floatformat

from notifications import kinds
from notifications.models import Notification
from sessions import services as session_services
from sessions.models import ChargingSession
from web.api.selectors import session_receipt
from web.pages import live, selectors

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_latency_cache(fresh_latency_cache):
    """The learned STOP latency is cached per make and minute; tests must not share it."""


def _charging(driver, connect, credit, drive, *, profile="vw_group", energy_wh=5_000):
    car = connect(driver, profile)
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)
    drive(session, until=lambda s: s.status == "charging" and s.delivered_wh > 0 and s.power_w)
    session.refresh_from_db()
    return session


def test_between_readings_the_page_counts_on_with_the_estimate_and_its_band(driver, connect, credit, drive, sim):
    session = _charging(driver, connect, credit, drive)
    as_of = session.last_reading_at
    assert session.power_low_w < session.power_w < session.power_high_w
    at_reading = selectors.session_view(session, now=as_of)
    later = selectors.session_view(session, now=as_of + timedelta(minutes=4))

    grown = session.power_w * 4 / 60  # Wh in four minutes at the measured power
    assert later.delivered_kwh == pytest.approx((session.delivered_wh + grown) / 1000, abs=0.002)
    assert later.delivered_kwh > at_reading.delivered_kwh
    assert later.percent >= at_reading.percent
    # The band grows with the power's band: wider four minutes on than at the reading.
    assert later.delivered_low_now_kwh < later.delivered_kwh < later.delivered_high_now_kwh
    width = later.delivered_high_now_kwh - later.delivered_low_now_kwh
    assert width > at_reading.delivered_high_now_kwh - at_reading.delivered_low_now_kwh
    assert later.estimating

    # The page's script gets the parameters to count on with; the time to finish moves too.
    data = later.as_json()
    assert data["estimate"]["counting"] is True
    assert data["estimate"]["power_w"] == session.power_w
    assert data["estimate"]["as_of"] == as_of.isoformat()
    assert later.eta_minutes < at_reading.eta_minutes
    # Never past the energy the session ends at.
    far = selectors.session_view(session, now=as_of + timedelta(hours=5))
    assert far.delivered_kwh == session.purchased_wh / 1000


def test_the_live_page_labels_the_estimate_and_says_when_the_next_reading_comes(
    driver, connect, credit, drive, sim, client
):
    session = _charging(driver, connect, credit, drive)
    client.force_login(driver)
    sim.clock.set(session.last_reading_at + timedelta(minutes=2))
    page = client.get(f"/charge/{session.public_id}/").content.decode()
    estimate_line = re.search(r'<p id="estimate-line"[^>]*>(.*?)</p>', page, re.S)
    assert estimate_line and "hidden" not in estimate_line.group(0).split(">")[0]
    assert "Estimate" in estimate_line.group(1)
    assert "since the car's last reading" in estimate_line.group(1)
    assert "Next reading from the car expected at" in page
    next_at = session.next_action_at
    assert next_at is not None
    # In the driver's time zone: no browser zone known, so the region's (DE: Europe/Berlin).
    assert f'datetime="{next_at.astimezone(ZoneInfo("Europe/Berlin")).isoformat()[:16]}' in page


def test_a_predictive_stop_says_it_is_sending_the_stop_and_the_figure_the_car_ends_at(
    driver, connect, credit, drive, sim
):
    session = _charging(driver, connect, credit, drive, energy_wh=5_000)
    # The predictive STOP as the controller sends it short of the purchase (stopping.py: the
    # step may verify it at once, so the state is set here rather than caught between ticks).
    ChargingSession.objects.filter(pk=session.pk).update(
        status="stopping", reason="threshold", stop_reason="threshold", stop_first_sent_at=sim.clock.now()
    )
    session.refresh_from_db()
    assert session.delivered_wh < 5_000
    view = selectors.session_view(session)
    assert view.note == "Sending the stop so that the car ends at 5.00 kWh."
    assert view.ends_at_kwh == 5.0
    # No "the energy you bought has been delivered" while the car is short of it.
    assert "has been delivered" not in view.detail
    assert view.as_json()["ends_at_kwh"] == 5.0


def test_a_drivers_stop_says_about_what_the_car_ends_at(driver, connect, credit, drive, sim):
    session = _charging(driver, connect, credit, drive)
    session_services.session_request_stop(session_id=session.pk, reason="driver_stop")
    drive(session, until=lambda s: s.status == "stopping")
    session.refresh_from_db()
    view = selectors.session_view(session)
    assert view.note.startswith("Sending the stop: the car ends at about ")
    assert view.ends_at_kwh is not None and view.ends_at_kwh < 5.0


def test_while_a_slow_reporting_make_starts_the_page_says_it_reports_slowly(driver, connect, credit, drive, sim):
    car = connect(driver, "vw_group")
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    drive(session, until=lambda s: s.status == "starting")
    session.refresh_from_db()
    note = selectors.session_view(session).note
    # VOLKSWAGEN refreshes its data every 450 s (sessions/vehicles/makes.py).
    assert note.startswith("Your Volkswagen reports its data every 8 minutes")
    assert "Nothing is wrong while you wait." in note


def test_a_live_make_gets_no_slow_reporting_note(driver, connect, credit, drive, sim):
    car = connect(driver, "generic")
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    assert live.slow_reporting_note(session) == ""


def test_the_receipt_the_api_and_the_email_give_the_same_numbers(
    driver, connect, credit, drive, sim, client, mailoutbox, django_capture_on_commit_callbacks
):
    session = _charging(driver, connect, credit, drive, energy_wh=3_000)
    with django_capture_on_commit_callbacks(execute=True):
        drive(session)
    session.refresh_from_db()
    assert session.status == "completed"
    figures = selectors.session_view(session).receipt
    assert figures.final and figures.billed_wh == session.billed_wh

    api = session_receipt(session)
    assert (api["billed_wh"], api["amount_minor"], api["vat_minor"], api["net_minor"]) == (
        figures.billed_wh,
        figures.amount_minor,
        figures.vat_minor,
        figures.net_minor,
    )
    assert api["amount_minor"] == sum(line["amount_minor"] for line in api["lines"])
    # A VW reports its charging power with its level (v3 `charge-wattage`): measured by both.
    assert api["measured_by"] == "power"
    assert figures.why in api["explanation"] and figures.range_words in api["explanation"]

    client.force_login(driver)
    page = client.get(f"/charge/{session.public_id}/receipt/").content.decode()
    assert f"{figures.billed_wh / 1000:.2f} kWh" in page
    for text in (figures.amount, figures.vat, figures.net, "the car&#x27;s charging power and battery level"):
        assert text in page
    assert "Overshoot" not in page and "overshoot" not in page

    [ended] = [m for m in mail.outbox if "Charge complete" in m.subject]
    billed = floatformat(figures.billed_kwh, -2)
    assert ended.subject == f"Charge complete: {billed} kWh for {figures.amount}"
    assert f"Energy charged: {billed} kWh" in ended.body
    assert f"Paid from your wallet: {figures.amount} (including {figures.vat} VAT" in ended.body
    assert figures.range_words in ended.body
    assert Notification.objects.filter(kind=kinds.CHARGE_ENDED).exists()


def test_the_receipt_says_in_words_what_is_billed_and_the_range():
    from decimal import Decimal

    from web.pages.receipts import ReceiptFigures

    figures = ReceiptFigures(
        purchased_wh=2_000,
        billed_wh=1_010,
        estimate_wh=2_000,
        low_wh=1_010,
        high_wh=2_310,
        returned_wh=990,
        not_charged_wh=990,
        amount_minor=45,
        vat_minor=7,
        net_minor=38,
        vat_rate=Decimal("0.19"),
        currency="eur",
        measured_by="soc",
        final=True,
    )
    assert figures.why == (
        "You pay for 1.01 kWh: what the car took as measured by the car's battery level, times the battery's capacity. "
        "We do not charge for the other 0.99 kWh of our estimate."
    )
    assert figures.range_words == "The car took between 1.01 and 2.31 kWh, most likely 2.00 kWh."


def test_the_chart_shows_the_readings_the_estimate_its_band_and_the_purchase(driver, connect, credit, drive, sim):
    session = _charging(driver, connect, credit, drive)
    view = selectors.session_view(session, now=session.last_reading_at + timedelta(minutes=3))
    svg = str(view.chart)
    readings = session.readings.filter(accepted=True, taken_at__gte=session.start_sent_at).count()
    assert readings >= 1
    assert svg.count('class="reading"') == len(live.reading_points(session)) >= 1
    assert 'class="band"' in svg and 'class="estimate"' in svg and 'class="estimate-ahead"' in svg
    assert 'class="purchase"' in svg
    assert 'viewBox="0 0 360 200"' in svg
