"""Declined cards, a 3-D Secure card and a phone-sized screen, in a real browser.

Screenshots of each step go to test-artifacts/<test name>/.
"""

import pytest

from payments.models import Purchase
from prepaid.models import Wallet
from sessions.models import ChargingSession, Vehicle

from .conftest import SPEED, sign_up, type_card

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _connect(page, simulator, *, plugged=True):
    simulator.create_vehicle("generic", soc=0.3, plugged=plugged, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.click("#connect-link")
    page.check("input[name=vehicle]")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Connected 1 vehicle")


def _buy(page, live_server, kwh="5", vehicle=None):
    page.goto(f"{live_server.url}/payments/buy/")
    page.check("#package-custom")
    page.fill("#id_energy_kwh", kwh)
    if vehicle is not None:
        page.select_option("#id_vehicle", str(vehicle.pk))
    page.click("text=Continue to payment")


def _no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_card_declined_at_setup_says_what_to_do_and_another_card_works(browser_page, live_server, shots, db_lock):
    page = browser_page
    sign_up(page, live_server, "dora")
    _buy(page, live_server)
    type_card(page, "4000000000000002")
    page.click("#pay-button")
    page.wait_for_selector("#card-message.error")
    message = page.inner_text("#card-message")
    assert "declined" in message and "another card" in message
    assert page.is_enabled("#pay-button")
    shots(page, "declined")
    with db_lock:
        assert Purchase.objects.get(user__username="dora").status == Purchase.Status.AWAITING_PAYMENT

    # Same page, another card: the payment goes through.
    type_card(page, "4242424242424242")
    page.click("#pay-button")
    page.wait_for_selector("h1:has-text('Receipt')")
    shots(page, "paid-with-another-card")
    with db_lock:
        assert Wallet.objects.get(user__username="dora").balance_wh == 5_000


def test_a_card_declined_at_payment_shows_the_reason_and_nothing_is_credited(browser_page, live_server, shots, db_lock):
    page = browser_page
    sign_up(page, live_server, "dan")
    _buy(page, live_server)
    type_card(page, "4000000000000341")
    page.click("#pay-button")
    page.wait_for_selector("#card-message.error")
    assert "another card" in page.inner_text("#card-message")
    shots(page, "declined-at-payment")
    with db_lock:
        purchase = Purchase.objects.get(user__username="dan")
        assert purchase.status == Purchase.Status.AWAITING_PAYMENT
        assert purchase.last_error
        assert not Wallet.objects.filter(user__username="dan", balance_wh__gt=0).exists()


def test_a_3d_secure_card_pays_and_the_charge_starts(browser_page, live_server, simulator, controller, shots, db_lock):
    page = browser_page
    sign_up(page, live_server, "tess")
    _connect(page, simulator)
    with db_lock:
        vehicle = Vehicle.objects.get(owner__username="tess")
    _buy(page, live_server, kwh="2", vehicle=vehicle)
    type_card(page, "4000002500003155")
    page.click("#pay-button")
    page.click("text=Complete authentication")  # at the card setup
    shots(page, "3ds-modal")
    page.click("text=Complete authentication")  # at the payment (confirmCardPayment)
    # The return page re-fetches the PaymentIntent, fulfils it, and the fulfilment starts the charge.
    page.wait_for_selector("h1:has-text('Charging your')")
    shots(page, "charge-started")
    with db_lock:
        purchase = Purchase.objects.get(user__username="tess")
        assert purchase.status == Purchase.Status.PAID
        assert purchase.charge_session.purchased_wh == 2_000


def test_on_a_phone_a_driver_charges_from_the_wallet_and_stops_early(
    phone_page, live_server, simulator, controller, shots, db_lock
):
    page = phone_page
    sign_up(page, live_server, "pia")
    assert _no_horizontal_scroll(page)
    shots(page, "vehicles-empty")
    _connect(page, simulator)
    assert _no_horizontal_scroll(page)
    shots(page, "vehicles")

    _buy(page, live_server, kwh="8")
    type_card(page, "4242424242424242")
    assert _no_horizontal_scroll(page)
    shots(page, "card")
    page.click("#pay-button")
    page.wait_for_selector("h1:has-text('Receipt')")
    assert _no_horizontal_scroll(page)
    shots(page, "purchase-receipt")

    # Charge 6 of the 8 kWh from the wallet.
    page.click("text=Start charging")
    page.fill("#id_energy_kwh", "6")
    shots(page, "start")
    page.click("button:has-text('Start charging')")
    page.wait_for_selector("h1:has-text('Charging your')")
    with db_lock:
        session = ChargingSession.objects.get(user__username="pia")
    controller.run_until(lambda: ChargingSession.objects.get(pk=session.pk).delivered_wh >= 500)
    # From here the car charges 10 times slower: at 300× a browser slowed by a loaded machine took
    # long enough to click "stop" that the whole 6 kWh was in before the STOP.
    simulator.clock.set_speed(SPEED / 10)
    page.wait_for_selector("#status-label:has-text('Charging')")
    assert _no_horizontal_scroll(page)
    shots(page, "charging")

    # The driver stops early: the page reloads on the stopping session; the controller stops the car.
    page.click("#stop-button")
    page.wait_for_selector("text=Stopping: we are telling the car to stop")
    assert page.is_hidden("#stop-form")
    controller.run_session(session)
    page.wait_for_selector("#done:not([hidden])")
    session.refresh_from_db()
    assert session.status in ("completed", "interrupted")
    assert session.reason == "driver_stop"
    assert "request" in page.inner_text("#reason-message")
    shots(page, "stopped")
    page.click("#receipt-link")
    page.wait_for_selector("h1:has-text('Charging receipt')")
    assert _no_horizontal_scroll(page)
    shots(page, "receipt")
    with db_lock:
        wallet = Wallet.objects.get(user__username="pia")
    # What was not delivered went back to the wallet.
    assert wallet.balance_wh == 8_000 - session.billed_wh
    assert session.billed_wh < 6_000
