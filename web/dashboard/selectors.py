"""Reads behind the operator dashboard: live sessions, figures per time window, alerts.

Every figure is an aggregate in the database (a handful of queries per window, whatever the
number of rows); only percentiles and money conversions happen in Python, over small result sets.
`now` is a parameter so tests can pin the windows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.translation import gettext

from payments.models import PaymentDiscrepancy, Purchase, RefundPart, StripeEvent
from prepaid import pricing
from prepaid.allocation import refund_part_minor
from prepaid.models import CreditLot, Hold
from sessions.models import ChargingSession, Vehicle, VehicleCommand, VehicleConnection
from sessions.models.charging import OPEN_STATUSES, CommandKind, SessionStatus
from sessions.models.grid import DemandResponseEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    since: datetime


def windows(now: datetime) -> list[Window]:
    """Today (since 00:00 UTC), the last 7 and the last 30 days."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [
        Window("today", gettext("Today"), midnight),
        Window("7d", gettext("7 days"), now - timedelta(days=7)),
        Window("30d", gettext("30 days"), now - timedelta(days=30)),
    ]


# --- live ---------------------------------------------------------------------------------------


def active_sessions(*, limit: int = 200) -> list[dict]:
    """Open sessions, oldest first, with their progress (one query)."""
    rows = (
        ChargingSession.objects.filter(status__in=OPEN_STATUSES)
        .select_related("vehicle", "user")
        .order_by("created_at", "id")[:limit]
    )
    return [
        {
            "id": str(s.public_id),
            "pk": s.pk,
            "driver": s.user.get_username(),
            "vehicle": str(s.vehicle),
            "status": s.status,
            "reason": s.reason_message,
            "stop_reason": s.stop_reason,
            "purchased_wh": s.purchased_wh,
            "delivered_wh": s.delivered_wh,
            "progress_percent": round(min(100.0, 100.0 * s.delivered_wh / s.purchased_wh), 1) if s.purchased_wh else 0,
            "power_w": s.power_w,
            "api_calls": s.api_calls,
            "billed_reads": s.billed_reads,
            "webhook_readings": s.webhook_readings,
            "created_at": s.created_at.isoformat(),
            "last_reading_at": s.last_reading_at.isoformat() if s.last_reading_at else None,
            "flagged": s.stop_not_carried_out,
        }
        for s in rows
    ]


# --- figures per window -------------------------------------------------------------------------


