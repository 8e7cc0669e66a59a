"""Pure metering: turn a session's vehicle readings into an energy estimate with its uncertainty.

No database, no I/O, no Django: the controller passes the readings it stored and a `MeterContext`,
and gets back a `MeterEstimate` plus the list of readings it ignored and why. Deterministic, so the
controller, the offline evaluation harness and the tests all see the same numbers.

Sources, best first: the car's (or a charger meter's) session energy counter (`energy_added_wh`),
then the battery level (`soc_bp`, basis points) times the pack capacity. Times are the readings'
data age (`SC-Data-Age`), never the time we fetched them: energy kept flowing in between.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

logger = logging.getLogger(__name__)

SOURCE_ENERGY_ADDED = "energy_added"
SOURCE_SOC = "soc"
SOURCE_METER = "meter"
# The car's charging power (v3 `charge-wattage`) read with its battery level.
SOURCE_POWER = "power"
SOURCES = (SOURCE_ENERGY_ADDED, SOURCE_SOC, SOURCE_METER, SOURCE_POWER)

CHARGING = "CHARGING"
NOT_CHARGING = "NOT_CHARGING"
FULLY_CHARGED = "FULLY_CHARGED"

SOC_FULL_BP = 10_000

# Rejection rules (the `rule` of a `Rejection`); each one is tested on its own.
RULE_GARBAGE = "garbage"
RULE_OUT_OF_ORDER = "out_of_order"
RULE_DUPLICATE = "duplicate"
RULE_NON_MONOTONIC = "non_monotonic"
RULE_IMPLAUSIBLE_JUMP = "implausible_jump"
RULE_SPURIOUS_RESET = "spurious_reset"
# Not a rejection: a counter reset is accepted and recorded as an event.
EVENT_COUNTER_RESET = "counter_reset"


@dataclass(frozen=True)
class Reading:
    """One read of the vehicle. `taken_at` is when the car recorded the data (SC-Data-Age)."""

    taken_at: datetime
    fetched_at: datetime
    source: str
    energy_added_wh: int | None = None
    soc_bp: int | None = None
    power_w: int | None = None
    charge_state: str | None = None
    is_plugged_in: bool | None = None
    # The car says its pack heater runs (`tractionbattery-isheateractive`): part of the wattage
    # then heats the pack and never reaches the battery. None: not said (most makes).
    heater_active: bool | None = None
    # "poll": the answer to a read of the car made at `fetched_at`; "webhook": a delivery, which
    # may come late; "": not known (see MeterContext.level_event_lag_s).
    via: str = ""


VIA_POLL = "poll"


@dataclass(frozen=True)
class MeterContext:
    """What the estimate needs besides the readings; all energy in Wh, power in W, SoC in bp."""

    capacity_wh: int
    soc_step_bp: int = 100
    # Resolution of the energy counter (Tesla reports 0.01 kWh); 0 when the car has none.
    energy_step_wh: int = 10
    start_soc_bp: int | None = None
    # Counter value at session start; Tesla-like counters restart at 0 with each charge.
    start_energy_added_wh: int = 0
    nominal_power_w: int = 11_000
    max_power_w: int | None = None
    # Relative 1-sigma trust in the nominal power when no readings say otherwise.
    nominal_power_uncertainty: float = 0.10
    # The nominal power is what the car could take, not what this session's charger gives: the
    # prior's centre is this fraction of it (1.0 = take the nominal at its word).
    nominal_power_fraction: float = 1.0
    # `capacity_wh` is the nominal capacity the API reports; the pack really holds a fraction of it
    # that no reading of an SoC-only car can tell (docs/reference/makes.md §3: net is 85–100 % of the figure).
    # Energy from levels is planned on `usable_fraction` of it, and never proven above what
    # `usable_low_fraction` allows (the low bound: what may be billed). 1.0 = the capacity is exact.
    usable_fraction: float = 1.0
    usable_low_fraction: float = 1.0
    # A percent of level does not hold the same energy everywhere: a lithium-ion pack's voltage
    # climbs from empty to full, so a level near empty holds less than capacity / 100. At level s
    # a percent holds (1 + level_energy_rise x (s − ½)) of the average; what levels prove below
    # half full is scaled down by it (0 = every percent alike).
    level_energy_rise: float = 0.0
    # What levels prove allows each end's level to show this many basis points of the capacity
    # off, a rounding jitter near a boundary (makes.LEVEL_JITTER_BP; 0 = levels exactly floored).
    level_jitter_bp: int = 0
    # When charging really began (START sent + latency, narrowed by readings) and its half-width.
    charging_started_at: datetime | None = None
    charging_started_uncertainty_s: float = 0.0
    # Fraction of charger energy that reaches the battery. The counter and the SoC measure battery
    # energy; estimates are divided by this to count charger-side energy. 1.0 = count what the car
    # reports (the simulator's default is 0.92 between its wall and battery figures).
    efficiency: float = 1.0
    # Battery energy per unit of charger-side energy of the car's own charging (its AC-DC loss).
    # The nominal and the reported power are charger-side figures; the counter and the SoC see
    # the battery side, so the power prior is scaled by this. 0.92 is a typical on-board charger
    # at 11 kW (the simulator's profiles use it). A prior left charger-side would sit ~8 % above
    # what SoC-only cars put in, and pull their energy estimate (power x time) up with it.
    charger_efficiency: float = 0.92
    # A real car's power wanders a little around the line the SoC model assumes: widen its bounds.
    power_model_margin: float = 0.005
    # Power is estimated from readings in this window before the latest one.
    power_window_s: float = 1800.0
    min_power_span_s: float = 120.0
    # Cars whose data is refreshed at each level step while charging (Hyundai/Kia Gen2: every
    # 10 %, docs/reference/makes.md §2b), not on a clock: a read that returns an older level still
    # shows the level the car has when it was read, since a step would have refreshed the data.
    # The reading then counts as taken at its fetch less this lag (the cloud and Smartcar noticing
    # a step); without it, levels an hour old were extrapolated at the power before a drop and the
    # STOP went out at half the purchase. None: data is as old as its time says.
    level_event_lag_s: float | None = None

    @property
    def power_ceiling_w(self) -> int:
        # A car never draws much more than its nominal AC power; 1.5x leaves room for a wrong nominal.
        return self.max_power_w if self.max_power_w else int(self.nominal_power_w * 1.5)


@dataclass(frozen=True)
class Rejection:
    """A reading (or one value of it) that metering ignored, with the rule that caught it."""

    index: int
    taken_at: datetime | None
    rule: str
    detail: str


@dataclass(frozen=True)
class MeterEstimate:
    """Delivered energy at `as_of` (data age of the latest accepted reading) and current power."""

    delivered_wh: int
    delivered_low_wh: int
    delivered_high_wh: int
    power_w: int
    power_low_w: int
    power_high_w: int
    power_source: str  # "readings" | "reported" | "nominal"
    source: str  # "energy_added" | "meter" | "power" | "soc" | "none"
    as_of: datetime | None
    fetched_at: datetime | None
    first_taken_at: datetime | None
    accepted: int
    resets: int
    charge_state: str | None
    is_plugged_in: bool | None
    rejections: tuple[Rejection, ...] = field(default=())
    events: tuple[Rejection, ...] = field(default=())
    # SoC-only cars: data time around which the reported level next changes (± k x soc_step_s for
    # later levels), how uncertain that moment is, and how long one step takes at this power.
    soc_phase_mid_at: datetime | None = None
    soc_phase_width_s: float | None = None
    soc_step_s: float | None = None
    # The battery level when the session began and the (usable) capacity levels are converted at.
    start_level_bp: int | None = None
    capacity_wh: int | None = None
    # False right after the measured power moved (see _recent_segment): the latest slope is not yet
    # the new power, so a STOP planned on it should wait for one more reading.
    power_settled: bool = True
    # The highest power the car reported this session (battery side), where it reports one: the
    # power a drop may come back to.
    peak_power_w: int | None = None

    @property
    def is_charging(self) -> bool:
        # Unknown state counts as charging: a missing field must not freeze the prediction.
        return self.charge_state not in (NOT_CHARGING, FULLY_CHARGED)

    def delivered_at(self, when: datetime) -> float:
        """Best estimate of delivered Wh at `when`, extrapolated from `as_of` at the current power."""
        if self.as_of is None or not self.is_charging:
            return float(self.delivered_wh)
        elapsed = max(0.0, (when - self.as_of).total_seconds())
        return self.delivered_wh + self.power_w * elapsed / 3600.0


def _nominal_prior(ctx: MeterContext) -> float:
    """Battery-side power expected before any reading: the nominal, as typical sessions get it."""
    return ctx.nominal_power_w * ctx.nominal_power_fraction * ctx.charger_efficiency


def empty_estimate(ctx: MeterContext) -> MeterEstimate:
    """The estimate before any usable reading: nothing delivered, nominal power."""
    # In the unit of the estimate: battery-side nominal power, counted as `efficiency` says.
    power = _nominal_prior(ctx) / ctx.efficiency
    return MeterEstimate(
        delivered_wh=0,
        delivered_low_wh=0,
        delivered_high_wh=0,
        power_w=round(power),
        power_low_w=int(power * (1 - 2 * ctx.nominal_power_uncertainty)),
        power_high_w=int(power * (1 + 2 * ctx.nominal_power_uncertainty)),
        power_source="nominal",
        source="none",
        as_of=None,
        fetched_at=None,
        first_taken_at=None,
        accepted=0,
        resets=0,
        charge_state=None,
        is_plugged_in=None,
    )


# --- validation -------------------------------------------------------------------------------


def _finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None and value.utcoffset() is not None


@dataclass
class _Clean:
    index: int
    reading: Reading
    energy_wh: int | None
    soc_bp: int | None
    power_w: int | None


def _validate(index: int, reading: Reading, ctx: MeterContext, out: list[Rejection]) -> _Clean | None:
    """Drop garbage values; return None when nothing usable is left."""

    def reject(detail: str) -> None:
        taken = reading.taken_at if _aware(getattr(reading, "taken_at", None)) else None
        out.append(Rejection(index, taken, RULE_GARBAGE, detail))

    if not _aware(reading.taken_at):
        reject("taken_at is missing or not timezone-aware")
        return None
    if _aware(reading.fetched_at) and reading.taken_at - reading.fetched_at > timedelta(seconds=60):
        # Data recorded after we fetched it means a broken clock or header, not a measurement.
        reject("taken_at is later than fetched_at")
        return None
    energy = reading.energy_added_wh
    if energy is not None:
        if not _finite_number(energy) or energy < 0:
            reject(f"energy_added_wh {energy!r} is not a non-negative number")
            energy = None
        elif energy > 4 * ctx.capacity_wh:
            reject(f"energy_added_wh {energy!r} exceeds any plausible session")
            energy = None
        else:
            energy = int(energy)
    soc = reading.soc_bp
    if soc is not None:
        if not _finite_number(soc) or not 0 <= soc <= SOC_FULL_BP:
            reject(f"soc_bp {soc!r} outside 0..{SOC_FULL_BP}")
            soc = None
        else:
            soc = int(soc)
    power = reading.power_w
    if power is not None and (not _finite_number(power) or power < 0 or power > 2 * ctx.power_ceiling_w):
        reject(f"power_w {power!r} implausible")
        power = None
    if energy is None and soc is None and power is None and reading.charge_state is None:
        return None
    return _Clean(index, reading, energy, soc, int(power) if power is not None else None)


# --- the energy-counter track --------------------------------------------------------------------


@dataclass
class _CounterSnapshot:
    accumulated: float
    baseline: int
    last_value: int
    last_t: datetime
    points_len: int


@dataclass
class _CounterTrack:
    """Session energy from a counter, surviving counter resets (evcc's "wrong session energy")."""

    ctx: MeterContext
    accumulated: float = 0.0
    baseline: int = 0
    last_value: int | None = None
    last_t: datetime | None = None
    resets: int = 0
    missed_wh: float = 0.0  # energy that flowed unobserved between the last pre-reset value and the reset
    # (data time, delivered, charging, the car's reported power or None)
    points: list[tuple[datetime, float, bool, int | None]] = field(default_factory=list)
    pending_reset: tuple[_CounterSnapshot, int, datetime, int] | None = None

    @property
    def step(self) -> int:
        return max(1, self.ctx.energy_step_wh)

    def delivered(self) -> float:
        if self.last_value is None:
            return 0.0
        return self.accumulated + self.missed_wh + (self.last_value - self.baseline)

    def _max_gain(self, since: datetime, until: datetime) -> float:
        seconds = max(0.0, (until - since).total_seconds())
        return self.ctx.power_ceiling_w * seconds / 3600.0 + 2 * self.step

    def _snapshot(self) -> _CounterSnapshot:
        assert self.last_value is not None and self.last_t is not None
        return _CounterSnapshot(self.accumulated, self.baseline, self.last_value, self.last_t, len(self.points))

    def offer(self, c: _Clean, charging: bool, rejections: list[Rejection], events: list[Rejection]) -> bool:
        value, t = c.energy_wh, c.reading.taken_at
        assert value is not None
        if self.last_value is None:
            self.baseline = self.ctx.start_energy_added_wh
            if value < self.baseline:
                # The counter restarted with the session although the controller saw an older value.
                self.baseline = 0
            self._accept(value, t, charging, c.power_w)
            return True
        assert self.last_t is not None
        reset_floor = max(2 * self.step, 50)
        if value < self.last_value:
            if value <= reset_floor and self.last_value - self.baseline > reset_floor:
                # A reset: keep what the old counter said and continue from the new baseline.
                snap = self._snapshot()
                self.accumulated += self.last_value - self.baseline
                self.baseline = 0
                self.resets += 1
                self.pending_reset = (snap, c.index, t, value)
                events.append(Rejection(c.index, t, EVENT_COUNTER_RESET, f"counter fell {self.last_value} -> {value}"))
                logger.info("metering: counter reset %s -> %s at %s", self.last_value, value, t)
                self._accept(value, t, charging, c.power_w)
                return True
            rejections.append(Rejection(c.index, t, RULE_NON_MONOTONIC, f"energy fell {self.last_value} -> {value} Wh"))
            return False
        if value - self.last_value > self._max_gain(self.last_t, t):
            if self.pending_reset is not None and self._reset_was_glitch(value, t):
                snap, reset_index, reset_t, reset_value = self.pending_reset
                self._restore(snap)
                rejections.append(
                    Rejection(reset_index, reset_t, RULE_SPURIOUS_RESET, f"{reset_value} Wh was a glitch, not a reset")
                )
                return self.offer(c, charging, rejections, events)
            rejections.append(
                Rejection(c.index, t, RULE_IMPLAUSIBLE_JUMP, f"energy rose {self.last_value} -> {value} Wh too fast")
            )
            return False
        if self.pending_reset is not None:
            if self._reset_was_glitch(value, t):
                snap, reset_index, reset_t, reset_value = self.pending_reset
                self._restore(snap)
                rejections.append(
                    Rejection(reset_index, reset_t, RULE_SPURIOUS_RESET, f"{reset_value} Wh was a glitch, not a reset")
                )
                return self.offer(c, charging, rejections, events)
            self._settle_reset(value, t)
        self._accept(value, t, charging, c.power_w)
        return True

    def _reset_was_glitch(self, value: int, t: datetime) -> bool:
        """After a drop, is the next value the old counter carrying on (a one-off glitch)?

        Both stories are checked against the power seen before the drop: a true reset restarts near 0,
        a glitch lands where the old counter would be by now.
        """
        assert self.pending_reset is not None
        snap, _, reset_t, reset_value = self.pending_reset
        if value < snap.last_value or value - snap.last_value > self._max_gain(snap.last_t, t):
            return False
        rate = self._power_from(self.points[: snap.points_len]) or self.ctx.nominal_power_w
        as_glitch = snap.last_value + rate * (t - snap.last_t).total_seconds() / 3600.0
        as_reset = reset_value + rate * (t - reset_t).total_seconds() / 3600.0
        return abs(value - as_glitch) < abs(value - as_reset)

    def _restore(self, snap: _CounterSnapshot) -> None:
        self.accumulated, self.baseline = snap.accumulated, snap.baseline
        self.last_value, self.last_t = snap.last_value, snap.last_t
        del self.points[snap.points_len :]
        self.resets -= 1
        self.pending_reset = None

    def _settle_reset(self, value: int, t: datetime) -> None:
        # Energy that flowed between the last old-counter value and the moment of the reset is
        # invisible to both counters; estimate it from the power, half the possible gap.
        assert self.pending_reset is not None
        snap, _, reset_t, reset_value = self.pending_reset
        rate = self._power_from(self.points[: snap.points_len]) or self.ctx.nominal_power_w
        gap_wh = rate * (reset_t - snap.last_t).total_seconds() / 3600.0
        missed = max(0.0, gap_wh - reset_value) / 2.0
        self.missed_wh += missed
        # The points since the reset were stored before this guess: they carry it too, so the
        # power after the reset is measured between consistent totals.
        for i in range(snap.points_len, len(self.points)):
            t, e, on, reported = self.points[i]
            self.points[i] = (t, e + missed, on, reported)
        self.pending_reset = None

    def _accept(self, value: int, t: datetime, charging: bool, power_w: int | None = None) -> None:
        self.last_value, self.last_t = value, t
        self.points.append((t, self.delivered(), charging, power_w))

    def _power_from(self, points: list[tuple[datetime, float, bool, int | None]]) -> float | None:
        fit = _theil_sen(points, self.ctx, self.step)
        return fit[0] if fit else None

    def power_fit(self) -> tuple[float, float] | None:
        return _theil_sen(self.points, self.ctx, self.step)

    def power_settled(self) -> bool:
        return _recent_segment(self.points, self.ctx, self.step)[1]


def _recent_segment(
    points: list[tuple[datetime, float, bool, int | None]], ctx: MeterContext, step: int
) -> tuple[list[tuple[datetime, float, int | None]], bool]:
    """The newest charging points (at most 8) of the power now, and whether that power is settled.

    Only the latest stretch of constant power counts (`_latest_segment`): after a drop (load
    management, a throttling charger) or a rise (a cold pack's heater switching off) the power is
    what the counter did since, not a median with what it did before. Not settled: the power moved
    and at most the newest pair measures it (a mix, if it moved between them).
    """
    window: list[tuple[datetime, float, int | None]] = []
    for t, e, charging, reported in reversed(points):  # newest first; only the tail matters
        if charging:
            window.append((t, e, reported))
            if len(window) == 8:
                break
    window.reverse()
    if len(window) < 2:
        return window, True

    def ranges(first: int) -> tuple[tuple[float, float], tuple[float, float]]:
        # A counter stretch's slope is known to ±3 steps at each end (its quantisation, 3 sigma):
        # the stretch before the segment is its newest pair, the segment is timed end to end.
        (t0, e0, _), (t1, e1, _), (tl, el, _) = window[first - 1], window[first], window[-1]
        span_new, span_seg = (t1 - t0).total_seconds(), (tl - t1).total_seconds()
        new, new_noise = (e1 - e0) / span_new, 3 * step / span_new
        if span_seg <= 0:
            return (new - new_noise, new + new_noise), (-math.inf, math.inf)
        seg, seg_noise = (el - e1) / span_seg, 3 * step / span_seg
        return (new - new_noise, new + new_noise), (seg - seg_noise, seg + seg_noise)

    segment = window[_latest_segment(window, ranges) :]
    return segment, len(segment) == len(window) or len(segment) > 2


def _theil_sen(
    points: list[tuple[datetime, float, bool, int | None]], ctx: MeterContext, step: int
) -> tuple[float, float] | None:
    """Median of pairwise slopes (W) over the latest stretch of one power; robust to one bad value.

    Returns (power_w, sigma_w) or None when no pair of that stretch spans `min_power_span_s`.
    """
    segment, _ = _recent_segment(points, ctx, step)
    if len(segment) < 2:
        return None
    latest = segment[-1][0]
    # Drop points older than the window while what is left still spans enough to beat quantisation.
    while (
        len(segment) > 2
        and (latest - segment[0][0]).total_seconds() > ctx.power_window_s
        and (latest - segment[1][0]).total_seconds() >= ctx.min_power_span_s
    ):
        segment.pop(0)
    slopes: list[float] = []
    longest = 0.0
    for i in range(len(segment)):
        for j in range(i + 1, len(segment)):
            span = (segment[j][0] - segment[i][0]).total_seconds()
            if span >= ctx.min_power_span_s:
                slopes.append((segment[j][1] - segment[i][1]) * 3600.0 / span)
                longest = max(longest, span)
    if not slopes:
        return None
    slopes.sort()
    mid = len(slopes) // 2
    median = slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
    # Quantisation of both ends over the longest span, plus the spread of the slopes.
    sigma = step * 3600.0 / longest / math.sqrt(6) + (slopes[-1] - slopes[0]) / 4
    return max(0.0, median), max(sigma, 1.0)


# Two stretches of readings are one power if their slopes agree within this fraction (beyond the
# quantisation of the counter or the levels); a car's power wanders ~1 %, a drop or a heater is 10 %+.
SEGMENT_TOLERANCE = 0.04
# A reported wattage this far from the latest one marks a different power (charger side).
REPORTED_CHANGE = 0.05


def _latest_segment(
    points: Sequence[tuple[datetime, float, int | None]],
    ranges: Callable[[int], tuple[tuple[float, float], tuple[float, float]]],
) -> int:
    """Where the newest stretch of one power begins in `points` ((time, value, reported W), oldest
    first): the counter's and the battery level's change point alike.

    Walks back from the newest point while the stretch before agrees with the segment so far: the
    car's reported wattage (where it reports one) has not moved by more than REPORTED_CHANGE, and
    the slopes the two allow overlap within SEGMENT_TOLERANCE of the segment's. `ranges(first)`
    gives those slope ranges, (before, segment from points[first]), each within its source's
    quantisation: a counter's step, or the level steps a line must pass through.
    """
    first = len(points) - 1
    latest_reported = points[-1][2]
    while first > 0:
        earlier_reported = points[first - 1][2]
        if (
            latest_reported
            and earlier_reported
            and abs(earlier_reported - latest_reported) > REPORTED_CHANGE * latest_reported
        ):
            break
        (a, b), (c, d) = ranges(first)
        # A segment of one point has no slope of its own yet: anything agrees with it.
        if math.isfinite(c) and math.isfinite(d) and max(a - d, c - b) > SEGMENT_TOLERANCE * abs(c + d) / 2:
            break
        first -= 1
    return first


# --- the SoC track ----------------------------------------------------------------------------


@dataclass
class _SocTrack:
    ctx: MeterContext
    start_bp: int | None = None
    last_bp: int | None = None
    last_t: datetime | None = None
    points: list[tuple[datetime, int, bool]] = field(default_factory=list)
    level_ends: list[tuple[datetime, int]] = field(default_factory=list)
    # The wattage the car reported with each of level_ends (None where it reports none).
    level_reported: list[int | None] = field(default_factory=list)
    # (start point, end of the head) -> (head length, points seen, head line, bend time) for the two-line fit.
    head_cache: dict = field(default_factory=dict)
    # Running bounds of the line's slope in bp/s over all charging readings so far.
    slope_lo: float = -math.inf
    slope_hi: float = math.inf

    def offer(self, c: _Clean, charging: bool, rejections: list[Rejection]) -> bool:
        soc, t = c.soc_bp, c.reading.taken_at
        assert soc is not None
        if self.last_bp is None:
            self.start_bp = self.ctx.start_soc_bp if self.ctx.start_soc_bp is not None else soc
            self._accept(soc, t, charging, c.power_w)
            return True
        assert self.last_t is not None
        if soc < self.last_bp:
            rejections.append(Rejection(c.index, t, RULE_NON_MONOTONIC, f"SoC fell {self.last_bp} -> {soc} bp"))
            return False
        seconds = (t - self.last_t).total_seconds()
        max_gain_bp = self.ctx.power_ceiling_w * seconds / 3600.0 / self.ctx.capacity_wh * SOC_FULL_BP
        if soc - self.last_bp > max_gain_bp + self.ctx.soc_step_bp:
            rejections.append(Rejection(c.index, t, RULE_IMPLAUSIBLE_JUMP, f"SoC rose {self.last_bp} -> {soc} bp"))
            return False
        self._accept(soc, t, charging, c.power_w)
        return True

    def _accept(self, soc: int, t: datetime, charging: bool, power_w: int | None = None) -> None:
        self.last_bp, self.last_t = soc, t
        self.points.append((t, soc, charging))
        if charging:
            kept = self.level_ends
            # Each new reading adds its pairs to the running slope bounds (see slope_range): O(levels).
            lo, hi = _pair_bounds(t, soc, kept, self.ctx.soc_step_bp)
            self.slope_lo, self.slope_hi = max(self.slope_lo, lo), min(self.slope_hi, hi)
            # Only the first and last reading of each level can bind a later pair.
            if len(kept) >= 2 and kept[-1][1] == soc and kept[-2][1] == soc:
                kept[-1] = (t, soc)
                self.level_reported[-1] = power_w
            else:
                kept.append((t, soc))
                self.level_reported.append(power_w)

    def segment(self, points: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
        """The newest of `points` (level ends, the start's level first where known) of one power.

        A line through the level steps fits a power that moved for as long as the steps hide the
        bend; its slope then mixes the old power with the new and its bounds hold for neither. The
        stretch is the newest run one line fits, cut where the run one line fits up to a point and
        the segment from it allow slopes that do not overlap (`_latest_segment`, as the counter's).
        """
        if not points:
            return []
        step = self.ctx.soc_step_bp
        tail = points[-SOC_SEGMENT_POINTS:]
        run = tail[len(tail) - _feasible_run(tail, step, from_end=True) :]
        offset = len(points) - len(run)
        reported = dict(zip(self.level_ends, self.level_reported, strict=True))
        walk = [(t, level, reported.get((t, level))) for t, level in run]
        seg = [-math.inf, math.inf, len(run) - 1]  # slope bounds of run[seg[2]:]

        def ranges(first: int) -> tuple[tuple[float, float], tuple[float, float]]:
            while seg[2] > first:  # the segment grows one point at a time as the walk goes back
                seg[2] -= 1
                a, b = _pair_bounds_reverse(*run[seg[2]], run[seg[2] + 1 :], step)
                seg[0], seg[1] = max(seg[0], a), min(seg[1], b)
            return _run_bounds(points, offset + first, step), (seg[0], seg[1])

        return run[_latest_segment(walk, ranges) :]

    @property
    def step_wh(self) -> float:
        return self.ctx.soc_step_bp * self.ctx.capacity_wh / SOC_FULL_BP

    def to_watts(self, bp_per_s: float) -> float:
        return max(0.0, bp_per_s * self.ctx.capacity_wh / SOC_FULL_BP * 3600.0)

    def slope_range(self, points: list[tuple[datetime, int]]) -> tuple[float, float] | None:
        """Feasible charging power range (W) for a straight line through the points' SoC intervals."""
        lo, hi = -math.inf, math.inf
        for i, (t, level) in enumerate(points):
            a, b = _pair_bounds(t, level, points[:i], self.ctx.soc_step_bp)
            lo, hi = max(lo, a), min(hi, b)
        if lo == -math.inf or hi == math.inf or lo > hi:
            return None
        return self.to_watts(lo), self.to_watts(hi)


# Level ends a stretch of one power is looked for among (and the run before it is compared over):
# a 30-s poller's last dozen levels, few enough for an estimate on every step.
SOC_SEGMENT_POINTS = 24


def _run_bounds(points: list[tuple[datetime, int]], end: int, step: int) -> tuple[float, float]:
    """Slope bounds (bp/s) of the longest run of points ending at points[end] that one line fits."""
    lo, hi = -math.inf, math.inf
    for i in range(end - 1, max(-1, end - SOC_SEGMENT_POINTS), -1):
        a, b = _pair_bounds_reverse(*points[i], points[i + 1 : end + 1], step)
        if max(lo, a) > min(hi, b):
            break
        lo, hi = max(lo, a), min(hi, b)
    return lo, hi


def _pair_bounds(t: datetime, level: int, earlier: list[tuple[datetime, int]], step: int) -> tuple[float, float]:
    """Slope bounds (bp/s) that a line through [level, level+step) at `t` and each earlier point obeys.

    Each reading says the true SoC was in [s, s + step). For a given slope, the intercepts each
    reading allows are intervals, and intervals on a line share a point iff every two do (Helly's
    theorem in one dimension); so the feasible slopes are exactly those every pair allows, a range
    given by the max/min over pairs. Floor or round, only differences of levels enter.
    """
    lo, hi = -math.inf, math.inf
    for tp, sp in earlier:
        span = (t - tp).total_seconds()
        if span <= 0:
            continue
        diff = level - sp
        if (diff - step) / span > lo:
            lo = (diff - step) / span
        if (diff + step) / span < hi:
            hi = (diff + step) / span
    return lo, hi


def _fuse(prior: float, prior_sigma: float, value: float, sigma: float) -> tuple[float, float]:
    """Inverse-variance mean of two Gaussian estimates."""
    wp, wv = 1.0 / prior_sigma**2, 1.0 / sigma**2
    return (prior * wp + value * wv) / (wp + wv), math.sqrt(1.0 / (wp + wv))


# --- the estimate -----------------------------------------------------------------------------


class Meter:
    """Incremental form of `estimate`: feed readings in arrival order, ask for the estimate anytime.

    The controller can rebuild one from stored readings; the evaluation harness keeps one per
    session so a 30 s polling baseline does not re-read its whole history on every poll.
    """

    def __init__(self, ctx: MeterContext) -> None:
        self.ctx = ctx
        self.rejections: list[Rejection] = []
        self.events: list[Rejection] = []
        self._counter = _CounterTrack(ctx)
        self._soc = _SocTrack(_usable(ctx))
        self._latest: _Clean | None = None
        self._first_taken: datetime | None = None
        self._accepted = 0
        self._reported_power: int | None = None
        self._peak_reported: int | None = None
        # (data time, charger-side W) of every accepted reading that carries the car's power: 0
        # while it does not charge. Added up over time they measure the energy (SOURCE_POWER).
        self._power_points: list[tuple[datetime, float]] = []
        # Whether an accepted reading said the pack heater runs (then or since the one before):
        # the wattage of that stretch is not the battery's, so its sum is not the energy. Once a
        # reading says it stopped: (its data time, the levels' battery Wh then, their high bound),
        # from which the wattage measures the energy again.
        self._heater_seen = False
        self._heater_off: tuple[datetime, float, float] | None = None
        self._count = 0

    def add(self, reading: Reading) -> bool:
        """Offer one reading; False (and a logged `Rejection`) when it was ignored."""
        index, self._count = self._count, self._count + 1
        before = len(self.rejections)
        ok = self._add(index, reading)
        for r in self.rejections[before:]:
            logger.info("metering: ignored reading %s (%s): %s", r.index, r.rule, r.detail)
        return ok

    def _held_level(self, reading: Reading) -> Reading:
        """A polled level of a car that reports each level step (see `level_event_lag_s`), at the
        time it is known to have held: its fetch less the lag, when that is later than its data
        time and than every reading so far (an older one must not displace a newer one)."""
        lag = self.ctx.level_event_lag_s
        if (
            lag is None
            or reading.via != VIA_POLL
            or reading.soc_bp is None
            or reading.charge_state != CHARGING
            or not (_aware(reading.fetched_at) and _aware(reading.taken_at))
        ):
            return reading
        held = reading.fetched_at - timedelta(seconds=lag)
        if held <= reading.taken_at or (self._latest is not None and held <= self._latest.reading.taken_at):
            return reading
        return replace(reading, taken_at=held)

    def _add(self, index: int, reading: Reading) -> bool:
        c = _validate(index, self._held_level(reading), self.ctx, self.rejections)
        if c is None:
            return False
        t = c.reading.taken_at
        if self._latest is not None:
            last_t = self._latest.reading.taken_at
            if t < last_t:
                self.rejections.append(Rejection(index, t, RULE_OUT_OF_ORDER, f"data from {t} is older than {last_t}"))
                return False
            if t == last_t:
                # The same snapshot served again (polling faster than the car refreshes).
                self.rejections.append(Rejection(index, t, RULE_DUPLICATE, f"data age {t} already seen"))
                return False
        charging = c.reading.charge_state in (None, CHARGING)
        took_energy = c.energy_wh is not None and self._counter.offer(c, charging, self.rejections, self.events)
        took_soc = c.soc_bp is not None and self._soc.offer(c, charging, self.rejections)
        if (c.energy_wh is not None or c.soc_bp is not None) and not (took_energy or took_soc):
            return False  # every energy value it had was rejected; its state would be as suspect
        self._latest = c
        self._accepted += 1
        self._first_taken = self._first_taken or t
        if c.power_w is not None:
            self._reported_power = c.power_w
            self._peak_reported = max(c.power_w, self._peak_reported or 0)
            self._power_points.append((t, float(c.power_w) if charging else 0.0))
        if c.reading.heater_active is True:
            self._heater_seen, self._heater_off = True, None
        elif c.reading.heater_active is False and self._heater_seen and self._heater_off is None:
            # The heater stopped since the reading before: the energy up to now is the levels'.
            levels = self.estimate()
            scale = self.ctx.efficiency  # back to battery side
            self._heater_off = (t, levels.delivered_wh * scale, levels.delivered_high_wh * scale)
        return True

    def estimate(
        self, *, charging_started_at: datetime | None = None, charging_started_uncertainty_s: float | None = None
    ) -> MeterEstimate:
        """The estimate from the readings so far; the start time may be refined since the context."""
        ctx = self.ctx
        if charging_started_at is not None or charging_started_uncertainty_s is not None:
            ctx = replace(
                ctx,
                charging_started_at=charging_started_at or ctx.charging_started_at,
                charging_started_uncertainty_s=(
                    ctx.charging_started_uncertainty_s
                    if charging_started_uncertainty_s is None
                    else charging_started_uncertainty_s
                ),
            )
        latest, counter, soc = self._latest, self._counter, self._soc
        if latest is None:
            return replace(empty_estimate(ctx), rejections=tuple(self.rejections))
        usable_wh = round(ctx.capacity_wh * ctx.usable_fraction)

        # Power: a prior (the car's own figure if it gave one, else nominal) fused with the readings.
        reported = self._reported_power
        if latest.reading.heater_active:
            # The heater runs: the wattage overstates the battery's power by an amount no reading
            # tells. Planned as for a car without wattage until a reading says it stopped.
            reported = None
        if reported is not None and reported > 0:
            # Cars report charger-side power; the counter and the SoC see battery-side energy.
            prior = reported * ctx.charger_efficiency
            prior_sigma, power_source = 0.05 * prior, "reported"
        else:
            prior = _nominal_prior(ctx)
            prior_sigma = ctx.nominal_power_uncertainty * prior
            power_source = "nominal"
        power, power_sigma = prior, prior_sigma
        power_settled = True
        phase: tuple[datetime | None, float | None, float | None] = (None, None, None)

        if counter.last_value is not None:
            source = SOURCE_METER if latest.reading.source == SOURCE_METER else SOURCE_ENERGY_ADDED
            delivered = counter.delivered()
            # Each counter epoch is quantised at both ends; missed energy at a reset is 0..2x its guess.
            half = counter.step * (1 + counter.resets)
            low, high = delivered - counter.missed_wh - half, delivered + counter.missed_wh + half
            fit = counter.power_fit()
            if fit is not None:
                power, power_sigma = _fuse(prior, prior_sigma, *fit)
                power_source = "readings"
            power_settled = counter.power_settled()
            as_of = counter.last_t
        elif soc.last_bp is not None:
            source = SOURCE_POWER if latest.reading.source == SOURCE_POWER else SOURCE_SOC
            fit = _soc_estimate(soc, _usable(ctx), prior, prior_sigma)
            delivered, low, high, power, power_sigma = fit.delivered, fit.low, fit.high, fit.power, fit.power_sigma
            # Planned on the usable capacity's typical fraction; proven only down to its lowest,
            # at the energy a percent holds at the levels the session charged through.
            assert soc.start_bp is not None
            middle = (soc.start_bp + soc.last_bp) / 2 / SOC_FULL_BP
            per_level = min(1.0, 1.0 + ctx.level_energy_rise * (middle - 0.5))
            low *= ctx.usable_low_fraction / ctx.usable_fraction * per_level
            # Billed only: the first and the last level may each show a jitter's worth off (makes.
            # LEVEL_JITTER_BP); the estimate the STOP is planned on keeps the levels as shown.
            low -= 2 * ctx.level_jitter_bp * ctx.capacity_wh * ctx.usable_low_fraction * per_level / SOC_FULL_BP
            high /= ctx.usable_fraction
            if fit.from_readings:
                power_source = "readings"
            phase = (fit.phase_mid_at, fit.phase_width_s, fit.step_s)
            as_of = soc.last_t
            measured = None
            if source == SOURCE_POWER and not self._heater_seen:
                measured = _power_energy(self._power_points, ctx)
            elif source == SOURCE_POWER and self._heater_off is not None:
                # A heater took an unknown part of the wattage while it ran: the energy up to its
                # end is the levels' (as for a car without wattage), the wattage's from then on.
                measured = _power_since(self._heater_off, self._power_points, ctx)
            if measured is not None:
                # The car's power, added up over time, measures the energy, never below what the
                # levels prove (`_by_power`). What is billed stays what the levels prove: the
                # wattage is the wall's, and a cold pack's heater takes part of it unseen.
                top = soc.last_bp / SOC_FULL_BP
                delivered, high, power, power_sigma = _by_power(
                    measured,
                    self._reported_power or 0,
                    (delivered, low, high),
                    fit,
                    ctx,
                    1.0 + ctx.level_energy_rise * (top - 0.5),
                )
                power_source = "reported"
                as_of = max(as_of, measured.last_t)
        else:
            source = "none"
            delivered, low, high = 0.0, 0.0, 0.0
            as_of = None

        low = max(0.0, min(low, delivered))
        high = max(high, delivered)
        # Everything above is battery-side; the estimate is in the energy the purchase counts.
        scale = 1.0 / ctx.efficiency
        delivered, low, high = delivered * scale, low * scale, high * scale
        power, power_sigma = power * scale, power_sigma * scale
        return MeterEstimate(
            delivered_wh=round(max(0.0, delivered)),
            delivered_low_wh=math.floor(low),
            delivered_high_wh=math.ceil(high),
            power_w=round(power),
            power_low_w=max(0, round(power - 2 * power_sigma)),
            power_high_w=round(power + 2 * power_sigma),
            power_source=power_source,
            source=source,
            as_of=as_of,
            fetched_at=latest.reading.fetched_at,
            first_taken_at=self._first_taken,
            accepted=self._accepted,
            resets=counter.resets,
            charge_state=latest.reading.charge_state,
            is_plugged_in=latest.reading.is_plugged_in,
            rejections=tuple(self.rejections),
            events=tuple(self.events),
            soc_phase_mid_at=phase[0],
            soc_phase_width_s=phase[1],
            soc_step_s=phase[2],
            start_level_bp=ctx.start_soc_bp if ctx.start_soc_bp is not None else soc.start_bp,
            capacity_wh=usable_wh,
            power_settled=power_settled,
            peak_power_w=(
                round(self._peak_reported * ctx.charger_efficiency / ctx.efficiency) if self._peak_reported else None
            ),
        )


@dataclass(frozen=True)
class _PowerEnergy:
    """Battery-side Wh the car's reported power adds up to since charging began: the estimate
    (trapezoid between readings), and the most it can be (each span at the higher end)."""

    wh: float
    high_wh: float
    last_t: datetime


def _power_energy(points: list[tuple[datetime, float]], ctx: MeterContext) -> _PowerEnergy | None:
    """The energy the reported charger-side power adds up to since `ctx.charging_started_at`, at
    `ctx.charger_efficiency`; None without a start time or a reading after it.

    Between two readings by the trapezoid (a power step falls somewhere in between), at most the
    higher end. From the start to the first reading at the first charging power (the start's
    spread added to the highest). The wattage is what the wall gives: a cold pack's heater takes
    part of it that never reaches the battery, so this is an upper bound and an estimate, never
    a proof of what the battery got.
    """
    started_at = ctx.charging_started_at
    if started_at is None:
        return None
    after = [(t, w) for t, w in points if t > started_at]
    if not after:
        return None
    first_w = next((w for _, w in after if w > 0), 0.0)
    lead_s = (after[0][0] - started_at).total_seconds()
    wh, high = _between_readings(after)
    wh += first_w * lead_s
    high += first_w * (lead_s + ctx.charging_started_uncertainty_s)
    scale = ctx.charger_efficiency / 3600.0
    return _PowerEnergy(wh * scale, high * scale, after[-1][0])


def _between_readings(points: list[tuple[datetime, float]]) -> tuple[float, float]:
    """(W·s by the trapezoid, W·s at the higher end of each span) between consecutive points."""
    wh, high = 0.0, 0.0
    for (ta, wa), (tb, wb) in itertools.pairwise(points):
        span = (tb - ta).total_seconds()
        wh += (wa + wb) / 2 * span
        high += max(wa, wb) * span
    return wh, high


def _power_since(
    anchor: tuple[datetime, float, float], points: list[tuple[datetime, float]], ctx: MeterContext
) -> _PowerEnergy:
    """The energy (battery side) at `anchor` (data time, Wh, high bound Wh) plus what the reported
    power adds up to since (as `_power_energy` between readings)."""
    since, wh, high = anchor
    after = [(t, w) for t, w in points if t >= since]
    added, added_high = _between_readings(after)
    scale = ctx.charger_efficiency / 3600.0
    return _PowerEnergy(wh + added * scale, high + added_high * scale, after[-1][0] if after else since)


# The reported wattage read at one instant stands for the power between readings: trust it to
# this share (1 sigma) as the battery's power now.
REPORTED_POWER_SIGMA = 0.02


def _by_power(
    measured: _PowerEnergy,
    reported_w: int,
    levels: tuple[float, float, float],
    fit: _SocResult,
    ctx: MeterContext,
    level_rise: float,
) -> tuple[float, float, float, float]:
    """(delivered, high, power, power sigma), battery side, of a car metered by its power.

    The power's energy is the estimate, never below what the levels prove (a power that fell
    between two readings) and never above the power's own highest. The levels' high bound is no
    bound here: a percent high in the pack holds more than the average one, and a recalibrating
    battery management moves its level by a step; the wall's energy is the bound. The power now
    is the reported one unless the levels cannot reach it in the largest pack the car may have,
    at the energy a percent holds at the top of the session, within two sigmas of their slope:
    part of it then heats the pack, and the levels' power stands.
    """
    _, low, _ = levels
    high = max(low, measured.high_wh)
    delivered = min(max(measured.wh, low), high)
    power = reported_w * ctx.charger_efficiency
    sigma = REPORTED_POWER_SIGMA * power
    if power <= 0:
        # Not charging now (stopped, paused): the power it would charge at is the levels'.
        return delivered, high, fit.power, fit.power_sigma
    if fit.from_readings:
        highest = (fit.power + 2 * fit.power_sigma) / ctx.usable_fraction * max(1.0, level_rise)
        if power > highest:
            power, sigma = fit.power, fit.power_sigma
    return delivered, high, power, sigma


def _usable(ctx: MeterContext) -> MeterContext:
    """The context with the capacity levels are converted at: the usable, not the nominal figure."""
    if ctx.usable_fraction == 1.0:
        return ctx
    return replace(ctx, capacity_wh=round(ctx.capacity_wh * ctx.usable_fraction))


def estimate(readings: Sequence[Reading], ctx: MeterContext) -> MeterEstimate:
    """Delivered energy, its bounds and the charging power from a session's readings.

    Readings are taken in arrival order (`fetched_at`, then list order). Each ignored reading is
    returned in `rejections` with its rule (and logged); counter resets are returned in `events`.
    """

    def arrival(item: tuple[int, Reading]) -> tuple[datetime, int]:
        r = item[1]
        fetched = r.fetched_at if _aware(r.fetched_at) else r.taken_at
        return (fetched if _aware(fetched) else datetime.min.replace(tzinfo=UTC), item[0])

    meter = Meter(ctx)
    order = sorted(enumerate(readings), key=arrival)
    # Keep the caller's indices in rejections, not the arrival positions.
    for index, reading in order:
        meter._count = index
        meter.add(reading)
    return meter.estimate()


@dataclass
class _SocResult:
    delivered: float
    low: float
    high: float
    power: float
    power_sigma: float
    from_readings: bool
    phase_mid_at: datetime | None = None
    phase_width_s: float | None = None
    step_s: float | None = None


def _intercepts(points: list[tuple[datetime, int]], origin: datetime, slope: float, step: int) -> tuple[float, float]:
    """Range of the line's level at `origin` (bp) for a given slope (bp/s) through the points' steps."""
    lo, hi = -math.inf, math.inf
    for t, level in points:
        x = (t - origin).total_seconds()
        lo = max(lo, level - slope * x)
        hi = min(hi, level + step - slope * x)
    return lo, hi


def _soc_estimate(soc: _SocTrack, ctx: MeterContext, prior: float, prior_sigma: float) -> _SocResult:
    """Delivered Wh from battery level, tightened by a constant-power line when it fits.

    With the charging start known, a straight line through the readings' step intervals and the
    start level pins energy = power x time far inside one step, and says when the next level change
    will show (its phase), which the policy uses to place reads where they tell the most.
    """
    assert soc.last_bp is not None and soc.start_bp is not None and soc.last_t is not None
    step, step_wh = ctx.soc_step_bp, soc.step_wh
    ts = ctx.charging_started_at
    # Both ends are only known to one step, so the difference is within ±1 step (triangular).
    by_steps = (soc.last_bp - soc.start_bp) * ctx.capacity_wh / SOC_FULL_BP
    low, high = by_steps - step_wh, by_steps + step_wh
    if ctx.start_soc_bp is None and ts is not None and soc.points[0][0] > ts:
        # The first level we saw was read after charging began: what flowed before it is missing.
        gap_h = (soc.points[0][0] - ts).total_seconds() / 3600.0
        by_steps += prior * gap_h
        high += ctx.power_ceiling_w * ctx.charger_efficiency * gap_h
    steps_only = _SocResult(by_steps, low, high, prior, prior_sigma, False)

    points = list(soc.level_ends)
    lo, hi = soc.slope_lo, soc.slope_hi
    start: tuple[datetime, int] | None = None  # (time, level) when a reading showed the level at the start
    start_band: tuple[datetime, float, float] | None = None  # (time, lowest, highest level) at the start
    if ts is not None:
        # The level when charging began is one more point for the line. A reading taken at or
        # before the start shows it to a step; if the first one came later, the level may have
        # risen since the start by up to the power ceiling times the gap.
        before = []
        for t, level, _ in soc.points:  # sorted by time: stop at the start instead of scanning all
            if t > ts:
                break
            before.append(level)
        start_level = before[-1] if before else soc.start_bp
        extra = 0.0
        if not before:
            gap_s = max(0.0, (soc.points[0][0] - ts).total_seconds())
            extra = ctx.power_ceiling_w * ctx.charger_efficiency * gap_s / 3600.0 / ctx.capacity_wh * SOC_FULL_BP
        later = [(t, level) for t, level in points if t > ts]
        start = (ts, start_level) if before else None
        with_start_lo, with_start_hi = lo, hi
        for t, level in later:  # pairs with the start point (inlined: this runs on every estimate)
            span, diff = (t - ts).total_seconds(), level - start_level
            with_start_lo = max(with_start_lo, (diff - step) / span)
            with_start_hi = min(with_start_hi, (diff + step + extra) / span)
        if with_start_lo <= with_start_hi:
            lo, hi, points = with_start_lo, with_start_hi, later
            start_band = (ts, start_level - extra, start_level + step)
        else:
            ts = None  # the start time does not fit the line: do without it
    # One line from the start only while the power has not moved; else the latest stretch of one
    # power gives the level now, and the stretch before it the energy up to where it began.
    timed = [start, *[p for p in soc.level_ends if p[0] > start[0]]] if start is not None else soc.level_ends
    segment = soc.segment(timed)
    if lo > hi or len(segment) < len(timed):
        return _tapered(soc, ctx, prior, prior_sigma, steps_only, start, segment)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return steps_only

    w_lo, w_hi = soc.to_watts(lo), soc.to_watts(hi)
    mid, sigma = (w_lo + w_hi) / 2, max((w_hi - w_lo) / math.sqrt(12), 1.0)
    power, power_sigma = _fuse(prior, prior_sigma, mid, sigma)
    # The data bound is hard: a power outside it contradicts a reading.
    power = min(max(power, w_lo), w_hi)
    result = _SocResult(by_steps, steps_only.low, steps_only.high, power, power_sigma, True)

    slope = power / (ctx.capacity_wh / SOC_FULL_BP * 3600.0)  # bp/s
    if slope > 0:
        origin = soc.last_t
        a_lo, a_hi = _intercepts(points, origin, slope, step)
        if start_band is not None:
            x = (start_band[0] - origin).total_seconds()
            a_lo, a_hi = max(a_lo, start_band[1] - slope * x), min(a_hi, start_band[2] - slope * x)
        if a_lo <= a_hi:
            # The line's level at the latest reading is within [a_lo, a_hi]; the next boundary
            # above it is crossed around (boundary − middle) / slope from there.
            boundary = soc.last_bp + step
            result.phase_mid_at = origin + timedelta(seconds=(boundary - (a_lo + a_hi) / 2) / slope)
            result.phase_width_s = (a_hi - a_lo) / slope
            result.step_s = step / slope
    if ts is not None and soc.last_t > ts:
        # Energy = power x time charged since the start; the start time's spread adds its own part,
        # and so does the end's once the car has stopped (charging ended between two readings).
        end, end_half_s = _charging_end(soc, result, slope, a_lo, a_hi) if slope > 0 else (soc.last_t, 0.0)
        elapsed_h = max(0.0, (end - ts).total_seconds()) / 3600.0
        start_wh = power * (ctx.charging_started_uncertainty_s + end_half_s) / 3600.0
        start_wh += ctx.power_model_margin * power * elapsed_h
        low = max(result.low, w_lo * elapsed_h - start_wh)
        high = min(result.high, w_hi * elapsed_h + start_wh)
        if low <= high:
            result.delivered = min(max(power * elapsed_h, low), high)
            result.low, result.high = low, high
    return result


def _charging_end(soc: _SocTrack, fit: _SocResult, slope: float, a_lo: float, a_hi: float) -> tuple[datetime, float]:
    """When charging ended (and its half-width, s): the latest reading while it still charges.

    After a stop, the energy is power x (end − start), not up to the latest reading: the end lies
    between the last reading that showed charging and the first that did not, and (when the line
    fits) where the line crossed the level the car stopped at: within [level, level + step).
    """
    assert soc.last_t is not None and soc.last_bp is not None
    if soc.points[-1][2]:
        return soc.last_t, 0.0
    charging = [t for t, _, on in soc.points if on]
    if not charging:
        return soc.last_t, 0.0
    lo = charging[-1]
    hi = next(t for t, _, on in soc.points if t > lo and not on)
    if a_lo <= a_hi and fit.from_readings:
        middle = (a_lo + a_hi) / 2  # the line's level at soc.last_t, were it still charging
        crossed = soc.last_t + timedelta(seconds=(soc.last_bp - middle) / slope)
        above = soc.last_t + timedelta(seconds=(soc.last_bp + soc.ctx.soc_step_bp - middle) / slope)
        if max(lo, crossed) <= min(hi, above):
            lo, hi = max(lo, crossed), min(hi, above)
    return lo + (hi - lo) / 2, (hi - lo).total_seconds() / 2


def _feasible_run(points: list[tuple[datetime, int]], step: int, *, from_end: bool) -> int:
    """How many points from the start (or the end) a single straight line still fits."""
    order = list(reversed(points)) if from_end else points
    lo, hi = -math.inf, math.inf
    for i, (t, level) in enumerate(order):
        if from_end:  # the earlier points come later in `order`: pair with those already taken
            a, b = _pair_bounds_reverse(t, level, order[:i], step)
        else:
            a, b = _pair_bounds(t, level, order[:i], step)
        if max(lo, a) > min(hi, b):
            return i
        lo, hi = max(lo, a), min(hi, b)
    return len(order)


def _pair_bounds_reverse(t: datetime, level: int, later: list[tuple[datetime, int]], step: int) -> tuple[float, float]:
    lo, hi = -math.inf, math.inf
    for tl, sl in later:
        span = (tl - t).total_seconds()
        if span <= 0:
            continue
        diff = sl - level
        lo, hi = max(lo, (diff - step) / span), min(hi, (diff + step) / span)
    return lo, hi


def _line(
    soc: _SocTrack, points: list[tuple[datetime, int]], prior: float, prior_sigma: float, origin: datetime
) -> tuple[float, float, float, float, float, float] | None:
    """Fit a constant-power line: (power, sigma, power_lo, power_hi, level_lo, level_hi at origin)."""
    rng = soc.slope_range(points) if len(points) >= 2 else None
    if rng is None:
        return None
    mid, sigma = (rng[0] + rng[1]) / 2, max((rng[1] - rng[0]) / math.sqrt(12), 1.0)
    power, power_sigma = _fuse(prior, prior_sigma, mid, sigma)
    power = min(max(power, rng[0]), rng[1])
    slope = power / (soc.ctx.capacity_wh / SOC_FULL_BP * 3600.0)
    a_lo, a_hi = _intercepts(points, origin, slope, soc.ctx.soc_step_bp)
    if a_lo > a_hi:
        return None
    return power, power_sigma, rng[0], rng[1], a_lo, a_hi


def _tapered(
    soc: _SocTrack,
    ctx: MeterContext,
    prior: float,
    prior_sigma: float,
    steps_only: _SocResult,
    start: tuple[datetime, int] | None,
    recent: list[tuple[datetime, int]],
) -> _SocResult:
    """The power moved (a drop, a heater switching off, the taper above ~80 %): fit two lines.

    The latest stretch of one power (`recent`) gives the level now; the straight part from the start
    up to where that stretch begins gives energy = power x time up to where it bends; the difference
    of levels adds the energy in between.
    """
    assert soc.last_t is not None and soc.last_bp is not None
    step, to_wh = ctx.soc_step_bp, ctx.capacity_wh / SOC_FULL_BP
    ends = soc.level_ends
    now_line = _line(soc, recent, prior, prior_sigma, soc.last_t)
    result = replace(steps_only)
    if now_line is not None:
        power, power_sigma, power_lo, power_hi, a_lo, a_hi = now_line
        result.power, result.power_sigma, result.from_readings = power, power_sigma, True
        slope = power / (to_wh * 3600.0)
        if slope > 0:
            result.phase_mid_at = soc.last_t + timedelta(seconds=(soc.last_bp + step - (a_lo + a_hi) / 2) / slope)
            result.phase_width_s = (a_hi - a_lo) / slope
            result.step_s = step / slope
        level_now = (a_lo + a_hi) / 2
        # What the stretch proves of the level now is what every slope it allows says, not only the
        # fitted one (a short stretch's slope is loose). Each bound rises with the slope (the points
        # lie before now): the lowest level is that of the lowest slope, the highest of the highest.
        level_lo = _intercepts(recent, soc.last_t, power_lo / (to_wh * 3600.0), step)[0]
        level_hi = _intercepts(recent, soc.last_t, power_hi / (to_wh * 3600.0), step)[1]
    else:
        level_now, level_lo, level_hi = soc.last_bp + step / 2, float(soc.last_bp), float(soc.last_bp + step)
    if start is None:
        return result
    # The straight part from the start stops changing once the line has bent: cache it.
    key = (start, recent[0][0])
    cached = soc.head_cache.get(key)
    if cached is not None and cached[0] < cached[1]:  # bent before the points it was computed on
        head_line, bend_at = cached[2], cached[3]
    else:
        points = [start, *[(t, level) for t, level in ends if start[0] < t <= recent[0][0]]]
        head = points[: _feasible_run(points, step, from_end=False)]
        if len(head) < 2:
            return result
        bend_at = head[-1][0]
        head_line = _line(soc, head, prior, prior_sigma, bend_at)
        soc.head_cache[key] = (len(head), len(points), head_line, bend_at)
    if head_line is None:
        return result
    power_b, _, lo_b, hi_b, b_lo, b_hi = head_line
    elapsed_h = (bend_at - start[0]).total_seconds() / 3600.0
    start_wh = power_b * ctx.charging_started_uncertainty_s / 3600.0
    start_wh += ctx.power_model_margin * power_b * elapsed_h
    delivered = power_b * elapsed_h + (level_now - (b_lo + b_hi) / 2) * to_wh
    spread = ((b_hi - b_lo) + (level_hi - level_lo)) / 2 * to_wh
    low = max(steps_only.low, lo_b * elapsed_h - start_wh + (level_lo - b_hi) * to_wh)
    high = min(steps_only.high, hi_b * elapsed_h + start_wh + (level_hi - b_lo) * to_wh)
    if low <= high and spread < steps_only.high - steps_only.low:
        result.delivered = min(max(delivered, low), high)
        result.low, result.high = low, high
    return result
