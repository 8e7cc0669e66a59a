"""Reads behind the API: querysets scoped to who asks, and receipts."""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet

from payments import invoices
from payments.models import Purchase, Refund
from prepaid.models import CreditLot, LedgerEntry
from prepaid.selectors import hold_draws, wallet_for_user, wallet_refundable_minor
from sessions.models import ChargingSession, Vehicle
from web.i18n import session_reason
from web.pages.receipts import receipt_figures


def _scoped(queryset: QuerySet, user, field: str) -> QuerySet:
    # Staff see every row; a driver only their own. Rows of others are simply absent (404, not 403:
    # an id that exists must not be told apart from one that does not).
    return queryset if user.is_staff else queryset.filter(**{field: user})


def vehicles_visible(*, user) -> QuerySet[Vehicle]:
    return _scoped(Vehicle.objects.select_related("connection"), user, "owner").order_by("pk")


def purchases_visible(*, user) -> QuerySet[Purchase]:
    return _scoped(Purchase.objects.all(), user, "user").order_by("-created_at", "-id")


def sessions_visible(*, user) -> QuerySet[ChargingSession]:
    return _scoped(ChargingSession.objects.select_related("smart_plan"), user, "user").order_by("-created_at", "-id")


def refunds_visible(*, user) -> QuerySet[Refund]:
    return (
        _scoped(Refund.objects.all(), user, "wallet__user")
        .prefetch_related("parts__purchase")
        .order_by("-created_at", "-id")
    )


def wallet_summary(*, user) -> dict:
    """The user's balances; zeros for a user who never bought anything (no wallet is created)."""
    wallet = wallet_for_user(user=user)
    if wallet is None:
        return {
            "balance_wh": 0,
            "held_wh": 0,
            "blocked": False,
            "blocked_reason": "",
            "refundable_minor": 0,
            "currency": settings.CURRENCY,
        }
    return {
        "balance_wh": wallet.balance_wh,
        "held_wh": wallet.held_wh,
        "blocked": wallet.blocked,
        "blocked_reason": wallet.blocked_reason,
        "refundable_minor": wallet_refundable_minor(wallet=wallet),
        "currency": settings.CURRENCY,
    }


def wallet_lots_for(*, user) -> QuerySet[CreditLot]:
    return CreditLot.objects.filter(wallet__user=user).select_related("purchase").order_by("-created_at", "-id")


def wallet_entries_for(*, user) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(wallet__user=user).select_related("purchase").order_by("-created_at", "-id")


def purchase_receipt(purchase: Purchase) -> dict:
    lot = CreditLot.objects.filter(purchase=purchase).first()
    name = purchase.package.name if purchase.package_id else f"{purchase.energy_wh / 1000:g} kWh of charging credit"
    return {
        "purchase_id": purchase.public_id,
        "paid_at": purchase.paid_at,
        "description": name,
        "energy_wh": purchase.energy_wh,
        "amount_minor": purchase.amount_minor,
        "net_minor": purchase.net_minor,
        "vat_minor": purchase.vat_minor,
        "vat_rate": purchase.vat_rate,
        "currency": purchase.currency,
        "refunded_minor": lot.refunded_minor if lot else 0,
        # A purchase paid before invoices existed gets its invoice now (the same as the PDF's).
        "invoice_number": invoices.invoice_issue(purchase_id=purchase.pk).number if purchase.paid_at else None,
    }


def session_receipt(session: ChargingSession) -> dict:
    """What the driver paid for a finished session, with the payments the energy came from.

    The money of each line is the lot's price share of the energy drawn from it, half up
    (prepaid.selectors.hold_draws: the receipt page shows the same sum)."""
    lines = [
        {
            "purchase_id": line["lot"].purchase.public_id if line["lot"].purchase_id else None,
            "energy_wh": line["energy_wh"],
            "amount_minor": line["amount_minor"],
            "currency": line["lot"].currency,
        }
        for line in (hold_draws(hold_id=session.hold_id) if session.hold_id else [])
    ]
    hold = session.hold
    # The receipt page's and the email's figures: one function computes them.
    figures = receipt_figures(session)
    return {
        **figures.as_api(),
        "session_id": session.public_id,
        "vehicle": str(session.vehicle),
        "status": session.status,
        "reason_message": session_reason(session),
        "started_at": session.created_at,
        "charging_at": session.charging_at,
        "ended_at": session.ended_at,
        "purchased_wh": session.purchased_wh,
        "delivered_wh": session.delivered_wh,
        "delivered_low_wh": session.delivered_low_wh,
        "delivered_high_wh": session.delivered_high_wh,
        "released_wh": hold.released_wh if hold else 0,
        "overshoot_absorbed_wh": session.overshoot_wh or 0,
        "currency": lines[0]["currency"] if lines else settings.CURRENCY,
        "data_source": session.data_source,
        "readings": session.readings.count(),
        "vehicle_api_calls": session.api_calls,
        "billed_reads": session.billed_reads,
        "webhook_readings": session.webhook_readings,
        "lines": lines,
    }
