"""Charging physics of one car: its pack and its charger. Pure: no clock, no randomness, no API.

This is the simulator's own truth and shares nothing with the product's metering model
(`sessions/metering.py`, `sessions/makes.py`): the product must infer what happens here from the
readings the API lets it see, and its assumptions (energy per percent constant, the capacity it
was told, the power it was told) are allowed to be wrong.

- `Pack`: usable capacity (what really fits, not the nominal figure the API reports), a voltage
  curve (the energy one percent of state of charge holds grows with the level, as the cell
  voltage does) and the battery management's taper near full.
- `Charger`: the power the charger really gives this session (independent of the nominal power
  of the car or the wallbox), its efficiency, steps of that power at given charging seconds (load
  management, another load on the circuit, a charger that throttles, and back), and a pack heater
  that takes part of the power while a cold pack warms up.

Power depends on the charging seconds since the plug-in (power steps, heating) and on the level
(taper), never on wall-clock time, so a charge can be replayed from any state (`trajectory`).
Energies in Wh, powers in W, levels as fractions 0..1.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

EPS = 1e-9
# Within the taper the power changes with the level: integrate it in steps of at most this long.
TAPER_STEP_S = 30.0


@dataclass(frozen=True)
class Pack:
    usable_wh: float
    # Energy per unit of level at level s is usable_wh × (1 + k (s − ½)): k = 0 is a linear pack,
    # k ≈ 0.15 a lithium-ion cell whose voltage climbs ~15 % from empty to full.
    voltage_slope: float = 0.0
    # From this level the battery accepts less: linearly down to taper_min_fraction at 100 %.
    taper_start: float = 0.8
    taper_min_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.usable_wh <= 0 or not -1.0 < self.voltage_slope < 1.0:
            raise ValueError("a pack needs a positive capacity and a voltage slope within (-1, 1)")

    def energy_at(self, soc: float) -> float:
        """Energy stored between empty and `soc` (Wh)."""
        k = self.voltage_slope
        return self.usable_wh * (soc + k * (soc * soc - soc) / 2)

    def soc_at(self, energy_wh: float) -> float:
        """The level at which the pack holds `energy_wh` (inverse of `energy_at`)."""
        x = energy_wh / self.usable_wh
        k = self.voltage_slope
        if abs(k) < 1e-12:
            return x
        b = 1 - k / 2
        return (-b + math.sqrt(max(0.0, b * b + 2 * k * x))) / k

    def wh_between(self, soc_from: float, soc_to: float) -> float:
        return self.energy_at(soc_to) - self.energy_at(soc_from)

    def acceptance(self, soc: float) -> float:
        """Fraction of the charger's rated power the battery accepts at this level (taper)."""
        if soc < self.taper_start:
            return 1.0
        span = max(EPS, 1.0 - self.taper_start)
        return 1.0 - (1.0 - self.taper_min_fraction) * min(1.0, (soc - self.taper_start) / span)


@dataclass(frozen=True)
class Charger:
    wall_w: float  # what the charger gives this session before any step (the actual power)
    rated_w: float  # the car's on-board charger rating: what the taper is a fraction of
    efficiency: float = 0.92
    # (charging seconds since plug-in, factor of wall_w from then on), sorted by time.
    steps: tuple[tuple[float, float], ...] = ()
    # A cold pack is heated first: this much (battery side) goes to the heater until heat_until_s.
    heater_w: float = 0.0
    heat_until_s: float = 0.0

    def factor(self, charging_s: float) -> float:
        i = bisect.bisect_right([at for at, _ in self.steps], charging_s + EPS)
        return self.steps[i - 1][1] if i else 1.0

    def next_change_s(self, charging_s: float) -> float:
        """Charging seconds of the next step or of the heater's end after `charging_s` (inf if none)."""
        times = [at for at, _ in self.steps if at > charging_s + EPS]
        if self.heater_w > 0 and self.heat_until_s > charging_s + EPS:
            times.append(self.heat_until_s)
        return min(times, default=math.inf)

    def heating(self, charging_s: float) -> bool:
        """Whether the pack heater runs `charging_s` into the charge (a cold pack is heated first)."""
        return self.heater_w > 0 and charging_s < self.heat_until_s - EPS

    def powers(self, pack: Pack, soc: float, charging_s: float) -> tuple[float, float]:
        """(wall W, battery W) now: the charger's power after steps, less heating, capped by the taper."""
        heater = self.heater_w if self.heating(charging_s) else 0.0
        available = self.wall_w * self.factor(charging_s) * self.efficiency - heater
        accepted = pack.acceptance(soc) * self.rated_w * self.efficiency
        battery = max(0.0, min(available, accepted))
        wall = (battery + heater) / self.efficiency if battery > 0 or heater > 0 else 0.0
        if available <= 0:
            wall = self.wall_w * self.factor(charging_s)  # all of it heats the pack
        return wall, battery


