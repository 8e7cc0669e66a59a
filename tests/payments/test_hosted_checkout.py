"""Hosted mode (STRIPE_CHECKOUT=hosted): localstripe has no Checkout Sessions, so Stripe's answers
are a recorded response served through httpx.MockTransport, and the events are signed fixtures."""

import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from payments import stripe_api
from payments.models import Purchase
from payments.services import purchase_create
from prepaid.models import LedgerEntry, Wallet
from tests.payments import events

pytestmark = pytest.mark.django_db

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "checkout_session_open.json").read_text())


class FakeStripe:
    """Serves the recorded Checkout Session; records what our client sent."""

    def __init__(self):
        self.requests: list[httpx.Request] = []
        self.session = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == "/v1/checkout/sessions":
            form = parse_qs(request.content.decode())
            purchase_id = form["client_reference_id"][0]
            self.session = json.loads(json.dumps(RECORDED).replace("PURCHASE", purchase_id))
            return httpx.Response(200, json=self.session)
        if request.method == "GET" and request.url.path == f"/v1/checkout/sessions/{RECORDED['id']}":
            return httpx.Response(200, json=self.session)
        return httpx.Response(404, json={"error": {"type": "invalid_request_error", "message": "no such route"}})


@pytest.fixture
def fake_stripe(settings):
    settings.STRIPE_CHECKOUT = "hosted"
    settings.STRIPE_API_BASE = "https://api.stripe.test"
    fake = FakeStripe()
    stripe_api._client_for.cache_clear()
    stripe_api._transport = httpx.MockTransport(fake)
    return fake


@pytest.fixture
def hosted_purchase(driver, package, client, fake_stripe):
    client.force_login(driver)
    purchase = purchase_create(user=driver, package=package)
    response = client.get(f"/payments/purchases/{purchase.public_id}/pay/")
    assert response.status_code == 302
    assert response["Location"] == RECORDED["url"]
    purchase.refresh_from_db()
    return purchase


def _session_event(type_, purchase, *, status, payment_status, payment_intent="pi_hosted_1"):
    return events.event(
        type_,
        events.checkout_session(
            session_id=RECORDED["id"],
            purchase_id=str(purchase.public_id),
            amount=purchase.amount_minor,
            status=status,
            payment_status=payment_status,
            payment_intent=payment_intent,
        ),
    )


def test_it_sends_the_driver_to_a_checkout_session_linked_to_the_purchase(hosted_purchase, fake_stripe):
    (request,) = fake_stripe.requests
    form = parse_qs(request.content.decode())
    purchase_id = str(hosted_purchase.public_id)
    assert request.headers["Idempotency-Key"] == f"purchase:{purchase_id}:checkout"
    assert form["client_reference_id"] == [purchase_id]
    assert form["payment_intent_data[metadata][purchase_id]"] == [purchase_id]
    assert form["line_items[0][price_data][unit_amount]"] == ["450"]
    assert form["line_items[0][price_data][currency]"] == ["eur"]
    assert hosted_purchase.status == Purchase.Status.AWAITING_PAYMENT
    assert hosted_purchase.stripe_checkout_session_id == RECORDED["id"]


def test_a_completed_session_credits_once(hosted_purchase, deliver, driver, ledger_clean):
    completed = _session_event("checkout.session.completed", hosted_purchase, status="complete", payment_status="paid")
    for _ in range(2):
        assert deliver(completed).status_code == 200

    hosted_purchase.refresh_from_db()
    assert hosted_purchase.status == Purchase.Status.PAID
    assert hosted_purchase.stripe_payment_intent_id == "pi_hosted_1"
    assert Wallet.objects.get(user=driver).balance_wh == 10_000
    assert LedgerEntry.objects.filter(kind="purchase").count() == 1
    ledger_clean()


def test_a_delayed_payment_is_credited_when_it_succeeds(hosted_purchase, deliver, driver):
    deliver(_session_event("checkout.session.completed", hosted_purchase, status="complete", payment_status="unpaid"))
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.AWAITING_PAYMENT

    deliver(
        _session_event(
            "checkout.session.async_payment_succeeded", hosted_purchase, status="complete", payment_status="paid"
        )
    )
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_a_failed_delayed_payment_fails_the_purchase(hosted_purchase, deliver, driver):
    deliver(
        _session_event(
            "checkout.session.async_payment_failed", hosted_purchase, status="complete", payment_status="unpaid"
        )
    )
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.FAILED
    # A late success cannot move it back.
    deliver(_session_event("checkout.session.completed", hosted_purchase, status="complete", payment_status="paid"))
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.FAILED
    assert not LedgerEntry.objects.exists()


def test_an_expired_session_cancels_the_purchase(hosted_purchase, deliver):
    deliver(_session_event("checkout.session.expired", hosted_purchase, status="expired", payment_status="unpaid"))
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.CANCELED


def test_the_return_page_retrieves_the_session_and_credits(hosted_purchase, fake_stripe, client, driver):
    fake_stripe.session.update(status="complete", payment_status="paid", payment_intent="pi_hosted_2")

    response = client.get(f"/payments/purchases/{hosted_purchase.public_id}/")

    assert b"Receipt" in response.content
    assert fake_stripe.requests[-1].method == "GET"
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.PAID
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


def test_a_session_for_another_amount_is_not_credited(hosted_purchase, deliver):
    event = _session_event("checkout.session.completed", hosted_purchase, status="complete", payment_status="paid")
    event["data"]["object"]["amount_total"] = 1
    deliver(event)
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.AWAITING_PAYMENT


def test_a_dispute_that_comes_before_its_payment_is_known_is_clawed_back_at_credit(
    hosted_purchase, deliver, driver, django_capture_on_commit_callbacks, ledger_clean
):
    """Issue 18, suspected: the dispute was retried a few times, then dropped, and the credit that
    came later was spendable. The checkout's completion is delivered a day late (Stripe retries
    failed deliveries for days); the dispute of its payment came first."""
    from datetime import timedelta

    from django.utils import timezone

    from payments import services

    dispute = events.dispute(
        dispute_id="dp_early", payment_intent="pi_hosted_1", charge="ch_hosted_1", amount=450, status="needs_response"
    )
    assert deliver(events.event("charge.dispute.created", dispute)).status_code == 200
    for minutes in range(3, 60, 3):  # the sweeper runs every minute for an hour
        with django_capture_on_commit_callbacks(execute=True):
            services.events_sweep(now=timezone.now() + timedelta(minutes=minutes))

    completed = _session_event("checkout.session.completed", hosted_purchase, status="complete", payment_status="paid")
    assert deliver(completed).status_code == 200

    wallet = Wallet.objects.get(user=driver)
    assert Purchase.objects.get(pk=hosted_purchase.pk).status == Purchase.Status.PAID
    assert (wallet.blocked, wallet.balance_wh) == (True, 0)  # the credit never became spendable
    ledger_clean()
