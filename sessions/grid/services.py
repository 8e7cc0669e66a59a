"""Smart charging, demand response and battery health: the services around the controller.

The controller (sessions/services.py) asks this module for a plan (`plan_session`) and records
pauses; here live the writes that do not happen inside a controller step: smart sessions,
price imports, enrollment, grid events, bonus credit (a bonus lot in the wallet). Reads for pages
are in `sessions.grid.selectors`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.db.models.functions import Least
from django.utils.translation import gettext

from prepaid import services as wallet_services
from sessions import clock
from sessions.grid import smart
from sessions.models.charging import OPEN_STATUSES, ChargingSession
from sessions.models.grid import (
    DemandResponseEnrollment,
    DemandResponseEvent,
    DemandResponseParticipation,
    GridBonusEntry,
    PricePoint,
    SmartPlan,
    bonus_credit_price_minor_per_kwh,
    bonus_energy_wh,
)
from sessions.models.vehicles import Vehicle

logger = logging.getLogger(__name__)

# How far ahead a plan without deadline looks, and the longest deadline a driver may set.
HORIZON = timedelta(days=2)
MAX_DEADLINE = timedelta(days=3)
MAX_EVENT = timedelta(hours=6)
# How far ahead an event may be declared (utilities declare them the day before, at most days).
MAX_EVENT_LEAD = timedelta(days=7)
# Vehicle API calls a plan's pauses and resumes may add to a session's budget.
EXTRA_CALLS = 20


class GridError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# --- prices ------------------------------------------------------------------------------------


def prices_import(*, region: str, rows: Iterable[tuple[datetime, datetime, int]], source: str = "") -> int:
    """Store prices (start, end, milli-minor per kWh) for a region; a start already known is
    overwritten (day-ahead prices get corrected). Returns the number of rows written."""
    count = 0
    with transaction.atomic():
        for start, end, price in rows:
            if end <= start:
                raise GridError("bad_interval", f"price interval {start}–{end} is empty")
            PricePoint.objects.update_or_create(
                region=region, starts_at=start, defaults={"ends_at": end, "price_millis": price, "source": source}
            )
            count += 1
    return count


def prices_between(region: str, start: datetime, end: datetime) -> list[smart.PriceSlot]:
    rows = PricePoint.objects.filter(region=region, ends_at__gt=start, starts_at__lt=end).order_by("starts_at")
    return [smart.PriceSlot(p.starts_at, p.ends_at, p.price_millis) for p in rows]


# --- smart sessions and plans -----------------------------------------------------------------


def energy_cap_wh(session: ChargingSession, start_soc_bp: int | None) -> int | None:
    """Energy from the start level to the vehicle's maximum, or None when unknown."""
    vehicle = session.vehicle
    if start_soc_bp is None or not vehicle.capacity_wh:
        return None
    return smart.soc_energy_wh(start_soc_bp, vehicle.max_soc_bp, vehicle.capacity_wh)


def target_wh(session: ChargingSession, start_soc_bp: int | None = None) -> int:
    """What the session may deliver: the purchase, cut at the battery's maximum (never above)."""
    cap = energy_cap_wh(session, session.start_soc_bp if start_soc_bp is None else start_soc_bp)
    return session.purchased_wh if cap is None else min(session.purchased_wh, cap)


def blocked_for(session: ChargingSession) -> list[tuple[datetime, datetime]]:
    events = DemandResponseEvent.objects.filter(participations__session=session).values_list("starts_at", "ends_at")
    return list(events)


def plan_session(
    session: ChargingSession,
    plan: SmartPlan,
    *,
    now: datetime,
    delivered_wh: int,
    soc_bp: int | None,
    power_w: int | None,
    start_soc_bp: int | None = None,
) -> smart.Plan:
    """Plan what is left of the session from `now` (pure planner, prices and events from the DB)."""
    remaining = max(0, target_wh(session, start_soc_bp) - delivered_wh)
    power = power_w or session.nominal_power_w
    vehicle = session.vehicle
    urgent = 0
    if soc_bp is not None and vehicle.capacity_wh and vehicle.min_soc_bp > soc_bp:
        urgent = smart.soc_energy_wh(soc_bp, vehicle.min_soc_bp, vehicle.capacity_wh)
    until = (plan.deadline or now) + HORIZON
    return smart.plan_charge(
        now=now,
        energy_wh=remaining,
        power_w=power,
        prices=prices_between(plan.region, now, until),
        deadline=plan.deadline,
        urgent_wh=urgent,
        blocked=blocked_for(session),
        window_cost_millis=settings.SMART_WINDOW_COST_MINOR * 1000,
        horizon=until - now,
    )


