"""Reads for the driver pages: a charging session as the driver sees it (live and on the receipt).

Money for energy comes from the credit lots it is (or will be) drawn from, FIFO, at each lot's
own price, so the page shows what the wallet really pays, whatever package bought the energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from django.conf import settings
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from prepaid import formats, pricing
from prepaid.models import CreditLot, Hold
from prepaid.selectors import hold_draws
from sessions import clock
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.grid import smart
from sessions.grid.selectors import price_horizon, vehicle_region
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES
from sessions.models.grid import DemandResponseEnrollment, DemandResponseEvent
from sessions.vehicles import makes
from web.i18n import session_reason
from web.pages import live
from web.pages.receipts import ReceiptFigures, receipt_figures

# The status words the driver sees (the machine reason adds the why).
STATUS_LABELS = {
    "requested": gettext_lazy("Waiting for the car"),
    "starting": gettext_lazy("Starting"),
    "charging": gettext_lazy("Charging"),
    "stopping": gettext_lazy("Stopping"),
    "completed": gettext_lazy("Done"),
    "failed": gettext_lazy("Did not start"),
    "interrupted": gettext_lazy("Stopped"),
}


# Stopping for these reasons, the stop's note (web.pages.live.stopping_note) says it better; any
# other reason (a STOP the car refused, for one) is told as the controller wrote it.
NOTE_SAYS = ("threshold", "battery_max", "driver_stop", "operator_stop", "timeout", "")


def session_for_user(*, user, public_id) -> ChargingSession:
    """The user's session; Http404 for anyone else's (no hint that it exists)."""
    return get_object_or_404(ChargingSession.objects.select_related("vehicle", "hold"), user=user, public_id=public_id)


def sessions_for_user(*, user, limit: int = 20):
    """The driver's latest sessions, each with the status word the live page uses (`label`)."""
    sessions = list(
        ChargingSession.objects.filter(user=user).select_related("vehicle").order_by("-created_at", "-id")[:limit]
    )
    for session in sessions:
        session.label = status_label(session)
    return sessions


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
        # The API's receipt lines, summed: one formula for both (prepaid.selectors.hold_draws).
        return sum(line["amount_minor"] for line in hold_draws(hold_id=hold.pk))
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
    receipt: ReceiptFigures
    estimate: live.LiveEstimate
    now: datetime
    delivered_low_now_kwh: float  # the estimate's band now (between readings: extended at the power)
    delivered_high_now_kwh: float
    note: str  # what is happening, when the status alone does not say it (a slow car, a stop)
    ends_at_kwh: float | None  # the figure a stopping session ends at

    @property
    def estimating(self) -> bool:
        """The figures are the controller's estimate extended since the last reading."""
        return self.estimate.counting

    @property
    def next_reading_at(self) -> datetime | None:
        return self.estimate.next_reading_at

    @cached_property
    def chart(self):
        # Rendered once per view: the page and its initial JSON both show it.
        return live.energy_chart(self.session, self.estimate, now=self.now)

    @property
    def detail(self) -> str:
        """The reason in words, unless it only repeats the status label ("Charging" / "Charging.").
        A stopping session says what the stop does instead (`note`)."""
        if self.session.status == "stopping" and self.note and self.session.reason in NOTE_SAYS:
            return ""
        message = session_reason(self.session)
        return "" if message.rstrip(".").lower() == self.status_label.lower() else message

    @property
    def heading(self) -> str:
        vehicle = f"{self.session.vehicle.make.title()} {self.session.vehicle.model}".strip()
        if self.is_open:
            return _("Charging your %(vehicle)s") % {"vehicle": vehicle}
        if self.session.status == "failed":
            return _("Your %(vehicle)s did not start charging") % {"vehicle": vehicle}
        return _("Charge of your %(vehicle)s") % {"vehicle": vehicle}

    @property
    def credit_back(self) -> str:
        """Once the session ended: the credit that went back to the wallet, in a line."""
        if self.is_open or not self.returned_kwh:
            return ""
        if self.session.status == "failed":
            return _("Nothing was charged: your %(kwh)s kWh of credit are back in your wallet.") % {
                "kwh": f"{self.returned_kwh:g}"
            }
        return _("The %(kwh)s kWh not used are back in your wallet.") % {"kwh": f"{self.returned_kwh:g}"}

    @property
    def data_age(self) -> str:
        age = self.data_age_s
        if age is None:
            return _("no reading yet")
        if age < 90:
            return _("%(seconds)s s ago") % {"seconds": age}
        if age < 5400:
            return _("%(minutes)s min ago") % {"minutes": round(age / 60)}
        return _("%(hours)s h ago") % {"hours": formats.format_number(age / 3600, 1)}

    def as_json(self) -> dict:
        s = self.session
        next_at = self.estimate.next_reading_at
        return {
            "now": self.now.isoformat(),
            "clock_speed": settings.SIM_SPEED,
            "estimate": self.estimate.as_json(),
            "estimating": self.estimating,
            "delivered_low_kwh": self.delivered_low_now_kwh,
            "delivered_high_kwh": self.delivered_high_now_kwh,
            "note": self.note,
            "ends_at_kwh": self.ends_at_kwh,
            "next_reading": timezone.localtime(next_at).strftime("%H:%M") if next_at else "",
            "chart": str(self.chart),
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
            "heading": self.heading,
            "credit_back": self.credit_back,
        }


