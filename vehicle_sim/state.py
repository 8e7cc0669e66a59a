"""The simulator's records of a car as the API world sees it: faults, the vehicle, an answer.

`Vehicle` holds both the physical truth (level, energies, the charger and pack draws that
`physics.py` computes with) and what the API side keeps about the car (snapshot, quotas, pending
commands, counters). Plain data; the behaviour lives in the engine and its parts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields

from .errors import CODES_BY_TYPE
from .physics import Charger, Pack
from .profiles import Profile


@dataclass
class Faults:
    """Injectable failures. Set per vehicle or globally (`Simulator.global_faults`); both apply."""

    asleep: bool = False  # every car request → 409 ASLEEP
    unreachable: bool = False  # every car request → 409 UNREACHABLE
    charge_fault: bool = False  # START → 409 CHARGE_FAULT; a running charge stops (no current)
    command_error: str | None = None  # START/STOP → 409 VEHICLE_STATE with this code
    upstream_error: str | None = None  # every car request → 502 UPSTREAM with this code
    failure_rate: float = 0.0  # share of car requests failing with 502 UPSTREAM UNKNOWN_ISSUE
    response_delay_s: float = 0.0  # the HTTP answer is held this long (real seconds): timeouts
    ignore_stop: bool = False  # STOP answers success but the car keeps charging
    throttle_retry_after_s: int | None = None  # every call → 429 RATE_LIMIT VEHICLE
    freeze_telemetry: bool = False  # the reported snapshot stops updating (stale cloud data, VW)
    # One-shot errors consumed in order: {"type", "code", "endpoint"?: "GET /charge", "retry_after"?}
    inject: list[dict] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict | None) -> Faults:
        names = {f.name for f in fields(cls)}
        unknown = set(data or {}) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        faults = cls(**(data or {}))
        # Refuse a bad injection now, not as a crash in the middle of a later request.
        for spec in faults.inject:
            if not isinstance(spec, dict) or spec.get("code") not in CODES_BY_TYPE.get(spec.get("type"), []):
                raise ValueError(f"unknown error to inject: {spec!r}")
        return faults

    def update(self, data: dict) -> None:
        merged = Faults.from_dict({**asdict(self), **data})
        for f in fields(self):
            setattr(self, f.name, getattr(merged, f.name))


@dataclass
class Vehicle:
    id: str
    vin: str
    profile: Profile
    capacity_wh: float  # TRUE usable capacity (the API reports nominal_capacity_kwh)
    soc: float  # true state of charge, 0..1 (energy stored / usable capacity, along the voltage curve)
    limit: float  # charge limit, 0.5..1
    plugged: bool
    charger_kw: float  # what the charger really gives this session (before power steps)
    efficiency: float
    created_at: float
    updated_at: float  # physics are computed up to this time
    charging: bool = False
    owner_user_id: str | None = None
    demo: bool = False  # listed on the consent page even when already claimed
    label: str = ""  # shown on the consent page: whose demo car this is
    nominal_capacity_kwh: float | None = None
    session_battery_wh: float = 0.0  # "energy added" this plug-in session, battery side
    total_battery_wh: float = 0.0  # TRUE energy into the battery since creation
    total_wall_wh: float = 0.0  # TRUE energy drawn from the charger since creation
    # Pack and charger draws (see world.draw_car); times are charging seconds since plug-in.
    voltage_slope: float = 0.0
    taper_start: float | None = None  # None = the profile's
    power_steps: list = field(default_factory=list)  # [[charging_s, factor of charger_kw], ...]
    heater_w: float = 0.0
    heat_until_s: float = 0.0
    ambient_c: float | None = None
    charging_s: float = 0.0  # seconds charged since the last plug-in
    # The battery management's level differs from the true one by whole units of its resolution
    # (soc_unit) from these moments on.
    soc_offset_steps: list = field(default_factory=list)  # [[charging_s, ±units], ...]
    noise_seed: int = 0
    location_schedule: bool = False
    quotas: dict[str, int] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    pending: list[dict] = field(default_factory=list)  # [{at, action, value?, id}], sorted by at
    snapshot: dict = field(default_factory=dict)  # the car's last reported view, with "at"
    next_snapshot_at: float | None = None
    last_active_at: float = 0.0  # last charge end, drive, plug or command: drives sleep
    last_request_at: float | None = None  # for min_request_interval_s (GM)
    last_contact_at: float | None = None  # Hyundai/Kia car contact
    consecutive_commands: int = 0  # VW throttle-until-driven
    usage: dict[str, int] = field(default_factory=dict)  # "kind:day" → count
    stop_times: list[float] = field(default_factory=list)  # BMW rolling 30-day STOP budget
    calls: Counter = field(default_factory=Counter)  # "GET /charge" → n
    bucket: dict = field(default_factory=dict)  # per-vehicle throttle token bucket
    charge_started_at: float | None = None
    charge_ended_at: float | None = None
    stop_reason: str | None = None
    # The physical state when the last charge began (level, charging seconds): a benchmark replays
    # the true charge from it. And the effect latency of every command, in order, by action.
    charge_start_state: dict | None = None
    latencies: dict[str, list] = field(default_factory=dict)

    @property
    def make(self) -> str:
        return self.profile.make

    def pack(self) -> Pack:
        p = self.profile
        taper = p.taper_start if self.taper_start is None else self.taper_start
        return Pack(self.capacity_wh, self.voltage_slope, taper, p.taper_min_fraction)

    def charger(self) -> Charger:
        return Charger(
            wall_w=self.charger_kw * 1000,
            # The taper is a fraction of the car's rating; a weaker wallbox feels it later.
            rated_w=max(self.profile.charger_kw, self.charger_kw) * 1000,
            efficiency=self.efficiency,
            steps=tuple((float(at), float(f)) for at, f in self.power_steps),
            heater_w=self.heater_w,
            heat_until_s=self.heat_until_s,
        )

    @property
    def soc_unit(self) -> float:
        """The car's own level resolution: whole percent, or finer if it reports finer."""
        return min(self.profile.soc_step, 0.01) if self.profile.soc_step > 0 else 0.01

    def soc_offset(self) -> float:
        """How far (a fraction) the battery management's level sits off the true one now."""
        return sum(steps for at, steps in self.soc_offset_steps if at <= self.charging_s) * self.soc_unit

    def bms_soc(self) -> float:
        """The level the car believes (and stops at its limit by): true level plus recalibrations."""
        return min(1.0, max(0.0, self.soc + self.soc_offset()))

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["profile"] = self.profile.to_dict()
        data["faults"] = asdict(self.faults)
        data["calls"] = dict(self.calls)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Vehicle:
        data = dict(data)
        data["profile"] = Profile.from_dict(data["profile"])
        data["faults"] = Faults.from_dict(data["faults"])
        data["calls"] = Counter(data["calls"])
        return cls(**data)
