"""A charging session's receipt figures, computed once: the receipt page, the REST API's receipt
and the receipt email all take them from `receipt_figures`, so they give the same numbers.

What the driver pays is what the readings prove, never above the purchase (sessions/controller/
policy.py `settle`); the money is that energy drawn from the wallet's payments at their prices
(prepaid.selectors.hold_draws). The words say how the energy was measured and the range it lies
in, plainly: what the driver pays for, and what we do not charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from prepaid import formats, pricing
from prepaid.models import Hold
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES
from web.pages.live import kwh

# How the energy was measured, by the estimate's source (sessions/controller/metering.py): said
# alone (the receipt's "How it was measured" cell, the PDF, the API's `data_source`), and inside
# a sentence after "measured by", where German needs another case ("den Energiezähler").
MEASURED_BY_LABEL = {
    "energy_added": gettext_lazy("The car's energy counter"),
    "meter": gettext_lazy("The charger's meter"),
    "soc": gettext_lazy("The car's battery level, times the battery's capacity"),
    "power": gettext_lazy("The car's charging power and battery level"),
    "none": gettext_lazy("The charging power and the time it charged (the car sent no energy figure)"),
}
MEASURED_BY = {
    "energy_added": gettext_lazy("the car's energy counter"),
    "meter": gettext_lazy("the charger's meter"),
    "soc": gettext_lazy("the car's battery level, times the battery's capacity"),
    "power": gettext_lazy("the car's charging power and battery level"),
    "none": gettext_lazy("the charging power and the time it charged (the car sent no energy figure)"),
}


@dataclass(frozen=True)
class ReceiptFigures:
    purchased_wh: int
    billed_wh: int  # final once settled; before that, the estimate so far (at most the purchase)
    estimate_wh: int
    low_wh: int
    high_wh: int
    returned_wh: int | None  # back in the wallet (None while the session runs)
    not_charged_wh: int  # delivered (as estimated) but not billed: unproven or past the purchase
    amount_minor: int
    vat_minor: int
    net_minor: int
    vat_rate: Decimal
    currency: str
    measured_by: str  # the source code ("energy_added", "soc", "meter", "none")
    final: bool

    @property
    def billed_kwh(self) -> float:
        return self.billed_wh / 1000

    @property
    def amount(self) -> str:
        return formats.format_money(self.amount_minor, self.currency)

    @property
    def vat(self) -> str:
        return formats.format_money(self.vat_minor, self.currency)

    @property
    def net(self) -> str:
        return formats.format_money(self.net_minor, self.currency)

    @property
    def vat_percent(self) -> Decimal:
        return self.vat_rate * 100

    @property
    def measured_by_label(self) -> str:
        """How the energy was measured, said alone."""
        return str(MEASURED_BY_LABEL.get(self.measured_by, MEASURED_BY_LABEL["none"]))

    @property
    def measured_by_words(self) -> str:
        """How the energy was measured, as the end of "measured by …"."""
        return str(MEASURED_BY.get(self.measured_by, MEASURED_BY["none"]))

    @property
    def why(self) -> str:
        """Why this much is billed, in a sentence or two."""
        if not self.final:
            return _("The session is still running: the figures are provisional.")
        if self.billed_wh == 0 and self.estimate_wh == 0:
            return _("Nothing was delivered, so nothing is billed.")
        if self.billed_wh >= self.purchased_wh:
            text = _("You bought %(purchased)s kWh and the car took at least that much, measured by %(how)s.") % {
                "purchased": kwh(self.purchased_wh),
                "how": self.measured_by_words,
            }
        else:
            text = _("You pay for %(billed)s kWh: what the car took as measured by %(how)s.") % {
                "billed": kwh(self.billed_wh),
                "how": self.measured_by_words,
            }
        if self.not_charged_wh > 0:
            text += " " + _("We do not charge for the other %(extra)s kWh of our estimate.") % {
                "extra": kwh(self.not_charged_wh)
            }
        return text

    @property
    def range_words(self) -> str:
        """The range the delivered energy lies in."""
        if self.high_wh - self.low_wh < 10:
            return _("The car took %(best)s kWh.") % {"best": kwh(self.estimate_wh)}
        return _("The car took between %(low)s and %(high)s kWh, most likely %(best)s kWh.") % {
            "low": kwh(self.low_wh),
            "high": kwh(self.high_wh),
            "best": kwh(self.estimate_wh),
        }

    def as_api(self) -> dict:
        return {
            "billed_wh": self.billed_wh,
            "amount_minor": self.amount_minor,
            "net_minor": self.net_minor,
            "vat_minor": self.vat_minor,
            "vat_rate": self.vat_rate,
            "measured_by": self.measured_by,
            "explanation": f"{self.why} {self.range_words}",
        }


def receipt_figures(session: ChargingSession) -> ReceiptFigures:
    # Imported here: selectors imports this module for the session view.
    from web.pages.selectors import energy_cost_minor

    final = session.status not in OPEN_STATUSES and session.billed_wh is not None
    estimate = session.delivered_wh
    billed = session.billed_wh if final else min(session.delivered_low_wh or estimate, session.purchased_wh)
    hold = session.hold
    amount = energy_cost_minor(hold=hold, wallet_id=hold.wallet_id if hold else None, energy_wh=billed)
    vat_rate = settings.VAT_RATE
    vat = pricing.vat_share_minor(amount, vat_rate=vat_rate)
    returned = hold.released_wh if hold is not None and hold.status != Hold.Status.ACTIVE else None
    return ReceiptFigures(
        purchased_wh=session.purchased_wh,
        billed_wh=billed,
        estimate_wh=estimate,
        low_wh=min(session.delivered_low_wh, estimate),
        high_wh=max(session.delivered_high_wh, estimate),
        returned_wh=returned,
        not_charged_wh=max(0, estimate - billed) if final else 0,
        amount_minor=amount,
        vat_minor=vat,
        net_minor=amount - vat,
        vat_rate=vat_rate,
        currency=settings.CURRENCY,
        measured_by=session.data_source or "none",
        final=final,
    )
