"""Ending a session from any state: settle the hold, learn the STOP latency; and the retry-or-fail
rule for a failed vehicle call."""

from __future__ import annotations

import logging

from sessions.controller import metering, policy
from sessions.controller.readings import _estimate, _metering_fields, _readings
from sessions.controller.step import PAUSE, RESUME, Outcome, S, _reason, _Step
from sessions.models.charging import ChargingSession, CommandKind, VehicleCommand
from sessions.vehicle_api import errors as api_errors
from sessions.vehicles import command_budget

logger = logging.getLogger(__name__)


# A STOP latency is learned only from a final estimate known to within ± this many seconds of charging.
LEARN_MAX_SPREAD_S = 10


def _failure_reason(exc: api_errors.VehicleApiError) -> str:
    if command_budget.refused_for_budget(exc):
        return "command_budget"
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
    # Nor does a car whose maker's command budget is spent (until driven, for the day).
    retry = (
        exc.retryable
        and not (isinstance(exc, api_errors.VehicleStateError) and exc.code == "LOW_BATTERY")
        and not command_budget.refused_for_budget(exc)
    )
    if retry and session.state_deadline_at and step.now < session.state_deadline_at:
        # Still trying; the driver sees why it is taking long (asleep, unreachable…).
        code = _failure_reason(exc)
        changes = {"attempts": session.attempts + 1, "reason": code, "reason_message": _reason(code), **extra}
        return Outcome(changes=changes, next_at=step.backoff(session.attempts))
    return Outcome(to_status=to_status, reason=_failure_reason(exc), changes=extra)


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
    for command in commands:
        if command.effect_latency_ms is not None:
            # The API timed it itself (a 200 SUCCESS's completedAt − executedAt): that stands.
            learned.pop(command.pk, None)
    for pk, (lo, hi) in learned.items():
        VehicleCommand.objects.filter(pk=pk).update(
            effect_latency_ms=int(lo * 1000), effect_latency_max_ms=None if hi is None else int(hi * 1000)
        )


def _finish(step: _Step, *, to_status: str, reason: str, flag: bool = False) -> Outcome:
    """Final estimate, latency learning, settlement. (The driver's limit is put back for every
    end, not only this one: `limits.restore_at_end` in the step, else the sweep.)"""
    session = step.session
    readings = _readings(session)
    estimate = _estimate(session, readings)
    changes = _metering_fields(estimate)
    changes["end_soc_bp"] = next((r.soc_bp for r in reversed(readings) if r.soc_bp is not None), None)
    if flag:
        changes["stop_not_carried_out"] = True
    _learn_latencies(session, estimate, readings, flag=flag)
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
    outcome = _finish(step, to_status=to_status, reason="consent")
    outcome.changes["stop_not_carried_out"] = session.status == S.CHARGING or session.stop_first_sent_at is None
    return outcome
