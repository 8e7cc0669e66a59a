"""django-q2 entry points: take ids, call a service, safe to run twice."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from payments import reconcile, services


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


def refund_surplus(discrepancy_pk: int) -> bool:
    """Refund a surplus charge (a second successful payment of one purchase)."""
    return reconcile.surplus_refund(discrepancy_id=discrepancy_pk)


def reconcile_payments() -> str:
    """Every hour: match Stripe's charges, refunds and disputes of the window to our books."""
    now = timezone.now()
    report = reconcile.reconcile(since=now - timedelta(hours=settings.STRIPE_RECONCILE_WINDOW_H), until=now)
    return (
        f"{report.charges} charges, {report.refunds} refunds, {report.disputes} disputes, "
        f"{len(report.findings)} findings"
    )