def session_view(session: ChargingSession, *, now: datetime | None = None) -> SessionView:
    now = now or clock.now()
    is_open = session.status in OPEN_STATUSES
    estimate = live.live_estimate(session, now=now)
    receipt = receipt_figures(session)
    if is_open:
        best, low, high = estimate.at(now)
        delivered = min(best, session.purchased_wh)
    else:
        delivered, low, high = receipt.billed_wh, receipt.low_wh, receipt.high_wh
    percent = min(100, round(100 * delivered / session.purchased_wh)) if session.purchased_wh else 0
    power_w = session.power_w if is_open and session.status == "charging" else None
    eta = None
    if power_w and power_w > 0:
        eta = max(0, round((estimate.cap_wh - delivered) / power_w * 60))
    # Money so far: the energy as it is now estimated (the receipt's figure once settled).
    cost = receipt.amount_minor
    if is_open:
        wallet_id = session.hold.wallet_id if session.hold else None
        cost = energy_cost_minor(hold=session.hold, wallet_id=wallet_id, energy_wh=delivered)
    currency = settings.CURRENCY
    age = None
    if session.last_reading_at is not None:
        age = max(0, int((now - session.last_reading_at).total_seconds()))
    note = live.stopping_note(session, estimate, now=now) or live.slow_reporting_note(session, now=now)
    ends_at = live.ends_at_wh(session, estimate, now=now)
    return SessionView(
        session=session,
        status_label=status_label(session),
        purchased_kwh=session.purchased_wh / 1000,
        delivered_kwh=delivered / 1000,
        delivered_low_kwh=session.delivered_low_wh / 1000,
        delivered_high_kwh=session.delivered_high_wh / 1000,
        percent=percent,
        power_kw=round(power_w / 1000, 1) if power_w else None,
        eta_minutes=eta,
        money_used=formats.format_money(cost, currency),
        money_used_minor=cost,
        data_age_s=age,
        is_open=is_open,
        stop_requested=bool(session.stop_reason),
        billed_kwh=session.billed_wh / 1000 if session.billed_wh is not None else None,
        overshoot_kwh=session.overshoot_wh / 1000 if session.overshoot_wh is not None else None,
        returned_kwh=receipt.returned_wh / 1000 if receipt.returned_wh is not None else None,
        vat=formats.format_money(pricing.vat_share_minor(cost, vat_rate=settings.VAT_RATE), currency),
        vat_percent=settings.VAT_RATE * 100,
        data_source=receipt.measured_by_label,
        receipt=receipt,
        estimate=estimate,
        now=now,
        delivered_low_now_kwh=min(low, session.purchased_wh) / 1000 if is_open else low / 1000,
        delivered_high_now_kwh=min(high, session.purchased_wh) / 1000 if is_open else high / 1000,
        note=note,
        ends_at_kwh=ends_at / 1000 if ends_at is not None else None,
    )


def status_label(session: ChargingSession) -> str:
    if session.reason == "waiting_window" and session.status in OPEN_STATUSES:
        return _("Scheduled")
    return str(STATUS_LABELS.get(session.status, session.status))


# --- smart charging: the plan a driver sees before confirming, and on the live page -------------


def _money_millis(millis: int) -> str:
    return formats.format_money(smart.millis_to_minor(millis), settings.CURRENCY)


