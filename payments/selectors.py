"""Reads of the payments app: for the driver pages and the dashboard, and the check of the books."""

from django.db.models import Q, Sum
from django.shortcuts import get_object_or_404

from payments.models import Purchase, Refund, RefundPart
from prepaid.models import CreditLot
from prepaid.selectors import wallet_drift
from sessions.grid.selectors import bonus_drift


def purchase_for_user(*, user, public_id) -> Purchase:
    """The user's purchase; Http404 for anyone else's (no hint that it exists)."""
    return get_object_or_404(Purchase.objects.select_related("package"), user=user, public_id=public_id)


def purchases_for_user(*, user, limit: int = 20):
    return Purchase.objects.filter(user=user).order_by("-created_at")[:limit]


def refunds_for_wallet(*, wallet, limit: int = 20):
    return Refund.objects.filter(wallet=wallet).prefetch_related("parts").order_by("-created_at")[:limit]


def refund_drift() -> list[str]:
    """Each lot's refunded money against the refund parts drawn from it (failed parts excepted)."""
    parts = (
        RefundPart.objects.filter(~Q(status=RefundPart.Status.FAILED)).values("lot_id").annotate(t=Sum("amount_minor"))
    )
    refunded_minor = {row["lot_id"]: row["t"] or 0 for row in parts}
    problems = []
    for lot in CreditLot.objects.all():
        if refunded_minor.get(lot.pk, 0) != lot.refunded_minor:
            problems.append(
                f"lot {lot.pk}: refunded_minor {lot.refunded_minor} != parts {refunded_minor.get(lot.pk, 0)}"
            )
    return problems


def ledger_drift() -> list[str]:
    """The whole books against the ledger (`manage.py ledger_check`): wallets, holds and lots
    (prepaid), refund parts (here), bonus grants (sessions.grid); one line per disagreement."""
    return wallet_drift() + refund_drift() + bonus_drift()
