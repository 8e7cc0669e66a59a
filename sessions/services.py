"""Charging sessions: request, step, stop, settle.

Every write and state transition of a session goes through here. The shape of one step:
  1. load the session (the controller loop leased it to us: `lease_token`);
  2. talk to the vehicle API with NO transaction open (calls take 3–45 s, up to 300 s);
  3. record the result in one short transaction that moves the session by compare-and-set on
     (lease token, version); a step that lost its lease (it ran too long and another worker took
     over) writes nothing and exits quietly.
Readings and command records are facts and are stored as soon as they are known, whatever the
step decides afterwards. Lock order, where several rows are locked: wallet, then session.
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, DateTimeField, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce

from prepaid import services as wallet_services
from prepaid.errors import WalletError
from sessions import clock, grid, makes, metering, policy, smart
from sessions.models.charging import (
    ALLOWED_TRANSITIONS,
    OPEN_STATUSES,
    TERMINAL_STATUSES,
    ChargingSession,
    CommandKind,
    MeterReading,
    SessionStatus,
    SessionTransition,
    VehicleCommand,
)
from sessions.models.grid import SmartPlan
from sessions.models.vehicles import Vehicle
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.types import ChargeState
from sessions.vehicles import ConsentRequired, call_with_token, get_client

logger = logging.getLogger(__name__)

S = SessionStatus

# How long each state may last before the session is moved on (no session waits forever).
REQUESTED_DEADLINE = timedelta(minutes=20)
STARTING_DEADLINE = timedelta(minutes=15)
STOPPING_DEADLINE = timedelta(hours=2)
MIN_CHARGING_DEADLINE = timedelta(hours=6)
# Retries of a failed call: exponential backoff from 15 s, capped, with jitter.
RETRY_BASE_S = 15.0
RETRY_CAP_S = 300.0
# A START whose effect never shows is sent again, up to this many STARTs in all.
MAX_START_ATTEMPTS = 3
# A STOP answered with an error is sent again after this many seconds (or its Retry-After).
STOP_RESEND_S = 10
# Attempts to put the driver's own charge limit back at the end of a session.
RESTORE_ATTEMPTS = 3
# A STOP latency is learned only from a final estimate known to within ± this many seconds of charging.
LEARN_MAX_SPREAD_S = 10
# Calls allowed per session before the policy must commit to the STOP.
DEFAULT_CALL_BUDGET = 40
# States in which a poke (a grid event joined while a step ran) brings the next step forward:
# those whose step consults the smart plan.
POKED_STATUSES = (S.REQUESTED, S.CHARGING)


class SessionError(Exception):
    """A session cannot be created or changed; `code` is stable, the message is for the driver."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# Plain-language reasons the driver sees, by machine code.
REASONS: dict[str, str] = {
    "requested": "Waiting for the car to answer.",
    "start_sent": "Start sent; waiting for the car to begin charging.",
    "charging": "Charging.",
    "threshold": "Stopping: the energy you bought has been delivered.",
    "driver_stop": "Stopped at your request.",
    "operator_stop": "Stopped by the operator.",
    "operator_close": "Closed by the operator; you were billed only for what was delivered.",
    "completed": "The energy you bought has been delivered.",
    "unplugged": "The car is not plugged in. Plug it in, then start again.",
    "unplugged_mid": "The car was unplugged. You were billed only for what was delivered.",
    "car_full": "The car is full or at its charge limit. You were billed only for what was delivered.",
    "car_stopped": "The car stopped charging by itself. You were billed only for what was delivered.",
    "already_full": "The car is already full or at its charge limit; nothing to charge.",
    "asleep": "The car is asleep and did not wake up. Open the car's app to wake it, then try again.",
    "unreachable": "The car cannot be reached (no mobile signal?). Try again when it is online.",
    "consent": "Access to the car was withdrawn. Reconnect the vehicle, then start again.",
    "not_capable": "This car does not accept remote charging commands.",
    "cannot_stop": "This car accepts no remote STOP, so a prepaid session could not end at your purchase.",
    "low_battery": "The car refuses remote charging commands at its current battery level "
    "(some makes need 50 % or more). Start the charge from the car or its app.",
    "charge_fault": "The charger delivers no current (fault or charging schedule). Check the charger.",
    "did_not_start": "The car did not start charging. Check the cable and the car's charging schedule.",
    "vehicle_error": "The car's service did not accept the command. Try again later.",
    "timeout": "The session took too long and was closed; you were billed only for what was delivered.",
    "stop_not_verified": "We could not confirm the car stopped; you were billed at most what you bought.",
    "battery_max": "Stopped at your battery's maximum charge; the rest of your credit stays in your wallet.",
    "battery_max_reached": "The battery is already at the maximum you chose; nothing to charge.",
    "waiting_window": "Smart charging: waiting for the next planned (cheaper) window.",
    "paused_plan": "Smart charging: paused until the next planned (cheaper) window.",
    "paused_grid": "Paused for a grid event you take part in; charging resumes after it.",
}


def _reason(code: str) -> str:
    return REASONS.get(code, code)


# --- request and stop --------------------------------------------------------------------------


def session_request(
    *, user, vehicle_id: int, energy_wh: int, policy_spec: str = "predictive", now: datetime | None = None
) -> ChargingSession:
    """Hold `energy_wh` from the user's wallet and open a session on the vehicle.

    Raises SessionError (vehicle not yours or not connected, a session already open on it) and
    the wallet's InsufficientCredit / WalletBlocked. The hold and the session commit together.
    """
    policy.policy_from_spec(policy_spec)  # fail early on an unknown policy
    now = now or clock.now()
    vehicle = Vehicle.objects.select_related("connection").filter(pk=vehicle_id, owner=user, is_active=True).first()
    if vehicle is None:
        raise SessionError("vehicle_unknown", "That vehicle is not connected to your account.")
    if not vehicle.connection.is_active:
        raise SessionError("consent", _reason("consent"))
    traits = makes.traits_for(vehicle.make)
    if not traits.can_stop and vehicle.charge_limit_settable is not True:
        # Without a STOP (Nissan in the US) nor a charge limit to fall back on, the car would charge
        # on past the purchase at the operator's expense: refuse before holding any credit.
        raise SessionError("cannot_stop", _reason("cannot_stop"))
    wallet = wallet_services.wallet_get_or_create(user=user)
    key = uuid.uuid4()
    try:
        with transaction.atomic():
            hold = wallet_services.wallet_hold(
                wallet_id=wallet.pk, energy_wh=energy_wh, idempotency_key=f"session:{key}:hold"
            )
            session = ChargingSession.objects.create(
                public_id=key,
                user=user,
                vehicle=vehicle,
                hold=hold,
                purchased_wh=energy_wh,
                policy=policy_spec,
                reason="requested",
                reason_message=_reason("requested"),
                next_action_at=now,
                state_deadline_at=now + REQUESTED_DEADLINE,
                call_budget=makes.session_call_budget(traits, DEFAULT_CALL_BUDGET),
                energy_step_wh=traits.energy_step_wh if traits.energy_counter else 0,
                soc_step_bp=traits.soc_step_bp,
                nominal_power_w=traits.nominal_power_w,
                telemetry_refresh_s=int(traits.telemetry_refresh_s),
                created_at=now,
            )
            SessionTransition.objects.create(session=session, from_status="", to_status=S.REQUESTED, at=now)
    except IntegrityError as exc:
        # The partial unique index: another session is open on this car (the hold rolled back too).
        raise SessionError("session_open", "A session is already running on this vehicle.") from exc
    return session


def session_request_stop(*, session_id: int, reason: str = "driver_stop") -> bool:
    """Ask for a session to stop now (driver or operator). Returns False if it is not open.

    Only marks the wish and pulls the next step forward: the step sends STOP and verifies it.
    The version is not bumped, so a step in flight still commits its own results.
    """
    updated = ChargingSession.objects.filter(pk=session_id, status__in=OPEN_STATUSES, stop_reason="").update(
        stop_reason=reason, next_action_at=clock.now(), planned_action=""
    )
    return bool(updated) or ChargingSession.objects.filter(pk=session_id, status__in=OPEN_STATUSES).exists()


