"""Operator actions on sessions and connections that the controller's own services do not cover.

Like `session_request_stop`, these only change when and how the next step runs: they never bump
the session's version, so a step in flight still commits its own result (which then wins)."""

from __future__ import annotations

import logging

from sessions import clock
from sessions import vehicles as vehicle_services
from sessions.models import ChargingSession
from sessions.models.charging import SessionStatus
from sessions.services import STOPPING_DEADLINE

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


def connection_ask_reconnect(*, connection_id: int, reason: str = "The operator asked you to reconnect.") -> bool:
    """Mark an active connection as needing the driver's consent: the driver's vehicles page then
    offers Reconnect, and new sessions on its vehicles are refused until they do. False if it was
    not active."""
    return vehicle_services.connection_mark_needs_consent(connection_id=connection_id, reason=reason)


__all__ = ["connection_ask_reconnect", "session_retry_stop"]
