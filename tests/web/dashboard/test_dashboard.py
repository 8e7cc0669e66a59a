"""The operator dashboard: figures checked against known data at a pinned time, alerts, the live
feed, who may see it, and that its query count does not grow with the number of sessions."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import Task

from payments.models import Purchase, StripeEvent
from payments.services import refund_request
from prepaid import services as wallet_services
from prepaid.models import Hold
from sessions.models import ChargingSession, VehicleCommand, VehicleConnection
from sessions.models.charging import SessionStatus
from tests.plugins.api_world import make_vehicle
from tests.plugins.wallet import paid_credit
from web.dashboard import selectors

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
S = SessionStatus


@pytest.fixture
def pinned():
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _session(user, vehicle, *, status, ended=None, purchased=10_000, delivered=0, overshoot=None, calls=0, **kw):
    billed = min(delivered, purchased) if status in (S.COMPLETED, S.INTERRUPTED) else None
    return ChargingSession.objects.create(
        user=user,
        vehicle=vehicle,
        status=status,
        purchased_wh=purchased,
        delivered_wh=delivered,
        billed_wh=billed,
        overshoot_wh=overshoot
        if overshoot is not None
        else (max(0, delivered - purchased) if billed is not None else None),
        api_calls=calls,
        created_at=(ended or NOW) - timedelta(hours=1),
        ended_at=ended,
        **kw,
    )


def _paid(user, energy_wh, amount_minor, paid_at):
    lot = paid_credit(user, energy_wh=energy_wh, amount_minor=amount_minor)
    Purchase.objects.filter(pk=lot.purchase_id).update(paid_at=paid_at)
    return lot


def _command(session, kind, *, at, ok=True, effect_ms=None, error_type="", error_code=""):
    return VehicleCommand.objects.create(
        session=session,
        vehicle=session.vehicle,
        kind=kind,
        sent_at=at,
        ok=ok,
        effect_latency_ms=effect_ms,
        error_type=error_type,
        error_code=error_code,
        make=session.vehicle.make,
    )


@pytest.fixture
def data(pinned, django_user_model):
    alice = django_user_model.objects.create_user("alice", "a@example.com", "pw-alice-42")
    bob = django_user_model.objects.create_user("bob", "b@example.com", "pw-bob-42")
    tesla, hyundai = make_vehicle(alice), make_vehicle(bob, make="HYUNDAI", model="Kona")
    spare1, spare2 = make_vehicle(alice, model="Y"), make_vehicle(bob, make="KIA", model="EV6")
    lapsed = make_vehicle(bob, make="FORD", model="Mach-E", status=VehicleConnection.Status.NEEDS_CONSENT)

    s1 = _session(alice, tesla, status=S.COMPLETED, ended=NOW - timedelta(hours=2), delivered=10_400, calls=12)
    s2 = _session(
        bob, hyundai, status=S.COMPLETED, ended=NOW - timedelta(days=3), purchased=20_000, delivered=20_900, calls=8
    )
    _session(
        alice, tesla, status=S.INTERRUPTED, ended=NOW - timedelta(days=20), purchased=5_000, delivered=2_000, calls=4
    )
    _session(alice, tesla, status=S.COMPLETED, ended=NOW - timedelta(days=40), delivered=7_000, calls=50)
    _session(bob, hyundai, status=S.COMPLETED, ended=NOW - timedelta(days=2), delivered=0, stop_not_carried_out=True)
    stuck = _session(
        alice, spare1, status=S.STOPPING, delivered=2_500, stop_requested_at=NOW - timedelta(hours=1), power_w=7_000
    )
    _session(bob, spare2, status=S.STOPPING, delivered=5_000, stop_requested_at=NOW - timedelta(minutes=5))

    lot_a = _paid(alice, 40_000, 1800, NOW - timedelta(hours=1))
    _paid(bob, 20_000, 900, NOW - timedelta(days=5))
    _paid(bob, 10_000, 450, NOW - timedelta(days=35))
    Purchase.objects.create(user=bob, energy_wh=1000, amount_minor=45, currency="eur", vat_minor=7, vat_rate="0.19")
    # Bob uses 10 kWh: drawn from his oldest lot (the 20 kWh one), half of it is left.
    hold = wallet_services.wallet_hold(wallet_id=lot_a.wallet_id + 1, energy_wh=10_000, idempotency_key="t:b")
    wallet_services.hold_settle(hold_id=hold.pk, consumed_wh=10_000, idempotency_key="t:b:settle")
    # Alice gets 4 kWh back: 180 of her 1800.
    refund_request(wallet_id=lot_a.wallet_id, requested_by=alice, energy_wh=4_000)
    old = wallet_services.wallet_hold(wallet_id=lot_a.wallet_id, energy_wh=1_000, idempotency_key="t:old")
    Hold.objects.filter(pk=old.pk).update(created_at=NOW - timedelta(hours=13))
    wallet_services.wallet_hold(wallet_id=lot_a.wallet_id, energy_wh=1_000, idempotency_key="t:new")

    _command(s1, "read", at=NOW - timedelta(hours=3))
    _command(s1, "stop", at=NOW - timedelta(hours=2), effect_ms=20_000)
    _command(s1, "read", at=NOW - timedelta(hours=3), ok=False, error_type="VEHICLE_STATE", error_code="ASLEEP")
    _command(s1, "read", at=NOW - timedelta(hours=3), ok=False, error_type="VEHICLE_STATE", error_code="ASLEEP")
    _command(s2, "stop", at=NOW - timedelta(days=3), effect_ms=90_000)
    _command(s2, "stop", at=NOW - timedelta(days=3), effect_ms=60_000)
    _command(s2, "read", at=NOW - timedelta(days=5), ok=False, error_type="RATE_LIMIT")

    for event_id, status, ago in [
        ("evt_failed", StripeEvent.Status.FAILED, timedelta(hours=1)),
        ("evt_pending", StripeEvent.Status.PENDING, timedelta(minutes=10)),
        ("evt_done", StripeEvent.Status.PROCESSED, timedelta(minutes=30)),
    ]:
        event = StripeEvent.objects.create(
            event_id=event_id, type="payment_intent.succeeded", payload={}, status=status
        )
        StripeEvent.objects.filter(pk=event.pk).update(received_at=NOW - ago)

    Task.objects.create(
        id="f" * 32, name="boom", func="payments.tasks.submit_refund", started=NOW, stopped=NOW, success=False
    )
    Task.objects.create(
        id="s" * 32, name="ok", func="payments.tasks.submit_refund", started=NOW, stopped=NOW, success=True
    )
    return {"stuck": stuck, "lapsed": lapsed}


def test_it_computes_the_figures_of_each_window(data):
    board = selectors.dashboard(now=NOW)
    today, week, month = board["windows"]
    assert (today["sessions"], week["sessions"], month["sessions"]) == (1, 3, 4)
    assert (today["delivered_wh"], week["delivered_wh"], month["delivered_wh"]) == (10_400, 31_300, 33_300)
    assert (today["billed_wh"], week["billed_wh"]) == (10_000, 30_000)
    assert (today["revenue_minor"], week["revenue_minor"], month["revenue_minor"]) == (1800, 2700, 2700)
    assert today["refunded_minor"] == 180 and today["net_revenue_minor"] == 1620
    # Overshoot at 0.45 EUR/kWh, half up: 400 Wh → 18 cents; 1300 Wh → 58.5 → 59.
    assert (today["overshoot_wh"], today["overshoot_minor"]) == (400, 18)
    assert (week["overshoot_wh"], week["overshoot_minor"]) == (1_300, 59)
    assert month["overshoot_by_make"] == [
        {"make": "HYUNDAI", "sessions": 1, "overshoot_wh": 900, "overshoot_minor": 41},
        {"make": "TESLA", "sessions": 1, "overshoot_wh": 400, "overshoot_minor": 18},
    ]
    assert today["api_calls_per_session"] == 12 and week["api_calls_per_session"] == round(20 / 3, 1)
    assert today["errors_by_code"] == [{"error_type": "VEHICLE_STATE", "error_code": "ASLEEP", "count": 2}]
    assert {(e["error_type"], e["count"]) for e in week["errors_by_code"]} == {("VEHICLE_STATE", 2), ("RATE_LIMIT", 1)}
    assert month["stop_latency"] == [
        {"make": "HYUNDAI", "count": 2, "p50_s": 60.0, "p90_s": 90.0, "max_s": 90.0},
        {"make": "TESLA", "count": 1, "p50_s": 20.0, "p90_s": 20.0, "max_s": 20.0},
    ]
    assert (today["webhooks_received"], today["webhooks_failed"]) == (3, 1)


def test_it_values_outstanding_credit_like_a_refund_would(data):
    # Alice: 40 kWh − 4 refunded = 36 kWh left (1620); Bob: 10 of 20 kWh (450) and 10 kWh (450).
    assert selectors.outstanding_credit() == {"energy_wh": 56_000, "money_minor": 2_520, "currency": "eur"}


def test_it_reports_the_inbox_and_the_task_queue(data, settings):
    board = selectors.dashboard(now=NOW)
    assert board["inbox"] == {"pending": 1, "failed": 1, "oldest_pending_age_s": 600}
    queue = board["queue"]
    assert (queue["succeeded"], queue["failed"]) == (1, 1)
    if settings.REDIS_URL:
        assert isinstance(queue["queued"], int)  # a Redis shared with other runs: any size
    else:
        assert queue["queued"] == 0  # the ORM broker of this test database: nothing enqueued
    assert queue["last_failure"]["name"] == "boom"


def test_it_raises_each_alert(data, settings):
    settings.DASHBOARD_STUCK_STOPPING_S = 1800
    settings.DASHBOARD_HOLD_MAX_AGE_S = 12 * 3600
    found = selectors.alerts(now=NOW)
    assert [s.pk for s in found["stuck_stopping"]["items"]] == [data["stuck"].pk]
    assert found["stop_not_carried_out"]["count"] == 1
    assert [c.pk for c in found["needs_consent"]["items"]] == [data["lapsed"].connection_id]
    assert [e.event_id for e in found["failed_webhooks"]["items"]] == ["evt_failed"]
    assert [h.idempotency_key for h in found["old_holds"]["items"]] == ["t:old"]
    assert found["total"] == 5
    # A longer tolerance clears the stuck-stop alert.
    settings.DASHBOARD_STUCK_STOPPING_S = 7200
    assert selectors.alerts(now=NOW)["stuck_stopping"]["count"] == 0


def test_it_builds_daily_series_for_the_charts(data):
    series = selectors.daily_series(now=NOW, days=30)
    assert len(series["energy_wh"]) == 30
    assert series["energy_wh"][-1] == ("2026-03-10", 10_400)
    assert dict(series["energy_wh"])["2026-03-07"] == 20_900
    assert dict(series["revenue_minor"])["2026-03-05"] == 900


def test_it_renders_the_page_with_charts_and_no_external_asset(data, client, django_user_model):
    staff = django_user_model.objects.create_user("ops", "o@example.com", "pw-ops-42", is_staff=True)
    client.force_login(staff)
    html = client.get("/dashboard/").content.decode()
    # In the units a person reads: kWh, EUR, minutes (not Wh or "1800 s").
    assert 'data-figure="delivered_wh-today">10.40 kWh<' in html
    assert 'data-figure="outstanding">56.00 kWh · 25.20 EUR<' in html
    assert html.count("<svg") == 2 and "Energy delivered per day" in html
    assert "https://" not in html
    assert all(src.startswith("/static/") for src in re.findall(r'<script src="([^"]+)"', html))
    assert "Sessions stopping for more than 30 min: <strong>1</strong>" in html
    assert " Wh" not in html.replace(" kWh", "") and "(Wh)" not in html


def test_it_feeds_the_live_table(data, client, django_user_model):
    staff = django_user_model.objects.create_user("ops", "o@example.com", "pw-ops-42", is_staff=True)
    client.force_login(staff)
    feed = client.get("/dashboard/live.json").json()
    assert [(s["status"], s["progress_percent"]) for s in feed["sessions"]] == [("stopping", 25.0), ("stopping", 50.0)]
    assert feed["alerts"]["stuck_stopping"] == 1


@pytest.mark.parametrize(
    ("role", "status"), [("anon", 302), ("driver", 403), ("staff", 200)], ids=["anon", "driver", "staff"]
)
@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/live.json"])
def test_it_is_for_staff_only(client, django_user_model, role, status, path):
    if role != "anon":
        user = django_user_model.objects.create_user(role, f"{role}@example.com", "pw-42-pw", is_staff=role == "staff")
        client.force_login(user)
    response = client.get(path)
    assert response.status_code == status
    if role == "anon":
        assert response["Location"].startswith("/accounts/login/")


def test_it_makes_as_many_queries_for_many_sessions_as_for_few(pinned, client, django_user_model):
    staff = django_user_model.objects.create_user("ops", "o@example.com", "pw-ops-42", is_staff=True)
    client.force_login(staff)

    def add_sessions(n, offset):
        for i in range(n):
            vehicle = make_vehicle(staff, model=f"M{offset + i}")
            session = _session(staff, vehicle, status=S.CHARGING, delivered=1_000)
            _command(session, "stop", at=NOW, effect_ms=1_000)
            _session(staff, vehicle, status=S.COMPLETED, ended=NOW, delivered=11_000)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/dashboard/").status_code == 200
        return len(queries)

    add_sessions(2, 0)
    few = count()
    add_sessions(10, 100)
    assert count() == few


def test_it_shows_billed_reads_apart_from_webhook_readings_and_failing_subscriptions(data, client, django_user_model):
    from sessions.models import Vehicle

    s1 = ChargingSession.objects.filter(status=S.COMPLETED, api_calls=12).get()
    ChargingSession.objects.filter(pk=s1.pk).update(billed_reads=4, webhook_readings=9)
    figures = selectors.window_figures(NOW - timedelta(days=1))
    assert (figures["billed_reads_per_session"], figures["webhook_readings_per_session"]) == (4.0, 9.0)
    vehicle = data["stuck"].vehicle
    Vehicle.objects.filter(pk=vehicle.pk).update(
        subscription_status="failed", subscription_attempts=3, subscription_error="ServerError: 500"
    )
    found = selectors.alerts(now=NOW)
    assert [v.pk for v in found["failed_subscriptions"]["items"]] == [vehicle.pk]
    staff = django_user_model.objects.create_user("ops", "o@example.com", "pw-ops-42", is_staff=True)
    client.force_login(staff)
    html = client.get("/dashboard/").content.decode()
    assert "webhook subscription fails (polled only; retried): <strong>1</strong>" in html
    assert "3 attempts · ServerError: 500" in html
    feed = client.get("/dashboard/live.json").json()
    assert {"billed_reads", "webhook_readings"} <= set(feed["sessions"][0])
