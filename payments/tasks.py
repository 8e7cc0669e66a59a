"""django-q2 entry points: take ids, call a service, safe to run twice."""

from payments import services


def process_stripe_event(event_pk: int) -> str:
    return services.event_process(event_pk=event_pk)


def submit_refund(refund_pk: int) -> None:
    services.refund_submit(refund_id=refund_pk)


def sweep_stripe_events() -> int:
    """Every minute: re-enqueue webhook events stuck pending or failed with attempts left."""
    return services.events_sweep()


def reconcile_purchases() -> int:
    """Every few minutes: re-fetch purchases awaiting payment, resubmit refunds that never left."""
    moved = services.purchases_reconcile()
    services.refunds_retry_pending()
    return moved
