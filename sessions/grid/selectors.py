"""Reads for pages and APIs: a session's plan and saving, grid-event reports, package suggestions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Max, Q, Sum

from prepaid.models import CreditLot, EnergyPackage, LedgerEntry
from sessions.grid import smart
from sessions.models.charging import ChargingSession, CommandKind
from sessions.models.grid import (
    DemandResponseEnrollment,
    DemandResponseEvent,
    GridBonusEntry,
    PricePoint,
    SmartPlan,
    bonus_credit_price_minor_per_kwh,
    bonus_energy_wh,
)
from sessions.models.vehicles import Vehicle


@dataclass(frozen=True)
class PlanView:
    deadline: object
    windows: tuple[smart.Window, ...]
    planned_energy_wh: int
    expected_cost_minor: int
    immediate_cost_minor: int
    saving_minor: int
    meets_deadline: bool
    paused: bool
    pause_reason: str
    resume_at: object
    replans: int


def session_plan(*, session: ChargingSession) -> PlanView | None:
    """The planned windows and the expected saving the driver sees (None: no plan)."""
    plan = SmartPlan.objects.filter(session=session).first()
    if plan is None:
        return None
    return PlanView(
        deadline=plan.deadline,
        windows=tuple(smart.Window.from_dict(w) for w in plan.windows),
        planned_energy_wh=plan.planned_energy_wh,
        expected_cost_minor=smart.millis_to_minor(plan.cost_millis),
        immediate_cost_minor=smart.millis_to_minor(plan.immediate_cost_millis),
        saving_minor=smart.millis_to_minor(plan.saving_millis),
        meets_deadline=plan.meets_deadline,
        paused=plan.paused,
        pause_reason=plan.pause_reason,
        resume_at=plan.resume_at,
        replans=plan.replans,
    )


def grid_event_report(*, event: DemandResponseEvent) -> dict:
    """Who took part, who really stopped (a reading in the window showed it), energy shifted, and
    the bonus energy credited to each driver's wallet (or still pending after a resume)."""
    rows = []
    price = bonus_credit_price_minor_per_kwh()
    participations = event.participations.select_related("vehicle", "session", "bonus__lot").order_by("id")
    for p in participations:
        grant = getattr(p, "bonus", None)
        stops = p.session.commands.filter(kind=CommandKind.STOP, detail="pause", sent_at__gte=event.starts_at)
        rows.append(
            {
                "vehicle_id": p.vehicle_id,
                "vehicle": str(p.vehicle),
                "session": str(p.session.public_id),
                "pause_sent_at": p.pause_sent_at.isoformat() if p.pause_sent_at else None,
                "pause_commands": stops.filter(sent_at__lt=event.ends_at).count(),
                "verified_stopped": p.verified_stopped_at is not None,
                "verified_stopped_at": p.verified_stopped_at.isoformat() if p.verified_stopped_at else None,
                "charging_seen": p.charging_seen_at is not None,
                "planned_in_window_wh": p.planned_in_window_wh,
                "energy_shifted_wh": p.energy_shifted_wh,
                "resumed": p.resumed_at is not None,
                # The bonus is the lot credited to the driver's wallet (the ledger holds the amount).
                "bonus_wh": grant.lot.energy_wh if grant else 0,
                "bonus_pending": grant is None and p.resumed_at is not None and _bonus_owed_wh(p, price) > 0,
            }
        )
    return {
        "event": str(event.public_id),
        "external_id": event.external_id,
        "source": event.source,
        "region": event.region,
        "starts_at": event.starts_at.isoformat(),
        "ends_at": event.ends_at.isoformat(),
        "vehicles": len(rows),
        "verified_stopped": sum(1 for r in rows if r["verified_stopped"]),
        "energy_shifted_wh": sum(r["energy_shifted_wh"] for r in rows),
        "bonus_minor_per_kwh": event.bonus_minor_per_kwh,
        "bonus_wh": sum(r["bonus_wh"] for r in rows),
        "participants": rows,
    }


