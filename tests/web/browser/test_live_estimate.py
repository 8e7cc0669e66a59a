"""The live page on a phone (390×844) with a slow-reporting car: while the START is awaited it
says the car reports slowly; between the car's readings the progress keeps moving on the
controller's estimate, labelled as one, with the next reading's time; the energy chart fits the
screen."""

import pytest
from django.contrib.auth import get_user_model

from sessions import services as session_services
from sessions.models import ChargingSession, Vehicle
from tests.plugins.wallet import paid_credit

from .conftest import sign_up

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(chromium, live_server):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _delivered(page) -> float:
    return float(page.inner_text("#delivered"))


def test_between_readings_the_phone_page_counts_on_and_says_so(
    phone, live_server, simulator, controller, shots, db_lock
):
    page = phone
    sign_up(page, live_server, "vera")
    simulator.create_vehicle("vw_group", soc=0.2, plugged=True, charger_kw=11)
    page.click("#connect-link")
    page.wait_for_selector("h1:has-text('Connect your vehicle')")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Connected 1 vehicle")
    with db_lock:
        driver = get_user_model().objects.get(username="vera")
        paid_credit(driver, energy_wh=30_000, amount_minor=1350)
        vehicle = Vehicle.objects.get(owner=driver)
        session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=30_000)
    page.goto(f"{live_server.url}/charge/{session.public_id}/")
    page.wait_for_selector("h1:has-text('Charging your')")

    # After START, before the car has shown it: the page says a Volkswagen reports slowly.
    controller.run_until(lambda: ChargingSession.objects.get(pk=session.pk).status == "starting")
    page.wait_for_selector("#live-note:has-text('reports its data every')")
    assert "Volkswagen" in page.inner_text("#live-note")
    shots(page, "slow-car")

    # Charging, with a reading: then the controller is left alone, so no new reading comes.
    controller.run_until(
        lambda: (s := ChargingSession.objects.get(pk=session.pk)).status == "charging" and s.delivered_wh > 0
    )
    page.wait_for_selector("#estimate-line:not([hidden])")
    assert "Estimate" in page.inner_text("#estimate-line")
    assert page.is_visible("#next-reading")
    with db_lock:
        readings = ChargingSession.objects.get(pk=session.pk).readings.count()
    first = _delivered(page)
    page.wait_for_function(f"() => Number(document.getElementById('delivered').textContent) > {first}")
    with db_lock:
        assert ChargingSession.objects.get(pk=session.pk).readings.count() == readings  # no new reading
    shots(page, "estimate")

    # The chart: readings as points, the estimate and its band, the purchase; as wide as the phone.
    assert page.locator("#energy-chart circle.reading").count() >= 1
    assert page.locator("#energy-chart polygon.band").count() == 1
    assert page.locator("#energy-chart line.purchase").count() == 1
    box = page.locator("#energy-chart").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
