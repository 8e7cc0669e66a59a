"""REQUESTED: read the car, set the backstop charge limit, send START (or wait for the smart
plan's first window)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sessions.controller import limits, policy
from sessions.controller.finish import _retry_or_fail
from sessions.controller.paused import _plan_first_window
from sessions.controller.readings import _read, _refresh_s, latency_model
from sessions.controller.step import (
    STARTING_DEADLINE,
    Outcome,
    S,
    _limit_refused,
    _limit_settable,
    _sent_at,
    _Step,
    limit_percent,
)
from sessions.models.charging import CommandKind
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import ChargeState
from sessions.vehicles import makes

logger = logging.getLogger(__name__)


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
    # The read may have told what the car is metered by (its signals): kept with the session.
    changes: dict[str, Any] = {"start_soc_bp": reading.soc_bp, "energy_step_wh": session.energy_step_wh}
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
            step.call(CommandKind.START, "", lambda c, u: c.start_charge(u, vid))
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
    known: dict[str, Any] = {}
    percent = limit_percent(backstop)
    try:
        # Never a limit the product set (an earlier session's backstop still on the car, or this
        # session's own on a second START attempt): see limits.driver_limit. v3 whole percents.
        driver_limit, known = limits.driver_limit(step)
        if percent * 100 >= driver_limit:
            return known
        step.call(CommandKind.SET_LIMIT, f"{percent * 100}bp", lambda c, u: c.set_charge_limit(u, vid, percent))
    except api_errors.VehicleApiError as exc:
        # A backstop is a safety net, not a condition of charging. A SET that failed may still
        # have reached the car: the driver's limit is put back at the end all the same.
        logger.info("session %s: no charge-limit backstop (%s)", session.pk, exc)
        _limit_refused(vehicle, exc)
        if known and exc.retryable:
            known["limit_to_restore"] = True
        return known
    return {**known, "backstop_limit_bp": percent * 100, "limit_to_restore": True}