def _percentile(sorted_values: list[int], q: float) -> int:
    # Nearest rank: an actual observed latency, not an interpolation between two.
    index = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def window_figures(since: datetime) -> dict:
    """Energy, money, overshoot and vehicle API figures of sessions and payments since `since`."""
    currency = settings.CURRENCY
    ended = ChargingSession.objects.filter(ended_at__gte=since)
    sessions = ended.aggregate(
        count=Count("id"),
        delivered_wh=Coalesce(Sum("delivered_wh"), 0),
        billed_wh=Coalesce(Sum("billed_wh"), 0),
        overshoot_wh=Coalesce(Sum("overshoot_wh"), 0),
        unbilled_wh=Coalesce(Sum("unbilled_wh"), 0),
        api_calls=Coalesce(Sum("api_calls"), 0),
        billed_reads=Coalesce(Sum("billed_reads"), 0),
        webhook_readings=Coalesce(Sum("webhook_readings"), 0),
    )
    paid = Purchase.objects.filter(status=Purchase.Status.PAID, paid_at__gte=since).aggregate(
        count=Count("id"), amount_minor=Coalesce(Sum("amount_minor"), 0), vat_minor=Coalesce(Sum("vat_minor"), 0)
    )
    refunded = RefundPart.objects.filter(created_at__gte=since).exclude(status=RefundPart.Status.FAILED)
    refunded_minor = refunded.aggregate(total=Coalesce(Sum("amount_minor"), 0))["total"]

    overshoot_by_make = [
        {
            "make": row["vehicle__make"],
            "sessions": row["sessions"],
            "overshoot_wh": row["wh"],
            "overshoot_minor": _energy_value_minor(row["wh"]),
        }
        for row in ended.filter(overshoot_wh__gt=0)
        .values("vehicle__make")
        .annotate(sessions=Count("id"), wh=Sum("overshoot_wh"))
        .order_by("-wh")
    ]

    commands = VehicleCommand.objects.filter(sent_at__gte=since)
    command_totals = commands.aggregate(total=Count("id"), errors=Count("id", filter=Q(ok=False)))
    errors_by_code = list(
        commands.filter(ok=False)
        .values("error_type", "error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "error_type", "error_code")[:20]
    )

    latencies: dict[str, list[int]] = {}
    for make, ms in (
        # Exact latencies only: an interval from a charge-state flip is not one number.
        commands.filter(kind=CommandKind.STOP, effect_latency_ms__isnull=False, effect_latency_max_ms__isnull=True)
        .values_list("make", "effect_latency_ms")
        .order_by("make", "effect_latency_ms")
    ):
        latencies.setdefault(make or "?", []).append(ms)
    stop_latency = [
        {
            "make": make,
            "count": len(values),
            "p50_s": _percentile(values, 0.5) / 1000,
            "p90_s": _percentile(values, 0.9) / 1000,
            "max_s": values[-1] / 1000,
        }
        for make, values in sorted(latencies.items())
    ]

    events = StripeEvent.objects.filter(received_at__gte=since).aggregate(
        received=Count("id"), failed=Count("id", filter=Q(status=StripeEvent.Status.FAILED))
    )
    return {
        "sessions": sessions["count"],
        "delivered_wh": sessions["delivered_wh"],
        "billed_wh": sessions["billed_wh"],
        "revenue_minor": paid["amount_minor"],
        "revenue_vat_minor": paid["vat_minor"],
        "purchases": paid["count"],
        "refunded_minor": refunded_minor,
        "net_revenue_minor": paid["amount_minor"] - refunded_minor,
        "currency": currency,
        "overshoot_wh": sessions["overshoot_wh"],
        "overshoot_minor": _energy_value_minor(sessions["overshoot_wh"]),
        "overshoot_by_make": overshoot_by_make,
        "unbilled_wh": sessions["unbilled_wh"],
        "unbilled_minor": _energy_value_minor(sessions["unbilled_wh"]),
        "api_calls": sessions["api_calls"],
        "api_calls_per_session": round(sessions["api_calls"] / sessions["count"], 1) if sessions["count"] else 0,
        "billed_reads_per_session": round(sessions["billed_reads"] / sessions["count"], 1) if sessions["count"] else 0,
        "webhook_readings_per_session": round(sessions["webhook_readings"] / sessions["count"], 1)
        if sessions["count"]
        else 0,
        "commands": command_totals["total"],
        "command_errors": command_totals["errors"],
        "errors_by_code": errors_by_code,
        "stop_latency": stop_latency,
        "webhooks_received": events["received"],
        "webhooks_failed": events["failed"],
    }


def _energy_value_minor(energy_wh: int) -> int:
    """What energy is worth at the list price (the operator's cost of overshoot, as revenue lost)."""
    return pricing.price_minor_for(energy_wh, price_per_kwh=settings.PRICE_PER_KWH, currency=settings.CURRENCY)


# --- point-in-time figures ------------------------------------------------------------------------


def outstanding_credit() -> dict:
    """Energy and money of unconsumed credit: what every wallet could still use or get refunded.

    The money of a lot's remaining energy is computed as its refund would be (same rounding)."""
    energy = 0
    money = 0
    for amount, lot_energy, refunded_wh, refunded_minor, remaining in CreditLot.objects.filter(
        remaining_wh__gt=0
    ).values_list("amount_minor", "energy_wh", "refunded_wh", "refunded_minor", "remaining_wh"):
        energy += remaining
        money += refund_part_minor(
            amount_minor=amount,
            energy_wh=lot_energy,
            refunded_wh=refunded_wh,
            refunded_minor=refunded_minor,
            part_wh=remaining,
        )
    return {"energy_wh": energy, "money_minor": money, "currency": settings.CURRENCY}


def webhook_inbox(*, now: datetime) -> dict:
    """The Stripe inbox now: events waiting, failed, and how long the oldest has waited."""
    rows = StripeEvent.objects.aggregate(
        pending=Count("id", filter=Q(status=StripeEvent.Status.PENDING)),
        failed=Count("id", filter=Q(status=StripeEvent.Status.FAILED)),
        oldest=Min("received_at", filter=Q(status=StripeEvent.Status.PENDING)),
    )
    oldest = rows["oldest"]
    return {
        "pending": rows["pending"],
        "failed": rows["failed"],
        "oldest_pending_age_s": int((now - oldest).total_seconds()) if oldest else None,
    }


def task_queue(*, since: datetime) -> dict:
    """django-q2: tasks waiting at the broker, and how the recent ones ended."""
    from django_q.brokers import get_broker
    from django_q.models import Task

    try:
        queued = get_broker().queue_size()
    except Exception:  # a broker that cannot be reached is itself the figure to show
        logger.warning("task broker unreachable", exc_info=True)
        queued = None
    done = Task.objects.filter(stopped__gte=since).aggregate(
        succeeded=Count("id", filter=Q(success=True)), failed=Count("id", filter=Q(success=False))
    )
    last_failure = Task.objects.filter(success=False).order_by("-stopped").values("func", "stopped", "name").first()
    return {"queued": queued, **done, "last_failure": last_failure}


# --- alerts -------------------------------------------------------------------------------------


def alerts(*, now: datetime, limit: int = 50) -> dict:
    """What needs an operator: stuck stops, ignored stops, lost consent, failed events, old holds,
    payment discrepancies."""
    stuck_before = now - timedelta(seconds=settings.DASHBOARD_STUCK_STOPPING_S)
    stuck = (
        ChargingSession.objects.filter(status=SessionStatus.STOPPING)
        .annotate(stopping_since=Coalesce("stop_requested_at", "updated_at"))
        .filter(stopping_since__lt=stuck_before)
        .select_related("vehicle", "user")
        .order_by("stopping_since")
    )
    not_carried_out = (
        ChargingSession.objects.filter(stop_not_carried_out=True)
        .filter(Q(status__in=OPEN_STATUSES) | Q(ended_at__gte=now - timedelta(days=7)))
        .select_related("vehicle", "user")
        .order_by("-id")
    )
    consent = (
        VehicleConnection.objects.filter(status=VehicleConnection.Status.NEEDS_CONSENT)
        .select_related("user")
        .annotate(vehicle_count=Count("vehicles"))
        .order_by("-status_changed_at", "-id")
    )
    failed_events = StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).order_by("-received_at")
    # A car whose webhook subscription keeps failing is read by billed polls only (and its
    # `/signals` may be empty): retried on a schedule, shown until it works.
    failed_subscriptions = (
        Vehicle.objects.filter(is_active=True, subscription_status=Vehicle.SubscriptionStatus.FAILED)
        .select_related("owner")
        .order_by("subscription_changed_at", "id")
    )
    old_holds = (
        Hold.objects.filter(
            status=Hold.Status.ACTIVE, created_at__lt=now - timedelta(seconds=settings.DASHBOARD_HOLD_MAX_AGE_S)
        )
        .select_related("wallet__user")
        .order_by("created_at")
    )
    # Money at Stripe our books do not explain (payments.reconcile): open ones need the operator,
    # fixed ones (a surplus charge refunded) stay listed until acknowledged in the admin.
    discrepancies = PaymentDiscrepancy.objects.exclude(status=PaymentDiscrepancy.Status.RESOLVED).select_related(
        "purchase"
    )
    groups = {
        "stuck_stopping": stuck,
        "stop_not_carried_out": not_carried_out,
        "needs_consent": consent,
        "failed_webhooks": failed_events,
        "failed_subscriptions": failed_subscriptions,
        "old_holds": old_holds,
        "payment_discrepancies": discrepancies,
    }
    out = {name: {"count": qs.count(), "items": list(qs[:limit])} for name, qs in groups.items()}
    out["total"] = sum(group["count"] for group in out.values())
    return out


