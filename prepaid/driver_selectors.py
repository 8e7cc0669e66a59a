"""Reads for the driver pages: a charging session as the driver sees it (live and on the receipt).

Money for energy comes from the credit lots it is (or will be) drawn from, FIFO, at each lot's
own price, so the page shows what the wallet really pays, whatever package bought the energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.shortcuts import get_object_or_404

from payments import pricing
from prepaid.models import CreditLot, Hold, LotConsumption
from sessions import clock
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES

# The status words the driver sees (the machine reason adds the why).
STATUS_LABELS = {
    "requested": "Waiting for the car",
    "starting": "Starting",
    "charging": "Charging",
    "stopping": "Stopping",
    "completed": "Done",
    "failed": "Did not start",
    "interrupted": "Stopped",
}


def session_for_user(*, user, public_id) -> ChargingSession:
    """The user's session; Http404 for anyone else's (no hint that it exists)."""
    return get_object_or_404(ChargingSession.objects.select_related("vehicle", "hold"), user=user, public_id=public_id)


def sessions_for_user(*, user, limit: int = 20):
    return ChargingSession.objects.filter(user=user).select_related("vehicle").order_by("-created_at", "-id")[:limit]


def open_session_for_vehicle(*, vehicle) -> ChargingSession | None:
    return ChargingSession.objects.filter(vehicle=vehicle, status__in=OPEN_STATUSES).first()


def _share(amount_minor: int, part_wh: int, whole_wh: int) -> Decimal:
    return Decimal(amount_minor) * Decimal(part_wh) / Decimal(whole_wh)


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def energy_cost_minor(*, hold: Hold | None, wallet_id: int | None, energy_wh: int) -> int:
    """The money of `energy_wh` of this hold: its recorded lot draws once settled, else the draw
    it would make now from the wallet's lots (bonus lots first, at no money, then FIFO)."""
    if energy_wh <= 0:
        return 0
    if hold is not None and hold.status != Hold.Status.ACTIVE:
        total = Decimal(0)
        for draw in LotConsumption.objects.filter(hold=hold).select_related("lot"):
            total += _share(draw.lot.amount_minor, draw.energy_wh, draw.lot.energy_wh)
        return _round(total)
    total, left = Decimal(0), energy_wh
    for lot in CreditLot.objects.filter(wallet_id=wallet_id, remaining_wh__gt=0).consumption_order():
        take = min(left, lot.remaining_wh)
        total += _share(lot.amount_minor, take, lot.energy_wh)
        left -= take
        if left <= 0:
            break
    if left > 0:  # not covered by lots (should not happen: the hold reserved it): list price
        price = pricing.price_minor_for(left, price_per_kwh=settings.PRICE_PER_KWH, currency=settings.CURRENCY)
        total += Decimal(price)
    return _round(total)


@dataclass(frozen=True)
class SessionView:
    """Everything the live page and the receipt show, in display units."""

    session: ChargingSession
    status_label: str
    purchased_kwh: float
    delivered_kwh: float
    delivered_low_kwh: float
    delivered_high_kwh: float
    percent: int
    power_kw: float | None
    eta_minutes: int | None
    money_used: str
    money_used_minor: int
    data_age_s: int | None
    is_open: bool
    stop_requested: bool
    billed_kwh: float | None
    overshoot_kwh: float | None
    returned_kwh: float | None
    vat: str
    vat_percent: Decimal
    data_source: str

    @property
    def detail(self) -> str:
        """The reason in words, unless it only repeats the status label ("Charging" / "Charging.")."""
        message = self.session.reason_message
        return "" if message.rstrip(".").lower() == self.status_label.lower() else message

    @property
    def data_age(self) -> str:
        age = self.data_age_s
        if age is None:
            return "no reading yet"
        if age < 90:
            return f"{age} s ago"
        if age < 5400:
            return f"{round(age / 60)} min ago"
        return f"{age / 3600:.1f} h ago"

    def as_json(self) -> dict:
        s = self.session
        return {
            "status": s.status,
            "status_label": self.status_label,
            "reason": s.reason,
            "reason_message": self.detail,
            "purchased_kwh": self.purchased_kwh,
            "delivered_kwh": self.delivered_kwh,
            "percent": self.percent,
            "power_kw": self.power_kw,
            "eta_minutes": self.eta_minutes,
            "money_used": self.money_used,
            "data_age_s": self.data_age_s,
            "data_age": self.data_age,
            "is_open": self.is_open,
            "stop_requested": self.stop_requested,
            "billed_kwh": self.billed_kwh,
        }


DATA_SOURCES = {
    "energy_added": "the car's energy counter",
    "soc": "the battery level (state of charge)",
    "meter": "the charger's meter",
}


def session_view(session: ChargingSession, *, now: datetime | None = None) -> SessionView:
    now = now or clock.now()
    delivered = session.billed_wh if session.billed_wh is not None else min(session.delivered_wh, session.purchased_wh)
    percent = min(100, round(100 * delivered / session.purchased_wh)) if session.purchased_wh else 0
    is_open = session.status in OPEN_STATUSES
    power_w = session.power_w if is_open and session.status == "charging" else None
    eta = None
    if power_w and power_w > 0:
        eta = max(0, round((session.purchased_wh - delivered) / power_w * 60))
    wallet_id = session.hold.wallet_id if session.hold else None
    cost = energy_cost_minor(hold=session.hold, wallet_id=wallet_id, energy_wh=delivered)
    currency = settings.CURRENCY
    age = None
    if session.last_reading_at is not None:
        age = max(0, int((now - session.last_reading_at).total_seconds()))
    returned = None
    if session.hold is not None and session.hold.status != Hold.Status.ACTIVE:
        returned = session.hold.released_wh / 1000
    return SessionView(
        session=session,
        status_label=STATUS_LABELS.get(session.status, session.status),
        purchased_kwh=session.purchased_wh / 1000,
        delivered_kwh=delivered / 1000,
        delivered_low_kwh=session.delivered_low_wh / 1000,
        delivered_high_kwh=session.delivered_high_wh / 1000,
        percent=percent,
        power_kw=round(power_w / 1000, 1) if power_w else None,
        eta_minutes=eta,
        money_used=pricing.format_money(cost, currency),
        money_used_minor=cost,
        data_age_s=age,
        is_open=is_open,
        stop_requested=bool(session.stop_reason),
        billed_kwh=session.billed_wh / 1000 if session.billed_wh is not None else None,
        overshoot_kwh=session.overshoot_wh / 1000 if session.overshoot_wh is not None else None,
        returned_kwh=returned,
        vat=pricing.format_money(pricing.vat_share_minor(cost, vat_rate=settings.VAT_RATE), currency),
        vat_percent=settings.VAT_RATE * 100,
        data_source=DATA_SOURCES.get(session.data_source, session.data_source or "no reading yet"),
    )
