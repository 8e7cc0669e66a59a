"""At most one successful charge per purchase, by construction (issue 18, defect 1): a double
click, parallel confirms, a 3-D Secure finished after a retry with another card, a worker killed
mid-confirm; and a surplus payment made anyway (outside the app) is refunded and shown."""

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from payments import services
from payments.models import Purchase
from prepaid.models import LedgerEntry, Wallet
from tests.plugins.stripe import ROOT
from tests.system.races.test_wallet_races import run_concurrently

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
THREE_D_SECURE = "4000002500003155"


def _succeeded(browser) -> list[dict]:
    return [c for c in browser.charges() if c["status"] == "succeeded"]


@pytest.mark.django_db
def test_a_3d_secure_attempt_cannot_complete_after_a_retry_with_another_card(
    driver, package, pay_page, browser, ledger_clean
):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    first = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    assert first.status == "requires_action"
    # The driver gives up on the 3-D Secure window and pays with another card...
    setup = services.purchase_begin_card(purchase_id=purchase.pk)
    other = browser.confirm_card_setup(setup.client_secret, VISA)
    assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=other).status == "succeeded"

    # ...then the first window's "Complete authentication" is pressed: Stripe refuses it, because
    # the retry canceled that PaymentIntent before creating its own.
    with pytest.raises(Exception, match="400"):
        browser.authenticate(first.client_secret, success=True)

    assert [c["amount"] for c in _succeeded(browser)] == [450]
    from payments.models import PaymentAttempt  # (after the check that fails without it)

    attempts = list(PaymentAttempt.objects.filter(purchase=purchase).values_list("number", "status"))
    assert attempts == [(1, "canceled"), (2, "succeeded")]
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


@pytest.mark.django_db
def test_a_second_confirm_of_a_paid_purchase_says_succeeded_and_charges_nothing(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    client = Client()
    client.force_login(driver)
    url = reverse("payments:confirm", args=[purchase.public_id])

    answers = [client.post(url, {"payment_method": pm}, content_type="application/json").json() for _ in range(2)]

    assert [a["status"] for a in answers] == ["succeeded", "succeeded"]
    assert len(_succeeded(browser)) == 1


@pytest.mark.django_db
def test_a_confirm_while_another_is_under_way_waits_for_it(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    # Another request owns the payment step right now (its claim has not expired).
    Purchase.objects.filter(pk=purchase.pk).update(payment_claimed_until=timezone.now() + timedelta(minutes=1))

    result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)

    assert result.status == "processing" and "under way" in result.message
    assert browser.charges() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_five_parallel_confirms_charge_the_card_once(driver, package, pay_page, browser, ledger_clean):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    url = f"/api/v1/purchases/{purchase.public_id}/confirm/"

    def confirm(_):
        api = APIClient()
        api.force_authenticate(driver)
        return api.post(url, {"payment_method_id": pm}, format="json")

    results, errors = run_concurrently(confirm, 5)

    assert errors == [None] * 5
    assert [r.status_code for r in results] == [200] * 5
    statuses = sorted(r.json()["status"] for r in results)
    assert "succeeded" in statuses and set(statuses) <= {"succeeded", "processing"}, statuses
    assert [c["amount"] for c in _succeeded(browser)] == [450]
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


# A web worker that dies with SIGKILL right after Stripe answered its confirm: the payment went
# through, nothing of it was written on our side after that.
KILLED_WORKER = """
import json, os, signal, sys
import django
django.setup()
import httpx
from payments import services, stripe_api

class DiesOnceCharged(httpx.BaseTransport):
    def __init__(self):
        self.real = httpx.HTTPTransport()
    def handle_request(self, request):
        response = self.real.handle_request(request)
        if request.method == "POST" and request.url.path.startswith("/v1/payment_intents"):
            if response.read() and json.loads(response.content).get("status") == "succeeded":
                os.kill(os.getpid(), signal.SIGKILL)
        return response

stripe_api._transport = DiesOnceCharged()
services.purchase_pay_with_card(purchase_id=int(sys.argv[1]), payment_method_id=sys.argv[2])
"""


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_confirm_leaves_no_second_charge(
    driver, package, pay_page, browser, settings, ledger_clean
):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "STRIPE_API_BASE": settings.STRIPE_API_BASE,
    }
    worker = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER, str(purchase.pk), pm], cwd=ROOT, env=env, timeout=120, check=False
    )
    assert worker.returncode == -signal.SIGKILL
    assert [c["amount"] for c in _succeeded(browser)] == [450]  # the dead worker's payment
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.AWAITING_PAYMENT

    # At once, the driver presses Pay again: the dead worker's claim still holds.
    assert services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm).status == "processing"
    # Once it expired, a retry with another card finds the payment and charges nothing more.
    later = timezone.now() + timedelta(seconds=settings.STRIPE_PAYMENT_CLAIM_S + 1)
    setup = services.purchase_begin_card(purchase_id=purchase.pk)
    other = browser.confirm_card_setup(setup.client_secret, MASTERCARD)
    with time_machine.travel(later, tick=False):
        result = services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=other)

    assert result.status == "succeeded"
    assert [c["amount"] for c in _succeeded(browser)] == [450]
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    ledger_clean()


@pytest.mark.django_db
def test_a_payment_made_outside_the_app_is_refunded_and_shown_to_the_operator(
    driver, operator, package, pay_page, browser, deliver, ledger_clean
):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    surplus = browser.charge_outside_the_app(Purchase.objects.get(pk=purchase.pk))

    # Its payment_intent.succeeded, as Stripe delivers it.
    (event,) = [e for e in browser.events("payment_intent.succeeded") if e["data"]["object"]["id"] == surplus["id"]]
    assert deliver(event).status_code == 200

    charge = next(c for c in browser.charges() if c["payment_intent"] == surplus["id"])
    assert charge["amount_refunded"] == 450
    from payments.models import PaymentDiscrepancy  # (after the check that fails without it)

    found = PaymentDiscrepancy.objects.get()
    assert (found.kind, found.stripe_object_id, found.status) == ("surplus_charge", surplus["id"], "fixed")
    assert found.purchase_id == purchase.pk and found.stripe_refund_id.startswith("re_")
    assert Wallet.objects.get(user=driver).balance_wh == 10_000  # credited once, nothing taken back
    ledger_clean()
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("dashboard:index")).content.decode()
    assert "second charge for one purchase (refunded)" in page and surplus["id"] in page
