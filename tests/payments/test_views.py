"""The driver pages: buy, pay, confirm, status, wallet, refund."""

import json
from decimal import Decimal

import pytest

from payments.models import Purchase, Refund
from prepaid.models import Wallet

pytestmark = pytest.mark.django_db

VISA = "4242424242424242"
DECLINED_AT_PAYMENT = "4000000000000341"


@pytest.fixture
def logged_in(client, driver):
    client.force_login(driver)
    return client


def test_the_buy_page_needs_a_login(client):
    response = client.get("/payments/buy/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_the_buy_page_lists_active_packages_with_prices(logged_in, package):
    response = logged_in.get("/payments/buy/")
    assert response.status_code == 200
    assert b"10 kWh for 4.50 EUR" in response.content
    assert b"19 % VAT" in response.content


def test_it_creates_a_custom_purchase_with_its_vat_share(logged_in, driver, settings):
    settings.PRICE_PER_KWH = Decimal("0.45")
    settings.VAT_RATE = Decimal("0.19")
    response = logged_in.post("/payments/buy/", {"package": "", "energy_kwh": "12.5"})
    purchase = Purchase.objects.get(user=driver)
    assert response.status_code == 302
    assert response["Location"] == f"/payments/purchases/{purchase.public_id}/pay/"
    assert (purchase.energy_wh, purchase.amount_minor, purchase.vat_minor, purchase.currency) == (
        12_500,
        563,
        90,
        "eur",
    )


def test_it_refuses_a_custom_amount_out_of_bounds(logged_in, driver, settings):
    settings.CUSTOM_KWH_MAX = Decimal("100")
    response = logged_in.post("/payments/buy/", {"package": "", "energy_kwh": "150"})
    assert response.status_code == 200
    assert b"Custom amounts go from" in response.content
    assert not Purchase.objects.exists()


def test_the_pay_page_loads_stripe_js_and_a_setup_intent(logged_in, driver, package, stripe_base, settings):
    logged_in.post("/payments/buy/", {"package": package.pk})
    purchase = Purchase.objects.get(user=driver)
    response = logged_in.get(f"/payments/purchases/{purchase.public_id}/pay/")
    assert response.status_code == 200
    assert f'<script src="{settings.STRIPE_JS_URL}"></script>'.encode() in response.content
    assert b"seti_" in response.content  # the SetupIntent's client secret for confirmCardSetup
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.AWAITING_PAYMENT


def _setup_secret(response) -> str:
    start = response.content.index(b'id="setup-client-secret"')
    chunk = response.content[start:].split(b">", 1)[1].split(b"<", 1)[0]
    return json.loads(chunk)


def _buy_and_confirm(logged_in, driver, package, browser, card):
    """Buy the package and confirm the pay page with `card`: the purchase and the confirm answer."""
    logged_in.post("/payments/buy/", {"package": package.pk})
    purchase = Purchase.objects.get(user=driver)
    page = logged_in.get(f"/payments/purchases/{purchase.public_id}/pay/")
    pm = browser.confirm_card_setup(_setup_secret(page), card)
    response = logged_in.post(
        f"/payments/purchases/{purchase.public_id}/confirm/",
        data=json.dumps({"payment_method": pm}),
        content_type="application/json",
    )
    return purchase, response


def test_the_confirm_endpoint_pays_and_the_receipt_shows_vat(logged_in, driver, package, browser):
    purchase, response = _buy_and_confirm(logged_in, driver, package, browser, VISA)

    assert response.json()["status"] == "succeeded"
    receipt = logged_in.get(f"/payments/purchases/{purchase.public_id}/")
    assert b"Receipt" in receipt.content
    assert b"0.72 EUR" in receipt.content  # VAT share of 4.50 at 19 %
    assert b"3.78 EUR" in receipt.content


def test_a_decline_answers_with_a_message_and_a_fresh_setup_intent(logged_in, driver, package, browser):
    logged_in.post("/payments/buy/", {"package": package.pk})
    purchase = Purchase.objects.get(user=driver)
    page = logged_in.get(f"/payments/purchases/{purchase.public_id}/pay/")
    pm = browser.confirm_card_setup(_setup_secret(page), DECLINED_AT_PAYMENT)

    body = logged_in.post(
        f"/payments/purchases/{purchase.public_id}/confirm/",
        data=json.dumps({"payment_method": pm}),
        content_type="application/json",
    ).json()

    assert body["status"] == "declined"
    assert "declined" in body["message"].lower()
    assert body["setup_client_secret"].startswith("seti_")
    assert body["setup_client_secret"] != _setup_secret(page)


def test_the_confirm_endpoint_needs_a_payment_method(logged_in, driver, package):
    logged_in.post("/payments/buy/", {"package": package.pk})
    purchase = Purchase.objects.get(user=driver)
    response = logged_in.post(
        f"/payments/purchases/{purchase.public_id}/confirm/", data="{}", content_type="application/json"
    )
    assert response.status_code == 400


def test_another_drivers_purchase_is_not_found(client, django_user_model, driver, package):
    purchase = Purchase.objects.create(
        user=driver, package=package, energy_wh=10_000, amount_minor=450, currency="eur", vat_minor=72, vat_rate="0.19"
    )
    other = django_user_model.objects.create_user("other", "o@example.com", "pw-other-123")
    client.force_login(other)
    assert client.get(f"/payments/purchases/{purchase.public_id}/").status_code == 404


def test_the_wallet_page_shows_balance_lots_and_refunds_unused_credit(
    logged_in, driver, package, browser, django_capture_on_commit_callbacks, ledger_clean
):
    _buy_and_confirm(logged_in, driver, package, browser, VISA)

    wallet_page = logged_in.get("/payments/wallet/")
    assert b'<strong id="balance">10 kWh</strong>' in wallet_page.content
    assert b"Refund unused credit (up to 4.50 EUR)" in wallet_page.content

    # The refund page offers all of it, asks to confirm, and refunds only then.
    form = logged_in.get("/payments/wallet/refund/").content.decode()
    assert 'value="10"' in form and "You can refund up to <strong>10 kWh</strong> (4.50 EUR)." in form
    confirm = logged_in.post("/payments/wallet/refund/", {"energy_kwh": "10"}).content.decode()
    assert "Refund 10 kWh: 4.50 EUR back to your card. This cannot be undone." in confirm
    assert Wallet.objects.get(user=driver).balance_wh == 10_000  # not yet
    with django_capture_on_commit_callbacks(execute=True):
        logged_in.post("/payments/wallet/refund/", {"energy_kwh": "10", "confirm": "1"})
    response = logged_in.get("/payments/wallet/")

    assert b"Refund of 10 kWh (4.50 EUR) requested." in response.content
    assert b"Succeeded" in response.content
    assert Wallet.objects.get(user=driver).balance_wh == 0
    ledger_clean()


def test_a_partial_refund_returns_that_share_through_the_ledger(
    logged_in, driver, package, browser, django_capture_on_commit_callbacks, ledger_clean
):
    _buy_and_confirm(logged_in, driver, package, browser, VISA)
    too_much = logged_in.post("/payments/wallet/refund/", {"energy_kwh": "12"}).content.decode()
    assert "You can refund at most 10 kWh." in too_much
    confirm = logged_in.post("/payments/wallet/refund/", {"energy_kwh": "4"}).content.decode()
    assert "Refund 4 kWh: 1.80 EUR back to your card." in confirm
    with django_capture_on_commit_callbacks(execute=True):
        logged_in.post("/payments/wallet/refund/", {"energy_kwh": "4", "confirm": "1"})
    assert Wallet.objects.get(user=driver).balance_wh == 6_000
    refund = Refund.objects.get(wallet__user=driver)
    assert (refund.energy_wh, refund.amount_minor, refund.status) == (4_000, 180, Refund.Status.SUCCEEDED)
    ledger_clean()
