"""Invoices of paid purchases, numbered from a gapless sequence.

The number is taken under a row lock on the series' `InvoiceSequence` row, in the transaction
that marks the purchase paid: concurrent payments wait for each other at that row, and a
transaction that rolls back gives its number back, so the issued numbers have no gap and no
duplicate (on PostgreSQL and on SQLite, which serialises writers anyway).
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from payments.models import Invoice, InvoiceSequence, Purchase
from prepaid import formats
from prepaid.selectors import language_for


def _next_number(series: str) -> int:
    # get_or_create under the lock: the first invoice of a series creates its row (a race on
    # that very first row ends in an IntegrityError on one side, whose transaction retries).
    InvoiceSequence.objects.get_or_create(series=series)
    row = InvoiceSequence.objects.select_for_update().get(series=series)
    row.last_number += 1
    row.save(update_fields=["last_number"])
    return row.last_number


def description(purchase: Purchase) -> str:
    """What was supplied, in the buyer's language (an invoice never changes: written once, at issue)."""
    with translation.override(language_for(user=purchase.user) or settings.LANGUAGE_CODE):
        return gettext("Charging credit: %(kwh)s of electricity for an electric vehicle (prepaid)") % {
            "kwh": formats.format_kwh(purchase.energy_wh / 1000, 3, trim=True)
        }


def invoice_issue(*, purchase_id: int) -> Invoice:
    """The purchase's invoice, issued now if it has none (idempotent). The purchase must be paid."""
    with transaction.atomic():
        purchase = Purchase.objects.select_related("user").select_for_update(of=("self",)).get(pk=purchase_id)
        existing = Invoice.objects.filter(purchase=purchase).first()
        if existing is not None:
            return existing
        if purchase.paid_at is None:
            raise ValueError(f"purchase {purchase.public_id} is not paid: no invoice")
        series = settings.INVOICE_SERIES
        sequence = _next_number(series)
        issued = timezone.now()
        user = purchase.user
        return Invoice.objects.create(
            number=f"{series}-{issued:%Y}-{sequence:06d}",
            series=series,
            sequence=sequence,
            purchase=purchase,
            issued_at=issued,
            seller_name=settings.OPERATOR_NAME,
            seller_address=settings.OPERATOR_ADDRESS,
            seller_vat_id=settings.OPERATOR_VAT_ID,
            buyer_name=user.get_full_name() or user.get_username(),
            buyer_email=user.email,
            description=description(purchase),
            energy_wh=purchase.energy_wh,
            net_minor=purchase.amount_minor - purchase.vat_minor,
            vat_minor=purchase.vat_minor,
            gross_minor=purchase.amount_minor,
            vat_rate=purchase.vat_rate,
            currency=purchase.currency,
        )
