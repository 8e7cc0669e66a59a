"""Ending a session from any state: settle the hold, put the driver's charge limit back, learn
the STOP latency; and the retry-or-fail rule for a failed vehicle call."""

from __future__ import annotations

import logging

from sessions.controller import policy
from sessions.controller.readings import _estimate, _metering_fields, _readings, latency_model
from sessions.controller.step import PAUSE, Outcome, S, _reason, _Step
from sessions.models.charging import CommandKind, VehicleCommand
from sessions.vehicle_api import errors as api_errors
from sessions.vehicles.services import ConsentRequired

logger = logging.getLogger(__name__)


# Attempts to put the driver's own charge limit back at the end of a session.
RESTORE_ATTEMPTS = 3

# A STOP latency is learned only from a final estimate known to within ± this many seconds of charging.
LEARN_MAX_SPREAD_S = 10


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


def _finish(step: _Step, *, to_status: str, reason: str, flag: bool = False, talk_to_car: bool = True) -> Outcome:
    """Final estimate, latency learning, the driver's limit restored, settlement."""
    session = step.session
    readings = _readings(session)
    latency = latency_model(step.vehicle.make)
    estimate = _estimate(session, readings, latency)
    changes = _metering_fields(estimate)
    changes["end_soc_bp"] = next((r.soc_bp for r in reversed(readings) if r.soc_bp is not None), None)
    if flag:
        changes["stop_not_carried_out"] = True
    # Learn the STOP latency only from a STOP that worked the first time: an ignored one says
    # nothing about how long a STOP takes.
    first_stop_worked = session.stop_attempts == 1 and not session.stop_escalated and not flag
    # Nor from an estimate too coarse to time it: a battery level step (750 Wh on 75 kWh) is minutes
    # of charging, and a latency "learned" from it would move every later STOP of the make.
    precise = estimate.delivered_high_wh - estimate.delivered_low_wh <= LEARN_MAX_SPREAD_S * estimate.power_w / 1800
    if first_stop_worked and precise and session.stop_first_sent_at and session.predicted_wh_at_stop is not None:
        learned = policy.infer_stop_latency_s(
            stop_sent_at=session.stop_first_sent_at,
            predicted_wh_at_send=session.predicted_wh_at_stop,
            final_delivered_wh=estimate.delivered_wh,
            power_w=estimate.power_w,
        )
        if learned is not None:
            first_stop = (
                session.commands.filter(kind=CommandKind.STOP, ok=True).exclude(detail=PAUSE).order_by("id").first()
            )
            if first_stop:
                VehicleCommand.objects.filter(pk=first_stop.pk).update(effect_latency_ms=int(learned * 1000))
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
