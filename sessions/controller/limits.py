"""The car's charge limit: which one is the driver's own, and putting it back.

The product changes a car's limit in two ways: the backstop at the start (requested.py) and the
escalation of a STOP the car does not carry out (stopping.py). Whenever it did, the driver's own
limit is put back however the session ends (completed, failed, stopped while starting, START
refused, consent lost, closed by the operator): first in the step that ends it, then by a sweep
(`restore_due`, every minute) that retries with backoff until the car accepts it.

The driver's limit is never taken from a limit the product set: a reading that shows a limit the
car's previous session set (its backstop or escalation), or a previous session that still owes
the restore, means the driver's limit is the one that session recorded; this session then owes
the restore in its place.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Case, JSONField, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import JSONObject

from sessions import clock
from sessions.controller.step import Outcome, _Step, limit_percent
from sessions.models.charging import OPEN_STATUSES, TERMINAL_STATUSES, ChargingSession, CommandKind, VehicleCommand
from sessions.vehicle_api import errors as api_errors
from sessions.vehicles.services import ConsentRequired

logger = logging.getLogger(__name__)

# Attempts in the step that ends the session (a passing OEM failure gets two more tries).
RESTORE_ATTEMPTS = 3
# Then the sweep: from a minute, doubling, at most an hour apart, for as long as it takes.
RESTORE_RETRY_BASE_S = 60
RESTORE_RETRY_CAP_S = 3600
# While a sweep works on a session, no other sweep takes it.
RESTORE_CLAIM = timedelta(minutes=10)
# A session running on the car owns its limit: the sweep looks again this much later.
RESTORE_WAIT_FOR_OPEN = timedelta(minutes=5)


def product_limits(session: ChargingSession) -> set[int]:
    """The limits this session set on the car."""
    return {bp for bp in (session.backstop_limit_bp, session.escalation_limit_bp) if bp is not None}


# What `driver_limit` needs of the car's previous session.
_PREVIOUS_FIELDS = (
    "id",
    "limit_to_restore",
    "driver_limit_bp",
    "limit_restored",
    "backstop_limit_bp",
    "escalation_limit_bp",
)


def _previous_sessions(session_pk, car_id):
    terminal = ChargingSession.objects.filter(car_id=car_id, status__in=TERMINAL_STATUSES)
    return terminal.exclude(pk=session_pk).order_by("-id")


def previous_on_car_annotation():
    """The car's previous session as a JSON object (or null), for the step's one load of its
    session (`machine._session_for_step`): computed only while the driver's limit is unknown,
    i.e. in the step that learns it, which then needs no query of its own."""
    previous = _previous_sessions(OuterRef("pk"), OuterRef("car_id")).values(
        json=JSONObject(**{name: name for name in _PREVIOUS_FIELDS})
    )[:1]
    return Case(
        When(Q(driver_limit_bp__isnull=True) & ~Q(car_id=""), then=Subquery(previous)),
        default=Value(None),
        output_field=JSONField(),
    )


def _previous_on_car(session: ChargingSession) -> ChargingSession | None:
    if not session.car_id:
        return None
    if hasattr(session, "previous_on_car"):  # loaded with the session
        row = session.previous_on_car
        if row is None:
            return None
        values = {name: row[name] for name in _PREVIOUS_FIELDS}
        values["limit_to_restore"] = bool(values["limit_to_restore"])  # SQLite's JSON has 0 and 1
        values["limit_restored"] = bool(values["limit_restored"])
        return ChargingSession(**values)
    return _previous_sessions(session.pk, session.car_id).first()


def driver_limit(step: _Step) -> tuple[int, dict[str, Any]]:
    """The driver's own limit and the session fields that record it. Reads the car's limit unless
    this session knows it already (raises the API's errors)."""
    session = step.session
    if session.driver_limit_bp is not None:
        return session.driver_limit_bp, {}
    # The limit as the step's read of the car's signals showed it (v3 reports it with the rest);
    # a step that has not read the car yet reads its signals for it.
    read = step.reported_limit_bp
    if read is None and not any(r.kind == CommandKind.READ for r in step.records):
        vid = step.vehicle.external_id
        read = step.call(CommandKind.READ, "signals", lambda c, u: c.get_signals(u, vid)).signals.charge_limit_bp
    previous = _previous_on_car(session)
    if (
        previous is not None
        and previous.limit_to_restore
        and previous.driver_limit_bp is not None
        and (not previous.limit_restored or read in product_limits(previous))
    ):
        # The car still holds (or its data still shows) a limit the product set: the driver's is
        # the one the previous session recorded, and putting it back is now this session's duty.
        logger.info(
            "session %s: the car shows %s bp, set by session %s; the driver's limit is %s bp",
            session.pk,
            read,
            previous.pk,
            previous.driver_limit_bp,
        )
        step.after.append(
            lambda: ChargingSession.objects.filter(pk=previous.pk, limit_restored=False).update(
                limit_restore_due_at=None
            )
        )
        return previous.driver_limit_bp, {"driver_limit_bp": previous.driver_limit_bp, "limit_to_restore": True}
    if read is None:
        # Unknown now (some makes show it only while plugged): a limit we cannot put back is not set.
        raise api_errors.NoSignalData(f"no charge limit in the signals of vehicle {step.vehicle.external_id}")
    return read, {"driver_limit_bp": read}


def owes_restore(session: ChargingSession, changes: dict[str, Any]) -> bool:
    def value(name):
        return changes.get(name, getattr(session, name))

    return bool(value("limit_to_restore")) and not value("limit_restored") and value("driver_limit_bp") is not None


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(RESTORE_RETRY_CAP_S, RESTORE_RETRY_BASE_S * 2 ** min(attempts, 12)))


