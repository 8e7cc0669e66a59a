"""The controller loop: claim sessions whose next action is due, hand each to one worker step.

Timing lives in our table (`next_action_at`), not in django-q2 (its scheduler ticks every 30 s
and has no delayed tasks). A claim takes a lease: the row is invisible to other loops until the
lease expires, so a worker that dies mid-step only delays its session by the lease length — the
next loop claims it again. `SKIP LOCKED` lets several loops run side by side on PostgreSQL; on
SQLite the IMMEDIATE transaction serialises them.
"""

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.db import close_old_connections, transaction
from django.db.models import Case, Q, UUIDField, Value, When

from prepaid.taskqueue import enqueue
from sessions import clock
from sessions.controller import telemetry
from sessions.models.charging import OPEN_STATUSES, ChargingSession

logger = logging.getLogger(__name__)

# How long a claimed session stays invisible to other loops. A step is a few vehicle API calls,
# each bounded by the client's timeouts (310 s), but several slow ones in a row can outlast any
# fixed lease: the in-flight worker renews the lease of each step it runs every half lease
# (`inflight.InFlightWorker.renew_leases`), and a django-q2 task is ended by its own timeout
# (Q_CLUSTER "timeout") long before the lease runs out. Two 310-s calls fit in one lease, so a
# dead worker's sessions are free again after at most this long.
LEASE = timedelta(seconds=660)


def sessions_claim_due(*, limit: int = 100, lease: timedelta = LEASE) -> list[tuple[int, uuid.UUID]]:
    """Lease up to `limit` open sessions whose next action is due; returns (id, lease token) pairs."""
    now = clock.now()
    with transaction.atomic():
        rows = list(
            ChargingSession.objects.select_for_update(skip_locked=True)
            .filter(status__in=OPEN_STATUSES, next_action_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("next_action_at")
            .values_list("id", "next_action_at")[:limit]
        )
        due = [session_id for session_id, _ in rows]
        claimed = [(session_id, uuid.uuid4()) for session_id in due]
        if claimed:
            # One UPDATE for the batch (a token each), not one per session: at thousands of open
            # sessions the loop's own writes must not be what makes steps late.
            tokens = Case(*(When(pk=i, then=Value(t)) for i, t in claimed), output_field=UUIDField())
            ChargingSession.objects.filter(pk__in=due).update(lease_token=tokens, lease_until=now + lease)
    telemetry.claimed(now=now, due=[at for _, at in rows])
    return claimed


def enqueue_step(session_id: int, lease_token: uuid.UUID) -> None:
    enqueue("sessions.tasks.session_step", session_id, str(lease_token), task_name=f"step-{session_id}")


def tick(*, limit: int = 100, dispatch: Callable[[int, uuid.UUID], None] = enqueue_step) -> int:
    """One pass of the loop: claim what is due and dispatch each claimed step. Returns the count."""
    claimed = sessions_claim_due(limit=limit)
    for session_id, token in claimed:
        dispatch(session_id, token)
    return len(claimed)


def run_forever(*, interval_s: float = 1.0, limit: int = 100, stop: Callable[[], bool] = lambda: False) -> None:
    while not stop():
        started = time.monotonic()
        try:
            count = tick(limit=limit)
        except Exception:
            # The loop must outlive a lost database connection; the next tick retries.
            logger.exception("controller tick failed")
            # A connection the server dropped stays broken in Django until closed; outside a
            # request nothing else closes it, and every later tick would fail the same way.
            close_old_connections()
            count = 0
        if count < limit:
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
