"""Races on PostgreSQL (real row locks): threads with their own database connections."""

import json

import pytest
from django.test import Client

from payments import services, stripe_api
from payments.models import Purchase, StripeEvent
from prepaid.models import LedgerEntry, Wallet
from tests.plugins.stripe import WEBHOOK_URL, sign
from tests.system.races.test_wallet_races import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREE_D_SECURE = "4000002500003155"


@pytest.fixture
def authenticated_purchase(driver, package, pay_page, browser):
    """A payment that succeeded at Stripe but is not credited yet (3-D Secure just completed)."""
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)
    return Purchase.objects.get(pk=purchase.pk)


def test_20_concurrent_deliveries_of_one_event_credit_exactly_once(
    authenticated_purchase, browser, driver, ledger_clean
):
    (succeeded,) = browser.events("payment_intent.succeeded")
    payload = json.dumps(succeeded)
    header = sign(payload)

    def post(_):
        return Client().post(WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)

    results, errors = run_concurrently(post, 20)

    assert errors == [None] * 20
    assert [r.status_code for r in results] == [200] * 20
    assert sum(r.json()["duplicate"] is False for r in results) == 1
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


def test_20_concurrent_fulfilments_of_one_payment_credit_exactly_once(authenticated_purchase, driver, ledger_clean):
    pi = stripe_api.payment_intent_retrieve(authenticated_purchase.stripe_payment_intent_id)

    results, errors = run_concurrently(
        lambda i: services.purchase_fulfil(purchase_id=authenticated_purchase.pk, payment_intent=pi, source=f"t{i}"), 20
    )

    assert errors == [None] * 20
    assert results.count(True) == 1
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()
