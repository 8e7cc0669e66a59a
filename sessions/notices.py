"""Which moves of a session or a connection the driver hears about by email, queued in the
transaction that makes the move (notifications.services.notify: one outbox row, sent after the
commit by the task queue). What the emails say is web/notifications.py's."""

from __future__ import annotations

from django.urls import reverse

from notifications import kinds
from notifications.services import notify, operator_addresses
from sessions.models.charging import ChargingSession, SessionStatus

S = SessionStatus

# Ends the driver chose or expected: the receipt. Any other end is news they may have to act on.
EXPECTED_ENDS = {"completed", "threshold", "driver_stop", "battery_max"}


def _kind(to_status: str, reason: str) -> str | None:
    if to_status == S.CHARGING:
        return kinds.CHARGE_STARTED
    if to_status == S.FAILED:
        return kinds.CHARGE_NOT_STARTED
    if to_status == S.COMPLETED or (to_status == S.INTERRUPTED and reason in EXPECTED_ENDS):
        return kinds.CHARGE_ENDED
    if to_status == S.INTERRUPTED:
        return kinds.CHARGE_STOPPED_EARLY
    return None


def session_moved(session: ChargingSession, *, to_status: str, reason: str) -> None:
    """Called in the transaction that moves `session` to `to_status`."""
    kind = _kind(to_status, reason)
    if kind is not None:
        notify(
            kind=kind,
            key=f"session:{session.public_id}:{kind}",
            user_id=session.user_id,
            params={"session": str(session.public_id)},
        )


def connection_needs_consent(*, connection_id: int, user_id: int) -> None:
    """The driver must reconnect: access to their car was withdrawn or expired."""
    notify(
        kind=kinds.RECONNECT_VEHICLE,
        key=f"connection:{connection_id}:needs_consent",
        user_id=user_id,
        params={"connection": connection_id},
    )


def stop_refused(session: ChargingSession, *, error: str) -> None:
    """The car's maker refused the STOP for a throttle or a quota: the driver must stop the charge
    at the car, and the operators hear of it now, not in the next alert digest."""
    notify(
        kind=kinds.STOP_REFUSED,
        key=f"session:{session.public_id}:{kinds.STOP_REFUSED}",
        user_id=session.user_id,
        params={"session": str(session.public_id)},
    )
    line = (
        f"session {session.pk}: {session.vehicle} (vehicle API id {session.car_id}) refused the STOP "
        f"({error}); the driver was asked to stop the charge in the car or unplug"
    )
    for address in operator_addresses():
        notify(
            kind=kinds.OPERATOR_ALERT,
            key=f"stop_refused:{session.public_id}:{address}",
            to_email=address,
            params={
                "alert": "stop_refused",
                "title": "A car refused the STOP (throttle or quota)",
                "items": [line],
                "more": 0,
                "open": 1,
                "admin_path": reverse("admin:charging_chargingsession_change", args=[session.pk]),
            },
        )