def alert_counts(*, now: datetime) -> dict[str, int]:
    """Only the counts (for the live JSON endpoint)."""
    full = alerts(now=now, limit=0)
    return {name: group["count"] for name, group in full.items() if name != "total"}


def shared_cars(*, limit: int = 50) -> dict:
    """Physical cars (one vehicle API id) connected by more than one account. Allowed (a household
    shares a car); each account charges from its own wallet, one session at a time per car."""
    cars = (
        Vehicle.objects.filter(is_active=True)
        .values("external_id")
        .annotate(accounts=Count("owner", distinct=True))
        .filter(accounts__gt=1)
        .order_by("-accounts", "external_id")
    )
    count = cars.count()
    ids = [row["external_id"] for row in cars[:limit]]
    rows = Vehicle.objects.filter(is_active=True, external_id__in=ids).select_related("owner").order_by("pk")
    by_car: dict[str, list[Vehicle]] = {car: [] for car in ids}
    for vehicle in rows:
        by_car[vehicle.external_id].append(vehicle)
    items = [
        {
            "external_id": car,
            "vehicle": vehicles[0],
            "owners": sorted({v.owner.get_username() for v in vehicles}),
            "vehicle_ids": [v.pk for v in vehicles],
        }
        for car, vehicles in by_car.items()
    ]
    return {"count": count, "items": items}


