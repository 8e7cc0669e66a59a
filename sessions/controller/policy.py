"""Pure stop policy: when to read the car next, when to send STOP, how to verify and settle.

No database, no I/O, no Django. The controller builds a `PolicyState` (the `MeterEstimate` from
`sessions.controller.metering`, the purchase, the clock, the learned command latency, the call budget and
rate-limit state) and asks a policy for the next `Decision`. Every policy (the predictive one and
the fixed-interval / naive baselines of the benchmark) has the same `decide(state)` method, so the
controller and the offline harness (`benchmarks.policy_eval`) can swap them.

Why the median: the error we minimise is E|delivered − purchased|. Near the end power is nearly
constant, so delivered energy is linear in the moment charging ends = send time + command latency.
For absolute error the best constant is the median of the distribution, so the STOP goes out at
(predicted time-to-target) − (median latency). The same argument holds for the estimate's own
uncertainty (SoC steps): we plan on the median (centre) of the delivered-energy interval, never on
its upper end, so we never plan to exceed the purchase beyond the expected-value optimum.

How a controller step uses it (each step pure except the calls it makes):
1. readings → `metering.Meter`/`metering.estimate` with `estimate_charging_start(...)` for SoC cars;
2. `PolicyState(...)` → `policy.decide(state)`: READ at `at`, STOP at `at` (schedule the step then);
3. after STOP: read at `stop_verification_schedule(attempt, rng)`, judge each reading with
   `stop_verification_outcome`, on STILL_CHARGING follow `escalation(failed, ...)`;
4. feed `infer_stop_latency_s(...)` into the make's `LatencyModel.observe`; bill with `settle`.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sessions.controller.metering import CHARGING, NOT_CHARGING, SOC_FULL_BP, MeterEstimate, Reading

READ = "read"
STOP = "stop"
WAIT = "wait"

# Commands can take up to 300 s (docs/reference/vehicle-api.md §6); anything beyond is not a latency but a failure.
MAX_COMMAND_LATENCY_S = 300.0


# --- command latency ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyModel:
    """Command latency distribution of one make: a uniform prior blended with observed samples.

    The prior counts as `prior_weight` samples, so a handful of observations moves it and a few
    hundred dominate it. Only the latest `max_samples` are kept, so a make that changes is followed.

    Observations are exact (`samples`: an energy counter times a STOP to the second) or censored
    (`intervals`: the charge state flipped somewhere between two snapshots, so the latency lies in
    [lo, hi]). With intervals the distribution is estimated on 5-s bins by expectation-maximisation
    (Turnbull's estimator with the prior as pseudo-observations): each interval's weight goes to
    the bins it covers in proportion to how likely they are, until that settles.
    """

    samples: tuple[float, ...] = ()
    prior_min_s: float = 3.0
    prior_max_s: float = 45.0
    prior_weight: float = 8.0
    max_samples: int = 200
    intervals: tuple[tuple[float, float], ...] = ()

    def observe(self, latency_s: float) -> LatencyModel:
        """A new model including one observed STOP latency (seconds); nonsense values are ignored."""
        if not isinstance(latency_s, int | float) or not math.isfinite(latency_s) or latency_s < 0:
            return self
        kept = (*self.samples, min(float(latency_s), MAX_COMMAND_LATENCY_S))[-self.max_samples :]
        return replace(self, samples=kept)

    def observe_interval(self, lo_s: float, hi_s: float) -> LatencyModel:
        """A new model knowing one latency lay within [lo_s, hi_s]; an empty or useless interval is ignored."""
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in (lo_s, hi_s)):
            return self
        lo, hi = max(0.0, float(lo_s)), min(float(hi_s), MAX_COMMAND_LATENCY_S)
        if hi < lo or (lo <= 0 and hi >= MAX_COMMAND_LATENCY_S):
            return self
        if hi - lo < LATENCY_BIN_S / 5:
            return self.observe((lo + hi) / 2)
        return replace(self, intervals=(*self.intervals, (lo, hi))[-self.max_samples :])

    def cdf(self, x: float) -> float:
        if self.intervals:
            return _binned_cdf(self._binned(), x)
        span = self.prior_max_s - self.prior_min_s
        prior = 1.0 if x >= self.prior_max_s else max(0.0, (x - self.prior_min_s) / span) if span > 0 else 1.0
        if not self.samples:
            return prior
        seen = sum(1 for s in self.samples if s <= x)
        return (self.prior_weight * prior + seen) / (self.prior_weight + len(self.samples))

    def quantile(self, q: float) -> float:
        """Latency (s) below which a fraction `q` of commands complete."""
        q = min(max(q, 0.0), 1.0)
        if not self.samples and not self.intervals:
            return self.prior_min_s + q * (self.prior_max_s - self.prior_min_s)
        if q <= 0.0:  # the CDF is 0 below the smallest value: bisection would answer 0 s
            lows = [lo for lo, _ in self.intervals]
            return min(self.prior_min_s, *self.samples, *lows)
        lo, hi = 0.0, max(self.prior_max_s, *self.samples, *(h for _, h in self.intervals))
        for _ in range(60):  # bisection on the mixture CDF; 60 halvings is far below a millisecond
            mid = (lo + hi) / 2
            if self.cdf(mid) < q:
                lo = mid
            else:
                hi = mid
        return hi

    @property
    def median(self) -> float:
        return self.quantile(0.5)

    def _binned(self) -> tuple[float, ...]:
        return _turnbull(self.samples, self.intervals, self.prior_min_s, self.prior_max_s, self.prior_weight)


LATENCY_BIN_S = 5.0


@functools.lru_cache(maxsize=64)
def _turnbull(
    samples: tuple[float, ...],
    intervals: tuple[tuple[float, float], ...],
    prior_min: float,
    prior_max: float,
    prior_weight: float,
    rounds: int = 12,
) -> tuple[float, ...]:
    """Probability per LATENCY_BIN_S bin from 0 s: prior + exact samples + censored intervals (EM)."""
    top = max(MAX_COMMAND_LATENCY_S, prior_max, *samples, *(hi for _, hi in intervals))
    n = math.ceil(top / LATENCY_BIN_S)

    def overlap(i: int, lo: float, hi: float) -> float:
        a, b = i * LATENCY_BIN_S, (i + 1) * LATENCY_BIN_S
        if hi <= lo:  # a point: the bin that holds it
            return 1.0 if a <= lo < b else 0.0
        return max(0.0, min(b, hi) - max(a, lo)) / (hi - lo)

    fixed = [prior_weight * overlap(i, prior_min, prior_max) for i in range(n)]
    for s in samples:
        fixed[min(n - 1, int(s // LATENCY_BIN_S))] += 1.0
    spans = [
        [(i, overlap(i, lo, hi)) for i in range(int(lo // LATENCY_BIN_S), min(n, int(hi // LATENCY_BIN_S) + 1))]
        for lo, hi in intervals
    ]
    p = fixed[:]
    for cover in spans:  # the first guess: each interval spread evenly over what it covers
        for i, w in cover:
            p[i] += w
    total = sum(p)
    p = [x / total for x in p]
    for _ in range(rounds):
        nxt = fixed[:]
        for cover in spans:
            weights = [(i, p[i] * w) for i, w in cover if w > 0]
            mass = sum(w for _, w in weights)
            if mass <= 0:
                weights = [(i, w) for i, w in cover]
                mass = sum(w for _, w in weights) or 1.0
            for i, w in weights:
                nxt[i] += w / mass
        total = sum(nxt)
        p = [x / total for x in nxt]
    return tuple(p)


def _binned_cdf(p: tuple[float, ...], x: float) -> float:
    if x <= 0:
        return 0.0
    full = int(x // LATENCY_BIN_S)
    if full >= len(p):
        return 1.0
    return min(1.0, sum(p[:full]) + p[full] * (x - full * LATENCY_BIN_S) / LATENCY_BIN_S)


# --- state and decisions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The next action: read the car at `at`, send STOP at `at`, or do nothing until `at`.

    The controller asks again after each read (or when a webhook or the clock says so); asking
    twice with the same state gives the same answer. Once STOP is sent it stops asking and follows
    `stop_verification_schedule` and `escalation` instead.
    """

    kind: str  # "read" | "stop" | "wait"
    at: datetime
    reason: str


@dataclass(frozen=True)
class PolicyState:
    """Everything a policy may look at; energy in Wh, power in W, times aware UTC."""

    now: datetime
    target_wh: int
    estimate: MeterEstimate
    started_at: datetime  # when START was sent
    latency: LatencyModel = field(default_factory=LatencyModel)  # the STOP's
    charging_started_at: datetime | None = None  # best estimate; None until known
    # The START's latency (when it differs from the STOP's; None = the same model).
    start_latency: LatencyModel | None = None
    last_read_at: datetime | None = None  # when we last fetched (not the data age)
    reads: int = 0  # reads of the car in this session so far, STOP verification not included
    # Data a read returns was recorded on a grid every `telemetry_refresh_s` (0 = continuously)
    # and can be fetched `telemetry_age_s` after it was recorded (a fixed lag).
    telemetry_age_s: float = 60.0
    telemetry_refresh_s: float = 0.0
    calls_remaining: int | None = None  # per-vehicle budget left for this session; None = unlimited
    not_before: datetime | None = None  # Retry-After: no call before this
    nominal_power_w: int = 11_000
    soc_only: bool = False  # the make reports no energy counter: energy comes from battery level
    read_cost: int = 1  # billed calls per read (an SoC-only car's /charge + /battery batch: 2)

    @property
    def start_model(self) -> LatencyModel:
        return self.start_latency or self.latency


class Policy(Protocol):
    name: str

    def decide(self, state: PolicyState) -> Decision: ...


def _at_or_after(when: datetime, state: PolicyState) -> datetime:
    when = max(when, state.now)
    if state.not_before is not None:
        when = max(when, state.not_before)
    return when


def _charging_confirmed(state: PolicyState) -> bool:
    est = state.estimate
    return est.accepted > 0 and est.charge_state in (None, CHARGING)


# --- the predictive policy ---------------------------------------------------------------------


@dataclass(frozen=True)
class PredictiveConfig:
    # Next read after this fraction of the time left before STOP: sparse early, dense late.
    read_fraction: float = 0.7
    min_read_interval_s: float = 60.0
    max_read_interval_s: float = 3600.0
    # Once STOP is due within this many seconds, another read would not change it: commit.
    commit_horizon_s: float = 240.0
    # ...unless the power may still rise (see _recheck_read) enough to move the end by more than
    # this fraction of the purchase: then the snapshot fetched this long before the STOP is read.
    recheck_tolerance: float = 0.005
    recheck_lead_s: float = 90.0
    # Reads always kept for verifying the STOP (besides the STOP itself), whatever a read costs.
    reserve_reads: int = 2
    # After the measured power moved, the next read comes once the counter's data has run this
    # long on the new power: 10 Wh steps over 300 s time it to ~1 %.
    remeasure_span_s: float = 300.0
    # Quantile of the START latency after which the first read should already see charging.
    confirm_quantile: float = 0.9
    soc_confirm_quantile: float = 0.5
    confirm_retry_s: float = 60.0
    # SoC-only cars: place reads where the level is about to change (see _snap_to_soc_phase).
    snap_soc_reads: bool = True
    # SoC-only cars: extra reads until the level change is timed to this many seconds...
    soc_phase_target_s: float = 40.0
    soc_tolerance: float = 0.005
    soc_phase_min_s: float = 8.0
    # ...right after the start (at most this many) and before STOP, within this many reads in all.
    soc_early_reads: int = 5
    soc_max_reads: int = 16


@dataclass(frozen=True)
class Prediction:
    target_at: datetime  # when delivered energy reaches the purchase
    send_at: datetime  # when STOP should go out
    power_w: float


def predict(state: PolicyState) -> Prediction:
    """When delivered energy reaches the purchase, and when to send STOP so charging ends there."""
    est = state.estimate
    power = est.power_w if est.power_w > 0 else state.nominal_power_w
    if est.as_of is not None:
        # Energy kept flowing since the data was recorded: extrapolate from the data age, not now.
        remaining_wh = state.target_wh - est.delivered_wh
        target_at = est.as_of + timedelta(seconds=remaining_wh * 3600.0 / power)
    else:
        begin = state.charging_started_at or state.started_at + timedelta(seconds=state.start_model.median)
        target_at = begin + timedelta(seconds=state.target_wh * 3600.0 / power)
    # Sending at (target − median latency) minimises E|end − target| (see the module docstring).
    send_at = target_at - timedelta(seconds=state.latency.median)
    return Prediction(target_at=target_at, send_at=send_at, power_w=power)


@dataclass(frozen=True)
class PredictivePolicy:
    """Reads when they matter and sends STOP so that the expected charging end lands on target."""

    config: PredictiveConfig = field(default_factory=PredictiveConfig)
    name: str = "predictive"

    def decide(self, state: PolicyState) -> Decision:
        cfg = self.config
        est = state.estimate
        reserve = 1 + cfg.reserve_reads * state.read_cost  # the STOP and its verification
        reads_left = math.inf if state.calls_remaining is None else (state.calls_remaining - reserve) // state.read_cost

        if est.accepted and (est.delivered_low_wh >= state.target_wh or est.delivered_wh >= state.target_wh):
            return Decision(STOP, _at_or_after(state.now, state), "estimate already at the purchase")

        pred = predict(state)
        if pred.send_at <= state.now:
            return Decision(STOP, _at_or_after(state.now, state), "predicted charging end reaches the purchase")

        if not _charging_confirmed(state):
            if reads_left <= 0:
                return Decision(STOP, _at_or_after(pred.send_at, state), "no calls to spare: stop on nominal power")
            if state.last_read_at is None:
                # Read once the car has probably started and its data is new enough to show it.
                # SoC-only cars measure energy as power x time since the start, so it pays to
                # look at the median start: either answer halves the start's uncertainty.
                q = cfg.soc_confirm_quantile if state.soc_only else cfg.confirm_quantile
                grid_wait = state.telemetry_refresh_s / 2 if state.soc_only else state.telemetry_refresh_s
                delay = state.start_model.quantile(q) + state.telemetry_age_s + grid_wait
                first = state.started_at + timedelta(seconds=delay)
                return Decision(READ, _at_or_after(first, state), "confirm charging started")
            retry = state.last_read_at + timedelta(seconds=max(cfg.confirm_retry_s, state.telemetry_refresh_s))
            if est.delivered_wh > 0:
                # It charged, now it does not (unplugged, full, paused by the car or the driver):
                # the controller decides on INTERRUPTED from the same reading; keep an eye on it.
                return Decision(READ, _at_or_after(retry, state), f"car reports {est.charge_state}: re-check")
            return Decision(READ, _at_or_after(retry, state), "charging not confirmed yet")

        remaining_s = (pred.send_at - state.now).total_seconds()
        floor_s = max(cfg.min_read_interval_s, state.telemetry_refresh_s)
        phase_read = self._soc_phase_read(state, pred, reads_left, remaining_s, floor_s)
        if phase_read is not None:
            return phase_read
        earliest = _at_or_after(state.now + timedelta(seconds=floor_s), state)
        if not est.power_settled and reads_left >= 1 and est.as_of is not None:
            # The power moved: the newest readings alone measure it, or mix old and new. A measured
            # power is a measurement: read again once the counter has moved enough to time it.
            data_at = est.as_of + timedelta(seconds=cfg.remeasure_span_s)
            read_at = max(earliest, _at_or_after(_fetch_for(data_at, state, "ceil"), state))
            if read_at < pred.send_at:
                return Decision(READ, read_at, "power changed: measure it again before planning the STOP")
        if remaining_s <= cfg.commit_horizon_s or reads_left < 1:
            recheck = self._recheck_read(state, pred, reads_left, earliest)
            if recheck is not None:
                return recheck
            why = "STOP due soon" if reads_left >= 1 else "call budget reserved for STOP and verification"
            return Decision(STOP, _at_or_after(pred.send_at, state), why)

        # The power may rise back (a drop that recovers, a heater that stops) up to what the car
        # can take: the next read must come before the purchase would be in even then.
        interval = min(cfg.read_fraction * min(remaining_s, _fastest_remaining_s(state, pred)), cfg.max_read_interval_s)
        if math.isfinite(reads_left):
            # With k reads left, shrinking the time left by (1 − f) per read must reach the commit
            # horizon within k reads: f ≥ 1 − (horizon / remaining)^(1/k). The budget beats the cap.
            needed = 1.0 - (cfg.commit_horizon_s / remaining_s) ** (1.0 / reads_left)
            interval = max(interval, needed * remaining_s)
        # Reading more often than the car's data refreshes buys nothing but a bill.
        interval = max(interval, cfg.min_read_interval_s, state.telemetry_refresh_s)
        planned = _at_or_after(state.now + timedelta(seconds=interval), state)
        # The same snapshot is served until the next one: fetch it as soon as it exists.
        read_at = _fetch_for(planned - timedelta(seconds=state.telemetry_age_s), state, "floor")
        if read_at < earliest:
            read_at = _fetch_for(earliest - timedelta(seconds=state.telemetry_age_s), state, "ceil")
        read_at = _at_or_after(read_at, state)
        if cfg.snap_soc_reads:
            read_at = _snap_to_soc_phase(read_at, state, pred, earliest=earliest)
        if read_at >= pred.send_at:
            return Decision(STOP, _at_or_after(pred.send_at, state), "no read fits before STOP")
        return Decision(READ, read_at, f"{remaining_s:.0f} s to STOP; read after {interval:.0f} s")

    def _recheck_read(
        self, state: PolicyState, pred: Prediction, reads_left: float, earliest: datetime
    ) -> Decision | None:
        """One more read just before a committed STOP while the power may still rise.

        A car whose counter measures less than the power it reported (a drop that may recover, a
        cold pack's heater taking part of the charger's power until the pack is warm) can take the
        rest of its purchase faster at any moment, and the STOP is committed minutes ahead. Where
        the power rising to the highest the car reported would put more than `recheck_tolerance`
        of the purchase in before the STOP, the snapshot fetched `recheck_lead_s` before it is read:
        the plan is made again on how the power ran since the last read.
        """
        cfg, est = self.config, state.estimate
        if reads_left < 1 or not est.peak_power_w or est.power_w <= 0 or est.as_of is None:
            return None
        excess_wh = max(0.0, state.target_wh - est.delivered_wh) * (est.peak_power_w / est.power_w - 1.0)
        if excess_wh <= cfg.recheck_tolerance * state.target_wh:
            return None
        data_at = pred.send_at - timedelta(seconds=cfg.recheck_lead_s + state.telemetry_age_s)
        read_at = _at_or_after(_fetch_for(data_at, state, "floor"), state)
        if read_at < earliest or read_at >= pred.send_at:
            return None
        return Decision(READ, read_at, f"power may rise by {est.peak_power_w - est.power_w} W: read before the STOP")

    def _soc_phase_read(
        self, state: PolicyState, pred: Prediction, reads_left: float, remaining_s: float, floor_s: float
    ) -> Decision | None:
        """Extra reads for SoC-only cars: pin the level's phase early and again just before STOP.

        Energy from battery level is power x time since the start once the line through the level
        changes is pinned at both ends; each read timed at the expected level change halves the
        phase uncertainty (a bisection), so a few of them beat many reads on a clock.
        """
        cfg, est = self.config, state.estimate
        width = est.soc_phase_width_s
        if width is None or est.soc_phase_mid_at is None or not est.soc_step_s:
            return None
        # Time the level change to within what an energy error of `soc_tolerance` of the purchase allows.
        target_s = max(cfg.soc_phase_min_s, cfg.soc_tolerance * state.target_wh * 3600.0 / pred.power_w)
        if width <= min(target_s, cfg.soc_phase_target_s):
            return None
        if reads_left < 2 or state.reads >= cfg.soc_max_reads:
            return None
        early = state.reads < 1 + cfg.soc_early_reads  # the confirmation read counts as the first
        late = remaining_s <= cfg.commit_horizon_s
        if not (early or late):
            return None
        age = timedelta(seconds=state.telemetry_age_s)
        step = timedelta(seconds=est.soc_step_s)
        earliest = _at_or_after(state.now + timedelta(seconds=floor_s), state)
        k = math.ceil((earliest - age - est.soc_phase_mid_at) / step)
        if late:
            # The last level change before STOP: the phase is then measured closest to the end.
            while _fetch_for(est.soc_phase_mid_at + (k + 1) * step, state, "nearest") < pred.send_at:
                k += 1
        for candidate_k in (k, k + 1):
            candidate = _fetch_for(est.soc_phase_mid_at + candidate_k * step, state, "nearest")
            if earliest <= candidate < pred.send_at:
                why = f"SoC phase uncertain by {width:.0f} s: read at the expected level change"
                return Decision(READ, _at_or_after(candidate, state), why)
        return None


def _fastest_remaining_s(state: PolicyState, pred: Prediction) -> float:
    """Seconds until the STOP would be due if the power rose back from the latest data: to the
    highest it reported this session (a drop that recovers), or to the nominal where the car
    reports no power."""
    est = state.estimate
    fastest = max(float(est.power_w), float(est.peak_power_w or state.nominal_power_w))
    if est.as_of is None or fastest <= 0:
        return (pred.send_at - state.now).total_seconds()
    at = est.as_of + timedelta(seconds=(state.target_wh - est.delivered_wh) * 3600.0 / fastest)
    return (at - timedelta(seconds=state.latency.median) - state.now).total_seconds()


# Fetch this long after a snapshot is due, so clock skew does not return the previous one.
GRID_MARGIN = timedelta(seconds=1)


def _fetch_for(data_time: datetime, state: PolicyState, mode: str) -> datetime:
    """When to fetch to get data recorded at `data_time` (or the snapshot "floor"/"ceil"/"nearest" it).

    Snapshots fall on a grid every `telemetry_refresh_s`, anchored on the latest reading's data age;
    a fetch just after one gets it freshest, a later fetch before the next returns the same data.
    """
    lag = timedelta(seconds=state.telemetry_age_s)
    refresh = state.telemetry_refresh_s
    anchor = state.estimate.as_of
    if refresh <= 0 or anchor is None:
        return data_time + lag
    steps = (data_time - anchor) / timedelta(seconds=refresh)
    k = math.floor(steps) if mode == "floor" else math.ceil(steps) if mode == "ceil" else round(steps)
    return anchor + timedelta(seconds=k * refresh) + lag + GRID_MARGIN


def _snap_to_soc_phase(read_at: datetime, state: PolicyState, pred: Prediction, *, earliest: datetime) -> datetime:
    """For SoC-only cars, move a read to when the reported level is as likely to have changed as not.

    A read there halves the uncertainty of the line's phase (a bisection), and with it the energy;
    a read in the middle of a level only says what the last one did. Any level boundary will do,
    since they follow each other every `soc_step_s`: take the one closest to the planned read.
    """
    est = state.estimate
    if est.soc_phase_mid_at is None or not est.soc_step_s or est.soc_step_s <= 0:
        return read_at
    age = timedelta(seconds=state.telemetry_age_s)
    step = timedelta(seconds=est.soc_step_s)
    k = round((read_at - age - est.soc_phase_mid_at) / step)
    for candidate_k in (k, k + 1, k - 1, k + 2):
        candidate = _fetch_for(est.soc_phase_mid_at + candidate_k * step, state, "nearest")
        if earliest <= candidate < pred.send_at:
            return _at_or_after(candidate, state)
    return read_at


# --- baselines for the benchmark ---------------------------------------------------------------


@dataclass(frozen=True)
class FixedIntervalPolicy:
    """evcc-style loop: read every `seconds`, STOP on the first reading at/after the purchase."""

    seconds: float = 30.0
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"fixed:{self.seconds:g}")

    def decide(self, state: PolicyState) -> Decision:
        if state.estimate.accepted and state.estimate.delivered_wh >= state.target_wh:
            return Decision(STOP, _at_or_after(state.now, state), "reading at or past the purchase")
        last = state.last_read_at or state.started_at
        return Decision(READ, _at_or_after(last + timedelta(seconds=self.seconds), state), "fixed interval")


