"""An invoice as a PDF (web/pdf.py): what the EU VAT directive (art. 226) asks an invoice to say —
date, a sequential number, the seller's name, address and VAT id, the buyer, what was supplied
and how much, the net amount, the VAT rate and amount, and the total. In the buyer's account's
language, with its number and date formats."""

from __future__ import annotations

from django.utils import formats as django_formats
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from payments.models import Invoice
from prepaid import formats
from prepaid.selectors import language_for
from web.pdf import A4, Page


def _date(value) -> str:
    return django_formats.date_format(timezone.localtime(value), "SHORT_DATE_FORMAT")


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice in the buyer's language (the page's language when the account chose none)."""
    with translation.override(language_for(user=invoice.purchase.user) or translation.get_language()):
        return _invoice_pdf(invoice)


def _invoice_pdf(invoice: Invoice) -> bytes:
    page = Page()
    right = A4[0] - page.margin
    money = lambda minor: formats.format_money(minor, invoice.currency).replace("EUR", "€")  # noqa: E731
    page.text(invoice.seller_name, size=12, bold=True)
    page.line_break(12)
    for part in invoice.seller_address.split(","):
        page.text(part.strip(), size=9)
        page.line_break(9)
    page.text(_("VAT ID: %(vat_id)s") % {"vat_id": invoice.seller_vat_id}, size=9)
    page.line_break(9, 4)

    page.text(_("Invoice"), size=20, bold=True)
    page.line_break(20)
    facts = [
        (_("Invoice number"), invoice.number),
        (_("Invoice date"), _date(invoice.issued_at)),
        (_("Date of supply (paid)"), _date(invoice.purchase.paid_at or invoice.issued_at)),
        (_("Customer"), invoice.buyer_name),
        (_("Email"), invoice.buyer_email),
        (_("Payment reference"), invoice.purchase.stripe_payment_intent_id or str(invoice.purchase.public_id)),
    ]
    for label, value in facts:
        if not value:
            continue
        page.text(label, size=10)
        page.text(value, size=10, x=200)
        page.line_break(10)
    page.line_break(10, 2)

    page.text(_("Description"), bold=True)
    page.text(_("Net"), bold=True, x=right - 150, right=True)
    page.text(_("VAT"), bold=True, x=right - 75, right=True)
    page.text(_("Total"), bold=True, x=right, right=True)
    page.line_break()
    page.rule()
    page.text(invoice.description[:70])
    page.text(money(invoice.net_minor), x=right - 150, right=True)
    page.text(money(invoice.vat_minor), x=right - 75, right=True)
    page.text(money(invoice.gross_minor), x=right, right=True)
    page.line_break()
    page.rule()
    rate = formats.format_trimmed(invoice.vat_rate * 100)
    for label, minor, bold in (
        (_("Net amount"), invoice.net_minor, False),
        (_("VAT %(rate)s %%") % {"rate": rate}, invoice.vat_minor, False),
        (_("Total paid"), invoice.gross_minor, True),
    ):
        page.text(label, bold=bold, x=right - 200)
        page.text(money(minor), bold=bold, x=right, right=True)
        page.line_break()
    page.line_break(10, 3)
    for note in (
        _("Paid by card. Prepaid charging credit (a single-purpose voucher): the VAT is charged with this payment,"),
        _("and the charging sessions that use the credit are not invoiced again."),
    ):
        page.text(note, size=9)
        page.line_break(9)
    return page.render()
