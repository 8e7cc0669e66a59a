"""STARTING: confirm from the car's data that it charges; send START again if it does not."""

from __future__ import annotations

import logging
from datetime import timedelta

from sessions.controller import policy
from sessions.controller.charging import _charging_deadline, _plan_charging
from sessions.controller.finish import _retry_or_fail
from sessions.controller.paused import _follow_plan
from sessions.controller.readings import _next_snapshot_at, _read, _readings, _refresh_s, latency_model
from sessions.controller.step import MIN_CHARGING_DEADLINE, Outcome, S, _plan_of, _sent_at, _Step
from sessions.controller.stopping import _send_stop
from sessions.grid import services as grid
from sessions.models.charging import CommandKind
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import ChargeState
from sessions.vehicles import command_budget

logger = logging.getLogger(__name__)


# A START whose effect never shows is sent again, up to this many STARTs in all.
MAX_START_ATTEMPTS = 3


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
        if outcome.to_status == S.STOPPING:
            # The purchase is reached already (a small one, a slow first snapshot): the STOP went
            # out in this step, so the session is stopping, not charging (a CHARGING session would
            # send it again, a command more against the car's budget).
            outcome.changes["charging_at"] = started
            return outcome
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
    if (
        conclusive
        and session.commands.filter(kind=CommandKind.START).count() < MAX_START_ATTEMPTS
        and command_budget.leaves_room(
            make=step.vehicle.make, car_id=session.car_id, now=step.now, need=command_budget.START_THEN_STOP
        )
    ):
        # Data recorded after the START should have acted still shows no charging: the START was
        # lost (an answer that never came, an OEM hiccup). Send it again; a car that did take the
        # first one answers CHARGING_IN_PROGRESS, which is harmless. Only while the car's command
        # budget still holds the STOP after it (sessions/vehicles/command_budget.py).
        vid = step.vehicle.external_id
        try:
            step.call(CommandKind.START, "retry", lambda c, u: c.start_charge(u, vid))
        except api_errors.VehicleApiError as exc:
            logger.info("session %s: START retry failed (%s)", session.pk, exc)
        next_at = step.now + timedelta(seconds=latency.quantile(0.9) + _refresh_s(session))
        changes = {"attempts": session.attempts + 1, "start_sent_at": _sent_at(step, CommandKind.START)}
        return Outcome(changes=changes, next_at=next_at)
    # Not charging yet: look again once the car has a newer snapshot (not on a fixed clock, which
    # for a 450-s car means reading the same data again and again), retrying sooner on no data.
    next_at = max(step.backoff(min(session.attempts, 3)), _next_snapshot_at(step, reading))
    return Outcome(changes={"attempts": session.attempts + 1}, next_at=next_at)