@dataclass(frozen=True)
class NaivePolicy:
    """Reads every `seconds`, predicts the target time from the data age, no latency compensation."""

    seconds: float = 60.0
    name: str = "naive"

    def decide(self, state: PolicyState) -> Decision:
        est = state.estimate
        if est.accepted and est.delivered_wh >= state.target_wh:
            return Decision(STOP, _at_or_after(state.now, state), "reading at or past the purchase")
        if est.accepted:
            target_at = predict(state).target_at
            if target_at <= state.now:
                return Decision(STOP, _at_or_after(state.now, state), "predicted at the purchase")
        else:
            target_at = None
        last = state.last_read_at or state.started_at
        read_at = last + timedelta(seconds=self.seconds)
        if target_at is not None and target_at < read_at:
            return Decision(STOP, _at_or_after(target_at, state), "purchase reached before the next read")
        return Decision(READ, _at_or_after(read_at, state), "fixed interval")


def policy_from_spec(spec: str) -> Policy:
    """`predictive`, `naive` or `fixed:SECONDS` (the benchmark's --policy values)."""
    if spec == "predictive":
        return PredictivePolicy()
    if spec == "naive":
        return NaivePolicy()
    if spec.startswith("fixed:"):
        seconds = float(spec.split(":", 1)[1])
        if seconds <= 0:
            raise ValueError(f"fixed interval must be positive: {spec}")
        return FixedIntervalPolicy(seconds, name=spec)
    raise ValueError(f"unknown policy {spec!r}")