# --- one step ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a step decided: fields to write, an optional move, when to act next."""

    changes: dict[str, Any] = field(default_factory=dict)
    to_status: str | None = None
    reason: str = ""
    next_at: datetime | None = None
    settle: bool = False
    # Smart plan columns, written in the step's transaction only if the step keeps its lease.
    plan_changes: dict[str, Any] = field(default_factory=dict)
    after: list = field(default_factory=list)


class _Step:
    """The context of one step: the session, the clock, and counted, recorded vehicle calls."""

    def __init__(self, session: ChargingSession) -> None:
        self.session = session
        self.vehicle = session.vehicle
        self.now = clock.now()
        self.calls = 0
        # Command records, written in one INSERT when the step ends (whatever way it ends).
        self.records: list[VehicleCommand] = []
        self.not_before: datetime | None = None
        # The charge limit, when a read reported it anyway (Tesla's /tesla/charge): saves a call.
        self.reported_limit_bp: int | None = None
        # Smart plan columns and effects (bonus lines, DR verification) for `_commit`'s transaction.
        self.plan_changes: dict[str, Any] = {}
        self.after: list = []
        # Seeded per session and attempt: two workers (or a replay) draw the same jitter.
        self.rng = random.Random(f"{session.pk}:{session.version}")  # noqa: S311 - jitter, not a secret

    def call(self, kind: str, detail: str, fn, *, billed: int = 1):
        """Run `fn(client, token)` against the vehicle API; record the command; count the calls."""
        session, vehicle = self.session, self.vehicle
        client = get_client()
        sent_at = clock.now()
        record = VehicleCommand(
            session=session, vehicle=vehicle, kind=kind, detail=detail, sent_at=sent_at, make=vehicle.make
        )
        self.calls += billed
        try:
            result = call_with_token(
                vehicle.connection_id, client, lambda token: fn(client, token), loaded=vehicle.connection
            )
        except api_errors.VehicleApiError as exc:
            record.ok = False
            record.error_type = (exc.type or type(exc).__name__)[:48]
            record.error_code = (exc.code or "")[:48]
            record.http_status = exc.status
            record.request_id = (exc.request_id or "")[:64]
            if isinstance(exc, api_errors.RateLimited) and exc.retry_after_s:
                self.not_before = clock.now() + timedelta(seconds=exc.retry_after_s)
            raise
        except ConsentRequired:
            record.ok = False
            record.error_type = "CONSENT_REQUIRED"
            raise
        finally:
            record.latency_ms = max(0, int((clock.now() - sent_at).total_seconds() * 1000))
            if record.ok is None:
                record.ok = True
                meta = getattr(result, "meta", None)
                record.request_id = ((meta.request_id if meta else "") or "")[:64]
            self.records.append(record)
        return result

    def backoff(self, attempts: int) -> datetime:
        ceiling = min(RETRY_CAP_S, RETRY_BASE_S * 2**attempts)
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        at = self.now + timedelta(seconds=delay)
        return max(at, self.not_before) if self.not_before else at