def plan_fields(p: smart.Plan, *, now: datetime, delivered_wh: int, replan: bool) -> dict:
    """The SmartPlan columns a new plan sets."""
    fields = {
        "windows": [w.as_dict() for w in p.windows],
        "planned_at": now,
        "planned_power_w": p.power_w,
        "planned_energy_wh": p.energy_wh,
        "delivered_at_plan_wh": max(0, delivered_wh),
        "meets_deadline": p.meets_deadline,
    }
    if not replan:
        # The saving the driver is shown is the first plan's: re-plans follow reality, not prices.
        fields.update(cost_millis=p.cost_millis, immediate_cost_millis=p.immediate_cost_millis)
    else:
        fields["replans"] = F("replans") + 1
    return fields


def windows_of(plan: SmartPlan) -> list[smart.Window]:
    return [smart.Window.from_dict(w) for w in plan.windows]


def expected_delivered_wh(plan: SmartPlan, now: datetime) -> int:
    """What the plan expected delivered by `now` (for drift)."""
    if plan.planned_at is None or not plan.planned_power_w:
        return 0
    done = smart.energy_in_windows(windows_of(plan), plan.planned_at, now, plan.planned_power_w)
    return plan.delivered_at_plan_wh + done


# --- demand response ---------------------------------------------------------------------------


def enrollment_set(*, vehicle: Vehicle, region: str = "", active: bool = True) -> DemandResponseEnrollment:
    enrollment, _ = DemandResponseEnrollment.objects.update_or_create(
        vehicle=vehicle,
        defaults={"region": region or settings.SMART_DEFAULT_REGION, "active": active, "enrolled_at": clock.now()},
    )
    return enrollment


def battery_limits_set(*, vehicle: Vehicle, max_soc_bp: int, min_soc_bp: int = 0) -> Vehicle:
    """The driver's battery-health window; the database refuses min > max or max < 10 %."""
    if not (0 <= min_soc_bp <= max_soc_bp <= 10_000 and max_soc_bp >= 1_000):
        raise GridError("bad_limits", gettext("Choose a maximum of at least 10 % and a minimum below it."))
    Vehicle.objects.filter(pk=vehicle.pk).update(max_soc_bp=max_soc_bp, min_soc_bp=min_soc_bp)
    vehicle.max_soc_bp, vehicle.min_soc_bp = max_soc_bp, min_soc_bp
    return vehicle


def _events_applying(vehicle: Vehicle, region: str, after: datetime):
    return (
        DemandResponseEvent.objects.filter(ends_at__gt=after).filter(Q(region=region) | Q(vehicles=vehicle)).distinct()
    )


def _planned_in(session: ChargingSession, plan: SmartPlan, start: datetime, end: datetime, now: datetime) -> int:
    """Energy the session would have charged inside [start, end) without the event."""
    power = plan.planned_power_w or session.power_w or session.nominal_power_w
    if plan.planned_at is not None:
        return smart.energy_in_windows(windows_of(plan), start, end, power)
    # Not planned yet (a plain session): it charges from now until the purchase is in.
    remaining = max(0, session.purchased_wh - session.delivered_wh)
    charge_end = now + timedelta(seconds=remaining * 3600 / max(power, 1))
    return smart.energy_in_windows([smart.Window(now, charge_end, remaining, 0)], start, end, power)


def _participate(
    session: ChargingSession, event: DemandResponseEvent, region: str, now: datetime, *, poke: bool = True
) -> bool:
    """Join the session to the event. `poke`: bring its next step forward (not when the caller
    is the session's own step, which plans with the event itself)."""
    plan, _ = SmartPlan.objects.get_or_create(session=session, defaults={"region": region})
    try:
        with transaction.atomic():
            DemandResponseParticipation.objects.create(
                event=event,
                session=session,
                vehicle_id=session.vehicle_id,
                planned_in_window_wh=_planned_in(session, plan, event.starts_at, event.ends_at, now),
                created_at=now,
            )
    except IntegrityError:
        return False
    # Re-plan now, not at the event's start: a session waiting for a cheap window that the event
    # covers may still keep its deadline by charging earlier. A pause re-plans when it ends.
    # The poke counter tells a step in flight (it holds the lease, and its compare-and-set UPDATE
    # would write its own planned next action and plan over these) to act now and re-plan.
    # Session row first, then the plan: the lock order of the step's commit.
    ChargingSession.objects.filter(pk=session.pk, status__in=OPEN_STATUSES).update(
        next_action_at=Least(F("next_action_at"), now),
        call_budget=F("call_budget") + EXTRA_CALLS // 2,
        **({"pokes": F("pokes") + 1} if poke else {}),
    )
    SmartPlan.objects.filter(pk=plan.pk, paused=False).update(planned_at=None)
    return True