# --- start and latency inference ---------------------------------------------------------------


def estimate_charging_start(
    *, start_sent_at: datetime, latency: LatencyModel, readings: Sequence[Reading] = ()
) -> tuple[datetime, float]:
    """When charging began: START send time + latency, narrowed by readings' charge state.

    Returns (best estimate, half-width in seconds). A reading taken (data age) while NOT charging
    bounds the start from below, the first taken while CHARGING bounds it from above.
    """
    model_lo = start_sent_at + timedelta(seconds=latency.quantile(0.0))
    model_hi = start_sent_at + timedelta(seconds=latency.quantile(1.0))
    first_charging = min((r.taken_at for r in readings if r.charge_state == CHARGING), default=None)
    if first_charging is not None:
        before = [r.taken_at for r in readings if r.charge_state != CHARGING and r.taken_at < first_charging]
    else:
        before = [r.taken_at for r in readings if r.charge_state is not None and r.charge_state != CHARGING]
    seen_lo = max(before, default=None)
    lo = max(model_lo, seen_lo) if seen_lo else model_lo
    hi = min(model_hi, first_charging) if first_charging else model_hi
    if lo > hi and seen_lo is not None and first_charging is not None:
        # The readings contradict the latency model (a make slower than its prior, not learned
        # yet): what the car showed is a fact, the model a guess. Between the flip's snapshots.
        return seen_lo + (first_charging - seen_lo) / 2, (first_charging - seen_lo).total_seconds() / 2
    if lo >= hi:
        # Seen charging before the model's earliest start: by then at the latest. Not charging
        # after its latest: not before that.
        return (hi if first_charging is not None else lo), 0.0
    # Median of the latency distribution restricted to [lo, hi].
    q_lo = latency.cdf((lo - start_sent_at).total_seconds())
    q_hi = latency.cdf((hi - start_sent_at).total_seconds())
    best = start_sent_at + timedelta(seconds=latency.quantile((q_lo + q_hi) / 2))
    best = min(max(best, lo), hi)
    return best, (hi - lo).total_seconds() / 2