# --- charts -------------------------------------------------------------------------------------


def daily_series(*, now: datetime, days: int = 30) -> dict[str, list[tuple[str, int]]]:
    """Per UTC day over the last `days`: energy delivered (Wh) and revenue (minor units)."""
    start = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    energy = dict(
        ChargingSession.objects.filter(ended_at__gte=start)
        .annotate(day=TruncDate("ended_at"))
        .values("day")
        .annotate(wh=Sum("delivered_wh"))
        .values_list("day", "wh")
    )
    revenue = dict(
        Purchase.objects.filter(status=Purchase.Status.PAID, paid_at__gte=start)
        .annotate(day=TruncDate("paid_at"))
        .values("day")
        .annotate(minor=Sum("amount_minor"))
        .values_list("day", "minor")
    )
    days_list = [(start + timedelta(days=n)).date() for n in range(days)]
    return {
        "energy_wh": [(d.isoformat(), energy.get(d) or 0) for d in days_list],
        "revenue_minor": [(d.isoformat(), revenue.get(d) or 0) for d in days_list],
    }


def dashboard(*, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    wins = windows(now)
    return {
        "now": now,
        "windows": [{"key": w.key, "label": w.label, **window_figures(w.since)} for w in wins],
        "outstanding": outstanding_credit(),
        "inbox": webhook_inbox(now=now),
        "queue": task_queue(since=wins[0].since),
        "alerts": alerts(now=now),
        "active": active_sessions(),
        "shared_cars": shared_cars(),
        "series": daily_series(now=now),
        "settings": {
            "stuck_stopping_s": settings.DASHBOARD_STUCK_STOPPING_S,
            "hold_max_age_s": settings.DASHBOARD_HOLD_MAX_AGE_S,
        },
    }


def grid_events(*, now: datetime, limit: int = 10) -> list[dict]:
    """Demand-response events in progress or ahead, soonest first, with their participants."""
    rows = (
        DemandResponseEvent.objects.filter(ends_at__gt=now)
        .annotate(participant_count=Count("participations"))
        .order_by("starts_at", "id")[:limit]
    )
    return [
        {
            "pk": e.pk,
            "external_id": e.external_id,
            "source": e.source,
            "target": e.region or f"{e.vehicles.count()} vehicle(s)",
            "starts_at": e.starts_at,
            "ends_at": e.ends_at,
            "in_progress": e.starts_at <= now,
            "participants": e.participant_count,
        }
        for e in rows
    ]