def grid_event_declare(
    *,
    source: str,
    external_id: str,
    starts_at: datetime,
    ends_at: datetime,
    region: str = "",
    vehicle_ids: Sequence[int] = (),
    bonus_minor_per_kwh: int | None = None,
    declared_by=None,
    now: datetime | None = None,
) -> tuple[DemandResponseEvent, bool]:
    """Declare a grid event; enrolled vehicles' open sessions take part. Idempotent on
    (source, external_id): a repeated declaration returns the first event and changes nothing."""
    now = now or clock.now()
    existing = DemandResponseEvent.objects.filter(source=source, external_id=external_id).first()
    if existing is not None:
        return existing, False
    if ends_at <= starts_at or ends_at <= now or ends_at - starts_at > MAX_EVENT or starts_at > now + MAX_EVENT_LEAD:
        raise GridError(
            "bad_window", gettext("An event needs a future window of at most six hours, starting within a week.")
        )
    if not region and not vehicle_ids:
        raise GridError("no_target", gettext("Name a region or vehicles."))
    bonus = settings.GRID_BONUS_MINOR_PER_KWH if bonus_minor_per_kwh is None else bonus_minor_per_kwh
    if not isinstance(bonus, int) or isinstance(bonus, bool) or not 0 <= bonus <= settings.GRID_BONUS_MAX_MINOR_PER_KWH:
        raise GridError(
            "bad_bonus",
            f"The bonus is a whole number of minor units per kWh, 0 to {settings.GRID_BONUS_MAX_MINOR_PER_KWH}.",
        )
    try:
        with transaction.atomic():
            event = DemandResponseEvent.objects.create(
                source=source,
                external_id=external_id,
                region=region,
                starts_at=starts_at,
                ends_at=ends_at,
                bonus_minor_per_kwh=bonus,
                declared_by=declared_by,
                created_at=now,
            )
            if vehicle_ids:
                event.vehicles.set(Vehicle.objects.filter(pk__in=vehicle_ids))
    except IntegrityError:
        # The same event declared concurrently; any other integrity error is not ours to hide.
        existing = DemandResponseEvent.objects.filter(source=source, external_id=external_id).first()
        if existing is None:
            raise
        return existing, False
    target = Q(pk__in=[])
    if region:
        target |= Q(region=region)
    if vehicle_ids:
        target |= Q(vehicle_id__in=vehicle_ids)
    enrolled = DemandResponseEnrollment.objects.filter(active=True).filter(target)
    for enrollment in enrolled.select_related("vehicle"):
        session = (
            ChargingSession.objects.select_related("vehicle")
            .filter(vehicle=enrollment.vehicle, status__in=OPEN_STATUSES)
            .first()
        )
        if session is not None:
            _participate(session, event, enrollment.region, now)
    logger.info("grid event %s declared (%s): %s–%s", event.external_id, source, starts_at, ends_at)
    return event, True


def enrollment_region():
    """The region of the vehicle's active enrollment, None if not enrolled: an annotation for the
    controller's session load (`dr_region`), so a step does not look the enrollment up itself."""
    enrollment = DemandResponseEnrollment.objects.filter(vehicle_id=OuterRef("vehicle_id"), active=True)
    return Subquery(enrollment.order_by("pk").values("region")[:1])


_UNKNOWN = object()


def grid_attach_events(*, session: ChargingSession, now: datetime) -> bool:
    """A new session of an enrolled vehicle joins the events still ahead. True if any.

    Called from the session's own step: no poke (the step plans with the events it joined)."""
    region = getattr(session, "dr_region", _UNKNOWN)
    if region is _UNKNOWN:
        enrollment = DemandResponseEnrollment.objects.filter(vehicle_id=session.vehicle_id, active=True).first()
        region = None if enrollment is None else enrollment.region
    if region is None:
        return False
    joined = False
    for event in _events_applying(session.vehicle, region, now):
        joined |= _participate(session, event, region, now, poke=False)
    return joined


def participations_verify(*, session_id: int, now: datetime, stopped: bool) -> None:
    """A reading during a pause: record, per event in progress, whether the car really stopped."""
    live = DemandResponseParticipation.objects.filter(
        session_id=session_id, event__starts_at__lte=now, event__ends_at__gt=now
    )
    if stopped:
        live.filter(verified_stopped_at__isnull=True).update(verified_stopped_at=now)
    else:
        live.filter(charging_seen_at__isnull=True).update(charging_seen_at=now)


def participations_pause_sent(*, session_id: int, now: datetime) -> None:
    DemandResponseParticipation.objects.filter(
        session_id=session_id, event__ends_at__gt=now, pause_sent_at__isnull=True
    ).update(pause_sent_at=now)


