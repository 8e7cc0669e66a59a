"""Make profiles: how a given OEM's car behaves behind the vehicle API, as data.

Numbers follow docs/reference/makes.md §4; values marked "unsourced" there are chosen defaults.
Every field can be overridden per vehicle at creation (`Simulator.create_vehicle(**overrides)`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class Profile:
    name: str
    make: str
    model: str
    year: int
    capacity_kwh: float
    charger_kw: float
    # Fraction of wall energy that ends up in the battery (the rest is charger/heat loss).
    efficiency: float = 0.92
    # Above this SoC the power tapers linearly down to taper_min_fraction × charger_kw at 100 %.
    taper_start: float = 0.8
    taper_min_fraction: float = 0.25
    # Reported SoC resolution (fraction: 0.01 = whole percent, 0.1 = 10 % steps).
    soc_step: float = 0.01
    # Step of the reported "energy added" in kWh; 0 means the car does not report it.
    energy_added_step_kwh: float = 0.0
    # "periodic": the reported snapshot refreshes every telemetry_refresh_s (0 = always live).
    # "event": it refreshes when the reported SoC crosses a step, when charging starts or stops,
    # and after a command (Hyundai/Kia Gen2 behaviour).
    telemetry_mode: str = "periodic"
    telemetry_refresh_s: float = 0.0
    # A command takes effect uniformly MIN..MAX seconds after it is accepted.
    command_latency_s: tuple[float, float] = (3.0, 45.0)
    # START and STOP where they differ (a world with `separate_latencies`); None = command_latency_s.
    # Unsourced choices: docs/reference/makes.md §5 says no make publishes its latency; a START wakes the car and
    # closes the contactors, a STOP only opens them, so START is taken to be the slower.
    start_latency_s: tuple[float, float] | None = None
    stop_latency_s: tuple[float, float] | None = None
    # The make's data refresh range (docs/reference/makes.md §1 frequencies): a realistic world draws each car's
    # refresh period from it; None = telemetry_refresh_s for every car.
    telemetry_refresh_range_s: tuple[float, float] | None = None
    km_per_kwh: float = 6.0
    can_start: bool = True
    can_stop: bool = True
    limit_readable: bool = True
    limit_settable: bool = True
    # Some OEMs expose the charge limit only while plugged in (409 CHARGING_PLUG_NOT_CONNECTED).
    limit_needs_plug: bool = False
    # START and STOP refused (409 VEHICLE_STATE LOW_BATTERY) below this true SoC (GM: 0.5).
    command_min_soc: float = 0.0
    # STOP refused below this SoC (Mercedes: 0.2 EQE/EQS, 0.5 EQA/EQB).
    stop_min_soc: float = 0.0
    # START forces the limit to 100 % while a location schedule exists (Ford).
    location_schedule: bool = False
    # Daily quotas per vehicle; None = unlimited. Over quota → 502 UPSTREAM RATE_LIMIT unless
    # noted. Keys: "data", "commands", "charge_commands", "car_contacts", "stops_30d".
    quotas: dict[str, int] = field(default_factory=dict)
    # Tesla Fleet strict mode: quota overflow is a 429 RATE_LIMIT VEHICLE with a long Retry-After.
    quota_error: str = "UPSTREAM"
    # Minimum seconds between vehicle requests before the OEM rate-limits (GM ≥ 1800 s).
    min_request_interval_s: float = 0.0
    # Hyundai/Kia: a read reaches the car (fresh snapshot) at most this often; else the cloud copy.
    car_contact_interval_s: float = 0.0
    # VW: this many charge commands in a row without driving → UPSTREAM RATE_LIMIT until driven.
    consecutive_command_limit: int = 0
    # Idle seconds (not charging, not driven) before deep sleep → 409 ASLEEP until an ignition.
    deep_sleep_after_s: float = 0.0
    # Idle seconds before a light sleep that only adds wake-up time to commands (Tesla).
    light_sleep_after_s: float = 0.0
    wake_latency_s: tuple[float, float] = (0.0, 0.0)
    # Share of commands that fail with 502 UPSTREAM UNKNOWN_ISSUE (Ford ranks lower).
    command_failure_rate: float = 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in RANGES:
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        # A state file of an older simulator may carry retired fields (webhook_delay_s).
        known = {f.name for f in fields(cls)}
        return cls(**_ranges_as_tuples({k: v for k, v in data.items() if k in known}))

    def with_overrides(self, **overrides) -> Profile:
        return replace(self, **_ranges_as_tuples(overrides))


# Fields holding a (MIN, MAX) pair: JSON and the admin API give lists.
RANGES = (
    "command_latency_s",
    "wake_latency_s",
    "start_latency_s",
    "stop_latency_s",
    "telemetry_refresh_range_s",
)


def _ranges_as_tuples(data: dict) -> dict:
    return {k: (tuple(v) if k in RANGES and v is not None else v) for k, v in data.items()}


PROFILES: dict[str, Profile] = {
    # Not an OEM: a well-behaved car with live data, for development and most tests.
    "generic": Profile(
        name="generic",
        make="TESLA",
        model="Model 3",
        year=2024,
        capacity_kwh=75,
        charger_kw=11,
        energy_added_step_kwh=0.01,
        start_latency_s=(30, 120),
        stop_latency_s=(3, 45),
    ),
    "tesla_fleet": Profile(
        name="tesla_fleet",
        make="TESLA",
        model="Model 3",
        year=2024,
        capacity_kwh=75,
        charger_kw=11,
        soc_step=0.01,
        energy_added_step_kwh=0.01,
        telemetry_refresh_s=180,
        command_latency_s=(5, 40),
        light_sleep_after_s=15 * 60,
        wake_latency_s=(10, 30),
        # The Fleet API Discovery-plan numbers; overflow answers with a ~13 h retry.
        quotas={"data": 200, "commands": 50, "charge_commands": 5},
        quota_error="RATE_LIMIT",
        start_latency_s=(10, 60),
        stop_latency_s=(5, 40),
        telemetry_refresh_range_s=(60, 300),
    ),
    "gm_onstar": Profile(
        name="gm_onstar",
        make="CHEVROLET",
        model="Equinox EV",
        year=2024,
        capacity_kwh=85,
        charger_kw=11.5,
        telemetry_refresh_s=1800,
        command_latency_s=(30, 120),
        limit_readable=False,
        limit_settable=False,
        command_min_soc=0.5,
        min_request_interval_s=1800,
        deep_sleep_after_s=72 * 3600,
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
        telemetry_refresh_range_s=(1800, 2700),
    ),
    "hk_event_gen2": Profile(
        name="hk_event_gen2",
        make="HYUNDAI",
        model="Ioniq 5",
        year=2023,
        capacity_kwh=72.6,
        charger_kw=11,
        soc_step=0.1,
        telemetry_mode="event",
        command_latency_s=(30, 120),
        car_contact_interval_s=72 * 60,
        quotas={"car_contacts": 20},
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
    ),
    "vw_group": Profile(
        name="vw_group",
        make="VOLKSWAGEN",
        model="ID.4",
        year=2024,
        capacity_kwh=77,
        charger_kw=11,
        telemetry_refresh_s=450,
        command_latency_s=(20, 120),
        consecutive_command_limit=5,
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
        telemetry_refresh_range_s=(300, 600),
    ),
    "bmw_mini": Profile(
        name="bmw_mini",
        make="BMW",
        model="i4 eDrive40",
        year=2024,
        capacity_kwh=81.3,
        charger_kw=11,
        telemetry_refresh_s=450,
        command_latency_s=(20, 120),
        quotas={"data": 50, "stops_30d": 80},
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
        telemetry_refresh_range_s=(300, 600),
    ),
    "mercedes_eq_eu": Profile(
        name="mercedes_eq_eu",
        make="MERCEDES-BENZ",
        model="EQE",
        year=2024,
        capacity_kwh=84,
        charger_kw=11,
        telemetry_refresh_s=450,
        command_latency_s=(20, 120),
        limit_settable=False,
        stop_min_soc=0.2,  # EQE/EQS; EQA/EQB refuse below 0.5 (override per vehicle)
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
        telemetry_refresh_range_s=(300, 600),
    ),
    "ford_schedule": Profile(
        name="ford_schedule",
        make="FORD",
        model="Mustang Mach-E",
        year=2024,
        capacity_kwh=91,
        charger_kw=11,
        telemetry_refresh_s=450,
        command_latency_s=(20, 120),
        location_schedule=True,
        limit_settable=False,  # only through the schedule-by-location endpoint
        command_failure_rate=0.05,
        start_latency_s=(30, 120),
        stop_latency_s=(20, 90),
        telemetry_refresh_range_s=(300, 600),
    ),
    "nissan_start_only": Profile(
        name="nissan_start_only",
        make="NISSAN",
        model="Leaf",
        year=2023,
        capacity_kwh=40,
        charger_kw=6.6,
        telemetry_refresh_s=450,
        command_latency_s=(30, 120),
        can_stop=False,
        limit_readable=False,
        limit_settable=False,
        start_latency_s=(30, 120),
        telemetry_refresh_range_s=(300, 600),
    ),
}

OEM_PROFILES = [name for name in PROFILES if name != "generic"]