def flip_interval(readings: Sequence[Reading], sent_at: datetime, *, to_charging: bool) -> tuple[float, float] | None:
    """Bounds (s) of a command's effect latency from when the car's data showed its charge state flip.

    The last snapshot after the send still in the old state and the first in the new one bracket
    the moment it acted: [that one − sent, this one − sent]. None when no snapshot shows the new
    state. A STOP counts only if the car shows NOT_CHARGING (FULLY_CHARGED is its own limit acting).
    Works for every car: those that report only a level and whose data refreshes every few
    minutes give wide intervals, which `LatencyModel.observe_interval` weighs as such.
    """
    before = 0.0
    for r in sorted((r for r in readings if r.charge_state and r.taken_at >= sent_at), key=lambda r: r.taken_at):
        x = (r.taken_at - sent_at).total_seconds()
        charging = r.charge_state == CHARGING
        if charging == to_charging:
            if not to_charging and r.charge_state != NOT_CHARGING:
                return None
            return before, x
        before = x
    return None


def infer_stop_latency_s(
    *, stop_sent_at: datetime, predicted_wh_at_send: float, final_delivered_wh: float, power_w: float
) -> float | None:
    """STOP latency implied by the energy that still went in after the STOP was sent.

    Returns None when the figures cannot tell (no power); clamps to 0..MAX_COMMAND_LATENCY_S.
    """
    if power_w <= 0 or not math.isfinite(final_delivered_wh) or not math.isfinite(predicted_wh_at_send):
        return None
    seconds = (final_delivered_wh - predicted_wh_at_send) * 3600.0 / power_w
    return min(max(seconds, 0.0), MAX_COMMAND_LATENCY_S)


