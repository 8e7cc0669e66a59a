"""A charging session's receipt as a PDF (web/pdf.py), with the figures of the receipt page
(web.pages.receipts.receipt_figures), in the account's language and its number and date formats.
The energy was paid for, and its VAT invoiced, when the credit was bought: the receipt names those
invoices rather than being another one."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from payments.models import Invoice
from prepaid import formats
from prepaid.selectors import hold_draws, language_for
from web.pages import selectors
from web.pages.selectors import SessionView
from web.pdf import A4, Page


def _when(value) -> str:
    return f"{formats.format_when(value)} {timezone.localtime(value).tzname()}"


def _kwh(wh: int) -> str:
    return formats.format_kwh(wh / 1000, 2)


def _wrap(text: str, width: int = 95) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def invoices_of(session) -> list[str]:
    """The invoice numbers of the purchases this session's energy came from."""
    if not session.hold_id:
        return []
    purchases = [line["lot"].purchase_id for line in hold_draws(hold_id=session.hold_id) if line["lot"].purchase_id]
    return list(Invoice.objects.filter(purchase_id__in=purchases).order_by("sequence").values_list("number", flat=True))


def receipt_pdf(session) -> bytes:
    """The receipt in the account's language (the page's language when the account chose none)."""
    with translation.override(language_for(user=session.user) or translation.get_language()):
        return _receipt_pdf(selectors.session_view(session))


def _receipt_pdf(view: SessionView) -> bytes:
    session, figures = view.session, view.receipt
    page = Page()
    right = A4[0] - page.margin
    page.text(settings.OPERATOR_NAME, size=12, bold=True)
    page.line_break(12)
    page.text(settings.OPERATOR_ADDRESS, size=9)
    page.line_break(9)
    page.text(_("VAT ID: %(vat_id)s") % {"vat_id": settings.OPERATOR_VAT_ID}, size=9)
    page.line_break(9, 4)
    page.text(_("Charging receipt"), size=20, bold=True)
    page.line_break(20)
    vehicle = f"{session.vehicle.make.title()} {session.vehicle.model}".strip()
    rows = [
        (_("Session"), str(session.public_id)),
        (_("Car"), vehicle),
        (_("Started"), _when(session.created_at)),
        (_("Ended"), _when(session.ended_at) if session.ended_at else "–"),
        (_("Status"), view.status_label),
        (_("Bought for this charge"), _kwh(figures.purchased_wh)),
        (_("Billed"), _kwh(figures.billed_wh)),
        (_("How it was measured"), figures.measured_by_label),
    ]
    if figures.returned_wh is not None:
        rows.append((_("Back in your wallet"), _kwh(figures.returned_wh)))
    for label, value in rows:
        page.text(label)
        page.text(value, x=230)
        page.line_break()
    page.line_break(10, 1)
    for line in _wrap(f"{figures.why} {figures.range_words}"):
        page.text(line, size=9)
        page.line_break(9)
    page.line_break(10, 1)
    page.rule()
    rate = formats.format_trimmed(figures.vat_percent)
    for label, value, bold in (
        (_("Price without VAT"), figures.net, False),
        (_("VAT %(rate)s %%") % {"rate": rate}, figures.vat, False),
        (_("Total paid from your wallet"), figures.amount, True),
    ):
        page.text(label, bold=bold, x=right - 250)
        page.text(value.replace("EUR", "€"), bold=bold, x=right, right=True)
        page.line_break()
    page.line_break(10, 2)
    numbers = invoices_of(session)
    note = _("The energy was paid for, and its VAT invoiced, when you bought the credit")
    note += f": {', '.join(numbers)}." if numbers else "."
    for line in _wrap(note):
        page.text(line, size=9)
        page.line_break(9)
    return page.render()
