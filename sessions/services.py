"""Charging sessions, the public services: request one (now, or in the cheapest hours before a
deadline), ask it to stop, close a stuck one.

A requested session is then the controller's (sessions/controller/): each step is run by
`controller.machine.session_step`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.translation import gettext, gettext_noop

from prepaid import services as wallet_services
from sessions import clock
from sessions.controller import policy
from sessions.controller.finish import _finish
from sessions.controller.machine import _commit
from sessions.controller.step import REQUESTED_DEADLINE, Outcome, S, _reason, _Step
from sessions.grid.services import EXTRA_CALLS, MAX_DEADLINE, GridError
from sessions.models.charging import OPEN_STATUSES, TERMINAL_STATUSES, ChargingSession, SessionTransition
from sessions.models.grid import SmartPlan
from sessions.models.vehicles import Vehicle
from sessions.vehicle_api import signals
from sessions.vehicles import command_budget, makes

logger = logging.getLogger(__name__)

# Calls allowed per session before the policy must commit to the STOP.
DEFAULT_CALL_BUDGET = 40


# The driver sees this when the same car (the vehicle API's vehicle id) is connected to another
# account too and a session of that account is open on it: nothing says whose.
CAR_BUSY = gettext_noop(
    "This car is already charging in a session started from another account it is connected to. "
    "Wait until that session ends, then start again."
)


class SessionError(Exception):
    """A session cannot be created or changed; `code` is stable, the message is for the driver."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def _has_energy_counter(vehicle: Vehicle) -> bool:
    return vehicle.signal_capabilities.get(signals.ENERGY_ADDED) == signals.Capability.CAPABLE


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
        raise SessionError("vehicle_unknown", gettext("That vehicle is not connected to your account."))
    if not vehicle.connection.is_active:
        raise SessionError("consent", gettext(_reason("consent")))
    traits = makes.traits_for(vehicle.make)
    if not traits.can_stop and vehicle.charge_limit_settable is not True:
        # Without a STOP (Nissan in the US) nor a charge limit to fall back on, the car would charge
        # on past the purchase at the operator's expense: refuse before holding any credit.
        raise SessionError("cannot_stop", gettext(_reason("cannot_stop")))
    left = command_budget.remaining(make=vehicle.make, car_id=vehicle.external_id, now=now)
    need = command_budget.session_need(
        # A limit is set only where the car takes one and reports it (step._limit_settable).
        limit_commands=vehicle.charge_limit_settable is not False and vehicle.charge_limit_readable is not False
    )
    if not left.fits(need):
        # The car's maker would refuse commands before this session's STOP (VW until driven,
        # Tesla per day, BMW per month): a STOP it may not send would let the car run away.
        raise SessionError("command_budget", gettext(command_budget.REFUSALS[left.why]))
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
                car_id=vehicle.external_id,
                hold=hold,
                purchased_wh=energy_wh,
                policy=policy_spec,
                reason="requested",
                reason_message=_reason("requested"),
                next_action_at=now,
                state_deadline_at=now + REQUESTED_DEADLINE,
                call_budget=makes.session_call_budget(traits, DEFAULT_CALL_BUDGET),
                # Metered by the car's energy counter where its signals showed one (the first
                # read confirms or corrects it: sessions/controller/readings.py).
                energy_step_wh=traits.energy_step_wh if _has_energy_counter(vehicle) else 0,
                soc_step_bp=traits.soc_step_bp,
                nominal_power_w=traits.nominal_power_w,
                telemetry_refresh_s=int(traits.telemetry_refresh_s),
                created_at=now,
            )
            SessionTransition.objects.create(session=session, from_status="", to_status=S.REQUESTED, at=now)
    except IntegrityError as exc:
        # A partial unique index: another session is open on this vehicle row, or on the same
        # physical car from another account that connected it (the hold rolled back too).
        if ChargingSession.objects.filter(vehicle=vehicle, status__in=OPEN_STATUSES).exists():
            raise SessionError("session_open", gettext("A session is already running on this vehicle.")) from exc
        raise SessionError("car_busy", gettext(CAR_BUSY)) from exc
    return session


def smart_session_request(
    *,
    user,
    vehicle_id: int,
    energy_wh: int,
    deadline: datetime | None,
    region: str = "",
    now: datetime | None = None,
) -> ChargingSession:
    """Open a session that charges in the cheapest windows before `deadline`.

    The plan itself is made at the first reading (the battery level decides the minimum and the
    maximum); until its first window the session waits in REQUESTED with its own deadline."""
    now = now or clock.now()
    if deadline is not None and not (now < deadline <= now + MAX_DEADLINE):
        raise GridError("bad_deadline", gettext("The deadline must be in the future, at most three days ahead."))
    with transaction.atomic():
        session = session_request(user=user, vehicle_id=vehicle_id, energy_wh=energy_wh, now=now)
        SmartPlan.objects.create(session=session, region=region or settings.SMART_DEFAULT_REGION, deadline=deadline)
        # Each window costs a START, a STOP and their verifying reads: room for a few of them, so
        # the stop policy does not commit to an early STOP for want of calls.
        ChargingSession.objects.filter(pk=session.pk).update(call_budget=F("call_budget") + EXTRA_CALLS)
        session.refresh_from_db(fields=["call_budget"])
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
        outcome = _finish(step, to_status=ended, reason=reason)
    return _commit(step, outcome, token)


__all__ = [
    "SessionError",
    "session_close_stuck",
    "session_request",
    "session_request_stop",
    "smart_session_request",
]
