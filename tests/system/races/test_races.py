"""Issue 9 §2: 50 fulfilments of one payment, 20 session starts on one wallet, a refund racing a start."""

import json
import uuid

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client

from payments import ledger, stripe_api
from payments import services as payment_services
from payments.models import Purchase
from prepaid.errors import InsufficientCredit, NothingToRefund
from prepaid.models import Hold, LedgerEntry, Wallet
from sessions import services as session_services
from sessions.models import ChargingSession, Vehicle, VehicleConnection
from tests.plugins.stripe import WEBHOOK_URL, sign
from tests.plugins.wallet import credit_wallet
from tests.system.races.test_wallet_races import run_concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREE_D_SECURE = "4000002500003155"


def _vehicles(user, n):
    connection = VehicleConnection.objects.create(user=user, external_user_id=str(uuid.uuid4()))
    return [
        Vehicle.objects.create(connection=connection, owner=user, external_id=str(uuid.uuid4()), make="TESLA")
        for _ in range(n)
    ]


def test_50_parallel_fulfilments_of_one_payment_credit_once(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, THREE_D_SECURE)
    result = payment_services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    browser.authenticate(result.client_secret, success=True)
    purchase = Purchase.objects.get(pk=purchase.pk)
    pi = stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id)
    (succeeded,) = browser.events("payment_intent.succeeded")
    payload = json.dumps(succeeded)
    header = sign(payload)

    def fulfil(i):
        # Three paths at once: the webhook, the return page's re-fetch, the sweeper.
        if i % 3 == 0:
            return (
                Client()
                .post(WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
                .status_code
            )
        if i % 3 == 1:
            return payment_services.purchase_refresh(purchase_id=purchase.pk, source=f"return-{i}").status
        return payment_services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source=f"sweep-{i}")

    _results, errors = run_concurrently(fulfil, 50)

    assert errors == [None] * 50
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    assert Wallet.objects.get(user=driver).balance_wh == package.energy_wh
    assert Purchase.objects.get(pk=purchase.pk).status == Purchase.Status.PAID
    call_command("ledger_check")


def test_20_parallel_session_starts_on_one_wallet_never_overspend(driver):
    credit_wallet(driver, energy_wh=10_000)
    cars = _vehicles(driver, 20)

    def start(i):
        return session_services.session_request(user=driver, vehicle_id=cars[i].pk, energy_wh=3_000)

    results, errors = run_concurrently(start, 20)

    started = [r for r in results if r is not None]
    assert len(started) == 3, errors
    assert all(isinstance(e, InsufficientCredit) for e in errors if e is not None)
    wallet = Wallet.objects.get(user=driver)
    assert (wallet.balance_wh, wallet.held_wh) == (1_000, 9_000)
    assert Hold.objects.filter(status=Hold.Status.ACTIVE).aggregate(s=Sum("energy_wh"))["s"] == 9_000
    call_command("ledger_check")


def test_20_parallel_starts_on_one_car_open_one_session(driver):
    credit_wallet(driver, energy_wh=100_000)
    (car,) = _vehicles(driver, 1)

    results, errors = run_concurrently(
        lambda i: session_services.session_request(user=driver, vehicle_id=car.pk, energy_wh=2_000), 20
    )

    assert sum(r is not None for r in results) == 1
    assert all(e.code == "session_open" for e in errors if e is not None)
    assert Wallet.objects.get(user=driver).held_wh == 2_000
    call_command("ledger_check")


@pytest.mark.parametrize("round_", range(6))
def test_a_refund_racing_a_session_start_leaves_a_consistent_ledger(round_, django_user_model):
    user = django_user_model.objects.create_user(f"racer{round_}", f"r{round_}@example.com", "race-safely-42")
    credit_wallet(user, energy_wh=10_000)
    (car,) = _vehicles(user, 1)
    wallet_id = Wallet.objects.get(user=user).pk

    def act(i):
        if i == 0:
            return session_services.session_request(user=user, vehicle_id=car.pk, energy_wh=6_000)
        return ledger.wallet_refund_request(wallet_id=wallet_id, idempotency_key=f"refund-race-{round_}")

    results, errors = run_concurrently(act, 2)

    session, refund = results
    assert all(e is None or isinstance(e, InsufficientCredit | NothingToRefund) for e in errors), errors
    wallet = Wallet.objects.get(pk=wallet_id)
    held = 6_000 if session is not None else 0
    refunded = refund.energy_wh if refund is not None else 0
    # Whoever came first, nothing was created or lost: 10 kWh = available + held + refunded.
    assert wallet.balance_wh + wallet.held_wh + refunded == 10_000
    assert wallet.held_wh == held
    assert session is not None or refund is not None
    if session is not None and refund is not None:
        assert refunded == 4_000
    assert ChargingSession.objects.filter(user=user).count() == (1 if session else 0)
    call_command("ledger_check")