def _bonus_owed_wh(participation, price) -> int:
    return bonus_energy_wh(
        shifted_wh=participation.energy_shifted_wh,
        bonus_minor_per_kwh=participation.event.bonus_minor_per_kwh,
        credit_price_minor_per_kwh=price,
    )


def packages_fitting(*, vehicle: Vehicle, soc_bp: int | None = None) -> list[EnergyPackage]:
    """Active packages that fit between the battery's level and the vehicle's maximum.

    Unknown level or capacity: every package (the controller still stops at the maximum)."""
    soc = vehicle.soc_bp if soc_bp is None else soc_bp
    packages = EnergyPackage.objects.filter(active=True).order_by("energy_wh")
    if soc is None or not vehicle.capacity_wh:
        return list(packages)
    room = smart.soc_energy_wh(soc, vehicle.max_soc_bp, vehicle.capacity_wh)
    return list(packages.filter(energy_wh__lte=room))


def bonus_total_wh(*, user) -> int:
    """Bonus energy credited to the user's wallet for taking part in grid events, Wh."""
    return GridBonusEntry.objects.filter(user=user).aggregate(total=Sum("lot__energy_wh"))["total"] or 0


def vehicle_region(vehicle) -> str:
    """The price region of a car: the one its demand-response enrollment names, else the default."""
    enrollment = DemandResponseEnrollment.objects.filter(vehicle=vehicle).only("region").first()
    return (enrollment.region if enrollment and enrollment.region else "") or settings.SMART_DEFAULT_REGION


def price_horizon(*, region: str, now: datetime) -> datetime | None:
    """The end of the last known price of the region, if any price is still ahead."""
    return PricePoint.objects.filter(region=region, ends_at__gt=now).aggregate(end=Max("ends_at"))["end"]


def bonus_drift() -> list[str]:
    """Bonus lots balance against their grants, not payments: each bonus lot has one grant (a
    demand-response `charging.GridBonusEntry`) for the same user, credited by the grant's own
    ledger line, and its energy is what the grant's participation, event rate and credit price
    give; a bonus lot carries no money, so nothing of it can be refunded."""
    problems: list[str] = []
    bonus_lots = CreditLot.objects.filter(kind=CreditLot.Kind.BONUS)
    for lot_id in bonus_lots.filter(grid_bonus__isnull=True).values_list("id", flat=True):
        problems.append(f"lot {lot_id}: bonus lot without a grant")
    for lot in bonus_lots.filter(Q(amount_minor__gt=0) | Q(refunded_wh__gt=0) | Q(purchase__isnull=False)):
        problems.append(f"lot {lot.pk}: bonus lot with a payment, money or refunds")
    keys = defaultdict(list)
    for lot_id, key in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.BONUS).values_list("lot_id", "idempotency_key"):
        keys[lot_id].append(key)
    if keys.get(None):
        problems.append(f"bonus lines without a lot: {keys[None]}")
    grants = GridBonusEntry.objects.select_related("lot__wallet", "participation", "event")
    for grant in grants:
        lot = grant.lot
        if lot.kind != CreditLot.Kind.BONUS:
            problems.append(f"grant {grant.pk}: lot {lot.pk} is a {lot.kind} lot")
        if lot.wallet.user_id != grant.user_id:
            problems.append(f"grant {grant.pk}: lot {lot.pk} is in another user's wallet")
        if grant.participation.event_id != grant.event_id:
            problems.append(f"grant {grant.pk}: participation of another event")
        if keys[lot.pk] != [grant.idempotency_key]:
            problems.append(f"grant {grant.pk}: lot {lot.pk} credited by {keys[lot.pk]}, not {grant.idempotency_key}")
        expected = grant.expected_energy_wh
        if lot.energy_wh != expected:
            problems.append(f"grant {grant.pk}: lot {lot.pk} energy_wh {lot.energy_wh} != bonus earned {expected}")
    return problems
