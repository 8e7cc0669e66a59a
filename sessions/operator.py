"""Operator actions on sessions and connections that the controller's own services do not cover.

Like `session_request_stop`, these only change when and how the next step runs: they never bump
the session's version, so a step in flight still commits its own result (which then wins)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.db.models import Max, Q

from sessions import clock
from sessions.controller import machine, runtime
from sessions.controller.step import STOPPING_DEADLINE
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES, CommandKind, SessionStatus, VehicleCommand
from sessions.vehicles import services as vehicle_services

logger = logging.getLogger(__name__)


def session_retry_stop(*, session_id: int) -> bool:
    """Run the STOP of a STOPPING session again now, from the first escalation step.

    Resets the attempt counter (so the policy retries STOP before lowering the limit), drops a
    stale Retry-After and gives the stop a fresh STOPPING deadline, then makes the session due
    now. A session whose first STOP never went out gets its send attempts back too.
    Returns False if the session is not STOPPING."""
    now = clock.now()
    session = ChargingSession.objects.filter(pk=session_id, status=SessionStatus.STOPPING).first()
    if session is None:
        return False
    changes = {
        "next_action_at": now,
        "attempts": 0,
        "not_before": None,
        "planned_action": "",
        "state_deadline_at": max(session.state_deadline_at or now, now + STOPPING_DEADLINE),
    }
    if session.stop_first_sent_at is None:
        changes["stop_attempts"] = 0
    # A step holding the lease keeps it: the retry is due as soon as that step has committed.
    updated = ChargingSession.objects.filter(pk=session_id, status=SessionStatus.STOPPING).update(**changes)
    if updated:
        logger.info("session %s: operator retries the stop", session_id)
    return bool(updated)


@dataclass(frozen=True)
class StopRetry:
    """What a retry of the stop really did: `done` only when the car's service took the STOP or
    the car is no longer charging; `summary` says what happened, in words for the operator."""

    session_id: int
    done: bool
    summary: str


def _error(command: VehicleCommand) -> str:
    return ":".join(part for part in (command.error_type, command.error_code) if part) or "no answer"


def session_retry_stop_now(*, session_id: int) -> StopRetry:
    """The operator's "Retry the stop now": reset the escalation (`session_retry_stop`), then run
    the session's step here and now and report what the car's service answered."""
    if not session_retry_stop(session_id=session_id):
        return StopRetry(session_id, False, "not stopping: nothing to retry")
    now = clock.now()
    token = uuid.uuid4()
    claimed = (
        ChargingSession.objects.filter(pk=session_id, status=SessionStatus.STOPPING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_token=token, lease_until=now + runtime.LEASE)
    )
    if not claimed:
        return StopRetry(session_id, False, "a step is running on it now; the retry follows it (see its commands)")
    before = VehicleCommand.objects.filter(session_id=session_id).aggregate(last=Max("id"))["last"] or 0
    machine.session_step(session_id=session_id, lease_token=token)
    session = ChargingSession.objects.get(pk=session_id)
    calls = list(VehicleCommand.objects.filter(session_id=session_id, id__gt=before).order_by("id"))
    stops = [c for c in calls if c.kind == CommandKind.STOP]
    reads = [c for c in calls if c.kind == CommandKind.READ]
    if session.status != SessionStatus.STOPPING:
        return StopRetry(session_id, True, f"the car no longer charges: session {session.status} ({session.reason})")
    if stops and stops[-1].ok:
        return StopRetry(session_id, True, "STOP sent and accepted by the car's service; its effect is being checked")
    if stops:
        return StopRetry(session_id, False, f"STOP refused ({_error(stops[-1])}); tried again at every check")
    if reads and not reads[-1].ok:
        return StopRetry(session_id, False, f"the car could not be read ({_error(reads[-1])}); no STOP sent yet")
    return StopRetry(
        session_id, False, "the car's data predates the last STOP: no STOP sent, it is looked at again shortly"
    )


def connection_ask_reconnect(*, connection_id: int, reason: str = "The operator asked you to reconnect.") -> bool:
    """Mark an active connection as needing the driver's consent: the driver's vehicles page then
    offers Reconnect, and new sessions on its vehicles are refused until they do. False if it was
    not active."""
    return vehicle_services.connection_mark_needs_consent(connection_id=connection_id, reason=reason)


__all__ = ["StopRetry", "connection_ask_reconnect", "session_retry_stop", "session_retry_stop_now"]


def grid_event_cancel(*, event_id: int) -> str:
    """Call off a grid event. Not started yet: it is removed with its participations (nothing
    was paused or earned), and its sessions re-plan. In progress: it ends now; paused sessions
    resume at their next step and settle what the shortened event shifted (their bonus).
    Returns "removed", "ended", or "" for an event that is already over."""
    from django.db import transaction
    from django.db.models import F
    from django.db.models.functions import Least

    from sessions.models.grid import DemandResponseEvent, SmartPlan

    now = clock.now()
    with transaction.atomic():
        event = DemandResponseEvent.objects.select_for_update().filter(pk=event_id, ends_at__gt=now).first()
        if event is None:
            return ""
        session_ids = list(event.participations.values_list("session_id", flat=True))
        if event.starts_at > now:
            event.participations.all().delete()
            event.delete()
            outcome = "removed"
            # A plan that sat this event out is made again without it.
            SmartPlan.objects.filter(session_id__in=session_ids, paused=False).update(planned_at=None)
        else:
            DemandResponseEvent.objects.filter(pk=event.pk).update(ends_at=now)
            outcome = "ended"
            SmartPlan.objects.filter(session_id__in=session_ids, paused=True, pause_reason="grid").update(
                resume_at=Least(F("resume_at"), now)
            )
        ChargingSession.objects.filter(pk__in=session_ids, status__in=OPEN_STATUSES).update(
            next_action_at=Least(F("next_action_at"), now)
        )
    logger.info("grid event %s cancelled by the operator (%s)", event_id, outcome)
    return outcome
