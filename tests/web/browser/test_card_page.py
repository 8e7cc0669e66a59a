"""The card page in a real headless Chromium against localstripe's fake Stripe.js (docs/reference/payments.md §2.1).

Chromium comes from tests/conftest.py's `chromium` fixture (skipped on a machine without it, a
failure in CI).
"""

import pytest

from payments.models import Purchase
from prepaid.models import Wallet

from .conftest import type_card

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(chromium, live_server, stripe_base, settings, driver, package):
    settings.STRIPE_JS_URL = f"{stripe_base}/js.stripe.com/v3/"
    page = chromium.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "driver")
    page.fill("input[name=password]", "drive-safely-42")
    page.click("button[type=submit], input[type=submit]")
    yield page
    page.close()


def _buy_and_type_card(page, live_server, number):
    page.goto(f"{live_server.url}/payments/buy/")
    page.check("input[name=package]:not([value=''])")
    page.click("text=Continue to payment")
    type_card(page, number)
    page.click("#pay-button")


def test_a_driver_pays_with_a_card_in_the_browser(page, live_server, driver):
    _buy_and_type_card(page, live_server, "4242424242424242")
    page.wait_for_selector("text=Receipt")
    assert "0.72 EUR" in page.content()
    assert Purchase.objects.get(user=driver).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_a_3d_secure_card_completes_authentication_in_the_browser(page, live_server, driver):
    _buy_and_type_card(page, live_server, "4000002500003155")
    page.click("text=Complete authentication")  # at the card setup
    page.click("text=Complete authentication")  # at the payment (confirmCardPayment)
    page.wait_for_selector("text=Receipt")
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_a_declined_card_shows_the_reason_and_the_driver_can_retry(page, live_server, driver):
    _buy_and_type_card(page, live_server, "4000000000000341")
    page.wait_for_selector("#card-message:has-text('declined')")
    assert Purchase.objects.get(user=driver).status == Purchase.Status.AWAITING_PAYMENT
