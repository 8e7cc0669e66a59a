"""Per-make v3 traits: which signals a make reports, and how its webhooks behave.

Signal availability follows docs/reference/vehicle-api-v3.md §3.2 and docs/reference/makes.md
§2b (Smartcar publishes no per-signal table; these are the observed cars, extended to the make):
`charge-energyadded` on Tesla and Jaguar/Land Rover; `charge-wattage` on Tesla, BMW/MINI,
Mercedes, Polestar/Volvo and VW ID. models; every other make answers VEHICLE_NOT_CAPABLE for them.
A profile whose charge limit is not readable (GM, Nissan) answers NOT_CAPABLE for
`charge-chargelimits` too. Keyed by make, not by physics profile: availability is what the make's
cloud exposes, so a `generic` car created with `make="JAGUAR"` behaves like an I-PACE here.

Webhook timing: a VEHICLE_STATE leaves when the make's cloud shows a change (the physics profile's
`telemetry_refresh_s`, or for a car whose profile is live, in a world with `v3_make_refresh`, the
make's `data_refresh_s` from makes.md §1) plus `detection_delay_s` (Smartcar noticing it; seconds per the delivery
docs, makes.md §1 "Webhooks"). Duplicates, losses and reordering (`jitter_s` shifts an event's
send time so a later one may overtake it) are at-least-once/unordered behaviour the docs warn
about; their rates are chosen defaults (unsourced), small and non-zero so receivers meet them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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
}

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
