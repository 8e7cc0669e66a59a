"""The smart plan: wait for the first window, pause outside the windows and for grid events
(a STOP verified by a reading), resume inside them."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F

from sessions.controller import metering
from sessions.controller.finish import _finish
from sessions.controller.readings import _read, latency_model
from sessions.controller.step import (
    PAUSE,
    REQUESTED_DEADLINE,
    RESUME,
    STARTING_DEADLINE,
    Outcome,
    S,
    _plan_of,
    _reason,
    _Step,
)
from sessions.controller.stopping import _send_stop
from sessions.grid import services as grid
from sessions.grid import smart
from sessions.models.charging import ChargingSession, CommandKind
from sessions.models.grid import SmartPlan
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import ChargeState
from sessions.vehicles import command_budget

logger = logging.getLogger(__name__)


# A window that starts within this much of now is started at once (no wait for a minute).
START_SLACK = timedelta(seconds=90)
MAX_PAUSE_ATTEMPTS = 3


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
    if not command_budget.leaves_room(
        make=step.vehicle.make, car_id=session.car_id, now=now, need=command_budget.PAUSE_RESUME_THEN_STOP
    ):
        # A pause and its resume would spend commands the car's maker counts (VW in a row, daily
        # quotas) and leave no room for the STOP: charge on instead.
        logger.info("session %s: no pause, the car's command budget keeps room for the STOP", session.pk)
        return outcome
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
        step.call(CommandKind.STOP, PAUSE, lambda c, u: c.stop_charge(u, vid))
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
        step.call(CommandKind.START, RESUME, lambda c, u: c.start_charge(u, vid))
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
            step.call(CommandKind.START, RESUME, lambda c, u: c.start_charge(u, vid))
        except api_errors.VehicleApiError as exc:
            logger.info("session %s: second resume START failed (%s)", session.pk, exc)
    return Outcome(changes={"attempts": attempts}, next_at=step.backoff(min(attempts, 3)))