@dataclass(frozen=True)
class Charged:
    """What `charge` did: seconds it ran, energies, where it ended, whether it reached `until_soc`."""

    seconds: float
    battery_wh: float
    wall_wh: float
    soc: float
    charging_s: float
    reached: bool


def charge(pack: Pack, charger: Charger, *, soc: float, charging_s: float, seconds: float, until_soc: float) -> Charged:
    """Charge for up to `seconds` from `soc`, stopping early where the level reaches `until_soc`.

    Exact between changes of power (steps, heater, the start of the taper); within the taper in
    steps of at most TAPER_STEP_S.
    """
    done, battery_total, wall_total = 0.0, 0.0, 0.0
    while done < seconds - EPS:
        if soc >= until_soc - EPS:
            return Charged(done, battery_total, wall_total, max(soc, until_soc), charging_s, True)
        wall_w, battery_w = charger.powers(pack, soc, charging_s)
        dt = min(seconds - done, charger.next_change_s(charging_s) - charging_s)
        if battery_w <= 0:
            # Nothing reaches the battery (no power, or all of it heats): time passes, wall energy may flow.
            wall_total += wall_w * dt / 3600
            done, charging_s = done + dt, charging_s + dt
            continue
        rate = battery_w / 3600  # Wh per second
        # Constant power up to the taper; within it, short steps.
        to_taper = pack.wh_between(soc, pack.taper_start) / rate if soc < pack.taper_start else math.inf
        dt = min(dt, to_taper if to_taper < math.inf else TAPER_STEP_S)
        to_until = pack.wh_between(soc, until_soc) / rate
        reached = to_until <= dt + EPS
        dt = max(0.0, min(dt, to_until))
        battery_wh = rate * dt
        if reached:
            soc = until_soc
        elif dt >= to_taper - EPS:
            # Land on the taper's start exactly: energy_at/soc_at round trip can leave the level
            # an ulp below it, and steps of 1e-11 s towards it would never get there.
            soc = pack.taper_start
        else:
            soc = pack.soc_at(pack.energy_at(soc) + battery_wh)
        battery_total += battery_wh
        wall_total += wall_w * dt / 3600
        done, charging_s = done + dt, charging_s + dt
        if reached:
            return Charged(done, battery_total, wall_total, soc, charging_s, True)
    return Charged(done, battery_total, wall_total, soc, charging_s, False)


def trajectory(
    pack: Pack, charger: Charger, *, soc: float, charging_s: float, until_wh: float, step_s: float = 5.0
) -> list[tuple[float, float]]:
    """(seconds, battery Wh) from this state until `until_wh` went in (or the pack is full): for
    benchmarks that replay a session's true charge (the floor oracle)."""
    points = [(0.0, 0.0)]
    t, energy = 0.0, 0.0
    while energy < until_wh and soc < 1.0 - EPS:
        step = charge(pack, charger, soc=soc, charging_s=charging_s, seconds=step_s, until_soc=1.0)
        t, energy = t + step.seconds, energy + step.battery_wh
        soc, charging_s = step.soc, step.charging_s
        points.append((t, energy))
        if step.seconds <= EPS:
            break
        if t > 7 * 86400:
            raise ValueError("no energy flows: the trajectory would never reach its end")
    return points
