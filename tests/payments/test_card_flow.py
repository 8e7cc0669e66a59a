"""The card flow of docs/reference/payments.md §2.1 against a real localstripe, end to end."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments import services, stripe_api
from payments.models import Purchase, PurchaseTransition, StripeEvent
from prepaid.models import LedgerEntry, Wallet

pytestmark = pytest.mark.django_db

VISA = "4242424242424242"
DECLINED_AT_PAYMENT = "4000000000000341"
THREE_D_SECURE = "4000002500003155"


def test_it_credits_a_successful_card_payment_once(driver, package, pay_page, browser, deliver, ledger_clean):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)

    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    purchase.refresh_from_db()
    assert result.status == "succeeded"
    assert purchase.status == Purchase.Status.PAID
    assert purchase.stripe_payment_intent_id.startswith("pi_")
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    pi = stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id)
    assert (pi.amount, pi.currency, pi.purchase_id) == (450, "eur", str(purchase.public_id))

    # localstripe's own payment_intent.succeeded, delivered three times: one event row, one credit.
    (succeeded,) = browser.events("payment_intent.succeeded")
    for _ in range(3):
        assert deliver(succeeded).status_code == 200
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    assert list(PurchaseTransition.objects.values_list("to_status", flat=True)) == ["awaiting_payment", "paid"]
    ledger_clean()


def test_it_credits_from_the_webhook_when_it_comes_first(driver, package, pay_page, browser, deliver, ledger_clean):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)

    (succeeded,) = browser.events("payment_intent.succeeded")
    deliver(succeeded)
    # The driver's return page comes after the webhook: nothing more is credited.
    services.purchase_refresh(purchase_id=purchase.pk)
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    ledger_clean()


def test_a_declined_card_gives_a_clear_message_and_a_retryable_purchase(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, DECLINED_AT_PAYMENT)

    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    purchase.refresh_from_db()
    assert result.status == "declined"
    assert "declined" in result.message.lower()
    assert "try again" in result.message.lower()
    assert purchase.status == Purchase.Status.AWAITING_PAYMENT
    assert not Wallet.objects.filter(user=driver, balance_wh__gt=0).exists()

    # Retry with another card: a fresh SetupIntent and a new PaymentIntent (attempt 2).
    setup = services.purchase_begin_card(purchase_id=purchase.pk)
    pm = browser.confirm_card_setup(setup.client_secret, VISA)
    assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == "succeeded"
    purchase.refresh_from_db()
    assert (purchase.status, purchase.attempts) == (Purchase.Status.PAID, 2)
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_a_3d_secure_card_waits_for_authentication_then_the_return_page_credits(
    driver, package, pay_page, browser, client, ledger_clean
):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)

    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    assert result.status == "requires_action"
    assert result.client_secret.startswith(Purchase.objects.get(pk=purchase.pk).stripe_payment_intent_id)
    assert not Wallet.objects.filter(user=driver, balance_wh__gt=0).exists()

    browser.authenticate(result.client_secret, success=True)
    client.force_login(driver)
    response = client.get(f"/payments/purchases/{purchase.public_id}/")

    assert response.status_code == 200
    assert b"Receipt" in response.content
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


def test_a_failed_3d_secure_authentication_says_so_and_can_be_retried(driver, package, pay_page, browser, client):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=False)

    client.force_login(driver)
    response = client.get(f"/payments/purchases/{purchase.public_id}/")

    assert b"authentication (3-D Secure) failed" in response.content
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.AWAITING_PAYMENT
    setup = services.purchase_begin_card(purchase_id=purchase.pk)
    pm = browser.confirm_card_setup(setup.client_secret, VISA)
    assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == "succeeded"


def test_the_payment_failed_webhook_records_the_reason(driver, package, pay_page, browser, deliver):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, DECLINED_AT_PAYMENT)
    Purchase.objects.filter(pk=purchase.pk).update(last_error="")
    services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    Purchase.objects.filter(pk=purchase.pk).update(last_error="")

    (failed,) = browser.events("payment_intent.payment_failed")
    assert deliver(failed).status_code == 200

    purchase.refresh_from_db()
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert purchase.status == Purchase.Status.AWAITING_PAYMENT
    assert "declined" in purchase.last_error.lower()


def test_fulfilment_refuses_a_payment_of_another_amount(driver, package, pay_page, browser, deliver):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)
    (succeeded,) = browser.events("payment_intent.succeeded")
    succeeded["data"]["object"]["amount"] = 45  # a tampered or mismatched payment

    deliver(succeeded)

    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.AWAITING_PAYMENT
    assert not LedgerEntry.objects.exists()


def test_reconciliation_credits_a_payment_whose_webhook_never_came(driver, package, pay_page, browser, ledger_clean):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)

    assert services.purchases_reconcile() == 0  # too recent to be re-fetched yet
    moved = services.purchases_reconcile(now=timezone.now() + timedelta(minutes=10))

    assert moved == 1
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


def test_reconciliation_cancels_an_abandoned_purchase_and_its_payment_intent(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    services.purchases_reconcile(now=timezone.now() + timedelta(days=2))

    purchase.refresh_from_db()
    assert purchase.status == Purchase.Status.CANCELED
    assert stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id).status == "canceled"


def test_a_network_failure_charges_nothing_and_the_retry_pays_once(driver, package, pay_page, browser, settings):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    working_base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: connection refused

    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    assert result.status == "error"
    purchase.refresh_from_db()
    assert (purchase.attempts, purchase.payment_claimed_until) == (1, None)  # the claim is released
    settings.STRIPE_API_BASE = working_base
    assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == "succeeded"
    assert Purchase.objects.get(pk=purchase.pk).attempts == 2
    assert [c.status for c in browser.client.v1.charges.list().data] == ["succeeded"]
