"""/metrics: scraped and parsed with prometheus_client's own parser, after real work (a charge
against the simulator, a failed vehicle call, a Stripe event waiting, a payment discrepancy)."""

import math
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring import metrics
from monitoring.models import MetricCounter
from payments.models import PaymentDiscrepancy, StripeEvent
from sessions import services as session_services
from sessions.models import ChargingSession
from sessions.models.charging import SessionStatus

S = SessionStatus


def scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families, name, sample=None, **labels) -> float:
    family = families[name]
    wanted = sample or name
    found = [
        s.value for s in family.samples if s.name == wanted and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, (wanted, labels, family.samples)
    return sum(found)


@pytest.fixture(autouse=True)
def _empty_counters():
    metrics._pending.take()  # what earlier tests of this process counted


def test_a_charge_shows_in_the_steps_calls_durations_and_overshoot(client, driver, connect, credit, drive, sim):
    car = connect(driver)
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    drive(session)
    session.refresh_from_db()
    assert session.status == S.COMPLETED
    open_one = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=1_000)

    families = scrape(client)

    assert value(families, "prepaid_sessions", state="completed") == 1
    assert value(families, "prepaid_sessions", state="requested") == 1
    assert value(families, "prepaid_sessions", state="failed") == 0
    moves = {(s.labels["state"], s.labels["outcome"]) for s in families["prepaid_controller_steps"].samples}
    assert {("requested", "moved"), ("starting", "moved"), ("stopping", "moved")} <= moves
    steps = sum(s.value for s in families["prepaid_controller_steps"].samples if s.name.endswith("_total"))
    durations = "prepaid_controller_step_seconds"
    assert value(families, durations, f"{durations}_count") == steps
    assert value(families, durations, f"{durations}_bucket", le="+Inf") == steps
    commands = session.commands.count()
    calls = "prepaid_vehicle_api_calls"
    assert value(families, calls, f"{calls}_total") == commands > 0
    assert value(families, calls, f"{calls}_total", kind="stop", result="ok") >= 1
    assert value(families, "prepaid_overshoot_absorbed_wh", "prepaid_overshoot_absorbed_wh_total") == (
        session.overshoot_wh
    )
    assert value(families, "prepaid_sessions_settled", "prepaid_sessions_settled_total") == 1
    lag = value(families, "prepaid_controller_claim_lag_seconds", "prepaid_controller_claim_lag_seconds_count")
    assert lag == steps
    # The open session is due now and nobody has claimed it.
    assert value(families, "prepaid_controller_overdue_seconds") >= 0
    assert open_one.status == S.REQUESTED


def test_failed_vehicle_calls_are_counted_by_code(client, driver, connect, credit, drive):
    car = connect(driver, plugged=False)
    credit(driver, energy_wh=20_000)
    session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    drive(session)
    session.refresh_from_db()
    assert (session.status, session.reason) == (S.FAILED, "unplugged")
    failed = session.commands.filter(ok=False).values_list("kind", "error_code")
    families = scrape(client)
    for kind, code in failed:
        assert (
            value(families, "prepaid_vehicle_api_errors", "prepaid_vehicle_api_errors_total", kind=kind, code=code) >= 1
        )
    assert value(families, "prepaid_sessions", state="failed") == 1


def test_the_inbox_the_queue_and_the_discrepancies_are_read_when_scraped(client, db):
    StripeEvent.objects.create(event_id="evt_1", type="charge.succeeded", payload={})
    StripeEvent.objects.filter(event_id="evt_1").update(received_at=timezone.now() - timedelta(minutes=3))
    StripeEvent.objects.create(event_id="evt_2", type="charge.succeeded", payload={}, status="failed")
    PaymentDiscrepancy.objects.create(kind="unmatched_charge", stripe_object_id="ch_1", detail="no purchase")
    PaymentDiscrepancy.objects.create(kind="unmatched_charge", stripe_object_id="ch_2", detail="x", status="resolved")

    families = scrape(client)
    assert value(families, "prepaid_stripe_inbox_events", status="pending") == 1
    assert value(families, "prepaid_stripe_inbox_events", status="failed") == 1
    assert 175 <= value(families, "prepaid_stripe_inbox_oldest_pending_seconds") <= 600
    assert value(families, "prepaid_payment_discrepancies", kind="unmatched_charge", status="open") == 1
    assert sum(s.value for s in families["prepaid_payment_discrepancies"].samples) == 1
    assert value(families, "prepaid_task_broker_up") == 1
    assert value(families, "prepaid_task_queue_depth") >= 0
    assert value(families, "prepaid_emails", status="pending") == 0


def test_counters_of_several_processes_add_up_in_the_database(db):
    """Each process adds its increments to the same rows: two flushes (two processes, or one
    process twice) sum, and a histogram's buckets stay cumulative."""
    metrics.inc("prepaid_overshoot_absorbed_wh", 120, make="TESLA")
    metrics.observe("prepaid_controller_claim_lag_seconds", 3.0)
    assert metrics.flush() > 0
    metrics.inc("prepaid_overshoot_absorbed_wh", 30, make="TESLA")
    metrics.observe("prepaid_controller_claim_lag_seconds", 0.7)
    metrics.flush()
    assert MetricCounter.objects.get(name="prepaid_overshoot_absorbed_wh").value == 150
    families = {f.name: f for f in metrics.stored_families()}
    buckets = {
        s.labels["le"]: s.value
        for s in families["prepaid_controller_claim_lag_seconds"].samples
        if s.name.endswith("_bucket")
    }
    # 0.5 lies below both observations: never written, it counts none.
    assert (buckets["0.5"], buckets["1.0"], buckets["2.0"], buckets["5.0"], buckets["+Inf"]) == (0, 1, 1, 2, 2)


def test_a_counter_never_takes_a_negative_or_bad_increment_or_a_wrong_label(db):
    metrics.inc("prepaid_overshoot_absorbed_wh", 0, make="x")
    metrics.inc("prepaid_overshoot_absorbed_wh", math.nan, make="x")
    assert metrics.flush() == 0
    with pytest.raises(ValueError, match="takes labels"):
        metrics.inc("prepaid_overshoot_absorbed_wh", 5, vehicle="x")


def test_the_endpoint_wants_the_token(client, db, settings):
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"] == 'Bearer realm="metrics"'
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_a_scrape_costs_a_fixed_number_of_queries(client, driver, connect, credit, django_assert_max_num_queries):
    car = connect(driver)
    credit(driver, energy_wh=20_000)
    for _ in range(3):
        session = session_services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=1_000)
        ChargingSession.objects.filter(pk=session.pk).update(status=S.FAILED)
    with django_assert_max_num_queries(12):
        scrape(client)
