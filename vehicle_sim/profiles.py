"""Make profiles: how a given OEM's car behaves behind the vehicle API, as data. Two tables:

`PROFILES` (`Profile`): the car — pack, charger, telemetry, command latencies, quotas and
refusals, keyed by physics profile. Numbers follow docs/reference/makes.md §4; values marked
"unsourced" there are chosen defaults. Every field can be overridden per vehicle at creation
(`Simulator.create_vehicle(**overrides)`).

`MAKE_TRAITS` (`MakeTraits`): what the make's cloud exposes on v3 — its signals and how its
webhooks behave — keyed by make, not by physics profile: availability is the make's, so a
`generic` car created with `make="JAGUAR"` behaves like an I-PACE, and makes with no physics
profile of their own (Polestar, BYD, ...) still have theirs. Overridden per vehicle through
`/_sim/v3/vehicles/{id}/traits`.

Signal availability follows docs/reference/vehicle-api-v3.md §3.2 and docs/reference/makes.md
§2b (Smartcar publishes no per-signal table; these are the observed cars, extended to the make):
`charge-energyadded` on Tesla and Jaguar/Land Rover; `charge-wattage` on Tesla, BMW/MINI,
Mercedes, Polestar/Volvo and VW ID. models; every other make answers VEHICLE_NOT_CAPABLE for them.
A profile whose charge limit is not readable (GM, Nissan) answers NOT_CAPABLE for
`charge-chargelimits` too.

Webhook timing: a VEHICLE_STATE leaves when the make's cloud shows a change (the physics profile's
`telemetry_refresh_s`, or for a car whose profile is live, in a world with `v3_make_refresh`, the
make's `data_refresh_s` from makes.md §1) plus `detection_delay_s` (Smartcar noticing it;
seconds per the delivery docs, makes.md §1 "Webhooks"). Duplicates, losses and reordering (`jitter_s` shifts an event's
send time so a later one may overtake it) are at-least-once/unordered behaviour the docs warn
about; their rates are chosen defaults (unsourced), small and non-zero so receivers meet them.
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


# --- what each make's cloud exposes on v3 ---------------------------------------------------------
SOC = "tractionbattery-stateofcharge"
RANGE = "tractionbattery-range"
NOMINAL_CAPACITY = "tractionbattery-nominalcapacity"
IS_CHARGING = "charge-ischarging"
IS_PLUGGED_IN = "charge-ischargingcableconnected"
CHARGING_STATUS = "charge-detailedchargingstatus"
CHARGE_LIMITS = "charge-chargelimits"
ENERGY_ADDED = "charge-energyadded"
WATTAGE = "charge-wattage"
VOLTAGE = "charge-voltage"
AMPERAGE = "charge-amperage"
TIME_TO_COMPLETE = "charge-timetocomplete"
CHARGE_RATE = "charge-chargerate"
# Whether the pack heater runs (then part of the wattage heats the pack, never reaching the
# battery). Per-make availability is UNKNOWN (vehicle-api-v3.md §3.1 lists it among "also"): no
# make's traits carry it; a world with `heater_signal` adds it to every car that reports wattage.
HEATER_ACTIVE = "tractionbattery-isheateractive"

#: code → (name, group, scope). The simulator serves these; the order is the answer's order.
CATALOGUE: dict[str, tuple[str, str, str]] = {
    SOC: ("StateOfCharge", "TractionBattery", "read_battery"),
    RANGE: ("Range", "TractionBattery", "read_battery"),
    NOMINAL_CAPACITY: ("NominalCapacity", "TractionBattery", "read_battery"),
    IS_CHARGING: ("IsCharging", "Charge", "read_charge"),
    IS_PLUGGED_IN: ("IsChargingCableConnected", "Charge", "read_charge"),
    CHARGING_STATUS: ("DetailedChargingStatus", "Charge", "read_charge"),
    CHARGE_LIMITS: ("ChargeLimits", "Charge", "read_charge"),
    ENERGY_ADDED: ("EnergyAdded", "Charge", "read_charge"),
    WATTAGE: ("Wattage", "Charge", "read_charge"),
    VOLTAGE: ("Voltage", "Charge", "read_charge"),
    AMPERAGE: ("Amperage", "Charge", "read_charge"),
    TIME_TO_COMPLETE: ("TimeToComplete", "Charge", "read_charge"),
    CHARGE_RATE: ("ChargeRate", "Charge", "read_charge"),
    HEATER_ACTIVE: ("IsHeaterActive", "TractionBattery", "read_battery"),
}

# Listed only for a car that reports it: a car without it answers as it did before the signal
# was modelled (no NOT_CAPABLE entry, no VEHICLE_ERROR naming it), so runs without it are unchanged.
UNLISTED = frozenset({HEATER_ACTIVE})

CORE = frozenset({SOC, RANGE, NOMINAL_CAPACITY, IS_CHARGING, IS_PLUGGED_IN, CHARGING_STATUS, CHARGE_LIMITS})
POWER = frozenset({WATTAGE, VOLTAGE, AMPERAGE})


@dataclass(frozen=True)
class MakeTraits:
    signals: frozenset[str] = CORE
    detection_delay_s: tuple[float, float] = (5.0, 30.0)
    duplicate_rate: float = 0.02
    loss_rate: float = 0.005
    jitter_s: float = 20.0
    # How often the make's cloud refreshes a car's data (makes.md §1 "Data Frequency Range"),
    # seconds MIN..MAX; applied to cars whose physics profile reports live data, in a world with
    # `v3_make_refresh` (a periodic profile keeps its own refresh). None: as live as the profile.
    data_refresh_s: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["signals"] = sorted(self.signals)
        data["detection_delay_s"] = list(self.detection_delay_s)
        data["data_refresh_s"] = list(self.data_refresh_s) if self.data_refresh_s else None
        return data

    def with_overrides(self, **overrides) -> MakeTraits:
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown v3 trait(s): {', '.join(sorted(unknown))}")
        if "signals" in overrides:
            codes = frozenset(overrides["signals"])
            if codes - set(CATALOGUE):
                raise ValueError(f"unknown signal code(s): {', '.join(sorted(codes - set(CATALOGUE)))}")
            overrides["signals"] = codes
        if "detection_delay_s" in overrides:
            low, high = overrides["detection_delay_s"]
            overrides["detection_delay_s"] = (float(low), float(high))
        if "data_refresh_s" in overrides and overrides["data_refresh_s"] is not None:
            low, high = (float(x) for x in overrides["data_refresh_s"])
            if not 0 < low <= high:
                raise ValueError("data_refresh_s must be MIN..MAX seconds, 0 < MIN <= MAX")
            overrides["data_refresh_s"] = (low, high)
        for name in ("duplicate_rate", "loss_rate"):
            if name in overrides and not 0 <= float(overrides[name]) <= 1:
                raise ValueError(f"{name} must be within 0..1")
        return replace(self, **overrides)


# Data refresh per make, makes.md §1 "Data Frequency Range" (minutes → seconds). Tesla streams
# (1 s–5 min): as live as its profile.
_MIN = 60.0
_TESLA = MakeTraits(
    signals=CORE | POWER | {ENERGY_ADDED, TIME_TO_COMPLETE, CHARGE_RATE},
    detection_delay_s=(1.0, 10.0),  # streaming cars: seconds (frequencies 1 s–5 min)
    jitter_s=5.0,
)
_JLR = MakeTraits(
    # I-PACE: EnergyAdded SUCCESS, Wattage/Voltage NOT_CAPABLE (§3.2).
    signals=CORE | {ENERGY_ADDED, TIME_TO_COMPLETE},
    detection_delay_s=(10.0, 60.0),
    jitter_s=60.0,  # a slow cloud (15–30 min): deliveries spread more
    data_refresh_s=(15 * _MIN, 30 * _MIN),
)
_POWER_NO_COUNTER = MakeTraits(signals=CORE | POWER | {TIME_TO_COMPLETE})
_VW = MakeTraits(
    # ID.4: Range NOT_CAPABLE; ID. Buzz: Wattage yes, Voltage/Amperage no (§3.2).
    signals=(CORE - {RANGE}) | {WATTAGE, TIME_TO_COMPLETE},
    detection_delay_s=(10.0, 60.0),
    data_refresh_s=(5 * _MIN, 10 * _MIN),  # EU; the US is 1–3 min
)
_BYD = MakeTraits(signals=frozenset({SOC}))
_GM = MakeTraits(data_refresh_s=(30 * _MIN, 45 * _MIN))
_FIVE_TO_TEN = MakeTraits(data_refresh_s=(5 * _MIN, 10 * _MIN))
_FIVE = MakeTraits(data_refresh_s=(5 * _MIN, 5 * _MIN))
_THREE_TO_FIVE = MakeTraits(data_refresh_s=(3 * _MIN, 5 * _MIN))
_SLOW = MakeTraits(data_refresh_s=(30 * _MIN, 60 * _MIN))

MAKE_TRAITS: dict[str, MakeTraits] = {
    "TESLA": _TESLA,
    "JAGUAR": _JLR,
    "LAND ROVER": _JLR,
    "POLESTAR": replace(
        _POWER_NO_COUNTER, detection_delay_s=(2.0, 20.0), jitter_s=10.0, data_refresh_s=(1 * _MIN, 3 * _MIN)
    ),
    "VOLVO": replace(
        _POWER_NO_COUNTER, detection_delay_s=(2.0, 20.0), jitter_s=10.0, data_refresh_s=(1 * _MIN, 3 * _MIN)
    ),
    "BMW": replace(_POWER_NO_COUNTER, data_refresh_s=(5 * _MIN, 10 * _MIN)),
    "MINI": replace(_POWER_NO_COUNTER, data_refresh_s=(30 * _MIN, 60 * _MIN)),
    "MERCEDES-BENZ": replace(_POWER_NO_COUNTER, data_refresh_s=(5 * _MIN, 10 * _MIN)),
    "VOLKSWAGEN": _VW,
    "BYD": _BYD,
    "AUDI": _THREE_TO_FIVE,
    "RIVIAN": _THREE_TO_FIVE,
    "HYUNDAI": _FIVE,
    "KIA": _FIVE,
    "SKODA": _FIVE,
    "FORD": _FIVE_TO_TEN,
    "LINCOLN": _FIVE_TO_TEN,
    "NISSAN": _FIVE_TO_TEN,
    "CHEVROLET": _GM,
    "CADILLAC": _GM,
    "GMC": _GM,
    "BUICK": _GM,
    "RENAULT": _SLOW,
    "TOYOTA": _SLOW,
}
DEFAULT_TRAITS = MakeTraits()


def traits_for(make: str, overrides: dict | None = None) -> MakeTraits:
    base = MAKE_TRAITS.get((make or "").upper(), DEFAULT_TRAITS)
    return base.with_overrides(**overrides) if overrides else base