def participations_settle(*, session_id: int, now: datetime, power_w: int, paused_since: datetime | None) -> int:
    """At resume: the energy each verified participation shifted; its bonus is then due.

    Shifted = what the plan had inside the event window, at most what the verified pause could
    have kept out (power × the pause's overlap with the window). This runs inside the resume
    step's transaction, after the session row is updated; crediting the wallet there would lock
    the wallet after the session, against the lock order (wallet, then session) that settlement
    and `session_request` follow. So the bonus is credited once that transaction has committed,
    in a transaction of its own, wallet first (`grid_bonuses_credit_due`); a settled
    participation without a grant is the durable record that a bonus is owed, and the periodic
    sweep credits it if the process dies in between. Returns the energy shifted, Wh."""
    total = 0
    rows = DemandResponseParticipation.objects.select_related("event").filter(
        session_id=session_id, resumed_at__isnull=True, event__ends_at__lte=now
    )
    for p in rows:
        shifted = 0
        if p.verified_stopped_at is not None and paused_since is not None:
            lo, hi = max(p.event.starts_at, paused_since), min(p.event.ends_at, now)
            kept_out = max(0.0, (hi - lo).total_seconds()) * power_w / 3600
            shifted = min(p.planned_in_window_wh, round(kept_out))
        if DemandResponseParticipation.objects.filter(pk=p.pk, resumed_at__isnull=True).update(
            resumed_at=now, energy_shifted_wh=shifted
        ):
            total += shifted
    if total:
        # robust: a failed credit must not fail the committed step; the sweep credits it later.
        transaction.on_commit(functools.partial(grid_bonuses_credit_due, session_id=session_id, now=now), robust=True)
    return total


def grid_bonuses_credit_due(*, session_id: int | None = None, now: datetime | None = None) -> int:
    """Credit every bonus owed (a settled participation that shifted energy and has no grant yet),
    of one session or of all. Safe to run concurrently with itself (`grid_bonus_credit` credits
    each participation once). Returns how many of them now have their grant."""
    due = DemandResponseParticipation.objects.filter(
        resumed_at__isnull=False, energy_shifted_wh__gt=0, bonus__isnull=True
    ).order_by("id")
    if session_id is not None:
        due = due.filter(session_id=session_id)
    made = 0
    for participation_id in due.values_list("id", flat=True):
        grant = grid_bonus_credit(participation_id=participation_id, now=now)
        made += grant is not None
    return made


def grid_bonus_credit(*, participation_id: int, now: datetime | None = None) -> GridBonusEntry | None:
    """Credit a settled participation's bonus to the driver's wallet as a bonus lot, exactly once.

    The bonus is `bonus_minor_per_kwh` of the event per kWh shifted, turned into energy at
    GRID_BONUS_PRICE_PER_KWH. Safe to call any number of times, concurrently too: the wallet row
    is locked first (the wallet's lock order), then the grant is looked for; the grant's unique
    participation and the ledger line's unique key (`grid:<event>:session:<session>:bonus`) make
    a second credit impossible. Returns the grant, or None when nothing was earned."""
    p = DemandResponseParticipation.objects.select_related("event", "session").get(pk=participation_id)
    if p.resumed_at is None or p.energy_shifted_wh <= 0:
        return None
    existing = GridBonusEntry.objects.filter(participation=p).select_related("lot").first()
    if existing is not None:
        return existing
    price = bonus_credit_price_minor_per_kwh()
    energy = bonus_energy_wh(
        shifted_wh=p.energy_shifted_wh,
        bonus_minor_per_kwh=p.event.bonus_minor_per_kwh,
        credit_price_minor_per_kwh=price,
    )
    if energy <= 0:
        return None
    key = f"grid:{p.event.public_id}:session:{p.session.public_id}:bonus"
    wallet = wallet_services.wallet_get_or_create(user=p.session.user)
    with transaction.atomic():
        wallet_services.wallet_lock(wallet_id=wallet.pk)
        # Under the wallet lock: a concurrent run that got here first has committed its grant.
        existing = GridBonusEntry.objects.filter(participation=p).select_related("lot").first()
        if existing is not None:
            return existing
        lot = wallet_services.wallet_credit_bonus(
            wallet_id=wallet.pk,
            energy_wh=energy,
            idempotency_key=key,
            note=f"demand response {p.event.external_id}: {p.energy_shifted_wh} Wh shifted",
        )
        return GridBonusEntry.objects.create(
            user_id=p.session.user_id,
            event=p.event,
            participation=p,
            lot=lot,
            credit_price_minor_per_kwh=price,
            idempotency_key=key,
            created_at=now or clock.now(),
        )
