"""Writes of the payments app: purchases, fulfilment, the webhook inbox, refunds and disputes.

Stripe is called through payments.stripe_api only, and never inside a transaction: claim a row
and commit, call Stripe, record the answer in a new transaction. Lock order follows prepaid:
wallet first, then purchase / refund part / dispute.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments import pricing, stripe_api
from payments.models import Purchase, PurchaseTransition
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage

logger = logging.getLogger(__name__)


class PurchaseError(Exception):
    """A purchase cannot be created or paid as asked (bad amount, wrong state)."""


# --- Purchases ------------------------------------------------------------------------------------


def purchase_create(*, user, package: EnergyPackage | None = None, energy_kwh: Decimal | None = None) -> Purchase:
    """A purchase of a package or of a custom amount (CUSTOM_KWH_MIN..MAX at PRICE_PER_KWH).

    Energy, gross amount and its VAT share are fixed here and never change afterwards.
    """
    vat_rate = settings.VAT_RATE
    if package is not None:
        if not package.active:
            raise PurchaseError("this package is no longer sold")
        energy_wh, amount_minor, currency = package.energy_wh, package.price_minor, package.currency
    else:
        if energy_kwh is None:
            raise PurchaseError("choose a package or an amount")
        if not settings.CUSTOM_KWH_MIN <= energy_kwh <= settings.CUSTOM_KWH_MAX:
            raise PurchaseError(f"choose between {settings.CUSTOM_KWH_MIN} and {settings.CUSTOM_KWH_MAX} kWh")
        currency = settings.CURRENCY
        energy_wh = pricing.kwh_to_wh(energy_kwh)
        amount_minor = pricing.price_minor_for(energy_wh, price_per_kwh=settings.PRICE_PER_KWH, currency=currency)
    return Purchase.objects.create(
        user=user,
        package=package,
        energy_wh=energy_wh,
        amount_minor=amount_minor,
        currency=currency,
        vat_minor=pricing.vat_share_minor(amount_minor, vat_rate=vat_rate),
        vat_rate=vat_rate,
        checkout_mode=settings.STRIPE_CHECKOUT,
    )


def purchase_transition(*, purchase_id: int, to_status: str, reason: str = "") -> bool:
    """Move a purchase forward by compare-and-set and log it; False if it had moved on already."""
    with transaction.atomic():
        current = Purchase.objects.values_list("status", flat=True).get(pk=purchase_id)
        if to_status not in Purchase.TRANSITIONS[current]:
            return False
        updates = {"status": to_status, "updated_at": timezone.now()}
        if to_status == Purchase.Status.PAID:
            updates["paid_at"] = timezone.now()
        moved = Purchase.objects.filter(pk=purchase_id, status=current).update(**updates)
        if moved:
            PurchaseTransition.objects.create(
                purchase_id=purchase_id, from_status=current, to_status=to_status, reason=reason[:200]
            )
        return bool(moved)


def purchase_fulfil(*, purchase_id: int, payment_intent: stripe_api.PaymentIntentInfo, source: str) -> bool:
    """Credit a purchase whose PaymentIntent succeeded: the ONE fulfilment, reached from the webhook,
    the return page and the reconciliation task. Idempotent; returns True if this call credited it.

    Refuses (logs, returns False) a PaymentIntent that is not succeeded or whose amount, currency or
    purchase_id does not match the purchase.
    """
    purchase = Purchase.objects.select_related("user").get(pk=purchase_id)
    pi = payment_intent
    if pi.status != "succeeded":
        return False
    if (
        pi.purchase_id != str(purchase.public_id)
        or pi.amount != purchase.amount_minor
        or pi.currency != purchase.currency
    ):
        logger.error(
            "purchase %s: payment %s does not match (%s %s for %s)",
            purchase.public_id,
            pi.id,
            pi.amount,
            pi.currency,
            pi.purchase_id,
        )
        return False
    wallet = wallet_services.wallet_get_or_create(user=purchase.user)
    with transaction.atomic():
        # Wallet first (prepaid's lock order), then the purchase row.
        wallet_services._lock_wallet(wallet.pk)
        purchase = Purchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status == Purchase.Status.PAID:
            return False
        if not purchase_transition(
            purchase_id=purchase.pk, to_status=Purchase.Status.PAID, reason=f"{source}: {pi.id}"
        ):
            # Failed/canceled purchases whose money arrived anyway: keep the money visible.
            logger.error("purchase %s is %s but %s succeeded", purchase.public_id, purchase.status, pi.id)
            return False
        Purchase.objects.filter(pk=purchase.pk).update(
            stripe_payment_intent_id=pi.id, stripe_charge_id=pi.charge_id or purchase.stripe_charge_id, last_error=""
        )
        purchase.refresh_from_db()
        wallet_services.wallet_credit_purchase(purchase=purchase)
        return True
