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

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from sessions.controller.metering import CHARGING, MeterEstimate, Reading

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
    """

    samples: tuple[float, ...] = ()
    prior_min_s: float = 3.0
    prior_max_s: float = 45.0
    prior_weight: float = 8.0
    max_samples: int = 200

    def observe(self, latency_s: float) -> LatencyModel:
        """A new model including one observed STOP latency (seconds); nonsense values are ignored."""
        if not isinstance(latency_s, int | float) or not math.isfinite(latency_s) or latency_s < 0:
            return self
        kept = (*self.samples, min(float(latency_s), MAX_COMMAND_LATENCY_S))[-self.max_samples :]
        return replace(self, samples=kept)

    def cdf(self, x: float) -> float:
        span = self.prior_max_s - self.prior_min_s
        prior = 1.0 if x >= self.prior_max_s else max(0.0, (x - self.prior_min_s) / span) if span > 0 else 1.0
        if not self.samples:
            return prior
        seen = sum(1 for s in self.samples if s <= x)
        return (self.prior_weight * prior + seen) / (self.prior_weight + len(self.samples))

    def quantile(self, q: float) -> float:
        """Latency (s) below which a fraction `q` of commands complete."""
        q = min(max(q, 0.0), 1.0)
        if not self.samples:
            return self.prior_min_s + q * (self.prior_max_s - self.prior_min_s)
        if q <= 0.0:  # the CDF is 0 below the smallest value: bisection would answer 0 s
            return min(self.prior_min_s, *self.samples)
        lo, hi = 0.0, max(self.prior_max_s, *self.samples)
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
    latency: LatencyModel = field(default_factory=LatencyModel)
    charging_started_at: datetime | None = None  # best estimate; None until known
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
    # Calls always kept for the STOP and two verification reads.
    reserve_calls: int = 3
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
    # Energy-counter cars: once the power is measured (two counter readings), no more reads are
    # needed when extrapolating to the purchase cannot be off by more than this fraction of it,
    # counting the fit's uncertainty and a drift of the real power of `power_drift` over the rest.
    commit_error_fraction: float = 0.0025
    power_drift: float = 0.005
    # Above this battery level AC power tapers: sessions ending there keep reading until the end.
    taper_from_bp: int = 7500


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
        begin = state.charging_started_at or state.started_at + timedelta(seconds=state.latency.median)
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
        reads_left = math.inf if state.calls_remaining is None else state.calls_remaining - cfg.reserve_calls

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
                delay = state.latency.quantile(q) + state.telemetry_age_s + grid_wait
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
        if self._power_settled(state, pred):
            return Decision(STOP, _at_or_after(pred.send_at, state), "power measured: no read would move the STOP")
        if remaining_s <= cfg.commit_horizon_s or reads_left <= 0:
            why = "STOP due soon" if reads_left > 0 else "call budget reserved for STOP and verification"
            return Decision(STOP, _at_or_after(pred.send_at, state), why)

        earliest = _at_or_after(state.now + timedelta(seconds=floor_s), state)
        settling = self._settling_read(state, pred, earliest)
        if settling is not None:
            if settling >= pred.send_at:
                return Decision(STOP, _at_or_after(pred.send_at, state), "no read fits before STOP")
            return Decision(READ, settling, "one read to measure the power close enough to the purchase")

        interval = min(cfg.read_fraction * remaining_s, cfg.max_read_interval_s)
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

    def _counter_before_taper(self, state: PolicyState) -> bool:
        est = state.estimate
        if state.soc_only or est.source == "soc" or est.as_of is None:
            return False
        end_level = est.level_at_wh(state.target_wh)
        return end_level is not None and end_level < self.config.taper_from_bp

    def _settling_read(self, state: PolicyState, pred: Prediction, earliest: datetime) -> datetime | None:
        """Energy-counter cars: the one read after which the STOP can be committed (see _power_settled).

        Its data must leave at most H = tolerance / (power x drift) to extrapolate, so it is
        fetched for data recorded H before the target; the longer span from the first reading
        also pins the power's fit (1.5 x the drift leaves room for the fit's own error).
        """
        cfg, est = self.config, state.estimate
        if not self._counter_before_taper(state) or pred.power_w <= 0:
            return None
        assert est.as_of is not None
        budget_wh = cfg.commit_error_fraction * state.target_wh - (est.delivered_high_wh - est.delivered_low_wh) / 2
        horizon_h = max(0.0, budget_wh) / (1.5 * cfg.power_drift * pred.power_w)
        data_at = pred.target_at - timedelta(hours=horizon_h)
        if data_at <= est.as_of:
            # Our data is already that close and the power is still not settled (it varies, or the
            # tolerance is below the counter's step): the usual sparse-to-dense schedule takes over.
            return None
        read_at = _fetch_for(data_at, state, "ceil")
        if read_at < earliest:
            read_at = _fetch_for(earliest - timedelta(seconds=state.telemetry_age_s), state, "ceil")
        return _at_or_after(read_at, state)

    def _power_settled(self, state: PolicyState, pred: Prediction) -> bool:
        """Energy-counter cars: would another read change the STOP time by more than the tolerance?

        The energy at the purchase is the counter's value plus power x the time from its data to
        the target; its error is the power's (±2σ of the fit, plus a drift of the real power)
        times that horizon, plus the counter's own half-width. Once that is within
        `commit_error_fraction` of the purchase the STOP is committed: reads until a fixed
        horizon would cost calls and move nothing. Not for SoC-only cars (their energy comes from
        level steps, see _soc_phase_read), not on a prior power, and not where the session ends
        on the battery's taper (power falls there; the estimate needs reads close to the end).
        """
        cfg, est = self.config, state.estimate
        if est.power_source != "readings" or not self._counter_before_taper(state):
            return False
        assert est.as_of is not None
        horizon_h = max(0.0, (pred.target_at - est.as_of).total_seconds()) / 3600.0
        power_error = (est.power_high_w - est.power_low_w) / 2 + cfg.power_drift * est.power_w
        error_wh = power_error * horizon_h + (est.delivered_high_wh - est.delivered_low_wh) / 2
        return error_wh <= cfg.commit_error_fraction * state.target_wh

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
        if reads_left <= 1 or state.reads >= cfg.soc_max_reads:
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
    lo = start_sent_at + timedelta(seconds=latency.quantile(0.0))
    hi = start_sent_at + timedelta(seconds=latency.quantile(1.0))
    first_charging = min((r.taken_at for r in readings if r.charge_state == CHARGING), default=None)
    if first_charging is not None:
        hi = min(hi, first_charging)
        before = [r.taken_at for r in readings if r.charge_state != CHARGING and r.taken_at < first_charging]
    else:
        before = [r.taken_at for r in readings if r.charge_state is not None and r.charge_state != CHARGING]
    if before:
        lo = max(lo, max(before))
    if lo >= hi:
        return hi, 0.0
    # Median of the latency distribution restricted to [lo, hi].
    q_lo = latency.cdf((lo - start_sent_at).total_seconds())
    q_hi = latency.cdf((hi - start_sent_at).total_seconds())
    best = start_sent_at + timedelta(seconds=latency.quantile((q_lo + q_hi) / 2))
    best = min(max(best, lo), hi)
    return best, (hi - lo).total_seconds() / 2


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


def settle(purchased_wh: int, delivered_wh: int) -> tuple[int, int]:
    """(billed_wh, overshoot_wh): bill min(delivered, purchased), never above; overshoot is absorbed."""
    if purchased_wh < 0:
        raise ValueError("purchased_wh must be >= 0")
    delivered = max(0, int(delivered_wh))
    billed = min(delivered, purchased_wh)
    return billed, delivered - billed
