"""Reads of the payments app, for the driver pages and the dashboard."""

from django.shortcuts import get_object_or_404

from payments.models import Purchase, Refund


def purchase_for_user(*, user, public_id) -> Purchase:
    """The user's purchase; Http404 for anyone else's (no hint that it exists)."""
    return get_object_or_404(Purchase.objects.select_related("package"), user=user, public_id=public_id)


def purchases_for_user(*, user, limit: int = 20):
    return Purchase.objects.filter(user=user).order_by("-created_at")[:limit]


def refunds_for_wallet(*, wallet, limit: int = 20):
    return Refund.objects.filter(wallet=wallet).prefetch_related("parts").order_by("-created_at")[:limit]