def _session_for_step(session_id: int) -> ChargingSession | None:
    """The session with everything a step reads, in one query: the vehicle and its connection
    (token), the smart plan, how many readings the table holds (to trust the row's copy of them)
    and the vehicle's demand-response enrolment."""
    stored = (
        MeterReading.objects.filter(session_id=OuterRef("pk"))
        .order_by()
        .values("session_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        ChargingSession.objects.select_related("vehicle", "vehicle__connection", "smart_plan")
        .annotate(readings_stored=Coalesce(Subquery(stored), 0), dr_region=grid.enrolment_region())
        .filter(pk=session_id)
        .first()
    )


def session_step(*, session_id: int, lease_token: uuid.UUID) -> None:
    """Advance one session by one step. Safe to run twice: a stale lease writes nothing."""
    session = _session_for_step(session_id)
    if session is None or session.lease_token != lease_token or session.status in TERMINAL_STATUSES:
        return
    if session.lease_until is not None and session.lease_until <= clock.now():
        # Dequeued after its lease ran out (a backlog in the queue): the controller may already
        # have handed the session to another worker, and two workers would both send the STOP.
        logger.warning("session %s: step started after its lease expired; skipped", session.pk)
        return
    step = _Step(session)
    handler = {
        S.REQUESTED: _step_requested,
        S.STARTING: _step_starting,
        S.CHARGING: _step_charging,
        S.STOPPING: _step_stopping,
    }[session.status]
    try:
        try:
            outcome = handler(step)
        except ConsentRequired:
            outcome = _consent_lost(step)
    finally:
        # Every call made is recorded, even by a step that crashed before deciding anything.
        VehicleCommand.objects.bulk_create(step.records)
    _commit(step, outcome, lease_token)


def _commit(step: _Step, outcome: Outcome, lease_token: uuid.UUID) -> bool:
    session = step.session
    changes = dict(outcome.changes)
    changes["api_calls"] = F("api_calls") + step.calls
    if step.not_before:
        changes["not_before"] = step.not_before
    if getattr(session, "readings_dirty", False):
        changes["readings_cache"] = session.readings_cache
        changes["readings_cached"] = session.readings_cached
    # A driver's stop, or a grid event, that arrives while this step runs must not wait for the
    # planned next action: the UPDATE itself (not a read before it) sees the wish and acts now.
    changes["next_action_at"] = outcome.next_at
    now_if = []
    if outcome.to_status is None and outcome.next_at and session.status != S.STOPPING:
        now_if.append(When(~Q(stop_reason=""), then=Value(step.now)))
    if outcome.next_at and (outcome.to_status or session.status) in POKED_STATUSES:
        now_if.append(When(pokes__gt=session.pokes, then=Value(step.now)))
    if now_if:
        changes["next_action_at"] = Case(*now_if, default=Value(outcome.next_at), output_field=DateTimeField())
    if outcome.to_status:
        if outcome.to_status not in ALLOWED_TRANSITIONS[session.status]:
            raise RuntimeError(f"session {session.pk}: {session.status} → {outcome.to_status} is not allowed")
        changes["status"] = outcome.to_status
        changes["attempts"] = changes.get("attempts", 0)
        if outcome.reason:
            changes["reason"] = outcome.reason
            changes["reason_message"] = _reason(outcome.reason)
        if outcome.to_status in TERMINAL_STATUSES:
            changes["next_action_at"] = None
            changes["ended_at"] = step.now
            changes["planned_action"] = ""
    with transaction.atomic():
        if outcome.settle or outcome.to_status == S.FAILED:
            _close_hold(session, changes, failed=outcome.to_status == S.FAILED)
        updated = ChargingSession.objects.filter(
            pk=session.pk, lease_token=lease_token, version=session.version, status=session.status
        ).update(**changes, version=F("version") + 1, lease_token=None, lease_until=None)
        if not updated:
            # Someone else moved the session (our lease ran out): roll back our settlement too.
            transaction.set_rollback(True)
            logger.warning("session %s: step lost its lease; result discarded", session.pk)
            return False
        plan = _plan_of(session)
        outcome.plan_changes = {**step.plan_changes, **outcome.plan_changes}
        outcome.after = step.after + outcome.after
        if plan is not None and outcome.plan_changes:
            if outcome.to_status in TERMINAL_STATUSES:
                outcome.plan_changes.update(paused=False, resume_at=None)
            if outcome.plan_changes.get("planned_at") is not None:
                # A grid event joined while this step planned: its plan did not know the event,
                # so leave the plan marked for re-planning (the event's poke set it so).
                poked = ChargingSession.objects.filter(pk=session.pk, pokes__gt=session.pokes)
                outcome.plan_changes["planned_at"] = Case(
                    When(Exists(poked), then=Value(None)),
                    default=Value(outcome.plan_changes["planned_at"]),
                    output_field=DateTimeField(),
                )
            SmartPlan.objects.filter(pk=plan.pk).update(**outcome.plan_changes)
        elif plan is not None and outcome.to_status in TERMINAL_STATUSES and plan.paused:
            SmartPlan.objects.filter(pk=plan.pk).update(paused=False, resume_at=None)
        for effect in outcome.after:
            effect()
        if outcome.to_status:
            SessionTransition.objects.create(
                session=session,
                from_status=session.status,
                to_status=outcome.to_status,
                reason=outcome.reason,
                at=step.now,
            )
    return True


def _close_hold(session: ChargingSession, changes: dict, *, failed: bool) -> None:
    """Settle (consume what was delivered, at most the purchase) or release the hold, in the
    transaction that moves the session: the ledger and the session never disagree."""
    if session.hold_id is None:
        return
    if failed:
        wallet_services.hold_release(hold_id=session.hold_id, idempotency_key=f"session:{session.public_id}:release")
        changes.setdefault("billed_wh", 0)
        return
    delivered = changes.get("delivered_wh", session.delivered_wh)
    # The driver pays what the readings prove (the estimate's low bound), never above the purchase.
    proven = changes.get("delivered_low_wh", session.delivered_low_wh)
    billed, overshoot = policy.settle(session.purchased_wh, delivered, proven)
    wallet_services.hold_settle(
        hold_id=session.hold_id, consumed_wh=billed, idempotency_key=f"session:{session.public_id}:settle"
    )
    changes["billed_wh"] = billed
    changes["overshoot_wh"] = overshoot
    changes["unbilled_wh"] = policy.unbilled_wh(session.purchased_wh, delivered, billed)


# --- readings ----------------------------------------------------------------------------------
#
# Every reading is a row of MeterReading (the record) and, in compact form, an entry of the
# session's `readings_cache` (a copy, written by the step's compare-and-set UPDATE), so a step
# gets the readings with the session instead of re-reading the table. The copy is trusted only
# when it holds as many readings as the table (`readings_stored`, counted in the session's load);
# otherwise — a step that crashed or lost its lease after storing a reading, a session loaded some
# other way — it is rebuilt from the table, so the readings the estimate sees are always the same.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _cache_row(r: MeterReading) -> list:
    def whole(value):
        return None if value is None else int(value)  # as the IntegerField stores it

    return [
        (r.taken_at - _EPOCH) // _US,
        (r.fetched_at - _EPOCH) // _US,
        r.source,
        whole(r.energy_added_wh),
        whole(r.soc_bp),
        whole(r.power_w),
        r.charge_state or "",
        r.is_plugged_in,
    ]


def _from_cache_row(row: list) -> metering.Reading:
    taken_us, fetched_us, source, energy, soc, power, charge_state, plugged = row
    return metering.Reading(
        taken_at=_EPOCH + taken_us * _US,
        fetched_at=_EPOCH + fetched_us * _US,
        source=source,
        energy_added_wh=energy,
        soc_bp=soc,
        power_w=power,
        charge_state=charge_state or None,
        is_plugged_in=plugged,
    )


def _cache_whole(session: ChargingSession) -> bool:
    stored = getattr(session, "readings_stored", None)
    return stored is not None and stored == session.readings_cached == len(session.readings_cache)


def _reading_rows(session: ChargingSession) -> list[metering.Reading]:
    """All the session's readings in id order: from the row's copy when it is whole, else from
    the table (and the copy is rebuilt, to be written by the step's commit)."""
    rows = getattr(session, "reading_rows", None)
    if rows is not None:
        return rows
    if not _cache_whole(session):
        session.readings_cache = [_cache_row(r) for r in MeterReading.objects.filter(session=session)]
        session.readings_cached = session.readings_stored = len(session.readings_cache)
        session.readings_dirty = True
    session.reading_rows = [_from_cache_row(row) for row in session.readings_cache]
    return session.reading_rows


def _cache_append(session: ChargingSession, stored: MeterReading) -> None:
    """A reading just stored: add it to a whole copy (a broken copy is rebuilt when read)."""
    if not _cache_whole(session):
        return
    rows = _reading_rows(session)
    row = _cache_row(stored)
    session.readings_cache = [*session.readings_cache, row]
    session.readings_cached = session.readings_stored = len(session.readings_cache)
    session.reading_rows = [*rows, _from_cache_row(row)]
    session.readings_dirty = True


def _read(step: _Step) -> metering.Reading:
    """Read the car once (one or two billed calls) and store the reading."""
    session = step.session
    vid = step.vehicle.external_id
    fetched = clock.now()
    if session.energy_step_wh:
        result = step.call(CommandKind.READ, "tesla/charge", lambda c, t: c.tesla_charge(t, vid))
        step.reported_limit_bp = result.soc_limit_bp
        reading = metering.Reading(
            taken_at=result.meta.data_age or fetched,
            fetched_at=fetched,
            source=metering.SOURCE_ENERGY_ADDED,
            energy_added_wh=result.energy_added_wh,
            power_w=result.power_w,
            charge_state=result.state.value if result.state else None,
            is_plugged_in=result.is_plugged_in,
        )
    else:
        results = step.call(
            CommandKind.READ, "batch charge+battery", lambda c, t: c.batch(t, vid, ["/charge", "/battery"]), billed=2
        )
        charge, battery = results.get("/charge"), results.get("/battery")
        for part in (charge, battery):
            if isinstance(part, api_errors.VehicleApiError):
                raise part
        reading = metering.Reading(
            taken_at=battery.meta.data_age or charge.meta.data_age or fetched,
            fetched_at=fetched,
            source=metering.SOURCE_SOC,
            soc_bp=battery.soc_bp,
            charge_state=charge.state.value,
            is_plugged_in=charge.is_plugged_in,
        )
    stored = MeterReading.objects.create(
        session=session,
        taken_at=reading.taken_at,
        fetched_at=reading.fetched_at,
        source=reading.source,
        energy_added_wh=reading.energy_added_wh,
        soc_bp=reading.soc_bp,
        power_w=reading.power_w,
        charge_state=reading.charge_state or "",
        is_plugged_in=reading.is_plugged_in,
    )
    _cache_append(session, stored)
    return reading


def _readings(session: ChargingSession) -> list[metering.Reading]:
    """The readings metering counts: those taken since the START was sent (or the request)."""
    since = session.start_sent_at or session.created_at
    return [r for r in _reading_rows(session) if r.taken_at >= since]


def latency_model(make: str, kind: str = CommandKind.STOP) -> policy.LatencyModel:
    """The STOP (or START) latency distribution learned from this make's recent commands."""
    return _latency_models_cached(make.upper(), int(clock.now().timestamp() // 60))[kind]


@functools.lru_cache(maxsize=256)
def _latency_models_cached(make: str, _minute: int) -> dict[str, policy.LatencyModel]:
    # Cached per minute, both kinds in one query: every step of every session of a make would
    # otherwise query the same rows.
    rows = (
        VehicleCommand.objects.filter(
            make__iexact=make, kind__in=(CommandKind.START, CommandKind.STOP), ok=True, effect_latency_ms__isnull=False
        )
        .exclude(detail__in=(PAUSE, RESUME))
        .order_by("-id")
        .values_list("kind", "effect_latency_ms", "effect_latency_max_ms")[:400]
    )
    low, high = makes.traits_for(make).command_latency_s
    models = {
        kind: policy.LatencyModel(prior_min_s=low, prior_max_s=high) for kind in (CommandKind.START, CommandKind.STOP)
    }
    for kind, lo_ms, hi_ms in reversed(list(rows)):
        m = models[kind]
        models[kind] = m.observe(lo_ms / 1000) if hi_ms is None else m.observe_interval(lo_ms / 1000, hi_ms / 1000)
    return models


def _estimate(session: ChargingSession, readings: list[metering.Reading]) -> metering.MeterEstimate:
    started_at, half_width = (None, 0.0)
    if session.start_sent_at:
        started_at, half_width = policy.estimate_charging_start(
            start_sent_at=session.start_sent_at,
            latency=latency_model(session.vehicle.make, CommandKind.START),
            readings=readings,
        )
    ctx = metering.MeterContext(
        capacity_wh=session.vehicle.capacity_wh or 75_000,
        soc_step_bp=session.soc_step_bp,
        energy_step_wh=session.energy_step_wh,
        start_soc_bp=session.start_soc_bp,
        start_energy_added_wh=session.baseline_energy_wh or 0,
        nominal_power_w=session.nominal_power_w,
        nominal_power_fraction=makes.NOMINAL_POWER_FRACTION,
        nominal_power_uncertainty=makes.NOMINAL_POWER_UNCERTAINTY,
        usable_fraction=makes.USABLE_FRACTION,
        usable_low_fraction=makes.USABLE_LOW_FRACTION,
        charging_started_at=started_at,
        charging_started_uncertainty_s=half_width,
    )
    return metering.estimate(readings, ctx)


def _policy_state(step: _Step, estimate, latency, readings) -> policy.PolicyState:
    session = step.session
    last_read = max((r.fetched_at for r in readings), default=None)
    ages = sorted((r.fetched_at - r.taken_at).total_seconds() for r in readings)
    return policy.PolicyState(
        now=step.now,
        target_wh=grid.target_wh(session),
        estimate=estimate,
        started_at=session.start_sent_at or session.created_at,
        latency=latency,
        charging_started_at=session.charging_at,
        last_read_at=last_read,
        reads=len(readings),
        telemetry_age_s=ages[len(ages) // 2] if ages else 60.0,
        telemetry_refresh_s=float(session.telemetry_refresh_s),
        calls_remaining=max(0, session.call_budget - session.api_calls - step.calls),
        not_before=step.not_before
        or (session.not_before if session.not_before and session.not_before > step.now else None),
        nominal_power_w=session.nominal_power_w,
        soc_only=not session.energy_step_wh,
        start_latency=latency_model(step.vehicle.make, CommandKind.START),
        read_cost=1 if session.energy_step_wh else 2,  # an SoC-only car is read with a 2-call batch
    )


def _still_ahead(when: datetime | None, now: datetime) -> datetime | None:
    return when if when and when > now else None


def _metering_fields(estimate: metering.MeterEstimate) -> dict[str, Any]:
    return {
        "delivered_wh": max(0, estimate.delivered_wh),
        "delivered_low_wh": max(0, estimate.delivered_low_wh),
        "delivered_high_wh": max(0, estimate.delivered_high_wh),
        "power_w": max(0, estimate.power_w),
        "data_source": estimate.source,
        "last_reading_at": estimate.as_of,
    }


# --- handlers, one per open state --------------------------------------------------------------


def _failure_reason(exc: api_errors.VehicleApiError) -> str:
    if isinstance(exc, api_errors.VehicleStateError):
        return {
            "CHARGING_PLUG_NOT_CONNECTED": "unplugged",
            "FULLY_CHARGED": "already_full",
            "ASLEEP": "asleep",
            "UNREACHABLE": "unreachable",
            "CHARGE_FAULT": "charge_fault",
            "LOW_BATTERY": "low_battery",
        }.get(exc.code or "", "vehicle_error")
    if isinstance(exc, api_errors.CompatibilityError):
        return "not_capable"
    return "vehicle_error"


def _retry_or_fail(step: _Step, exc: api_errors.VehicleApiError, *, to_status=S.FAILED, **extra) -> Outcome:
    session = step.session
    # A car that refuses commands at its battery level (GM below 50 %) will not change its mind
    # within a state's deadline: say so now instead of retrying into a vague failure.
    retry = exc.retryable and not (isinstance(exc, api_errors.VehicleStateError) and exc.code == "LOW_BATTERY")
    if retry and session.state_deadline_at and step.now < session.state_deadline_at:
        # Still trying; the driver sees why it is taking long (asleep, unreachable…).
        code = _failure_reason(exc)
        changes = {"attempts": session.attempts + 1, "reason": code, "reason_message": _reason(code), **extra}
        return Outcome(changes=changes, next_at=step.backoff(session.attempts))
    return Outcome(to_status=to_status, reason=_failure_reason(exc), changes=extra)


def _step_requested(step: _Step) -> Outcome:
    session, vid = step.session, step.vehicle.external_id
    if session.stop_reason:
        return Outcome(to_status=S.FAILED, reason=session.stop_reason)
    if step.now >= session.state_deadline_at:
        return Outcome(to_status=S.FAILED, reason=session.reason if session.reason != "requested" else "vehicle_error")
    try:
        reading = _read(step)
    except api_errors.VehicleApiError as exc:
        return _retry_or_fail(step, exc)
    if reading.is_plugged_in is False:
        return Outcome(to_status=S.FAILED, reason="unplugged")
    if reading.charge_state == ChargeState.FULLY_CHARGED:
        return Outcome(to_status=S.FAILED, reason="already_full")
    changes: dict[str, Any] = {"start_soc_bp": reading.soc_bp}
    if session.energy_step_wh and reading.soc_bp is None:
        try:
            changes["start_soc_bp"] = step.call(CommandKind.READ, "battery", lambda c, t: c.battery(t, vid)).soc_bp
        except api_errors.VehicleApiError as exc:
            logger.info("session %s: no battery level at start (%s)", session.pk, exc)
    already_charging = reading.charge_state == ChargeState.CHARGING
    soc = changes.get("start_soc_bp")
    if soc is not None and soc >= step.vehicle.max_soc_bp and not already_charging:
        # Battery health: at or above the driver's maximum there is nothing to charge.
        return Outcome(to_status=S.FAILED, reason="battery_max_reached", changes=changes)
    waiting = _plan_first_window(step, changes, already_charging=already_charging)
    if waiting is not None:
        return waiting
    if not already_charging:
        changes.update(_set_backstop(step, changes.get("start_soc_bp")))
        try:
            step.call(CommandKind.START, "", lambda c, t: c.start_charge(t, vid))
        except api_errors.VehicleStateError as exc:
            if exc.code != "CHARGING_IN_PROGRESS":
                return _retry_or_fail(step, exc, **changes)
            already_charging = True
        except (api_errors.TransportError, api_errors.UpstreamError, api_errors.ServerError):
            # The car may have received it: treat as sent, and let STARTING find out.
            logger.info("session %s: START outcome unknown; checking the car", session.pk)
        except api_errors.VehicleApiError as exc:
            return _retry_or_fail(step, exc, **changes)
    # The car's counter may still hold an earlier charge of the same plug-in: measure from what
    # it shows now. A counter that restarts at 0 with our START is a reset metering recognises.
    changes["baseline_energy_wh"] = reading.energy_added_wh
    latency = latency_model(step.vehicle.make, CommandKind.START)
    # Charging shows only in a snapshot the car records after the START took effect: one refresh
    # period after it at the latest (a 450-s car needs longer than a 60-s one).
    refresh = _refresh_s(session)
    first_read = step.now + timedelta(seconds=latency.quantile(0.9) + refresh)
    deadline = step.now + max(STARTING_DEADLINE, timedelta(seconds=latency.quantile(1.0) + 2 * refresh))
    return Outcome(
        to_status=S.STARTING,
        reason="start_sent",
        changes={**changes, "start_sent_at": _sent_at(step, CommandKind.START), "state_deadline_at": deadline},
        next_at=step.now + timedelta(seconds=30) if already_charging else first_read,
    )


def _sent_at(step: _Step, kind: str) -> datetime:
    """When this step's last `kind` command really went out (the calls before it took time), else now."""
    return next((r.sent_at for r in reversed(step.records) if r.kind == kind), step.now)


def _refresh_s(session: ChargingSession) -> float:
    """How often the car's data is refreshed (s), at least a minute (live cars are read no faster)."""
    return max(60.0, float(session.telemetry_refresh_s or 0))


def _next_snapshot_at(step: _Step, reading: metering.Reading) -> datetime:
    """When the car's next snapshot can be fetched: a read before it returns the same data again."""
    due = reading.taken_at + timedelta(seconds=_refresh_s(step.session)) + policy.GRID_MARGIN
    if due <= step.now:
        # Older data than the make's refresh allows: this car refreshes slower (Tesla's Fleet API
        # every ~180 s, not 60). Its next snapshot is about as far ahead as this one is old.
        due = step.now + (step.now - reading.taken_at)
    return due


def _limit_settable(vehicle: Vehicle) -> bool:
    return makes.traits_for(vehicle.make).charge_limit and vehicle.charge_limit_settable is not False


def _set_backstop(step: _Step, soc_bp: int | None) -> dict[str, Any]:
    """Lower the car's charge limit to above the level the purchase can end at, where the make
    takes a limit: if everything else fails, the car stops itself near the purchase, never short
    of it (`policy.backstop_limit_bp`: one level step and a margin above, in the smallest pack)."""
    session, vehicle = step.session, step.vehicle
    if not _limit_settable(vehicle):
        return {}
    if soc_bp is None or not vehicle.capacity_wh:
        return {}
    # Battery health: the car's own limit never sits above the driver's maximum.
    backstop = policy.backstop_limit_bp(
        start_soc_bp=soc_bp,
        purchased_wh=session.purchased_wh,
        capacity_wh=vehicle.capacity_wh,
        usable_low_fraction=makes.USABLE_LOW_FRACTION,
        soc_step_bp=session.soc_step_bp,
        max_soc_bp=vehicle.max_soc_bp,
    )
    vid = vehicle.external_id
    try:
        driver_limit = step.reported_limit_bp or (
            step.call(CommandKind.READ, "charge/limit", lambda c, t: c.charge_limit(t, vid)).limit_bp
        )
        if backstop >= driver_limit:
            return {"driver_limit_bp": driver_limit}
        step.call(CommandKind.SET_LIMIT, f"{backstop}bp", lambda c, t: c.set_charge_limit(t, vid, backstop))
    except api_errors.VehicleApiError as exc:
        # A backstop is a safety net, not a condition of charging.
        logger.info("session %s: no charge-limit backstop (%s)", session.pk, exc)
        return {}
    return {"driver_limit_bp": driver_limit, "backstop_limit_bp": backstop}


def _step_starting(step: _Step) -> Outcome:
    session = step.session
    if session.stop_reason:
        return _send_stop(step, reason=session.stop_reason)
    try:
        reading = _read(step)
    except api_errors.VehicleApiError as exc:
        if step.now >= session.state_deadline_at:
            return _send_stop(step, reason="did_not_start")
        return _retry_or_fail(step, exc, to_status=S.STOPPING)
    if reading.charge_state == ChargeState.CHARGING:
        latency = latency_model(step.vehicle.make, CommandKind.START)
        started, _ = policy.estimate_charging_start(
            start_sent_at=session.start_sent_at, latency=latency, readings=_readings(session)
        )
        outcome = _plan_charging(step, charging_at=started)
        outcome.to_status, outcome.reason = S.CHARGING, "charging"
        deadline = started + _charging_deadline(session)
        plan = _plan_of(session)
        if plan is not None and plan.windows:
            # Pauses stretch the session: its deadline follows the plan's last window.
            deadline = max(deadline, grid.windows_of(plan)[-1].end + MIN_CHARGING_DEADLINE)
        outcome.changes.update(charging_at=started, attempts=0, state_deadline_at=deadline)
        return _follow_plan(step, outcome)
    if reading.is_plugged_in is False:
        return Outcome(to_status=S.FAILED, reason="unplugged")
    if reading.charge_state == ChargeState.FULLY_CHARGED:
        return Outcome(to_status=S.FAILED, reason="already_full")
    if step.now >= session.state_deadline_at:
        # It may still start late: a STOP makes sure it does not, then the hold is released.
        return _send_stop(step, reason="did_not_start")
    latency = latency_model(step.vehicle.make, CommandKind.START)
    conclusive = reading.taken_at >= session.start_sent_at + timedelta(seconds=latency.quantile(0.95))
    if conclusive and session.commands.filter(kind=CommandKind.START).count() < MAX_START_ATTEMPTS:
        # Data recorded after the START should have acted still shows no charging: the START was
        # lost (an answer that never came, an OEM hiccup). Send it again; a car that did take the
        # first one answers CHARGING_IN_PROGRESS, which is harmless.
        vid = step.vehicle.external_id
        try:
            step.call(CommandKind.START, "retry", lambda c, t: c.start_charge(t, vid))
        except api_errors.VehicleApiError as exc:
            logger.info("session %s: START retry failed (%s)", session.pk, exc)
        next_at = step.now + timedelta(seconds=latency.quantile(0.9) + _refresh_s(session))
        changes = {"attempts": session.attempts + 1, "start_sent_at": _sent_at(step, CommandKind.START)}
        return Outcome(changes=changes, next_at=next_at)
    # Not charging yet: look again once the car has a newer snapshot (not on a fixed clock, which
    # for a 450-s car means reading the same data again and again), retrying sooner on no data.
    next_at = max(step.backoff(min(session.attempts, 3)), _next_snapshot_at(step, reading))
    return Outcome(changes={"attempts": session.attempts + 1}, next_at=next_at)


def _charging_deadline(session: ChargingSession) -> timedelta:
    # Twice the time at 1 kW (a very slow charger), at least six hours.
    return max(MIN_CHARGING_DEADLINE, timedelta(hours=2 * session.purchased_wh / 1000))


def _plan_charging(step: _Step, *, charging_at: datetime | None = None) -> Outcome:
    """Estimate delivered energy and ask the policy what to do next."""
    session = step.session
    if charging_at is not None:
        session.charging_at = charging_at
    readings = _readings(session)
    latency = latency_model(step.vehicle.make)
    estimate = _estimate(session, readings)
    state = _policy_state(step, estimate, latency, readings)
    decision = policy.policy_from_spec(session.policy).decide(state)
    changes = _metering_fields(estimate)
    if decision.kind == policy.STOP and decision.at <= step.now:
        # The purchase is the cap; the battery's maximum may cut it shorter (the rest stays credit).
        reason = "battery_max" if grid.target_wh(session) < session.purchased_wh else "threshold"
        # At the moment the STOP goes out: after this step's read answered, not when the step began.
        sent = _send_stop(step, reason=reason, predicted_wh=int(estimate.delivered_at(clock.now())))
        sent.changes = {**changes, **sent.changes}
        return sent
    return Outcome(changes={**changes, "planned_action": decision.kind}, next_at=decision.at)


def _step_charging(step: _Step) -> Outcome:
    session = step.session
    if session.stop_reason:
        return _send_stop(step, reason=session.stop_reason)
    if session.state_deadline_at and step.now >= session.state_deadline_at:
        return _send_stop(step, reason="timeout")
    plan = _plan_of(session)
    if plan is not None and plan.paused:
        return _step_paused(step, plan)
    if session.planned_action == policy.STOP:
        # The policy chose a STOP time earlier; no read is needed to send it.
        return _follow_plan(step, _plan_charging(step))
    try:
        reading = _read(step)
    except api_errors.VehicleApiError:
        outcome = _plan_charging(step)
        if outcome.to_status is None:
            # Each failure in a row waits longer (and at least its Retry-After): a quota or an
            # outage is not helped by asking every 15 s, and every attempt is billed.
            outcome.next_at = max(outcome.next_at or step.now, step.backoff(min(session.attempts, 5)))
            outcome.changes["attempts"] = session.attempts + 1
        return outcome
    if reading.charge_state != ChargeState.CHARGING and _resume_pending(step, plan, reading):
        # Resumed after a pause, the car has not begun again yet: look again (START re-sent once).
        return _resume_wait(step, plan)
    if reading.charge_state != ChargeState.CHARGING:
        # The car stopped without us: unplugged, full, at its limit, or stopped from its app.
        reason = (
            "unplugged_mid"
            if reading.is_plugged_in is False
            else "car_full"
            if reading.charge_state == ChargeState.FULLY_CHARGED
            else "car_stopped"
        )
        outcome = _finish(step, to_status=S.INTERRUPTED, reason=reason)
        return outcome
    level = _current_soc_bp(session, reading)
    if level is not None and level >= step.vehicle.max_soc_bp:
        # Battery health: the level says the maximum is reached, whatever the energy estimate.
        return _send_stop(step, reason="battery_max")
    outcome = _follow_plan(step, _plan_charging(step), charging=True)
    if session.attempts and "attempts" not in outcome.changes and not (plan is not None and plan.resume_sent_at):
        outcome.changes["attempts"] = 0  # a read worked: the next failure backs off from the start again
    return outcome


# --- smart plan: wait, pause, resume ----------------------------------------------------------
#
# A session with a SmartPlan charges only inside its planned windows. Outside them it is paused:
# status stays CHARGING, the plan row carries the pause and its deadline (`resume_at`). The STOP
# at the purchase is decided before the plan is looked at, so it always wins.

PAUSE = "pause"
RESUME = "resume"
# A window that starts within this much of now is started at once (no wait for a minute).
START_SLACK = timedelta(seconds=90)
MAX_PAUSE_ATTEMPTS = 3


def _plan_of(session: ChargingSession) -> SmartPlan | None:
    try:
        return session.smart_plan
    except SmartPlan.DoesNotExist:
        return None


def _soc_now(session: ChargingSession, delivered_wh: int) -> int | None:
    capacity = session.vehicle.capacity_wh
    if session.start_soc_bp is None or not capacity:
        return None
    return min(10_000, session.start_soc_bp + delivered_wh * 10_000 // capacity)


def _first_plan(plan: SmartPlan) -> bool:
    return plan.replans == 0 and plan.cost_millis == 0 and plan.immediate_cost_millis == 0


def _plan_first_window(step: _Step, changes: dict[str, Any], *, already_charging: bool) -> Outcome | None:
    """At the first reading: join grid events (enrolled cars), plan, and wait for the first window.
    Returns the waiting outcome, or None to start now (the plan then goes with the START)."""
    session = step.session
    if grid.grid_attach_events(session=session, now=step.now):
        session.smart_plan = SmartPlan.objects.get(session_id=session.pk)
    plan = _plan_of(session)
    if plan is None:
        return None
    soc = changes.get("start_soc_bp")
    p = grid.plan_session(session, plan, now=step.now, delivered_wh=0, soc_bp=soc, power_w=None, start_soc_bp=soc)
    step.plan_changes.update(grid.plan_fields(p, now=step.now, delivered_wh=0, replan=not _first_plan(plan)))
    first = p.next_window(step.now)
    if already_charging or first is None or first.start <= step.now + START_SLACK:
        return None
    # Waiting is a REQUESTED session with its own deadline: the window's start plus the usual.
    changes = {
        **changes,
        "state_deadline_at": first.start + REQUESTED_DEADLINE,
        "reason": "waiting_window",
        "reason_message": _reason("waiting_window"),
    }
    return Outcome(changes=changes, next_at=first.start)


def _follow_plan(step: _Step, outcome: Outcome, *, charging: bool = False) -> Outcome:
    """After the policy's decision: keep charging inside a window (next step by its end at the
    latest), re-plan on drift, pause outside the windows."""
    session = step.session
    plan = _plan_of(session)
    if plan is None or outcome.to_status not in (None, S.CHARGING):
        return outcome
    now = step.now
    if charging and plan.resume_sent_at:
        step.plan_changes["resume_sent_at"] = None
    delivered = outcome.changes.get("delivered_wh", session.delivered_wh)
    power = outcome.changes.get("power_w") or session.power_w or session.nominal_power_w
    windows = grid.windows_of(plan)
    current = next((w for w in windows if w.contains(now)), None)
    # Drift: the car charges slower than planned, or a late reading left the estimate behind.
    tolerance = max(500, session.purchased_wh // 20)
    behind = charging and plan.planned_power_w and delivered + tolerance < grid.expected_delivered_wh(plan, now)
    if plan.planned_at is None or behind or current is None:
        p = grid.plan_session(
            session, plan, now=now, delivered_wh=delivered, soc_bp=_soc_now(session, delivered), power_w=power
        )
        step.plan_changes.update(grid.plan_fields(p, now=now, delivered_wh=delivered, replan=not _first_plan(plan)))
        windows, current = list(p.windows), p.window_at(now)
        if not windows:
            return outcome  # nothing left to plan: the policy stops at the target
    if current is not None:
        if outcome.next_at is not None:
            outcome.next_at = min(outcome.next_at, current.end)
        return outcome
    following = next((w for w in windows if w.start > now), None)
    resume_at = following.start if following else now + timedelta(hours=1)
    in_event = any(a <= now < b for a, b in grid.blocked_for(session))
    _pause_command(step)
    step.plan_changes.update(
        paused=True,
        pause_reason=SmartPlan.PauseReason.GRID if in_event else SmartPlan.PauseReason.PLAN,
        pause_sent_at=now,
        pause_attempts=1,
        pause_verified_at=None,
        resume_at=resume_at,
        resume_sent_at=None,
        pauses=F("pauses") + 1,
    )
    if in_event:
        step.after.append(functools.partial(grid.participations_pause_sent, session_id=session.pk, now=now))
    code = "paused_grid" if in_event else "paused_plan"
    outcome.changes.update(planned_action="", reason=code, reason_message=_reason(code), attempts=0)
    if outcome.to_status:
        outcome.reason = code  # _commit writes the move's reason over `changes`
    outcome.next_at = _pause_verify_at(step)
    return outcome


def _pause_verify_at(step: _Step) -> datetime:
    latency = latency_model(step.vehicle.make)
    at = step.now + timedelta(seconds=latency.quantile(0.9) + 60)
    return max(at, step.not_before or at)


def _pause_command(step: _Step) -> None:
    """A STOP that pauses (not the purchase's): recorded apart so latency learning ignores it."""
    vid = step.vehicle.external_id
    try:
        step.call(CommandKind.STOP, PAUSE, lambda c, t: c.stop_charge(t, vid))
    except api_errors.VehicleApiError as exc:
        logger.info("session %s: pause STOP failed (%s); the verification read decides", step.session.pk, exc)


def _step_paused(step: _Step, plan: SmartPlan) -> Outcome:
    """A paused session: verify the car stopped (once), then wait for `resume_at` and resume."""
    session, now = step.session, step.now
    if plan.pause_verified_at is None and plan.pause_attempts <= MAX_PAUSE_ATTEMPTS:
        try:
            reading = _read(step)
        except api_errors.VehicleApiError:
            if now < plan.resume_at:
                at = min(plan.resume_at, step.backoff(min(session.attempts, 4)))
                return Outcome(changes={"attempts": session.attempts + 1}, next_at=at)
        else:
            if reading.is_plugged_in is False:
                return _finish(step, to_status=S.INTERRUPTED, reason="unplugged_mid")
            stopped = reading.charge_state != ChargeState.CHARGING
            step.after.append(
                functools.partial(grid.participations_verify, session_id=session.pk, now=now, stopped=stopped)
            )
            if stopped:
                step.plan_changes["pause_verified_at"] = now
            elif plan.pause_attempts < MAX_PAUSE_ATTEMPTS:
                _pause_command(step)
                step.plan_changes["pause_attempts"] = plan.pause_attempts + 1
                return Outcome(next_at=_pause_verify_at(step))
            else:
                # The car ignores the pause: charge on under the stop policy (the purchase stays
                # the cap), following no plan from here.
                logger.warning("session %s: car ignores the pause STOP; charging on", session.pk)
                until = now + grid.HORIZON
                step.plan_changes.update(
                    paused=False,
                    resume_at=None,
                    windows=[smart.Window(now, until, 0, 0).as_dict()],
                    planned_at=now,
                    planned_power_w=0,
                )
                return Outcome(changes={"reason": "charging", "reason_message": _reason("charging")}, next_at=now)
    if now < plan.resume_at:
        return Outcome(next_at=plan.resume_at)
    # Resume time: re-plan what is left from here (a grid event may have moved the windows).
    delivered = session.delivered_wh
    power = session.power_w or session.nominal_power_w
    p = grid.plan_session(
        session, plan, now=now, delivered_wh=delivered, soc_bp=_soc_now(session, delivered), power_w=power
    )
    step.plan_changes.update(grid.plan_fields(p, now=now, delivered_wh=delivered, replan=True))
    following = p.next_window(now)
    if following is None:
        # Nothing left to charge: end through the usual STOP and its verification.
        step.plan_changes.update(paused=False, resume_at=None)
        return _send_stop(step, reason="battery_max" if grid.target_wh(session) < session.purchased_wh else "threshold")
    if following.start > now + START_SLACK:
        step.plan_changes["resume_at"] = following.start
        return Outcome(next_at=following.start)
    vid = step.vehicle.external_id
    try:
        step.call(CommandKind.START, RESUME, lambda c, t: c.start_charge(t, vid))
    except api_errors.VehicleStateError as exc:
        if exc.code == "CHARGING_PLUG_NOT_CONNECTED":
            return _finish(step, to_status=S.INTERRUPTED, reason="unplugged_mid")
        if exc.code != "CHARGING_IN_PROGRESS":
            step.plan_changes["resume_at"] = step.backoff(min(session.attempts, 4))
            return Outcome(changes={"attempts": session.attempts + 1}, next_at=step.plan_changes["resume_at"])
    except (api_errors.TransportError, api_errors.UpstreamError, api_errors.ServerError):
        logger.info("session %s: resume START outcome unknown; the next read tells", session.pk)
    except api_errors.VehicleApiError:
        step.plan_changes["resume_at"] = step.backoff(min(session.attempts, 4))
        return Outcome(changes={"attempts": session.attempts + 1}, next_at=step.plan_changes["resume_at"])
    step.after.append(
        functools.partial(
            grid.participations_settle,
            session_id=session.pk,
            now=now,
            power_w=power,
            paused_since=plan.pause_verified_at,
        )
    )
    step.plan_changes.update(
        paused=False, pause_reason="", resume_at=None, resume_sent_at=now, pause_attempts=0, pause_verified_at=None
    )
    latency = latency_model(step.vehicle.make)
    return Outcome(
        changes={"reason": "charging", "reason_message": _reason("charging"), "attempts": 0, "planned_action": ""},
        next_at=now + timedelta(seconds=latency.quantile(0.9) + 60),
    )


def _resume_pending(step: _Step, plan: SmartPlan | None, reading: metering.Reading) -> bool:
    return bool(
        plan is not None
        and plan.resume_sent_at
        and reading.is_plugged_in is not False
        and reading.charge_state != ChargeState.FULLY_CHARGED
        and step.now < plan.resume_sent_at + STARTING_DEADLINE
    )


def _resume_wait(step: _Step, plan: SmartPlan) -> Outcome:
    session = step.session
    attempts = session.attempts + 1
    if attempts == 3:
        # Two looks and still not charging: the resume START may have been lost; send it again.
        vid = step.vehicle.external_id
        try:
            step.call(CommandKind.START, RESUME, lambda c, t: c.start_charge(t, vid))
        except api_errors.VehicleApiError as exc:
            logger.info("session %s: second resume START failed (%s)", session.pk, exc)
    return Outcome(changes={"attempts": attempts}, next_at=step.backoff(min(attempts, 3)))


def _send_stop(step: _Step, *, reason: str, predicted_wh: int | None = None) -> Outcome:
    """Send STOP and move to STOPPING; the STOPPING step verifies and retries."""
    session = step.session
    changes: dict[str, Any] = {
        "stop_reason": session.stop_reason or reason,
        "stop_requested_at": session.stop_requested_at or step.now,
        "state_deadline_at": step.now + STOPPING_DEADLINE,
        "planned_action": "",
        "attempts": 0,
    }
    if predicted_wh is not None:
        changes["predicted_wh_at_stop"] = predicted_wh
    sent = _stop_command(step)
    changes.update(sent)
    latency = latency_model(step.vehicle.make)
    verify = step.now + _first_verification(step, latency)
    if "stop_first_sent_at" not in changes and session.stop_first_sent_at is None:
        # The STOP was not accepted (an error answer): every second of waiting is energy past the
        # purchase, so the next attempt comes soon rather than after a verification delay.
        verify = step.now + timedelta(seconds=STOP_RESEND_S)
    return Outcome(to_status=S.STOPPING, reason=reason, changes=changes, next_at=max(verify, step.not_before or verify))


def _stop_command(step: _Step) -> dict[str, Any]:
    """One STOP attempt; returns the session fields it changes. Errors are recorded, not raised:
    the verification read decides what happens next."""
    session = step.session
    vid = step.vehicle.external_id
    changes: dict[str, Any] = {"stop_attempts": session.stop_attempts + 1}
    try:
        step.call(CommandKind.STOP, f"attempt {session.stop_attempts + 1}", lambda c, t: c.stop_charge(t, vid))
        if session.stop_first_sent_at is None:
            changes["stop_first_sent_at"] = _sent_at(step, CommandKind.STOP)
    except api_errors.VehicleApiError as exc:
        logger.info("session %s: STOP attempt failed (%s)", session.pk, exc)
    return changes


# A STOP refused with these says the car is not charging: nothing to send again, read it instead.
NOTHING_TO_STOP = ("NOT_CHARGING", "CHARGING_PLUG_NOT_CONNECTED")


def _first_verification(step: _Step, latency: policy.LatencyModel) -> timedelta:
    """The first look after a STOP: once it has acted (90th percentile) and a snapshot shows it."""
    return policy.stop_verification_schedule(0, step.rng, latency=latency, telemetry_age_s=_refresh_s(step.session))


def _last_stop_sent_at(session: ChargingSession) -> datetime | None:
    last = session.commands.filter(kind=CommandKind.STOP, ok=True).exclude(detail=PAUSE).order_by("-id").first()
    return last.sent_at if last else session.stop_first_sent_at


def _stop_found_nothing(session: ChargingSession) -> bool:
    last = session.commands.filter(kind=CommandKind.STOP).exclude(detail=PAUSE).order_by("-id").first()
    return last is not None and not last.ok and last.error_code in NOTHING_TO_STOP


def _step_stopping(step: _Step) -> Outcome:
    session = step.session
    if session.stop_first_sent_at is None and session.stop_attempts < 3 and not _stop_found_nothing(session):
        changes = _stop_command(step)
        accepted = "stop_first_sent_at" in changes
        latency = latency_model(step.vehicle.make)
        delay = _first_verification(step, latency) if accepted else timedelta(seconds=STOP_RESEND_S)
        next_at = step.now + delay
        return Outcome(changes=changes, next_at=max(next_at, step.not_before or next_at))
    try:
        reading = _read(step)
    except api_errors.VehicleApiError:
        if step.now >= session.state_deadline_at:
            return _finish(step, to_status=S.COMPLETED, reason="stop_not_verified", flag=True)
        return Outcome(changes={"attempts": session.attempts + 1}, next_at=step.backoff(min(session.attempts, 5)))
    if reading.charge_state != ChargeState.CHARGING:
        ended = S.INTERRUPTED if session.stop_reason in ("driver_stop", "operator_stop") else S.COMPLETED
        if reading.is_plugged_in is False and session.stop_first_sent_at is None and session.charging_at:
            # The STOP found the car unplugged (no read between the last one and the STOP saw it):
            # it ended there, short of the purchase, not at it.
            return _finish(step, to_status=S.INTERRUPTED, reason="unplugged_mid")
        if not session.start_sent_at or session.charging_at is None:
            # Never charged (a START that never took): nothing delivered, release everything.
            return Outcome(to_status=S.INTERRUPTED, reason=session.stop_reason or "did_not_start", settle=True)
        done = "battery_max" if session.stop_reason == "battery_max" else "completed"
        return _finish(step, to_status=ended, reason=done if ended == S.COMPLETED else session.stop_reason)
    if step.now >= session.state_deadline_at:
        return _finish(step, to_status=S.COMPLETED, reason="stop_not_verified", flag=True)
    vehicle = step.vehicle
    latency = latency_model(vehicle.make)
    sent_at = _last_stop_sent_at(session)
    if sent_at and reading.taken_at < sent_at + timedelta(seconds=latency.quantile(0.99)):
        # Data recorded before the STOP could have acted says nothing about it (a 450-s car's
        # snapshot often is): look again once a newer snapshot exists, without counting a failure.
        return Outcome(next_at=max(_next_snapshot_at(step, reading), step.now + timedelta(seconds=STOP_RESEND_S)))
    # Still charging after STOP: retry, then lower the car's limit, then call the operator.
    failed = session.attempts + 1
    action = policy.escalation(
        failed,
        supports_charge_limit=makes.traits_for(vehicle.make).charge_limit
        and vehicle.charge_limit_settable is not False,
        current_soc_bp=_current_soc_bp(session, reading),
        limit_already_lowered=session.stop_escalated,
    )
    changes: dict[str, Any] = {"attempts": failed}
    if action.kind == policy.RETRY_STOP:
        changes.update(_stop_command(step))
    elif action.kind == policy.LOWER_CHARGE_LIMIT:
        vid = vehicle.external_id
        try:
            step.call(CommandKind.SET_LIMIT, "escalation", lambda c, t: c.set_charge_limit(t, vid, action.limit_bp))
        except api_errors.VehicleApiError as exc:
            logger.warning("session %s: escalation limit refused (%s)", session.pk, exc)
        changes["stop_escalated"] = True
    else:
        if not session.stop_not_carried_out:
            logger.error("session %s: car ignores STOP; flagged for the operator", session.pk)
        changes["stop_not_carried_out"] = True
    # Give each new attempt the time a STOP takes to act and to show in the car's data.
    settle_s = latency.quantile(0.9) + max(_telemetry_age_s(session), _refresh_s(session))
    next_at = step.now + max(policy.stop_verification_schedule(failed, step.rng), timedelta(seconds=settle_s))
    return Outcome(changes=changes, next_at=max(next_at, step.not_before or next_at))


def _telemetry_age_s(session: ChargingSession) -> float:
    # The session's first 20 readings (in id order), from the copy on the row as a step has it.
    ages = sorted((r.fetched_at - r.taken_at).total_seconds() for r in _reading_rows(session)[:20])
    return ages[len(ages) // 2] if ages else 60.0


def _current_soc_bp(session: ChargingSession, reading: metering.Reading) -> int | None:
    """The car's level now: as read, or (cars that report energy, not level) start + delivered."""
    if reading.soc_bp is not None:
        return reading.soc_bp
    capacity = session.vehicle.capacity_wh
    if session.start_soc_bp is None or not capacity or reading.energy_added_wh is None:
        return None
    delivered = reading.energy_added_wh - (session.baseline_energy_wh or 0)
    return min(10_000, session.start_soc_bp + delivered * 10_000 // capacity)


def _learn_latencies(session: ChargingSession, estimate, readings: list[metering.Reading], *, flag: bool) -> None:
    """What this session tells about its make's START and STOP latencies, kept on the commands.

    A STOP timed by an energy counter gives an exact latency (`infer_stop_latency_s`); otherwise,
    for every car, the snapshots on either side of the charge-state flip bound it
    (`policy.flip_interval`). Only a STOP that worked the first time counts (an ignored one says
    nothing about how long a STOP takes), and only a session with a single START.
    """
    commands = list(
        session.commands.filter(kind__in=(CommandKind.START, CommandKind.STOP), ok=True)
        .exclude(detail__in=(PAUSE, RESUME))
        .order_by("id")
    )
    starts = [c for c in commands if c.kind == CommandKind.START]
    stops = [c for c in commands if c.kind == CommandKind.STOP]
    learned: dict[int, tuple[float, float | None]] = {}
    if len(starts) == 1 and session.charging_at is not None:
        interval = policy.flip_interval(readings, starts[0].sent_at, to_charging=True)
        if interval is not None:
            learned[starts[0].pk] = interval
    if stops and session.stop_attempts == 1 and not session.stop_escalated and not flag:
        # An estimate too coarse to time the STOP (a level step is minutes of charging) says less
        # than the charge-state flip; an energy counter's says more.
        precise = estimate.delivered_high_wh - estimate.delivered_low_wh <= LEARN_MAX_SPREAD_S * estimate.power_w / 1800
        exact = None
        if precise and session.stop_first_sent_at and session.predicted_wh_at_stop is not None:
            exact = policy.infer_stop_latency_s(
                stop_sent_at=session.stop_first_sent_at,
                predicted_wh_at_send=session.predicted_wh_at_stop,
                final_delivered_wh=estimate.delivered_wh,
                power_w=estimate.power_w,
            )
        if exact is not None:
            learned[stops[0].pk] = (exact, None)
        else:
            interval = policy.flip_interval(readings, stops[0].sent_at, to_charging=False)
            if interval is not None:
                learned[stops[0].pk] = interval
    for pk, (lo, hi) in learned.items():
        VehicleCommand.objects.filter(pk=pk).update(
            effect_latency_ms=int(lo * 1000), effect_latency_max_ms=None if hi is None else int(hi * 1000)
        )


def _finish(step: _Step, *, to_status: str, reason: str, flag: bool = False, talk_to_car: bool = True) -> Outcome:
    """Final estimate, latency learning, the driver's limit restored, settlement."""
    session = step.session
    readings = _readings(session)
    estimate = _estimate(session, readings)
    changes = _metering_fields(estimate)
    changes["end_soc_bp"] = next((r.soc_bp for r in reversed(readings) if r.soc_bp is not None), None)
    if flag:
        changes["stop_not_carried_out"] = True
    _learn_latencies(session, estimate, readings, flag=flag)
    restore = session.backstop_limit_bp or session.stop_escalated
    if talk_to_car and restore and session.driver_limit_bp and not session.limit_restored:
        vid, limit = step.vehicle.external_id, session.driver_limit_bp
        # The driver's own limit matters after we are gone: a passing OEM failure gets two more tries.
        for attempt in range(1, RESTORE_ATTEMPTS + 1):
            try:
                step.call(CommandKind.SET_LIMIT, "restore", lambda c, t: c.set_charge_limit(t, vid, limit))
                changes["limit_restored"] = True
                break
            except ConsentRequired as exc:
                logger.warning("session %s: driver's charge limit not restored (%s)", session.pk, exc)
                break
            except api_errors.VehicleApiError as exc:
                if not exc.retryable or attempt == RESTORE_ATTEMPTS:
                    logger.warning("session %s: driver's charge limit not restored (%s)", session.pk, exc)
                    break
    return Outcome(to_status=to_status, reason=reason, changes=changes, settle=True)


def _consent_lost(step: _Step) -> Outcome:
    """The driver withdrew access: nothing more can be sent or read. Settle what the readings
    show (never above the purchase); a car we could not stop is flagged for the operator."""
    session = step.session
    if session.status == S.REQUESTED or (session.status == S.STARTING and session.charging_at is None):
        # Nothing was delivered that we know of; a START that took effect is the operator's to see.
        outcome = Outcome(to_status=S.FAILED, reason="consent")
        if session.status == S.STARTING:
            outcome.changes["stop_not_carried_out"] = True
        return outcome
    to_status = S.COMPLETED if session.status == S.STOPPING and session.stop_reason == "threshold" else S.INTERRUPTED
    outcome = _finish(step, to_status=to_status, reason="consent", talk_to_car=False)
    outcome.changes["stop_not_carried_out"] = session.status == S.CHARGING or session.stop_first_sent_at is None
    return outcome


def session_close_stuck(*, session_id: int, reason: str = "operator_close") -> bool:
    """Operator action: end a session stuck in an open state, settling what its readings show
    (never above the purchase) without talking to the car. Returns False if it was not open."""
    session = ChargingSession.objects.select_related("vehicle").get(pk=session_id)
    if session.status in TERMINAL_STATUSES:
        return False
    # Take the lease away from any step in flight: its commit will find the token changed.
    token = uuid.uuid4()
    if not ChargingSession.objects.filter(pk=session_id, version=session.version).update(lease_token=token):
        return False
    session.lease_token = token
    step = _Step(session)
    if session.charging_at is None and session.status in (S.REQUESTED, S.STARTING):
        outcome = Outcome(to_status=S.FAILED, reason=reason)
    else:
        ended = S.COMPLETED if session.status == S.STOPPING else S.INTERRUPTED
        outcome = _finish(step, to_status=ended, reason=reason, talk_to_car=False)
    return _commit(step, outcome, token)


__all__ = [
    "SessionError",
    "WalletError",
    "session_close_stuck",
    "session_request",
    "session_request_stop",
    "session_step",
]
