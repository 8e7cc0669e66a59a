"""The driver's whole journey in a real browser: sign up → connect a simulated car through the
simulator's consent page → buy 5 kWh and charge, paying with 4242… through localstripe's Stripe.js
→ the session starts → the progress bar moves → it stops at the threshold → the receipt shows
delivered ≤ purchased → the unused credit is refunded. Screenshots of each step go to
test-artifacts/<test name>/.
"""

import re

import pytest

from payments.models import Purchase, Refund
from prepaid import selectors as wallet_selectors
from prepaid.models import Wallet
from sessions.models import ChargingSession, Vehicle

from .conftest import sign_up, type_card

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _connect_car(page, live_server, simulator, shots):
    simulator.create_vehicle("generic", soc=0.3, plugged=True, charger_kw=11, command_latency_s=(2.0, 4.0))
    page.click("#connect-link")
    # The simulator's Connect consent page (another origin): choose the car, allow.
    page.wait_for_selector("h1:has-text('Connect your vehicle')")
    page.check("input[name=vehicle]")
    shots(page, "consent")
    page.click("button[value=approve]")
    page.wait_for_selector("text=Connected 1 vehicle")
    shots(page, "vehicles")


def _progress(page) -> int:
    return int(page.get_attribute("#progress", "value") or 0)


def test_the_whole_journey_from_sign_up_to_refund(browser_page, live_server, simulator, controller, shots, db_lock):
    page = browser_page
    sign_up(page, live_server)
    shots(page, "signed-up")
    _connect_car(page, live_server, simulator, shots)
    with db_lock:
        vehicle = Vehicle.objects.get(owner__username="rita")

    # Buy 5 kWh and charge the car as soon as the payment is confirmed.
    page.click("text=Buy and charge")
    page.check("#package-custom")
    page.fill("#id_energy_kwh", "5")
    page.select_option("#id_vehicle", str(vehicle.pk))
    shots(page, "buy")
    page.click("text=Continue to payment")
    type_card(page, "4242424242424242")
    shots(page, "card")
    page.click("#pay-button")

    # Paid: straight to the live page of the session the payment started.
    page.wait_for_selector("h1:has-text('Charging your')")
    with db_lock:
        purchase = Purchase.objects.get(user__username="rita")
        session = ChargingSession.objects.get(user__username="rita")
    assert purchase.status == Purchase.Status.PAID
    assert purchase.charge_session_id == session.pk
    assert session.purchased_wh == 5_000
    shots(page, "session-requested")

    # The controller starts the charge; the page follows without reloading.
    marker = page.evaluate("() => (window.__sameDocument = true)")
    controller.run_until(lambda: ChargingSession.objects.get(pk=session.pk).delivered_wh >= 1_000)
    page.wait_for_function("() => Number(document.getElementById('progress').value) > 0")
    page.wait_for_selector("#status-label:has-text('Charging')")
    mid = _progress(page)
    assert 0 < mid < 100
    assert re.search(r"\d+(\.\d)? kW", page.inner_text("#power"))
    assert "EUR" in page.inner_text("#money")
    assert page.evaluate("() => window.__sameDocument") is marker  # updated in place, not reloaded
    assert page.is_visible("#stop-button")
    assert page.is_hidden("#receipt-link")  # no receipt while charging
    shots(page, "charging")

    # It stops by itself at the threshold.
    controller.run_session(session)
    session.refresh_from_db()
    assert session.status == "completed", (session.status, session.reason)
    page.wait_for_selector("#receipt-link", state="visible")
    assert _progress(page) > mid
    assert page.is_hidden("#stop-form")
    shots(page, "done")

    # The receipt: billed ≤ purchased, with how it was measured and why.
    page.click("#receipt-link")
    page.wait_for_selector("h1:has-text('Charging receipt')")
    shots(page, "receipt")
    purchased = float(page.inner_text("#r-purchased").split()[0])
    billed = float(page.inner_text("#r-billed").split()[0])
    assert purchased == 5.0
    assert 0 < billed <= purchased
    assert page.inner_text("#r-measured") == "The car's energy counter"
    assert session.billed_wh is not None and session.billed_wh <= session.purchased_wh

    # The unused credit goes back to the card.
    page.click("text=Wallet")
    page.wait_for_selector("h1:has-text('Your wallet')")
    with db_lock:
        left_wh = Wallet.objects.get(user__username="rita").balance_wh
    assert left_wh == 5_000 - session.billed_wh
    with db_lock:
        wallet = Wallet.objects.get(user__username="rita")
        # A few Wh left over can be worth less than a cent: then there is no money to send back.
        refundable_minor = wallet_selectors.wallet_refundable_minor(wallet=wallet)
    assert page.is_visible("#refund-button") == bool(refundable_minor)
    if refundable_minor:
        shots(page, "wallet")
        page.click("#refund-button")
        page.click("#refund-next")  # all of it, as offered
        page.wait_for_selector("#refund-summary")
        page.click("#confirm-refund")
        page.wait_for_selector("text=requested")
        shots(page, "refunded")
        with db_lock:
            refund = Refund.objects.get(wallet__user__username="rita")
            assert refund.energy_wh == left_wh
            assert refund.status == Refund.Status.SUCCEEDED
            assert Wallet.objects.get(user__username="rita").balance_wh == 0