# --- STOP as an action: verification, escalation, settlement -------------------------------------


def stop_verification_schedule(
    attempt: int,
    rng: random.Random,
    *,
    latency: LatencyModel | None = None,
    telemetry_age_s: float = 60.0,
    telemetry_refresh_s: float = 0.0,
    base_s: float = 30.0,
    cap_s: float = 600.0,
) -> timedelta:
    """Delay before verification read number `attempt` (0-based) after the STOP or previous check.

    The first check waits for the STOP to take effect (90th percentile latency) and for the car's
    data to show it (telemetry lag plus one refresh). Later ones back off exponentially with full jitter from the
    caller's seeded `rng`, so two workers and a replay agree and a fleet does not retry in lockstep.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if attempt == 0:
        model = latency or LatencyModel()
        return timedelta(seconds=model.quantile(0.9) + telemetry_age_s + telemetry_refresh_s)
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    # Full jitter keeps a floor of half the ceiling so checks never bunch up right after the last.
    return timedelta(seconds=max(telemetry_age_s / 2, ceiling / 2 + rng.uniform(0.0, ceiling / 2)))


STOPPED = "stopped"
STILL_CHARGING = "still_charging"
TOO_EARLY = "too_early"


def stop_verification_outcome(
    *,
    stop_sent_at: datetime,
    taken_at: datetime,
    charge_state: str | None,
    latency: LatencyModel,
    quantile: float = 0.99,
) -> str:
    """Does a reading show the STOP worked? "stopped", "still_charging" or "too_early" to tell.

    A reading recorded before the STOP could have taken effect proves nothing either way: only
    data taken after the send time plus a high latency quantile may count as a failed STOP, or
    stale data would send a healthy session into escalation.
    """
    if charge_state is not None and charge_state != CHARGING and taken_at > stop_sent_at:
        return STOPPED
    if taken_at >= stop_sent_at + timedelta(seconds=latency.quantile(quantile)):
        return STILL_CHARGING if charge_state == CHARGING else TOO_EARLY
    return TOO_EARLY


RETRY_STOP = "retry_stop"
LOWER_CHARGE_LIMIT = "lower_charge_limit"
FLAG_OPERATOR = "flag_operator"

# The vehicle API rejects a charge limit below 0.5 (docs/reference/vehicle-api.md §2.1).
MIN_CHARGE_LIMIT_BP = 5000


@dataclass(frozen=True)
class Escalation:
    kind: str  # "retry_stop" | "lower_charge_limit" | "flag_operator"
    reason: str
    limit_bp: int | None = None  # for lower_charge_limit: the limit to set, in basis points


def escalation(
    failed_verifications: int,
    *,
    supports_charge_limit: bool,
    current_soc_bp: int | None,
    limit_already_lowered: bool = False,
    retries_before_limit: int = 2,
) -> Escalation:
    """What to do after `failed_verifications` checks found the car still charging after STOP.

    Retry the STOP a few times; then lower the car's charge limit to its current level (rounded up
    to a whole percent, at least the API's 50 %) where the make supports it; then flag the operator.
    The controller sends the STOP again at every such check whatever this says (the limit and the
    operator add to the STOP, they never replace it: sessions/controller/stopping.py).
    """
    if failed_verifications <= retries_before_limit:
        return Escalation(RETRY_STOP, f"{failed_verifications} failed check(s): send STOP again")
    if supports_charge_limit and not limit_already_lowered and current_soc_bp is not None:
        if current_soc_bp < MIN_CHARGE_LIMIT_BP:
            return Escalation(FLAG_OPERATOR, "car ignores STOP and its level is below the lowest settable limit")
        limit = min(10_000, -(-current_soc_bp // 100) * 100)
        return Escalation(LOWER_CHARGE_LIMIT, "car ignores STOP: cap it at its current level", limit_bp=limit)
    if supports_charge_limit and not limit_already_lowered:
        return Escalation(FLAG_OPERATOR, "car ignores STOP and its level is unknown")
    return Escalation(FLAG_OPERATOR, "car ignores STOP and the charge limit did not help")


def settle(purchased_wh: int, delivered_wh: int, proven_wh: int | None = None) -> tuple[int, int]:
    """(billed_wh, overshoot_wh): bill what the readings prove, never above the purchase.

    `proven_wh` is the low bound of the estimate (what the readings prove was delivered: an energy
    counter to its step, a level to its step and the smallest usable capacity); without it the
    estimate itself is billed. Overshoot is the estimate past the purchase, absorbed. What lies
    between the billed and min(delivered, purchased) is delivered but unproven: the operator's cost.
    """
    if purchased_wh < 0:
        raise ValueError("purchased_wh must be >= 0")
    delivered = max(0, int(delivered_wh))
    proven = delivered if proven_wh is None else max(0, min(int(proven_wh), delivered))
    billed = min(proven, purchased_wh)
    return billed, max(0, delivered - purchased_wh)


def unbilled_wh(purchased_wh: int, delivered_wh: int, billed_wh: int) -> int:
    """Delivered energy up to the purchase that was not billed (unproven by the readings)."""
    return max(0, min(int(delivered_wh), purchased_wh) - int(billed_wh))


# The backstop limit sits this far above the level where the purchase ends, besides one level step.
BACKSTOP_MARGIN_BP = 200


def backstop_limit_bp(
    *,
    start_soc_bp: int,
    purchased_wh: int,
    capacity_wh: int,
    usable_low_fraction: float = 1.0,
    soc_step_bp: int = 100,
    max_soc_bp: int = SOC_FULL_BP,
) -> int:
    """The charge limit to set as a backstop: never below where the purchase can end, so it never
    stops a session short of what was paid for.

    The purchase ends at the start level plus its energy over the pack — and the pack may hold as
    little as `usable_low_fraction` of the capacity the API reported, so the level it takes may be
    that much higher. The car shows (and stops at) levels of one step, rounded whichever way, so
    one step more, plus a margin; in whole percent (the car rounds what it is sent), at least the
    API's lowest settable limit, at most the driver's maximum.
    """
    capacity = max(1.0, capacity_wh * usable_low_fraction)
    rise = -(-purchased_wh * SOC_FULL_BP // int(capacity))
    wanted = start_soc_bp + rise + soc_step_bp + BACKSTOP_MARGIN_BP
    whole = -(-wanted // 100) * 100
    return max(MIN_CHARGE_LIMIT_BP, min(whole, SOC_FULL_BP, max_soc_bp))
