"""Offline evaluation of stop policies in virtual time: a tiny car model, no I/O, no Django.

For tuning and regression of `sessions.controller.policy`, not the product benchmark (that one drives the real
controller against the simulator). The car charges at a constant power with noise and a taper
above 80 % SoC; its telemetry is `telemetry_age_s` old (optionally refreshed only every
`telemetry_refresh_s`), energy added is rounded to `energy_step_wh` (0 = not reported), the SoC is
floored to `soc_step_bp`, and START/STOP take effect after a latency drawn uniformly from
`latency_min_s..latency_max_s`. Every session is seeded, so a run is reproducible.

Calls counted per session: START, every read (including the verification reads), STOP.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sessions.controller.metering import (
    CHARGING,
    NOT_CHARGING,
    SOC_FULL_BP,
    SOURCE_ENERGY_ADDED,
    SOURCE_SOC,
    Meter,
    MeterContext,
    Reading,
)
from sessions.controller.policy import (
    LOWER_CHARGE_LIMIT,
    READ,
    RETRY_STOP,
    STOP,
    STOPPED,
    TOO_EARLY,
    LatencyModel,
    Policy,
    PolicyState,
    escalation,
    estimate_charging_start,
    policy_from_spec,
    stop_verification_outcome,
    stop_verification_schedule,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class CarProfile:
    """The physical and telemetry model of one car type and the purchases made for it."""

    power_w: int = 11_000
    power_spread: float = 0.03  # session power = power_w x U(1 - spread, 1 + spread)
    power_jitter: float = 0.02  # per-minute multiplicative noise on top
    capacity_wh: int = 75_000
    taper_start_bp: int = 8000
    taper_floor: float = 0.3  # fraction of power left at 100 % SoC
    latency_min_s: float = 3.0
    latency_max_s: float = 45.0
    telemetry_age_s: float = 60.0
    telemetry_refresh_s: float = 0.0
    energy_step_wh: int = 10  # 0 = the car reports no energy added (SoC only)
    soc_step_bp: int = 100
    purchase_min_wh: int = 5000
    purchase_max_wh: int = 30_000
    start_soc_min_bp: int = 1000
    start_soc_max_bp: int = 6000
    call_budget: int | None = None
    # Battery energy / charger energy. The car's counter and SoC see the battery side; purchases
    # and the returned `delivered_wh` count the charger side, as the simulator's wall figure does.
    efficiency: float = 1.0
    # Probability that any call fails retryably (UPSTREAM, timeouts); the controller retries it
    # after `retry_after_failure_s`. Each attempt is a billed call.
    failure_rate: float = 0.0
    # Probability that the car accepts a STOP but keeps charging (evcc's "charger out of sync").
    ignore_stop_rate: float = 0.0
    retry_after_failure_s: float = 10.0


# The two profiles (issue 8 §1).
ENERGY_ADDED_PROFILE = CarProfile()
SOC_ONLY_PROFILE = CarProfile(energy_step_wh=0)


@dataclass(frozen=True)
class SessionResult:
    purchase_wh: int
    delivered_wh: float
    calls: int
    reads: int
    start_soc_bp: int
    stop_latency_s: float
    outcome: str = "stopped"  # "stopped" | "escalated" (charge limit) | "flagged" | "not_stopped"

    @property
    def error_wh(self) -> float:
        return abs(self.delivered_wh - self.purchase_wh)

    @property
    def error_pct(self) -> float:
        return 100.0 * self.error_wh / self.purchase_wh

    @property
    def overshoot_wh(self) -> float:
        return max(0.0, self.delivered_wh - self.purchase_wh)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolation percentile (q in 0..100), like numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class EvalSummary:
    policy: str
    sessions: tuple[SessionResult, ...] = field(repr=False)

    def _errors(self) -> list[float]:
        return [s.error_pct for s in self.sessions]

    @property
    def error_pct_p50(self) -> float:
        return percentile(self._errors(), 50)

    @property
    def error_pct_p95(self) -> float:
        return percentile(self._errors(), 95)

    @property
    def error_pct_max(self) -> float:
        return max(self._errors())

    @property
    def calls_p50(self) -> float:
        return percentile([float(s.calls) for s in self.sessions], 50)

    @property
    def calls_p95(self) -> float:
        return percentile([float(s.calls) for s in self.sessions], 95)

    @property
    def overshoot_wh_total(self) -> float:
        return sum(s.overshoot_wh for s in self.sessions)

    def row(self) -> dict[str, float | str | int]:
        return {
            "policy": self.policy,
            "sessions": len(self.sessions),
            "error_pct_p50": round(self.error_pct_p50, 3),
            "error_pct_p95": round(self.error_pct_p95, 3),
            "error_pct_max": round(self.error_pct_max, 3),
            "calls_p50": self.calls_p50,
            "calls_p95": self.calls_p95,
            "overshoot_kwh_total": round(self.overshoot_wh_total / 1000, 3),
        }


def latency_floor_pct_p95(profile: CarProfile, sessions: int = 4000, seed: int = 1) -> float:
    """p95 error of a perfect predictor that only suffers the STOP latency spread (issue 8's floor)."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    median = (profile.latency_min_s + profile.latency_max_s) / 2
    errors = []
    for _ in range(sessions):
        purchase = rng.uniform(profile.purchase_min_wh, profile.purchase_max_wh)
        latency = rng.uniform(profile.latency_min_s, profile.latency_max_s)
        errors.append(100.0 * abs(latency - median) * profile.power_w / 3600.0 / purchase)
    return percentile(errors, 95)


class _Car:
    """True energy of one charging car, integrated lazily on a 5 s grid."""

    DT = 5.0

    def __init__(self, profile: CarProfile, rng: random.Random, start_soc_bp: int, starts_at_s: float) -> None:
        self.p = profile
        self.rng = rng
        self.power = profile.power_w * rng.uniform(1 - profile.power_spread, 1 + profile.power_spread)
        self.start_soc_bp = start_soc_bp
        self.starts_at = starts_at_s
        self.ends_at = math.inf
        self.limit_bp = SOC_FULL_BP  # the car's charge limit; lowered as a STOP backstop
        self.times = [starts_at_s]
        self.energy = [0.0]
        self.jitter: list[float] = []
        self.phase = rng.uniform(0, profile.telemetry_refresh_s) if profile.telemetry_refresh_s else 0.0

    def _soc(self, energy_wh: float) -> float:
        return self.start_soc_bp + energy_wh / self.p.capacity_wh * SOC_FULL_BP

    def _power_at(self, t: float, energy_wh: float) -> float:
        minute = int((t - self.starts_at) // 60)
        while len(self.jitter) <= minute:
            self.jitter.append(self.rng.uniform(1 - self.p.power_jitter, 1 + self.p.power_jitter))
        soc = self._soc(energy_wh)
        if soc >= min(SOC_FULL_BP, self.limit_bp):
            return 0.0
        taper = 1.0
        if soc > self.p.taper_start_bp:
            frac = (soc - self.p.taper_start_bp) / (SOC_FULL_BP - self.p.taper_start_bp)
            taper = 1.0 - (1.0 - self.p.taper_floor) * frac
        return self.power * self.p.efficiency * self.jitter[minute] * taper  # into the battery

    def energy_at(self, t: float) -> float:
        if t <= self.starts_at:
            return 0.0
        t = min(t, self.ends_at)
        while self.times[-1] < t:
            t0, e0 = self.times[-1], self.energy[-1]
            t1 = min(t0 + self.DT, self.ends_at) if math.isfinite(self.ends_at) else t0 + self.DT
            self.times.append(t1)
            self.energy.append(e0 + self._power_at(t0, e0) * (t1 - t0) / 3600.0)
        i = bisect.bisect_left(self.times, t)
        if self.times[i] == t or i == 0:
            return self.energy[i]
        t0, t1 = self.times[i - 1], self.times[i]
        return self.energy[i - 1] + (self.energy[i] - self.energy[i - 1]) * (t - t0) / (t1 - t0)

    def stop(self, at_s: float) -> None:
        at_s = max(at_s, self.starts_at)
        self.energy_at(at_s)  # integrate up to the stop before freezing
        # Trim any grid point past the stop (integration may have run ahead of it).
        while len(self.times) > 1 and self.times[-1] > at_s:
            self.times.pop()
            self.energy.pop()
        self.ends_at = at_s
        self.energy_at(at_s)

    def is_charging(self, t: float) -> bool:
        return self.starts_at <= t < self.ends_at and self._soc(self.energy_at(t)) < min(SOC_FULL_BP, self.limit_bp)

    def read(self, now_s: float) -> Reading:
        taken = now_s - self.p.telemetry_age_s
        if self.p.telemetry_refresh_s:
            refresh = self.p.telemetry_refresh_s
            taken = self.phase + math.floor((taken - self.phase) / refresh) * refresh
        energy = self.energy_at(taken)
        step = self.p.energy_step_wh
        soc_step = self.p.soc_step_bp
        soc = math.floor(min(self._soc(energy), SOC_FULL_BP) / soc_step) * soc_step
        return Reading(
            taken_at=EPOCH + timedelta(seconds=taken),
            fetched_at=EPOCH + timedelta(seconds=now_s),
            source=SOURCE_ENERGY_ADDED if step else SOURCE_SOC,
            energy_added_wh=int(round(energy / step) * step) if step else None,
            soc_bp=int(soc),
            power_w=None,
            charge_state=CHARGING if self.is_charging(taken) else NOT_CHARGING,
            is_plugged_in=True,
        )


def run_session(policy: Policy, profile: CarProfile, seed: int, latency: LatencyModel | None = None) -> SessionResult:
    """One session in virtual time: START at t=0, follow the policy, STOP, verify until stopped."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    latency = latency or LatencyModel(prior_min_s=profile.latency_min_s, prior_max_s=profile.latency_max_s)
    purchase = int(round(rng.uniform(profile.purchase_min_wh, profile.purchase_max_wh) / 100) * 100)
    start_soc = rng.randrange(profile.start_soc_min_bp, profile.start_soc_max_bp + 1)
    start_latency = rng.uniform(profile.latency_min_s, profile.latency_max_s)
    stop_latency = rng.uniform(profile.latency_min_s, profile.latency_max_s)
    car = _Car(profile, random.Random(seed * 7919 + 1), start_soc, start_latency)  # noqa: S311

    ctx = MeterContext(
        capacity_wh=profile.capacity_wh,
        soc_step_bp=profile.soc_step_bp,
        energy_step_wh=profile.energy_step_wh,
        nominal_power_w=profile.power_w,
        efficiency=profile.efficiency,
        charger_efficiency=profile.efficiency,
    )
    meter = Meter(ctx)
    readings: list[Reading] = []
    calls, reads, now = 1, 0, 0.0  # START is the first call, at t=0
    last_read_at: datetime | None = None
    stopped_at: float | None = None
    started_seen = False
    fail_rng = random.Random(seed * 31 + 7)  # noqa: S311 - separate, so failures do not shift other draws
    # 2000 decisions is far beyond any sane policy on a 3 h session at 30 s; it guards a loop bug.
    for _ in range(2000):
        if not started_seen:
            ts, ts_half = estimate_charging_start(start_sent_at=EPOCH, latency=latency, readings=readings)
            # Once a reading shows charging, later ones cannot move the start any more.
            started_seen = any(r.charge_state == CHARGING for r in readings)
        est = meter.estimate(charging_started_at=ts, charging_started_uncertainty_s=ts_half)
        state = PolicyState(
            now=EPOCH + timedelta(seconds=now),
            target_wh=purchase,
            estimate=est,
            started_at=EPOCH,
            latency=latency,
            charging_started_at=ts,
            last_read_at=last_read_at,
            reads=reads,
            telemetry_age_s=profile.telemetry_age_s,
            telemetry_refresh_s=profile.telemetry_refresh_s,
            calls_remaining=None if profile.call_budget is None else profile.call_budget - calls,
            nominal_power_w=profile.power_w,
            soc_only=not profile.energy_step_wh,
        )
        decision = policy.decide(state)
        now = max(now, (decision.at - EPOCH).total_seconds())
        if decision.kind in (STOP, READ):
            calls += 1
            if fail_rng.random() < profile.failure_rate:
                now += profile.retry_after_failure_s  # failed: the controller asks the policy again
                continue
        if decision.kind == STOP:
            stopped_at = now
            break
        if decision.kind == READ:
            reads += 1
            reading = car.read(now)
            readings.append(reading)
            meter.add(reading)
            last_read_at = EPOCH + timedelta(seconds=now)
            if reading.charge_state == NOT_CHARGING and car.starts_at < (reading.taken_at - EPOCH).total_seconds():
                break  # the car stopped by itself (full): nothing left to stop
    outcome, end = "not_stopped", now
    if stopped_at is not None:
        outcome, end, verify_calls = _stop_as_action(car, profile, seed, latency, stopped_at, stop_latency, fail_rng)
        calls += verify_calls
        reads += verify_calls - (1 if outcome == "escalated" else 0)
    return SessionResult(
        purchase_wh=purchase,
        delivered_wh=car.energy_at(math.inf if math.isfinite(car.ends_at) else end) / profile.efficiency,
        calls=calls,
        reads=reads,
        start_soc_bp=start_soc,
        stop_latency_s=stop_latency,
        outcome=outcome,
    )


def _stop_as_action(
    car: _Car,
    profile: CarProfile,
    seed: int,
    latency: LatencyModel,
    sent_at: float,
    stop_latency: float,
    fail_rng: random.Random,
) -> tuple[str, float, int]:
    """STOP, verify, retry, lower the charge limit, flag: like the controller. (outcome, end, calls)."""
    rng = random.Random(seed + 17)  # noqa: S311
    if rng.random() >= profile.ignore_stop_rate:
        car.stop(sent_at + stop_latency)
    failed, lowered, calls, t = 0, False, 0, sent_at
    outcome = "stopped"
    for attempt in range(12):
        t += stop_verification_schedule(
            attempt,
            rng,
            latency=latency,
            telemetry_age_s=profile.telemetry_age_s,
            telemetry_refresh_s=profile.telemetry_refresh_s,
        ).total_seconds()
        calls += 1
        if fail_rng.random() < profile.failure_rate:
            continue  # the next attempt comes after the next backoff
        reading = car.read(t)
        verdict = stop_verification_outcome(
            stop_sent_at=EPOCH + timedelta(seconds=sent_at),
            taken_at=reading.taken_at,
            charge_state=reading.charge_state,
            latency=latency,
        )
        if verdict == STOPPED:
            return outcome, t, calls
        if verdict == TOO_EARLY:
            continue
        failed += 1
        step = escalation(
            failed, supports_charge_limit=True, current_soc_bp=reading.soc_bp, limit_already_lowered=lowered
        )
        calls += 1
        if step.kind == RETRY_STOP:
            sent_at = t
            if rng.random() >= profile.ignore_stop_rate:
                car.stop(t + rng.uniform(profile.latency_min_s, profile.latency_max_s))
        elif step.kind == LOWER_CHARGE_LIMIT and step.limit_bp is not None:
            lowered, outcome = True, "escalated"
            car.limit_bp = step.limit_bp
        else:
            return "flagged", t, calls - 1  # the operator takes over; flagging is not a vehicle call
    return "flagged", t, calls


def evaluate(policy: Policy, profile: CarProfile, sessions: int = 200, seed: int = 1) -> EvalSummary:
    """Run `sessions` seeded sessions of `profile` under `policy`; the same seeds for every policy."""
    results = tuple(run_session(policy, profile, seed * 100_003 + i) for i in range(sessions))
    return EvalSummary(policy=policy.name, sessions=results)


def compare(
    specs: list[str], profile: CarProfile, sessions: int = 200, seed: int = 1
) -> list[dict[str, float | str | int]]:
    """One summary row per policy spec (`predictive`, `naive`, `fixed:SECONDS`) on the same sessions."""
    return [evaluate(policy_from_spec(spec), profile, sessions, seed).row() for spec in specs]
