"""Reads of the payments app, for the driver pages and the dashboard."""

from payments.models import Purchase, Refund


def purchase_for_user(*, user, public_id) -> Purchase:
    return Purchase.objects.select_related("package").get(user=user, public_id=public_id)


def purchases_for_user(*, user, limit: int = 20):
    return Purchase.objects.filter(user=user).order_by("-created_at")[:limit]


def refunds_for_wallet(*, wallet, limit: int = 20):
    return Refund.objects.filter(wallet=wallet).prefetch_related("parts").order_by("-created_at")[:limit]
