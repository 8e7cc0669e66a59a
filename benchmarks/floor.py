"""The floor of the stop error: an oracle replayed on each session's own true charge.

The oracle knows everything about the car except what the vehicle API cannot tell anyone: the
latency of its STOP (it sends at target − median latency, the best constant for absolute error)
and, for cars that report only a battery level, when charging really began (the START's latency)
and where within a level step the pack started. It sees every level change the moment it
happens and knows the pack (usable capacity, voltage curve) and the power (steps, heating,
taper) exactly. It is evaluated on the same draws as the policy: the session's own charge
(`physics.trajectory` from the state the simulator recorded when the charge began), its own START
send time and its own first STOP latency, so a policy/floor ratio is not a sampling accident.

A second, "blind" oracle for SoC-only cars also lacks what the product cannot know either: the
usable capacity (it plans on the middle of the world's range of nominal) and the voltage curve
(it takes energy per percent as constant). It still sees each level change exactly and knows the
start level: no real policy on such a car can beat it without a power or energy signal.

Pure: numbers in, numbers out (the fleet benchmark feeds it the simulator's truth).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from vehicle_sim.physics import Charger, Pack, trajectory

STEP_S = 30.0  # trajectory resolution; power is constant between steps almost everywhere


@dataclass(frozen=True)
class Curve:
    """Battery energy delivered as a function of charging seconds since the session's charge began."""

    times: list[float]
    energies: list[float]

    def energy(self, seconds: float) -> float:
        if seconds <= 0:
            return 0.0
        i = bisect.bisect_right(self.times, seconds)
        if i >= len(self.times):
            # Past the end of the replay: carry on at the last step's power.
            (t0, e0), (t1, e1) = (self.times[-2], self.energies[-2]), (self.times[-1], self.energies[-1])
            return e1 + (e1 - e0) / max(1e-9, t1 - t0) * (seconds - t1)
        t0, t1 = self.times[i - 1], self.times[i]
        e0, e1 = self.energies[i - 1], self.energies[i]
        return e0 + (e1 - e0) * (seconds - t0) / max(1e-9, t1 - t0)

    def seconds_to(self, energy_wh: float) -> float | None:
        """Charging seconds until `energy_wh` went in; None if the replay never gets there."""
        if energy_wh <= 0:
            return 0.0
        i = bisect.bisect_left(self.energies, energy_wh)
        if i >= len(self.energies):
            return None
        e0, e1 = self.energies[i - 1], self.energies[i]
        t0, t1 = self.times[i - 1], self.times[i]
        return t0 + (t1 - t0) * (energy_wh - e0) / max(1e-9, e1 - e0)


def replay(physics: dict, start: dict, until_wh: float) -> Curve:
    pack = Pack(**physics["pack"])
    ch = dict(physics["charger"])
    ch["steps"] = tuple(tuple(s) for s in ch["steps"])
    points = trajectory(
        pack, Charger(**ch), soc=start["soc"], charging_s=start["charging_s"], until_wh=until_wh, step_s=STEP_S
    )
    return Curve([t for t, _ in points], [e for _, e in points])


def oracle_errors(
    *,
    physics: dict,
    start: dict,
    purchase_wh: float,
    stop_latency_s: float,
    stop_latency_range: tuple[float, float],
    soc_only: bool,
    start_sent_at: float | None = None,
    start_latency_range: tuple[float, float] = (0.0, 0.0),
    soc_step: float = 0.01,
    nominal_wh: float | None = None,
    usable_prior: float = 1.0,
) -> tuple[float, float] | None:
    """(floor error %, blind floor error %) of one session; None when the replay never reaches the purchase."""
    curve = replay(physics, start, purchase_wh * 1.3 + 2000)
    if curve.seconds_to(purchase_wh) is None:
        return None
    median = (stop_latency_range[0] + stop_latency_range[1]) / 2
    t_start = start["at"]

    def error_pct(believed_start: float, target_s: float) -> float:
        # The oracle believes charging began at `believed_start` and that the purchase is in after
        # `target_s` charging seconds; its STOP acts `stop_latency_s` after it sent it.
        end = believed_start + target_s - median + stop_latency_s
        return abs(curve.energy(end - t_start) - purchase_wh) / purchase_wh * 100

    target_s = curve.seconds_to(purchase_wh)
    if not soc_only or start_sent_at is None:
        exact = error_pct(t_start, target_s)
        return exact, exact
    believed = _believed_start(curve, physics, start, start_sent_at, start_latency_range, soc_step, target_s - median)
    floor = error_pct(believed, target_s)
    # Blind: energy = level change x the capacity it assumes, energy per percent constant.
    pack = Pack(**physics["pack"])
    assumed_wh = (nominal_wh or pack.usable_wh) * usable_prior
    soc_target = start["soc"] + purchase_wh / assumed_wh
    if soc_target >= 1.0:
        return floor, floor
    blind_target_s = curve.seconds_to(pack.wh_between(start["soc"], soc_target))
    if blind_target_s is None:
        return floor, floor
    return floor, error_pct(believed, blind_target_s)


def _believed_start(
    curve: Curve,
    physics: dict,
    start: dict,
    sent_at: float,
    latency_range: tuple[float, float],
    soc_step: float,
    decide_s: float,
) -> float:
    """Best start time from what the oracle may know: START's send time + its latency range,
    narrowed by the first level change (if it comes before the STOP is decided) and the fact that
    the pack started somewhere within the level below it."""
    lo, hi = sent_at + latency_range[0], sent_at + latency_range[1]
    pack = Pack(**physics["pack"])
    s0 = start["soc"]
    boundary = (math.floor(s0 / soc_step + 1e-9) + 1) * soc_step
    to_boundary = pack.wh_between(s0, boundary)
    crossing_s = curve.seconds_to(to_boundary)
    if crossing_s is not None and crossing_s <= decide_s:
        crossed_at = start["at"] + crossing_s
        # Started between one whole step and nothing below the boundary: t_s in [t1 − time(step), t1].
        whole_step = pack.wh_between(boundary - soc_step, boundary)
        longest = curve.seconds_to(whole_step) or crossing_s
        lo, hi = max(lo, crossed_at - longest), min(hi, crossed_at)
        if lo > hi:  # rounding at the edges: the crossing is the sharper fact
            lo = hi = min(max(start["at"], crossed_at - longest), crossed_at)
    return (lo + hi) / 2
