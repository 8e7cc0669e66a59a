"""STOPPING: send the STOP, verify the car stopped, and escalate when it did not (STOP again,
lower the charge limit, flag the session for the operator)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sessions import notices
from sessions.controller import limits, policy
from sessions.controller.finish import _finish
from sessions.controller.readings import (
    _current_soc_bp,
    _next_snapshot_at,
    _read,
    _readings,
    _refresh_s,
    _telemetry_age_s,
    latency_model,
)
from sessions.controller.step import (
    PAUSE,
    STOPPING_DEADLINE,
    Outcome,
    S,
    _limit_refused,
    _limit_settable,
    _reason,
    _sent_at,
    _Step,
    limit_percent,
)
from sessions.models.charging import ChargingSession, CommandKind
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import ChargeState
from sessions.vehicles import command_budget

logger = logging.getLogger(__name__)


# A STOP answered with an error is sent again after this many seconds (or its Retry-After).
STOP_RESEND_S = 10
# While stopping, failed calls back off 15 s doubling up to 2**3 × 15 s (60–120 s with jitter).
STOP_BACKOFF_MAX_EXPONENT = 3


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
    if sent.get("reason") == "stop_refused":
        reason = "stop_refused"  # what the driver reads now; stop_reason keeps why we stopped
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
        step.call(CommandKind.STOP, f"attempt {session.stop_attempts + 1}", lambda c, u: c.stop_charge(u, vid))
        if session.stop_first_sent_at is None:
            changes["stop_first_sent_at"] = _sent_at(step, CommandKind.STOP)
    except api_errors.VehicleApiError as exc:
        logger.info("session %s: STOP attempt failed (%s)", session.pk, exc)
        if command_budget.refused_for_budget(exc):
            changes.update(_stop_refused(step, exc))
    return changes


def _stop_refused(step: _Step, exc: api_errors.VehicleApiError) -> dict[str, Any]:
    """The car's maker refused the STOP for a throttle or a quota (VW until the car is driven, a
    daily or monthly quota): trying again soon will not help. At once: the driver is told to stop
    the charge at the car or unplug (live page, email), the operators are alerted, and the car's
    charge limit, the other actuator, is lowered to its level. The STOP is still tried again at
    every check (stopping.py) for as long as the session is open."""
    session = step.session
    changes: dict[str, Any] = {
        "reason": "stop_refused",
        "reason_message": _reason("stop_refused"),
        "stop_not_carried_out": True,
    }
    vehicle = step.vehicle
    if _limit_settable(vehicle) and not session.stop_escalated:
        readings = _readings(session)
        level = _current_soc_bp(session, readings[-1]) if readings else None
        # Its level now, rounded up to a whole percent (the car stops there), at least the API's 50 %.
        limit = policy.MIN_CHARGE_LIMIT_BP if level is None else max(policy.MIN_CHARGE_LIMIT_BP, -(-level // 100) * 100)
        changes.update(_lower_limit(step, min(limit, 10_000)))
        changes["stop_escalated"] = True
    if session.reason != "stop_refused":
        logger.error("session %s: the car refused the STOP (%s); driver and operators told", session.pk, exc)
        error = f"{exc.type or type(exc).__name__}:{exc.code or ''}"
        step.after.append(lambda: notices.stop_refused(session, error=error))
    return changes


def _lower_limit(step: _Step, limit_bp: int) -> dict[str, Any]:
    """The other actuator: the car's charge limit, lowered to `limit_bp`. The driver's own limit
    is learnt first (when this session does not know it yet) so that it can be put back."""
    session, vid = step.session, step.vehicle.external_id
    changes: dict[str, Any] = {}
    try:
        changes.update(limits.driver_limit(step)[1])
    except api_errors.VehicleApiError as exc:
        # Stopping the car matters more than the limit it goes back to.
        logger.warning("session %s: driver's limit unknown before lowering it (%s)", session.pk, exc)
    percent = limit_percent(limit_bp)  # v3 takes whole percents
    try:
        step.call(CommandKind.SET_LIMIT, "escalation", lambda c, u: c.set_charge_limit(u, vid, percent))
        changes["escalation_limit_bp"] = percent * 100
    except api_errors.VehicleApiError as exc:
        logger.warning("session %s: escalation limit refused (%s)", session.pk, exc)
        _limit_refused(step.vehicle, exc)
        if not exc.retryable:
            return changes
        changes["escalation_limit_bp"] = percent * 100  # it may have reached the car all the same
    changes["limit_to_restore"] = True
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
        # Backing off, but never by more than two minutes: once the API answers again, a car still
        # charging past the purchase gets its STOP at the next check.
        next_at = step.backoff(min(session.attempts, STOP_BACKOFF_MAX_EXPONENT))
        return Outcome(changes={"attempts": session.attempts + 1}, next_at=next_at)
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
    # Still charging after STOP (or no STOP ever got through): send it again, now and at every
    # check that finds the car charging, for as long as the session is open. From the third
    # such check the car's limit is lowered as well, then the operator is flagged: each adds to
    # the STOP, none replaces it (a short outage must not end the trying).
    failed = session.attempts + 1
    action = policy.escalation(
        failed,
        supports_charge_limit=_limit_settable(vehicle),
        current_soc_bp=_current_soc_bp(session, reading),
        limit_already_lowered=session.stop_escalated,
    )
    changes: dict[str, Any] = {"attempts": failed}
    changes.update(_stop_command(step))
    resent = step.records[-1].ok if step.records and step.records[-1].kind == CommandKind.STOP else False
    if action.kind == policy.LOWER_CHARGE_LIMIT:
        changes.update(_lower_limit(step, action.limit_bp))
        changes["stop_escalated"] = True
    elif action.kind == policy.FLAG_OPERATOR:
        if not session.stop_not_carried_out:
            logger.error("session %s: car ignores STOP; flagged for the operator", session.pk)
        changes["stop_not_carried_out"] = True
    if not resent:
        # The STOP did not get through (an outage, a throttle): try again soon, backing off, as
        # every second the car charges on is energy past the purchase.
        next_at = step.backoff(min(failed - 1, STOP_BACKOFF_MAX_EXPONENT))
        return Outcome(changes=changes, next_at=next_at)
    # Give each new attempt the time a STOP takes to act and to show in the car's data.
    settle_s = latency.quantile(0.9) + max(_telemetry_age_s(session), _refresh_s(session))
    next_at = step.now + max(policy.stop_verification_schedule(failed, step.rng), timedelta(seconds=settle_s))
    return Outcome(changes=changes, next_at=max(next_at, step.not_before or next_at))
