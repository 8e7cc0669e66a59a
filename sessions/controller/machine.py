"""The step state machine: load a leased session, run the handler of its state, commit.

Every write and state transition of an open session goes through here. The shape of one step:
  1. load the session (the controller loop leased it to us: `lease_token`);
  2. talk to the vehicle API with NO transaction open (calls take 3–45 s, up to 300 s);
  3. record the result in one short transaction that moves the session by compare-and-set on
     (lease token, version); a step that lost its lease (it ran too long and another worker took
     over) writes nothing and exits quietly.
Readings and command records are facts and are stored as soon as they are known, whatever the
step decides afterwards. Lock order, where several rows are locked: wallet, then session.
One module per state: requested, starting, charging (with the smart plan's pauses in paused),
stopping; finish ends a session from any of them.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from django.db import connection, transaction
from django.db.models import Case, Count, DateTimeField, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.sql import UpdateQuery

from monitoring.logs import log_context, log_context_add
from prepaid import services as wallet_services
from sessions import clock, notices
from sessions.controller import limits, policy, telemetry
from sessions.controller.charging import _step_charging
from sessions.controller.finish import _consent_lost
from sessions.controller.requested import _step_requested
from sessions.controller.starting import _step_starting
from sessions.controller.step import POKED_STATUSES, Outcome, S, _plan_of, _reason, _Step
from sessions.controller.stopping import _step_stopping
from sessions.controller.webhook_readings import WAIT_FOR_WEBHOOK, ReadDeferred
from sessions.grid import services as grid
from sessions.models.charging import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    ChargingSession,
    MeterReading,
    SessionTransition,
    VehicleCommand,
)
from sessions.models.grid import SmartPlan
from sessions.vehicles.services import ConsentRequired

logger = logging.getLogger(__name__)


def _session_for_step(session_id: int) -> ChargingSession | None:
    """The session with everything a step reads, in one query: the vehicle and its connection
    (token), the smart plan, how many readings the table holds (to trust the row's copy of them),
    the vehicle's demand-response enrollment and, while the driver's limit is unknown, the car's
    previous session (whose limit may still be on the car)."""
    stored = (
        MeterReading.objects.filter(session_id=OuterRef("pk"))
        .order_by()
        .values("session_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return (
        ChargingSession.objects.select_related("vehicle", "vehicle__connection", "smart_plan")
        .annotate(
            readings_stored=Coalesce(Subquery(stored), 0),
            dr_region=grid.enrollment_region(),
            previous_on_car=limits.previous_on_car_annotation(),
        )
        .filter(pk=session_id)
        .first()
    )


def session_step(*, session_id: int, lease_token: uuid.UUID) -> telemetry.StepRecord:
    """Advance one session by one step. Safe to run twice: a stale lease writes nothing.
    Returns what the step did (its state, due time, the state it committed)."""
    with log_context(session_id=session_id), telemetry.step_measured() as measured:
        _session_step(session_id, lease_token, measured)
    return measured


def _session_step(session_id: int, lease_token: uuid.UUID, measured: telemetry.StepRecord) -> None:
    session = _session_for_step(session_id)
    if session is None or session.lease_token != lease_token or session.status in TERMINAL_STATUSES:
        return
    log_context_add(vehicle_id=session.vehicle_id)
    measured.state, measured.due = session.status, session.next_action_at
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
        except ReadDeferred as wait:
            # The read waits for the car's next webhook reading: nothing was called or decided;
            # look again at `until` (the delivery pulls the step forward) and poll then.
            outcome = Outcome(changes={"planned_action": WAIT_FOR_WEBHOOK}, next_at=wait.until)
        if outcome.to_status in TERMINAL_STATUSES:
            # However the session ends: the driver's own limit goes back where the product changed it.
            limits.restore_at_end(step, outcome)
    finally:
        # Every call made is recorded, even by a step that crashed before deciding anything.
        VehicleCommand.objects.bulk_create(step.records)
        telemetry.calls_made(step.records)
    committed = _commit(step, outcome, lease_token)
    measured.outcome = ("moved" if outcome.to_status else "stayed") if committed else "lost_lease"
    if committed:
        measured.to_state = outcome.to_status or session.status


def _commit(step: _Step, outcome: Outcome, lease_token: uuid.UUID) -> bool:
    session = step.session
    changes = dict(outcome.changes)
    changes["api_calls"] = F("api_calls") + step.calls
    if step.billed_reads:
        changes["billed_reads"] = F("billed_reads") + step.billed_reads
    if step.webhook_used_at is not None:
        changes["webhook_used_at"] = step.webhook_used_at
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
            if limits.owes_restore(session, changes) and "limit_restore_due_at" not in changes:
                # Ended without talking to the car (closed by the operator): the sweep puts it back.
                changes["limit_restore_due_at"] = step.now
    plan = _plan_of(session)
    outcome.plan_changes = {**step.plan_changes, **outcome.plan_changes}
    outcome.after = step.after + outcome.after
    # A step that stays in its state and touches nothing else writes one row: its UPDATE is
    # atomic by itself, and a transaction around it would cost two more round trips (BEGIN,
    # COMMIT) on the worker's connection for most steps of a charging session.
    alone = not (outcome.to_status or outcome.settle or outcome.after or (plan is not None and outcome.plan_changes))
    with contextlib.nullcontext() if alone else transaction.atomic():
        if outcome.settle or outcome.to_status == S.FAILED:
            _close_hold(session, changes, failed=outcome.to_status == S.FAILED)
        claimed = ChargingSession.objects.filter(
            pk=session.pk, lease_token=lease_token, version=session.version, status=session.status
        )
        update = {**changes, "version": F("version") + 1, "lease_token": None, "lease_until": None}
        logged = False
        if outcome.to_status and connection.vendor == "postgresql":
            # The move and its log line in one statement: one round trip less for every step
            # that moves (a data-modifying WITH; SQLite has none, so there it stays two).
            updated = _update_logging_move(claimed, update, session.status, outcome, step.now)
            logged = True
        else:
            updated = claimed.update(**update)
        if not updated:
            # Someone else moved the session (our lease ran out): roll back our settlement too.
            if not alone:
                transaction.set_rollback(True)
            logger.warning("session %s: step lost its lease; result discarded", session.pk)
            return False
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
            if not logged:
                SessionTransition.objects.create(
                    session=session,
                    from_status=session.status,
                    to_status=outcome.to_status,
                    reason=outcome.reason,
                    at=step.now,
                )
            notices.session_moved(session, to_status=outcome.to_status, reason=outcome.reason)
    if "overshoot_wh" in changes:
        telemetry.settled(make=session.vehicle.make, overshoot_wh=changes["overshoot_wh"])
    return True


def _update_logging_move(claimed, update: dict, from_status: str, outcome: Outcome, at) -> int:
    """`claimed.update(**update)` that also writes the session's transition row if (and only if)
    the compare-and-set matched, in one PostgreSQL statement; returns the rows updated (0 or 1)."""
    query = claimed.query.chain(UpdateQuery)
    query.add_update_values(update)
    compiler = query.get_compiler(using=claimed.db)
    compiler.pre_sql_setup()
    update_sql, update_params = compiler.as_sql()
    session_table = connection.ops.quote_name(ChargingSession._meta.db_table)
    log_table = connection.ops.quote_name(SessionTransition._meta.db_table)
    # The ORM's own SQL and quoted table names; every value is a parameter.
    sql = (
        f"WITH moved AS ({update_sql} RETURNING {session_table}.id) "  # noqa: S608
        f"INSERT INTO {log_table} (session_id, from_status, to_status, reason, at) "
        "SELECT id, %s::varchar, %s::varchar, %s::varchar, %s::timestamptz FROM moved"
    )
    params = (*update_params, str(from_status), str(outcome.to_status), outcome.reason or "", at)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


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
