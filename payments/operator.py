"""Operator actions behind the admin that span apps (the payments services stay untouched)."""

from __future__ import annotations

from payments.models import StripeEvent
from payments.services import event_process


def stripe_events_replay(*, event_pks: list[int]) -> dict[str, int]:
    """Process the given webhook events again, now; returns how many ended in each status.

    A processed event is replayed too when asked for explicitly: every effect of an event is
    idempotent on its own key, so a replay changes nothing that was already applied."""
    results: dict[str, int] = {}
    for pk in event_pks:
        StripeEvent.objects.filter(pk=pk).exclude(status=StripeEvent.Status.PENDING).update(
            status=StripeEvent.Status.PENDING
        )
        status = event_process(event_pk=pk)
        results[status] = results.get(status, 0) + 1
    return results
