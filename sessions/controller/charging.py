"""CHARGING: read the car when the stop policy says, follow the smart plan, send the STOP
before the purchase is reached."""

from __future__ import annotations

from datetime import datetime, timedelta

from sessions import clock
from sessions.controller import policy
from sessions.controller.finish import _finish
from sessions.controller.paused import _follow_plan, _resume_pending, _resume_wait, _step_paused
from sessions.controller.readings import (
    _current_soc_bp,
    _estimate,
    _metering_fields,
    _policy_state,
    _read,
    _readings,
    latency_model,
)
from sessions.controller.step import MIN_CHARGING_DEADLINE, Outcome, S, _plan_of, _Step
from sessions.controller.stopping import _send_stop
from sessions.grid import services as grid
from sessions.models.charging import ChargingSession
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import ChargeState


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
