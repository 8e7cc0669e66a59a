"""How hard the simulated world is: named sets of realism knobs and each car's draws from them.

`ideal` is the simulator as it was before the world had knobs: every car charges at its profile's
nominal power to the capacity it reports, levels floor at exact energy steps, commands take one
latency range, answers come at once and only the profiles' own quotas apply. `realistic` is what
real cars behind the vehicle API look like (docs/reference/makes.md and issue 16), each value below
says where it comes from; values marked "chosen" are defaults without a published source.

A car's draws (`draw_car`) come from its own seeded stream, so the same simulator seed gives the
same cars whatever happens in the run; everything random during a session (power steps, level
recalibrations) is drawn here up front and keyed on the car's charging seconds, so a benchmark can
replay a session's true charge (see `physics.trajectory`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields, replace

SOC_ROUNDING = ("floor", "round", "noisy")


@dataclass(frozen=True)
class World:
    name: str = "ideal"
    # The power the charger really gives, per session: drawn in kW when set, else as a fraction
    # of the profile's (nominal) charger power.
    actual_power_kw: tuple[float, float] | None = None
    actual_power_fraction: tuple[float, float] = (1.0, 1.0)
    # In this share of sessions the power steps to power_drop_to × its value at a random moment
    # of the charge; in power_recovery_share of those it comes back later.
    power_drop_rate: float = 0.0
    power_drop_to: tuple[float, float] = (0.4, 0.8)
    power_recovery_share: float = 0.0
    # Ambient temperature (°C) per session; None = no temperature effect. Below HEAT_BELOW_C the
    # pack is heated first (heater_kw of the power, warming HEAT_RATE_C_PER_H) and tapers earlier.
    ambient_c: tuple[float, float] | None = None
    heater_kw: float = 0.0
    # Level where the taper begins, per car; None = the profile's.
    taper_start: tuple[float, float] | None = None
    # Energy per percent grows by this fraction from empty to full (the pack's voltage curve).
    voltage_slope: float = 0.0
    # Usable capacity is (100 − PCT)..100 % of the nominal capacity the API reports.
    capacity_error_pct: float = 0.0
    # How the car turns its level into the reported one: floor, round, or noisy (round, with ±1 step
    # jitter near a boundary and occasional recalibration jumps of one step).
    soc_rounding: str = "floor"
    jitter_band: float = 0.15  # noisy: within this fraction of a step of a boundary, either side
    recalibration_rate: float = 0.0  # noisy: share of sessions with a jump of the reported level
    # START and STOP take the profile's own start/stop latencies (else both the command latency);
    # a range set here overrides every profile's.
    separate_latencies: bool = False
    start_latency_s: tuple[float, float] | None = None
    stop_latency_s: tuple[float, float] | None = None
    # The car rounds a charge limit to whole percent.
    limit_whole_percent: bool = False
    # A read's HTTP answer takes this long (a v3 command answers 202 at its sync limit instead).
    answer_latency_s: tuple[float, float] = (0.0, 0.0)
    # Per-vehicle throttle (burst, refill per minute) answering 429 RATE_LIMIT VEHICLE + Retry-After.
    vehicle_throttle: tuple[int, float] | None = None
    # Data freshness: each car's refresh period is drawn from its make's range (docs/reference/makes.md), and each
    # snapshot interval varies by ±refresh_jitter of it.
    refresh_from_make_range: bool = False
    refresh_jitter: float = 0.0
    # The v3 platform sees a car whose profile reports live data through its make's cloud, which
    # refreshes every `data_refresh_s` of the make (`MAKE_TRAITS`, vehicle_sim/profiles.py) instead of at once.
    v3_make_refresh: bool = False
    # Cars that report their wattage also report whether the pack heater runs
    # (`tractionbattery-isheateractive`); its availability per make is unknown, so off by default.
    heater_signal: bool = False

    def __post_init__(self) -> None:
        if self.soc_rounding not in SOC_ROUNDING:
            raise ValueError(f"soc rounding must be one of {', '.join(SOC_ROUNDING)}")
        if not 0 <= self.power_drop_rate <= 1 or not 0 <= self.capacity_error_pct < 100:
            raise ValueError("power drop rate within 0..1 and capacity error within 0..100 %")

    def with_overrides(self, **changes) -> World:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> World:
        # A state file of an older simulator may carry retired fields (webhook_delays, command_ack_fraction).
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


# The pack warms this fast while charging; below HEAT_BELOW_C it is heated before it takes full power.
HEAT_BELOW_C = 10.0
HEAT_RATE_C_PER_H = 10.0
# A cold pack starts its taper this much earlier per °C below HEAT_BELOW_C, at most COLD_TAPER_MAX.
COLD_TAPER_PER_C = 0.005
COLD_TAPER_MAX = 0.1

WORLDS: dict[str, World] = {
    "ideal": World(),
    "realistic": World(
        name="realistic",
        # Home wallboxes run at 3.7, 7.4 or 11 kW and load management cuts them further: the car's
        # nominal AC power is an upper bound, not what a session gets (chosen range).
        actual_power_fraction=(0.55, 1.0),
        power_drop_rate=0.2,  # chosen: load management or another load on the circuit
        power_drop_to=(0.4, 0.8),
        power_recovery_share=0.3,
        ambient_c=(-5.0, 25.0),  # chosen: a Central European year
        heater_kw=1.5,  # chosen: AC charging with pack heating takes 1–3 kW
        taper_start=(0.85, 0.95),  # AC charging holds full power until late (chosen)
        voltage_slope=0.15,  # NMC open-circuit voltage ~3.55 → ~4.1 V from 10 to 95 %
        capacity_error_pct=15.0,  # makes.md §3: the API's figure is nominal/gross; net is ~90–98 %, less when worn
        soc_rounding="noisy",
        recalibration_rate=0.1,
        separate_latencies=True,
        limit_whole_percent=True,  # every v3 fixture's limit and level is an integer (makes.md §1)
        answer_latency_s=(2.0, 20.0),  # makes.md §1: a poll "20 s to a couple of minutes" (HA); chosen lower
        vehicle_throttle=(6, 3.0),  # makes.md §1: per-vehicle throttle, value undisclosed (chosen)
        refresh_from_make_range=True,
        refresh_jitter=0.25,
        v3_make_refresh=True,
    ),
}


def world_named(name: str) -> World:
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose from {', '.join(WORLDS)}")
    return WORLDS[name]


def _uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    return rng.uniform(lo, hi) if hi > lo else lo


def draw_car(world: World, profile, rng: random.Random, *, horizon_s: float | None = None) -> dict:
    """One car's physical draws: fields of the simulator's `Vehicle` (see `state.py`).

    `horizon_s`: how long the car is expected to charge (a benchmark knows its purchase); the
    moment of a power drop is drawn within it, so a drop falls inside the session. Without it the
    moment is drawn within the time to charge half the pack.
    """
    nominal_kwh = profile.capacity_kwh
    usable_fraction = 1.0 - _uniform(rng, (0.0, world.capacity_error_pct / 100))
    if world.actual_power_kw:
        wall_kw = _uniform(rng, world.actual_power_kw)
    else:
        wall_kw = profile.charger_kw * _uniform(rng, world.actual_power_fraction)
    if horizon_s is None:
        horizon_s = nominal_kwh * 500 / max(0.1, wall_kw * profile.efficiency)
    steps: list[tuple[float, float]] = []
    if rng.random() < world.power_drop_rate:
        at = rng.uniform(0.05, 0.95) * horizon_s
        steps.append((round(at, 1), round(_uniform(rng, world.power_drop_to), 4)))
        if rng.random() < world.power_recovery_share:
            steps.append((round(at + rng.uniform(600, 3600), 1), 1.0))
    taper_start = _uniform(rng, world.taper_start) if world.taper_start else profile.taper_start
    heater_w, heat_until_s, ambient = 0.0, 0.0, None
    if world.ambient_c:
        ambient = _uniform(rng, world.ambient_c)
        cold = max(0.0, HEAT_BELOW_C - ambient)
        taper_start -= min(COLD_TAPER_MAX, COLD_TAPER_PER_C * cold)
        if cold > 0 and world.heater_kw > 0:
            heater_w, heat_until_s = world.heater_kw * 1000, cold / HEAT_RATE_C_PER_H * 3600
    recalibrations: list[tuple[float, float]] = []
    if world.soc_rounding == "noisy" and rng.random() < world.recalibration_rate:
        # The battery management re-estimates its level: one percent up or down from then on.
        recalibrations.append((round(rng.uniform(0.05, 0.95) * horizon_s, 1), rng.choice((-1.0, 1.0))))
    refresh = profile.telemetry_refresh_s
    if world.refresh_from_make_range and profile.telemetry_refresh_range_s:
        refresh = round(_uniform(rng, profile.telemetry_refresh_range_s))
    return {
        "capacity_wh": nominal_kwh * usable_fraction * 1000,
        "nominal_capacity_kwh": nominal_kwh,
        "charger_kw": round(wall_kw, 3),
        "voltage_slope": world.voltage_slope,
        "taper_start": round(taper_start, 4),
        "power_steps": steps,
        "heater_w": heater_w,
        "heat_until_s": round(heat_until_s, 1),
        "ambient_c": None if ambient is None else round(ambient, 1),
        "soc_offset_steps": recalibrations,
        "telemetry_refresh_s": refresh,
        "noise_seed": rng.getrandbits(32),
    }
