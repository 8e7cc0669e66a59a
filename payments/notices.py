"""The payment events the driver hears about by email, queued in the transaction that records
them (notifications.services.notify). What the emails say is web/notifications.py's."""

from __future__ import annotations

from notifications import kinds
from notifications.services import notify
from payments.models import Refund


def refund_made(refund: Refund, *, user_id: int) -> None:
    """Money went back to the driver's card (all of the refund, or the parts Stripe accepted)."""
    notify(
        kind=kinds.REFUND_MADE,
        key=f"refund:{refund.public_id}:made",
        user_id=user_id,
        params={"refund": str(refund.public_id)},
    )