def _when(value: datetime) -> str:
    """A time as the driver reads it: in their time zone (web.timezones), with its abbreviation."""
    local = timezone.localtime(value)
    return f"{formats.format_when(local, weekday=True)} {local.tzname()}"


@dataclass(frozen=True)
class WindowView:
    start: datetime
    end: datetime
    energy_kwh: float

    @property
    def label(self) -> str:
        start, end = timezone.localtime(self.start), timezone.localtime(self.end)
        until = f"{end:%H:%M}" if end.date() == start.date() else formats.format_when(end, weekday=True)
        return _("%(start)s–%(end)s %(zone)s: about %(energy)s") % {
            "start": formats.format_when(start, weekday=True),
            "end": until,
            "zone": start.tzname(),
            "energy": formats.format_kwh(self.energy_kwh, 1),
        }


def _window_views(windows) -> list[WindowView]:
    return [WindowView(w.start, w.end, round(w.energy_wh / 1000, 1)) for w in windows]


@dataclass(frozen=True)
class PlanPreview:
    """What a charge by a deadline would do, from the real planner on the region's prices."""

    region: str
    deadline: datetime | None
    prices_until: datetime | None
    energy_wh: int  # what the plan charges: the purchase, cut at the battery maximum
    purchased_wh: int
    plan: smart.Plan | None  # None: no price is known for the region (the charge starts now)
    max_soc_percent: int = 80

    @property
    def has_prices(self) -> bool:
        return self.plan is not None

    @property
    def deadline_label(self) -> str:
        return _when(self.deadline) if self.deadline else ""

    @property
    def energy_kwh(self) -> float:
        return self.energy_wh / 1000

    @property
    def purchased_kwh(self) -> float:
        return self.purchased_wh / 1000

    @property
    def capped(self) -> bool:
        return self.energy_wh < self.purchased_wh

    @property
    def windows(self) -> list[WindowView]:
        return _window_views(self.plan.windows) if self.plan else []

    @property
    def cost(self) -> str:
        return _money_millis(self.plan.cost_millis) if self.plan else ""

    @property
    def immediate_cost(self) -> str:
        return _money_millis(self.plan.immediate_cost_millis) if self.plan else ""

    @property
    def saving_minor(self) -> int:
        return smart.millis_to_minor(self.plan.saving_millis) if self.plan else 0

    @property
    def saving(self) -> str:
        return formats.format_money(max(0, self.saving_minor), settings.CURRENCY)


def _blocked_for_vehicle(vehicle, region: str, now: datetime) -> list[tuple[datetime, datetime]]:
    """Grid events ahead that an enrolled car's new session would sit out (none if not enrolled)."""
    if not DemandResponseEnrollment.objects.filter(vehicle=vehicle, active=True).exists():
        return []
    events = DemandResponseEvent.objects.filter(ends_at__gt=now).filter(Q(region=region) | Q(vehicles=vehicle))
    return list(events.distinct().values_list("starts_at", "ends_at"))


def charge_preview(*, vehicle, energy_wh: int, deadline: datetime | None, now: datetime | None = None) -> PlanPreview:
    """Plan a charge of `energy_wh` on `vehicle` by `deadline` as the controller would at the
    start: the car's last known level (maximum and minimum), its make's power, the region's
    prices and the grid events it is enrolled for. The controller re-plans at the first reading."""
    now = now or clock.now()
    region = vehicle_region(vehicle)
    energy = energy_wh
    urgent = 0
    if vehicle.soc_bp is not None and vehicle.capacity_wh:
        energy = min(energy, smart.soc_energy_wh(vehicle.soc_bp, vehicle.max_soc_bp, vehicle.capacity_wh))
        urgent = smart.soc_energy_wh(vehicle.soc_bp, vehicle.min_soc_bp, vehicle.capacity_wh)
    until = (deadline or now) + grid.HORIZON
    prices = grid.prices_between(region, now, until)
    plan = None
    if prices:
        plan = smart.plan_charge(
            now=now,
            energy_wh=energy,
            power_w=makes.traits_for(vehicle.make).nominal_power_w,
            prices=prices,
            deadline=deadline,
            urgent_wh=urgent,
            blocked=_blocked_for_vehicle(vehicle, region, now),
            window_cost_millis=settings.SMART_WINDOW_COST_MINOR * 1000,
            horizon=until - now,
        )
    return PlanPreview(
        region=region,
        deadline=deadline,
        prices_until=price_horizon(region=region, now=now),
        energy_wh=energy,
        purchased_wh=energy_wh,
        plan=plan,
        max_soc_percent=vehicle.max_soc_bp // 100,
    )


