"""The live page's figures between the car's readings, and the energy chart.

The car reports every minute (Tesla) to every half hour (GM); in between, the page shows the
controller's own estimate: the energy at the last reading with its band, extended at the measured
power (and its band) up to now, never past the energy the session ends at. The server gives the
estimate's parameters (`LiveEstimate.as_json`); the page's script counts on from them each
second, and without a script the page shows the figures as of its rendering.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from sessions import clock
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models import ChargingSession
from sessions.vehicles import makes

# A make whose data comes this rarely (or rarer) gets a word while the START is awaited.
SLOW_REPORTING_S = 180


@dataclass(frozen=True)
class LiveEstimate:
    """Delivered energy at `as_of` (the last reading's data time) with its band, the power and its
    band it grows at, and the energy it stops growing at (`cap_wh`)."""

    as_of: datetime | None
    delivered_wh: int
    low_wh: int
    high_wh: int
    power_w: int
    power_low_w: int
    power_high_w: int
    cap_wh: int
    counting: bool  # the car is charging: the estimate grows between readings
    until: datetime | None  # it grows no further than this moment (a stop already sent), if set
    next_reading_at: datetime | None

    def at(self, when: datetime) -> tuple[int, int, int]:
        """(best, low, high) Wh at `when`."""
        if not self.counting or self.as_of is None:
            return self.delivered_wh, self.low_wh, self.high_wh
        end = min(when, self.until) if self.until else when
        hours = max(0.0, (end - self.as_of).total_seconds()) / 3600

        def grow(base: int, power: int) -> int:
            # Up to the energy the session ends at; a figure already past it stays where it is.
            return int(min(self.cap_wh, base + power * hours)) if base < self.cap_wh else base

        return (
            grow(self.delivered_wh, self.power_w),
            grow(self.low_wh, self.power_low_w),
            grow(self.high_wh, self.power_high_w),
        )

    def as_json(self) -> dict:
        return {
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "delivered_wh": self.delivered_wh,
            "low_wh": self.low_wh,
            "high_wh": self.high_wh,
            "power_w": self.power_w,
            "power_low_w": self.power_low_w,
            "power_high_w": self.power_high_w,
            "cap_wh": self.cap_wh,
            "counting": self.counting,
            "until": self.until.isoformat() if self.until else None,
            "next_reading_at": self.next_reading_at.isoformat() if self.next_reading_at else None,
        }


def end_wh(session: ChargingSession) -> int:
    """The energy the session ends at: the purchase, or less where the battery's maximum cuts it."""
    return grid.target_wh(session)


def _paused(session: ChargingSession) -> bool:
    plan = grid_selectors.session_plan(session=session)
    return plan is not None and plan.paused


def live_estimate(session: ChargingSession, *, now: datetime | None = None) -> LiveEstimate:
    now = now or clock.now()
    cap = end_wh(session)
    as_of = session.last_reading_at
    power = session.power_w or 0
    counting = session.status in ("charging", "stopping") and as_of is not None and power > 0 and not _paused(session)
    until = None
    if session.status == "stopping" and session.stop_reason != "threshold":
        # A stop the driver (or anyone) asked for: the car stops about when the STOP lands; the
        # estimate counts no further than the STOP's sending (what the car adds after it is small).
        until = session.stop_first_sent_at or session.stop_requested_at or now
    next_reading = None
    if session.status in ("requested", "starting", "charging", "stopping") and session.reason != "waiting_window":
        # The controller's next step reads the car (or acts, then reads).
        next_reading = session.next_action_at
    if next_reading is not None and as_of is not None:
        # A read brings new data only once the car has refreshed it.
        next_reading = max(next_reading, as_of + timedelta(seconds=session.telemetry_refresh_s or 60))
    if next_reading is not None and next_reading < now:
        next_reading = now
    return LiveEstimate(
        as_of=as_of,
        delivered_wh=session.delivered_wh,
        low_wh=session.delivered_low_wh,
        high_wh=max(session.delivered_high_wh, session.delivered_wh),
        power_w=power,
        power_low_w=session.power_low_w if session.power_low_w is not None else power,
        power_high_w=session.power_high_w if session.power_high_w is not None else power,
        cap_wh=cap,
        counting=counting,
        until=until,
        next_reading_at=next_reading,
    )


def kwh(wh: float, places: int = 2) -> str:
    """Wh as kWh in the active language's number format ("1.50" / "1,50")."""
    return number_format(wh / 1000, places)


def minutes_words(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return ngettext("about %(n)d minute", "about %(n)d minutes", minutes) % {"n": minutes}


def slow_reporting_note(session: ChargingSession, *, now: datetime | None = None) -> str:
    """While the START is awaited on a car whose data comes rarely: say so, with the make's
    typical delay (sessions/vehicles/makes.py, from docs/reference/makes.md), so the driver does
    not take the wait for a failure."""
    if session.status not in ("requested", "starting") or session.reason == "waiting_window":
        return ""
    refresh = makes.traits_for(session.vehicle.make).telemetry_refresh_s
    if refresh < SLOW_REPORTING_S:
        return ""
    make = session.vehicle.make if len(session.vehicle.make) <= 3 else session.vehicle.make.title()
    minutes = max(1, round(refresh / 60))
    every = ngettext("every minute", "every %(n)d minutes", minutes) % {"n": minutes}
    return _(
        "Your %(make)s reports its data %(every)s, so the charge shows here only a few minutes after it "
        "has begun. Nothing is wrong while you wait."
    ) % {"make": make, "every": every}


def stopping_note(session: ChargingSession, estimate: LiveEstimate, *, now: datetime | None = None) -> str:
    """What a stopping session is doing, with the figure the car ends at."""
    if session.status != "stopping":
        return ""
    if session.stop_reason in ("threshold", "battery_max"):
        return _("Sending the stop so that the car ends at %(end)s kWh.") % {"end": kwh(estimate.cap_wh)}
    best, _low, _high = estimate.at(now or clock.now())
    return _("Sending the stop: the car ends at about %(end)s kWh. You pay only for what was delivered.") % {
        "end": kwh(best)
    }


def ends_at_wh(session: ChargingSession, estimate: LiveEstimate, *, now: datetime | None = None) -> int | None:
    """The figure a stopping (or stopped) session ends at, for the page."""
    if session.status == "stopping":
        if session.stop_reason in ("threshold", "battery_max"):
            return estimate.cap_wh
        return estimate.at(now or clock.now())[0]
    return None


# --- the chart ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    wh: int


def reading_points(session: ChargingSession) -> list[ChartPoint]:
    """The accepted readings as delivered energy: the car's counter since the session began, or
    its level since the start times the capacity the controller plans on (makes.USABLE_FRACTION)."""
    since = session.start_sent_at or session.created_at
    points = []
    capacity = session.vehicle.capacity_wh or 0
    for r in session.readings.filter(accepted=True, taken_at__gte=since).order_by("taken_at", "id"):
        if r.energy_added_wh is not None:
            wh = r.energy_added_wh - (session.baseline_energy_wh or 0)
        elif r.soc_bp is not None and session.start_soc_bp is not None and capacity:
            wh = (r.soc_bp - session.start_soc_bp) * capacity * makes.USABLE_FRACTION / 10_000
        else:
            continue
        points.append(ChartPoint(r.taken_at, max(0, int(wh))))
    return points


LEGEND_FONT = 12  # px: the chart is drawn at a phone's width, so its text is read at this size
LEGEND_LINE = 16

# Advance widths (em) of DejaVu Sans, the sans-serif of Debian and many Linux desktops and among
# the widest of the usual ones: a legend laid out with them fits where the font is narrower.
_NARROW = set("fijlrtI.,:;'!|()[]- ")
_WIDE = set("mwMW%")


def text_width(text: str, size: float) -> float:
    """The width a line of text takes at `size` px, erring wide."""
    em = sum(0.42 if c in _NARROW else 1.0 if c in _WIDE else 0.76 if c.isupper() else 0.64 for c in text)
    return em * size


def _legend_layout(items, *, left: float, width: float) -> list[tuple[float, int, str, str]]:
    """(x, line, shape, label) of each legend entry: side by side, on the next line when an entry
    would reach past `width` (German labels are longer than English ones)."""
    placed, x, line = [], left, 0
    for shape, label in items:
        entry = 16 + text_width(str(label), LEGEND_FONT)
        if x > left and x + entry > width:
            x, line = left, line + 1
        placed.append((round(x, 1), line, shape, label))
        x += entry + 12
    return placed


def energy_chart(
    session: ChargingSession, estimate: LiveEstimate, *, now: datetime | None = None, width: int = 360
) -> SafeString:
    """Energy over time as inline SVG: the readings as points, the controller's estimate as a line
    with its band, the purchase (and the battery's maximum, if lower) as a horizontal line.
    360 units wide so its text is its own size on a phone (the page scales it to the column)."""
    now = now or clock.now()
    left, right, top, bottom = 40, 10, 14, 34
    plot_w, plot_h = width - left - right, 200 - top - bottom
    legend = _legend_layout(
        [
            ('<circle cx="{}" cy="{}" r="4" fill="#0b5cad"/>', _("car's readings")),
            ('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#2b7a4b" stroke-width="2"/>', _("estimate")),
            ('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#b35900" stroke-width="1.5"/>', _("purchase")),
        ],
        left=left,
        width=width - right,
    )
    # A legend that needs more than one line makes the chart taller; the plot keeps its size.
    height = top + plot_h + bottom + LEGEND_LINE * max(row for _x, row, _s, _l in legend)
    start = session.charging_at or session.start_sent_at or session.created_at
    end = session.ended_at or now
    if estimate.as_of and estimate.as_of > end:
        end = estimate.as_of
    if end <= start:
        end = start + timedelta(minutes=1)
    points = reading_points(session)
    best, low, high = estimate.at(end)
    top_wh = max([session.purchased_wh, high, *(p.wh for p in points)]) * 1.08 or 1000
    span = (end - start).total_seconds()

    def x(at: datetime) -> str:
        return f"{left + plot_w * min(1.0, max(0.0, (at - start).total_seconds() / span)):.1f}"

    def y(wh: float) -> str:
        return f"{top + plot_h * (1 - min(1.0, max(0.0, wh / top_wh))):.1f}"

    title = _("Energy delivered over time")
    parts: list[str] = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart energy-chart" id="energy-chart" role="img" '
            'viewBox="0 0 {} {}" width="100%" aria-labelledby="energy-chart-title"><title id="energy-chart-title">{}'
            "</title>",
            width,
            height,
            title,
        ),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>',
            left,
            top + plot_h,
            width - right,
            top + plot_h,
            left,
            top,
            left,
            top + plot_h,
        ),
        format_html('<text x="{}" y="{}" font-size="12" text-anchor="end">0</text>', left - 4, top + plot_h + 4),
    ]
    # The band and the estimate: from the start (nothing delivered) to the last reading, then
    # extended to now at the measured power.
    if estimate.as_of is not None:
        as_of = max(start, estimate.as_of)
        band = [(start, 0), (as_of, estimate.high_wh), (end, high), (end, low), (as_of, estimate.low_wh)]
        parts.append(
            format_html(
                '<polygon class="band" points="{}" fill="#2b7a4b" fill-opacity="0.15"><title>{}</title></polygon>',
                " ".join(f"{x(t)},{y(v)}" for t, v in band),
                _("The estimate's range"),
            )
        )
        parts.append(
            format_html(
                '<polyline class="estimate" points="{}" fill="none" stroke="#2b7a4b" stroke-width="2"/>',
                f"{x(start)},{y(0)} {x(as_of)},{y(estimate.delivered_wh)}",
            )
        )
        if end > as_of:
            parts.append(
                format_html(
                    '<polyline class="estimate-ahead" points="{}" fill="none" stroke="#2b7a4b" stroke-width="2" '
                    'stroke-dasharray="5 4"/>',
                    f"{x(as_of)},{y(estimate.delivered_wh)} {x(end)},{y(best)}",
                )
            )
    purchase_y = y(session.purchased_wh)
    parts.append(
        format_html(
            '<line class="purchase" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#b35900" stroke-width="1.5"/>'
            '<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>',
            left,
            purchase_y,
            width - right,
            purchase_y,
            left - 4,
            f"{float(purchase_y) + 4:.1f}",
            kwh(session.purchased_wh, 1),
        )
    )
    if estimate.cap_wh < session.purchased_wh:
        parts.append(
            format_html(
                '<line class="cap" x1="{}" y1="{}" x2="{}" y2="{}" stroke="#b35900" stroke-dasharray="2 3"/>',
                left,
                y(estimate.cap_wh),
                width - right,
                y(estimate.cap_wh),
            )
        )
    for point in points:
        parts.append(
            format_html(
                '<circle class="reading" cx="{}" cy="{}" r="4" fill="#0b5cad"><title>{}</title></circle>',
                x(point.at),
                y(point.wh),
                _("Reading at %(time)s: %(energy)s kWh")
                % {"time": timezone.localtime(point.at).strftime("%H:%M"), "energy": kwh(point.wh)},
            )
        )
    # Time under the axis (first and last, in the driver's time zone) and a legend line.
    for at, anchor in ((start, "start"), (end, "end")):
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="12" text-anchor="{}">{}</text>',
                x(at),
                top + plot_h + 15,
                anchor,
                timezone.localtime(at).strftime("%H:%M"),
            )
        )
    parts.append('<g class="legend">')
    for lx, row, shape, label in legend:
        ly = top + plot_h + bottom - 6 + LEGEND_LINE * row
        if shape.startswith("<circle"):
            parts.append(format_html(shape, lx + 4, ly - 4))
        else:
            parts.append(format_html(shape, lx, ly - 4, lx + 12, ly - 4))
        parts.append(format_html('<text x="{}" y="{}" font-size="{}">{}</text>', lx + 16, ly, LEGEND_FONT, label))
    parts.append("</g></svg>")
    return mark_safe("".join(str(p) for p in parts))  # noqa: S308 - every part was escaped above
