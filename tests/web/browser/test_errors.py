"""A charge that cannot start tells the driver why and what to do, live, in the browser."""

import pytest

from prepaid.models import Wallet
from sessions.models import ChargingSession
from tests.plugins.wallet import paid_credit

from .conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_unplugged_car_ends_in_plain_words_and_the_credit_stays(
    browser_page, live_server, simulator, controller, shots, db_lock, django_user_model
):
    page = browser_page
    with db_lock:
        user = django_user_model.objects.create_user("uma", "uma@example.com", PASSWORD)
        paid_credit(user, energy_wh=4_000, amount_minor=180)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "uma")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    car = simulator.create_vehicle("generic", soc=0.4, plugged=False, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.goto(f"{live_server.url}/vehicles/")
    page.click("#connect-link")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Plug the car in before you start a charge.")
    shots(page, "unplugged-car")

    # Start is not offered for a car known to be unplugged: the page says what to do.
    page.click("text=Charge from wallet")
    page.wait_for_selector("#start-blocker:has-text('Your car is not plugged in.')")
    assert page.is_disabled("#start-button")
    shots(page, "start-blocked")
    # Plugged in and checked: Start is offered. The cable comes out again before it is pressed.
    simulator.set_vehicle(car.id, plugged=True, sync_snapshot=True)
    page.click("#check-car-button")
    page.wait_for_selector("#start-blocker", state="hidden")
    simulator.set_vehicle(car.id, plugged=False, sync_snapshot=True)
    page.fill("#id_energy_kwh", "4")
    page.click("button:has-text('Start charging')")
    page.wait_for_selector("h1:has-text('Charging your')")
    with db_lock:
        session = ChargingSession.objects.get(user=user)
    controller.run_session(session)
    page.wait_for_selector("#status-label:has-text('Did not start')")
    message = page.inner_text("#reason-message")
    assert "Plug it in, then start again" in message
    assert page.is_visible("text=Charge again")
    assert "did not start charging" in page.inner_text("#heading")
    assert page.inner_text("#credit-back") == "Nothing was charged: your 4 kWh of credit are back in your wallet."
    shots(page, "did-not-start")
    with db_lock:
        wallet = Wallet.objects.get(user=user)
    assert (wallet.balance_wh, wallet.held_wh) == (4_000, 0)
