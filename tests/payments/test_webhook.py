"""The webhook endpoint and the inbox: signatures, duplicates, failures, replay, sweeper."""

import json
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from payments import services
from payments.models import StripeEvent
from prepaid.models import Wallet
from tests.payments import events
from tests.plugins.stripe import WEBHOOK_URL, sign

pytestmark = pytest.mark.django_db

VISA = "4242424242424242"


def _paid(driver, package, pay_page, browser):
    purchase, setup_secret = pay_page(driver, package)
    pm = browser.confirm_card_setup(setup_secret, VISA)
    services.purchase_pay_with_card(purchase_id=purchase.pk, payment_method_id=pm)
    purchase.refresh_from_db()
    return purchase


def test_it_rejects_a_forged_signature(deliver):
    ignored = events.event("customer.created", {"id": "cus_1", "object": "customer"})
    response = deliver(ignored, secret="whsec_not_ours")
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_rejects_a_tampered_body(client):
    payload = json.dumps(events.event("customer.created", {"id": "cus_1", "object": "customer"}))
    header = sign(payload)
    response = client.post(
        WEBHOOK_URL,
        data=payload.replace("cus_1", "cus_2"),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_rejects_a_stale_timestamp(deliver, settings):
    stale = int(time.time()) - settings.STRIPE_WEBHOOK_TOLERANCE_S - 5
    response = deliver(events.event("customer.created", {"id": "cus_1"}), timestamp=stale)
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_accepts_every_secret_during_a_rotation(deliver, settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new", "whsec_old"]
    assert deliver(events.event("customer.created", {"id": "cus_1"}), secret="whsec_old").status_code == 200
    assert deliver(events.event("customer.created", {"id": "cus_2"}), secret="whsec_new").status_code == 200
    assert StripeEvent.objects.filter(status=StripeEvent.Status.IGNORED).count() == 2


def test_it_refuses_a_body_over_the_size_limit(deliver, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 1024
    big = events.event("customer.created", {"id": "cus_1", "description": "x" * 2048})
    assert deliver(big).status_code == 413
    assert not StripeEvent.objects.exists()


def test_it_only_accepts_post(client):
    assert client.get(WEBHOOK_URL).status_code == 405


def test_a_failed_processing_is_recorded_and_replayed(
    driver, package, pay_page, browser, deliver, django_capture_on_commit_callbacks, ledger_clean, settings
):
    purchase = _paid(driver, package, pay_page, browser)
    surplus = browser.charge_outside_the_app(purchase)
    working_base = settings.STRIPE_API_BASE
    # Stripe cannot be reached while the event is processed (the surplus is re-fetched first).
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"

    assert deliver(events.event("payment_intent.succeeded", surplus)).status_code == 200  # stored

    stored = StripeEvent.objects.get()
    assert stored.status == StripeEvent.Status.FAILED
    assert stored.attempts == 1
    assert "StripeUnavailable" in stored.last_error

    settings.STRIPE_API_BASE = working_base
    with django_capture_on_commit_callbacks(execute=True):
        call_command("stripe_events", "replay", "--failed")

    stored.refresh_from_db()
    assert (stored.status, stored.attempts, stored.last_error) == (StripeEvent.Status.PROCESSED, 2, "")
    from payments.models import PaymentDiscrepancy

    found = PaymentDiscrepancy.objects.get()
    assert (found.kind, found.stripe_object_id, found.status) == ("surplus_charge", surplus["id"], "fixed")
    assert Wallet.objects.get(user=driver).balance_wh == 10_000  # credited once
    ledger_clean()


def test_the_sweeper_retries_failed_and_stuck_events(
    driver, package, pay_page, browser, deliver, django_capture_on_commit_callbacks, settings
):
    purchase = _paid(driver, package, pay_page, browser)
    surplus = browser.charge_outside_the_app(purchase)
    working_base = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable: processing fails
    deliver(events.event("payment_intent.succeeded", surplus))
    # A stuck one: stored, but its queue message was lost.
    stuck = StripeEvent.objects.create(
        event_id="evt_stuck", type="customer.created", payload={}, enqueued_at=timezone.now()
    )
    settings.STRIPE_API_BASE = working_base

    assert services.events_sweep() == 0  # nothing is due yet
    with django_capture_on_commit_callbacks(execute=True):
        assert services.events_sweep(now=timezone.now() + timedelta(minutes=3)) == 2

    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed", "ignored"}
    stuck.refresh_from_db()
    assert stuck.status == StripeEvent.Status.IGNORED


def test_the_sweeper_gives_up_after_the_maximum_attempts(settings):
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 2
    StripeEvent.objects.create(
        event_id="evt_bad",
        type="charge.dispute.created",
        payload={"data": {"object": {"id": "dp_9"}}},
        status=StripeEvent.Status.FAILED,
        attempts=2,
        enqueued_at=timezone.now() - timedelta(hours=1),
    )
    assert services.events_sweep() == 0


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_a_signed_webhook_to_the_live_server(
    live_server, own_localstripe, driver, package, pay_page, settings
):
    """The real path: localstripe signs and POSTs the event to our endpoint (about 1 s later)."""
    settings.STRIPE_API_BASE = own_localstripe  # pay_page's fixtures point at the shared instance
    import threading

    from django.core.signals import request_finished

    from payments import localstripe
    from tests.plugins.stripe import Browser

    # Wait for the server thread to finish the delivery without touching the database meanwhile:
    # the test database may be an in-memory SQLite shared by both threads.
    delivered = threading.Event()

    def on_finished(sender, **kwargs):
        delivered.set()

    localstripe.register_webhook(
        own_localstripe,
        url=f"{live_server.url}{WEBHOOK_URL}",
        secret="whsec_localstripe_dev",
        events=["payment_intent.succeeded"],
    )
    purchase = _paid(driver, package, pay_page, Browser(own_localstripe))
    request_finished.connect(on_finished)
    try:
        assert delivered.wait(timeout=15), "no webhook from localstripe"
    finally:
        request_finished.disconnect(on_finished)

    event = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert event.status == StripeEvent.Status.PROCESSED
    assert event.payload["data"]["object"]["metadata"]["purchase_id"] == str(purchase.public_id)
    assert Wallet.objects.get(user=driver).balance_wh == 10_000


# --- The inbox insert: one statement per delivery ------------------------------------------------


def _post(client, event: dict):
    payload = json.dumps(event)
    return client.post(WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))


def test_a_new_event_costs_one_query_and_is_stored_before_its_task_is_enqueued(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    event = events.event("customer.created", {"id": "cus_1", "object": "customer"}, event_id="evt_one_query")

    with django_capture_on_commit_callbacks() as enqueued, django_assert_num_queries(1) as queries:
        response = _post(client, event)

    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": False}
    assert "ON CONFLICT" in queries.captured_queries[0]["sql"]
    assert len(enqueued) == 1  # processing is handed to the queue after the commit, not before
    stored = StripeEvent.objects.get()
    assert (stored.event_id, stored.type, stored.status, stored.attempts) == (
        "evt_one_query",
        "customer.created",
        StripeEvent.Status.PENDING,
        0,
    )
    assert stored.payload == event and stored.enqueued_at is not None and stored.received_at is not None


def test_a_redelivered_event_costs_one_query_and_enqueues_nothing(
    client, django_assert_num_queries, django_capture_on_commit_callbacks
):
    event = events.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert _post(client, event).json()["duplicate"] is False

    with django_capture_on_commit_callbacks() as enqueued, django_assert_num_queries(1):
        response = _post(client, event)

    assert response.status_code == 200 and response.json() == {"received": True, "duplicate": True}
    assert enqueued == []
    assert StripeEvent.objects.count() == 1


def test_a_broker_outage_loses_no_event_the_sweeper_enqueues_it(deliver, monkeypatch, caplog):
    from prepaid import taskqueue

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(taskqueue, "enqueue", broker_down)
    response = deliver(events.event("customer.created", {"id": "cus_1", "object": "customer"}))

    assert response.status_code == 200  # stored: a retry from Stripe would only find a duplicate
    stored = StripeEvent.objects.get()
    assert stored.status == StripeEvent.Status.PENDING
    assert "the sweeper will enqueue it" in caplog.text

    monkeypatch.undo()
    assert services.events_sweep(now=timezone.now() + timedelta(minutes=3)) == 1
    stored.refresh_from_db()
    assert stored.status == StripeEvent.Status.IGNORED  # processed (customer.created needs nothing)


def _event_text(**changes) -> str:
    return json.dumps({**events.event("customer.created", {"id": "cus_1", "object": "customer"}), **changes})


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "malformed body"),
        ("[1, 2]", "not an event"),
        (json.dumps({"id": "evt_x"}), "not an event"),
        # Issue 18, defect 8: each of these, signed, was a 500 (and half-stored on PostgreSQL).
        ("[" * 5_000 + "]" * 5_000, "malformed body"),
        (_event_text(id="evt_" + "x" * 300), "not an event"),
        (_event_text(id="evt_nul\u0000"), "malformed body"),
        (_event_text().replace('"livemode": false', '"livemode": NaN'), "malformed body"),
        (_event_text().replace('"pending_webhooks": 1', '"pending_webhooks": 1e999'), "malformed body"),
        (_event_text(type=None), "not an event"),
        (_event_text(data=[]), "not an event"),
        (_event_text(data={"object": "cus_1"}), "not an event"),
        (_event_text(livemode="yes"), "not an event"),
    ],
)
def test_a_malformed_body_with_a_valid_signature_is_refused_with_its_reason(client, payload, reason):
    response = client.post(
        WEBHOOK_URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"].startswith(reason)
    assert not StripeEvent.objects.exists()


def test_a_body_that_is_not_utf8_is_refused(client):
    response = client.post(
        WEBHOOK_URL, data=b"\xff\xfe{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_without_insert_returning_an_older_sqlite_stores_once_too(client, monkeypatch):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("only SQLite (before 3.35) lacks INSERT … RETURNING")
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    event = events.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert _post(client, event).json() == {"received": True, "duplicate": False}
    assert _post(client, event).json() == {"received": True, "duplicate": True}
    assert StripeEvent.objects.get().event_id == event["id"]