PLAN_STATES = {
    "planning": gettext_lazy("Planning: the windows are chosen at the car's first reading."),
    "waiting": gettext_lazy("Waiting for cheap hours."),
    "charging": gettext_lazy("Charging in a cheap window."),
    "paused_plan": gettext_lazy("Paused until the next cheap window."),
    "paused_grid": gettext_lazy("Paused for a grid event."),
    "ended": gettext_lazy("Ended."),
}
# The same states with the time they end.
PLAN_RESUMES = {
    "paused_plan": gettext_lazy("Paused until the next cheap window; resumes at %(at)s."),
    "paused_grid": gettext_lazy("Paused for a grid event; resumes at %(at)s."),
}


def _plan_state(session: ChargingSession, plan: grid_selectors.PlanView, now: datetime) -> str:
    if session.status not in OPEN_STATUSES:
        return "ended"
    if plan.paused:
        return "paused_grid" if plan.pause_reason == "grid" else "paused_plan"
    if session.status == "requested":
        if not plan.windows:
            return "planning"
        first = next((w for w in plan.windows if w.end > now), None)
        return "waiting" if first is not None and first.start > now else "charging"
    return "charging"


def session_plan_view(session: ChargingSession, *, now: datetime | None = None) -> dict | None:
    """The smart plan of a session for the live page and its JSON (None: a plain session)."""
    plan = grid_selectors.session_plan(session=session)
    if plan is None:
        return None
    now = now or clock.now()
    state = _plan_state(session, plan, now)
    label = str(PLAN_STATES[state])
    if state.startswith("paused") and plan.resume_at:
        label = PLAN_RESUMES[state] % {"at": _when(plan.resume_at)}
    elif state == "waiting":
        first = next(w for w in plan.windows if w.end > now)
        # Without a deadline (a plain session in a grid event) only the event makes it wait.
        if plan.deadline:
            label = _("Waiting for cheap hours: charging starts %(at)s.") % {"at": _when(first.start)}
        else:
            label = _("Waiting for the grid event to end: charging starts %(at)s.") % {"at": _when(first.start)}
    elif state == "charging" and not plan.deadline:
        label = _("Charging.")
    deadline = ""
    if plan.deadline:
        if plan.windows and not plan.meets_deadline:
            deadline = _("Ready by %(at)s is not reachable: the car charges as early as it can after it.") % {
                "at": _when(plan.deadline)
            }
        else:
            deadline = _("Ready by %(at)s.") % {"at": _when(plan.deadline)}
    currency = settings.CURRENCY
    return {
        "state": state,
        "state_label": label,
        "deadline": deadline,
        "windows": [w.label for w in _window_views(plan.windows) if w.end > now or state == "ended"],
        "expected_cost": formats.format_money(plan.expected_cost_minor, currency) if plan.windows else "",
        "immediate_cost": formats.format_money(plan.immediate_cost_minor, currency) if plan.windows else "",
        "saving": formats.format_money(max(0, plan.saving_minor), currency) if plan.windows else "",
        "saving_minor": plan.saving_minor,
        "replans": plan.replans,
    }


@dataclass(frozen=True)
class PackageFit:
    """Which packages fit between a car's last known level and its maximum (the buy page)."""

    vehicle: object
    soc_percent: int
    max_soc_percent: int
    room_kwh: float
    packages: list


def package_fit(*, vehicles) -> list[PackageFit]:
    """Per car with a known level and capacity, the packages that fit under its maximum
    (`grid_selectors.packages_fitting`); cars without them are left out (nothing to say)."""
    fits = []
    for vehicle in vehicles:
        if vehicle.soc_bp is None or not vehicle.capacity_wh:
            continue
        room = smart.soc_energy_wh(vehicle.soc_bp, vehicle.max_soc_bp, vehicle.capacity_wh)
        fits.append(
            PackageFit(
                vehicle=vehicle,
                soc_percent=vehicle.soc_percent,
                max_soc_percent=vehicle.max_soc_bp // 100,
                room_kwh=round(room / 1000, 1),
                packages=grid_selectors.packages_fitting(vehicle=vehicle),
            )
        )
    return fits