def _attempt(step: _Step, limit_bp: int, attempts: int, *, tries: int) -> dict[str, Any]:
    """Send the driver's limit (up to `tries` times on a passing failure); the fields it changes."""
    session, vid = step.session, step.vehicle.external_id
    percent = limit_percent(limit_bp)  # v3 takes whole percents; the driver's was read as one
    for attempt in range(1, tries + 1):
        try:
            step.call(CommandKind.SET_LIMIT, "restore", lambda c, u: c.set_charge_limit(u, vid, percent))
            return {"limit_restored": True, "limit_restore_due_at": None, "limit_restore_attempts": attempts + 1}
        except ConsentRequired as exc:
            logger.warning("session %s: driver's charge limit not restored yet (%s)", session.pk, exc)
            break
        except api_errors.VehicleApiError as exc:
            if isinstance(exc, api_errors.CompatibilityError):
                # The car takes no limit at all (then it never took ours either): nothing to put back.
                logger.warning("session %s: driver's charge limit cannot be set (%s)", session.pk, exc)
                return {"limit_restore_due_at": None, "limit_restore_attempts": attempts + 1}
            if not exc.retryable or attempt == tries:
                logger.warning("session %s: driver's charge limit not restored yet (%s)", session.pk, exc)
                break
    later = clock.now() + _retry_delay(attempts)
    if step.not_before:
        later = max(later, step.not_before)
    return {"limit_restore_due_at": later, "limit_restore_attempts": attempts + 1}


def restore_at_end(step: _Step, outcome: Outcome) -> None:
    """In the step that ends the session: put the driver's limit back if the product changed it."""
    session = step.session
    if not owes_restore(session, outcome.changes):
        return
    limit = outcome.changes.get("driver_limit_bp", session.driver_limit_bp)
    outcome.changes.update(_attempt(step, limit, session.limit_restore_attempts, tries=RESTORE_ATTEMPTS))


def restore_due(*, limit: int = 50) -> int:
    """The sweep: put back the driver's limit of ended sessions whose restore is due. Returns how
    many were put back."""
    now = clock.now()
    due = list(
        ChargingSession.objects.filter(
            status__in=TERMINAL_STATUSES, limit_restored=False, limit_restore_due_at__lte=now
        )
        .select_related("vehicle", "vehicle__connection")
        .order_by("limit_restore_due_at")[:limit]
    )
    restored = 0
    for session in due:
        if session.car_id and ChargingSession.objects.filter(car_id=session.car_id, status__in=OPEN_STATUSES).exists():
            # A session runs on the car: it takes the restore over when it reads the limit, and
            # the driver's limit must not lift its backstop meanwhile.
            ChargingSession.objects.filter(pk=session.pk, limit_restore_due_at=session.limit_restore_due_at).update(
                limit_restore_due_at=now + RESTORE_WAIT_FOR_OPEN
            )
            continue
        claimed = ChargingSession.objects.filter(
            pk=session.pk, limit_restored=False, limit_restore_due_at=session.limit_restore_due_at
        ).update(limit_restore_due_at=now + RESTORE_CLAIM)
        if not claimed or session.driver_limit_bp is None:
            continue
        step = _Step(session)
        try:
            changes = _attempt(step, session.driver_limit_bp, session.limit_restore_attempts, tries=1)
        finally:
            VehicleCommand.objects.bulk_create(step.records)
        ChargingSession.objects.filter(pk=session.pk).update(**changes)
        restored += bool(changes.get("limit_restored"))
    return restored
