"""v3 signals: typed readings, each with its own data age, unit and status, and capability facts.

One parser for both places signals arrive: the REST shape (`GET /v3/vehicles/{id}/signals`, each
item JSON:API `{id, type, attributes:{code, name, group, status, body}, meta:{oemUpdatedAt,
retrievedAt}}`) and the webhook shape (`data.signals[]`, the same fields without `attributes`).
Reference: docs/reference/vehicle-api-v3.md §3 (signals), §3.1 (bodies and units), §6 (webhooks).

Units are converted once, here: energy → Wh, power → W, state of charge and limits → basis points
(0..10000), distances → km (`Decimal`, one place), minutes → int. A signal answered with an error
(`status: ERROR`, e.g. COMPATIBILITY/VEHICLE_NOT_CAPABLE) does not fail the call: it becomes a
`Signal` whose `capability` tells the caller whether asking again can ever help.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import units
from .units import UnitError

# Codes this module types. Everything else keeps its raw body (`Signal.body`).
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
AMPERAGE_MAX = "charge-amperagemax"
AMPERAGE_REQUESTED = "charge-amperagerequested"
TIME_TO_COMPLETE = "charge-timetocomplete"
CHARGE_RATE = "charge-chargerate"
# `{value: boolean}` like the charge booleans: the pack heater runs, taking part of the wattage.
HEATER_ACTIVE = "tractionbattery-isheateractive"


class SignalStatus(str, enum.Enum):
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    UNAVAILABLE = "UNAVAILABLE"
    #: Ours, not the API's: SUCCESS on the wire but a value or unit we cannot read.
    INVALID = "INVALID"


class Capability(str, enum.Enum):
    """What a signal's answer says about asking for it again."""

    CAPABLE = "capable"  # it answered with a value
    NOT_CAPABLE = "not_capable"  # COMPATIBILITY error: this car (or make) never has it
    NOT_PERMITTED = "not_permitted"  # PERMISSION error: the driver did not grant the scope
    UNKNOWN = "unknown"  # a transient error or no value yet: ask again later


# COMPATIBILITY codes are facts about the car or make, not about the moment.
NOT_CAPABLE_CODES = frozenset({"VEHICLE_NOT_CAPABLE", "SMARTCAR_NOT_CAPABLE", "MAKE_NOT_COMPATIBLE"})


@dataclass(frozen=True)
class SignalError:
    type: str | None
    code: str | None
    description: str | None = None
    resolution_type: str | None = None


@dataclass(frozen=True)
class ChargeLimit:
    type: str  # GLOBAL | LOCATION | CONNECTOR | CHARGING_TYPE (3P), kept as an open string
    limit_bp: int
    condition: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChargeLimits:
    """`charge-chargelimits`: `active_limit_bp` is None when unplugged or unknown (§3.1)."""

    active_limit_bp: int | None
    limits: tuple[ChargeLimit, ...] = ()

    @property
    def global_limit_bp(self) -> int | None:
        return next((item.limit_bp for item in self.limits if item.type == "GLOBAL"), None)

    @property
    def effective_limit_bp(self) -> int | None:
        """The limit in force: the active one, else the GLOBAL one."""
        return self.active_limit_bp if self.active_limit_bp is not None else self.global_limit_bp


@dataclass(frozen=True)
class NominalCapacity:
    """`tractionbattery-nominalcapacity` (no `value` key): the chosen capacity and the candidates.
    `capacity_wh` is None when the API gave none and the candidates disagree."""

    capacity_wh: int | None
    source: str | None
    available_wh: tuple[int, ...] = ()


@dataclass(frozen=True)
class Range:
    km: Decimal
    type: str | None = None
    additional_km: tuple[tuple[str, Decimal], ...] = ()


@dataclass(frozen=True)
class Signal:
    """One signal as answered. `value` is typed per code (see `PARSERS`) and None unless SUCCESS;
    `unit` names OUR unit after conversion ("bp", "Wh", "W", "V", "A", "km", "km/h", "min").
    `oem_updated_at` is when the car or OEM last updated the value (order and age by it);
    `retrieved_at` when the vehicle API fetched it. Either may be None (not sent, or garbled)."""

    code: str
    status: SignalStatus
    value: Any = None
    unit: str | None = None
    name: str | None = None
    group: str | None = None
    oem_updated_at: datetime | None = None
    retrieved_at: datetime | None = None
    error: SignalError | None = None
    body: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == SignalStatus.SUCCESS

    @property
    def capability(self) -> Capability:
        if self.status == SignalStatus.SUCCESS:
            return Capability.CAPABLE
        if self.error is not None:
            if self.error.type == "COMPATIBILITY" or self.error.code in NOT_CAPABLE_CODES:
                return Capability.NOT_CAPABLE
            if self.error.type == "PERMISSION":
                return Capability.NOT_PERMITTED
        return Capability.UNKNOWN

    @property
    def data_time(self) -> datetime | None:
        """The reading's own time: the OEM's update time, else when it was fetched."""
        return self.oem_updated_at or self.retrieved_at


# --- per-code value parsers: body → (value, our unit); raise UnitError ---------------------------


def _value(body: Mapping[str, Any], code: str) -> Any:
    if "value" not in body:
        raise UnitError(f"{code}: no value")
    return body["value"]


def _bool(body: Mapping[str, Any], code: str) -> tuple[bool, None]:
    value = _value(body, code)
    if not isinstance(value, bool):
        raise UnitError(f"{code}: expected a boolean, got {value!r}")
    return value, None


def _string(body: Mapping[str, Any], code: str) -> tuple[str, None]:
    value = _value(body, code)
    if not isinstance(value, str) or not value:
        raise UnitError(f"{code}: expected a string, got {value!r}")
    # An open enum (CHARGING, NOT_CHARGING, FULLY_CHARGED today): kept as sent, upper-cased.
    return value.upper(), None


def _soc(body: Mapping[str, Any], code: str) -> tuple[int, str]:
    return units.percent_to_bp(_value(body, code), body.get("unit"), code), "bp"


def _energy(body: Mapping[str, Any], code: str) -> tuple[int, str]:
    # The unit is required: kWh read as Wh (or the reverse) would be off by 1000.
    number = units.convert(_value(body, code), body.get("unit"), units.ENERGY_WH_UNITS, code)
    if number < 0:
        raise UnitError(f"{code}: negative energy {number}")
    return units.round_int(number), "Wh"


def _converted_int(table: dict, our_unit: str):
    def parse(body: Mapping[str, Any], code: str) -> tuple[int, str]:
        return units.round_int(units.convert(_value(body, code), body.get("unit"), table, code)), our_unit

    return parse


def _converted_tenth(table: dict, our_unit: str):
    def parse(body: Mapping[str, Any], code: str) -> tuple[Decimal, str]:
        return units.round_tenth(units.convert(_value(body, code), body.get("unit"), table, code)), our_unit

    return parse


def _range(body: Mapping[str, Any], code: str) -> tuple[Range, str]:
    unit = body.get("unit")
    km = units.round_tenth(units.convert(_value(body, code), unit, units.DISTANCE_KM_UNITS, code))
    additional = []
    for item in body.get("additionalValues") or []:
        if isinstance(item, dict) and item.get("value") is not None:
            converted = units.convert(item["value"], unit, units.DISTANCE_KM_UNITS, code)
            additional.append((str(item.get("type")), units.round_tenth(converted)))
    kind = body.get("type")
    return Range(km=km, type=kind if isinstance(kind, str) else None, additional_km=tuple(additional)), "km"


def _capacity_wh(value: Any, unit: Any, code: str) -> int:
    # The capacity's unit is the body's `unit` (kWh); default to kWh, the only unit documented.
    return units.round_int(units.convert(value, unit if unit is not None else "kWh", units.ENERGY_WH_UNITS, code))


def _nominal_capacity(body: Mapping[str, Any], code: str) -> tuple[NominalCapacity, str]:
    unit = body.get("unit")
    available = body.get("availableCapacities") or []
    if not isinstance(available, list):
        raise UnitError(f"{code}: availableCapacities is not a list")
    available_wh = tuple(
        _capacity_wh(item["capacity"], unit, code)
        for item in available
        if isinstance(item, dict) and item.get("capacity") is not None
    )
    chosen = body.get("capacity")
    if chosen is not None:
        capacity_wh: int | None = _capacity_wh(chosen, unit, code)
    elif len(set(available_wh)) == 1:
        capacity_wh = available_wh[0]
    else:
        # Several trims and no choice: guessing would mis-size every estimate; leave it unknown.
        capacity_wh = None
    source = body.get("source")
    return NominalCapacity(capacity_wh, source if isinstance(source, str) else None, available_wh), "Wh"


def _charge_limits(body: Mapping[str, Any], code: str) -> tuple[ChargeLimits, str]:
    unit = body.get("unit")
    values = body.get("values") or []
    if not isinstance(values, list):
        raise UnitError(f"{code}: values is not a list")
    limits = []
    for item in values:
        if not isinstance(item, dict) or item.get("limit") is None:
            continue
        condition = item.get("condition")
        limits.append(
            ChargeLimit(
                type=str(item.get("type") or "UNKNOWN"),
                limit_bp=units.percent_to_bp(item["limit"], unit, code),
                condition=condition if isinstance(condition, dict) else None,
            )
        )
    active = body.get("activeLimit")
    active_bp = None if active is None else units.percent_to_bp(active, unit, code)
    return ChargeLimits(active_limit_bp=active_bp, limits=tuple(limits)), "bp"


def _minutes(body: Mapping[str, Any], code: str) -> tuple[int, str]:
    number = units.convert(_value(body, code), body.get("unit"), units.MINUTE_UNITS, code)
    return units.round_int(number), "min"


PARSERS = {
    SOC: _soc,
    RANGE: _range,
    NOMINAL_CAPACITY: _nominal_capacity,
    IS_CHARGING: _bool,
    IS_PLUGGED_IN: _bool,
    CHARGING_STATUS: _string,
    CHARGE_LIMITS: _charge_limits,
    ENERGY_ADDED: _energy,
    WATTAGE: _converted_int(units.POWER_W_UNITS, "W"),
    VOLTAGE: _converted_int(units.VOLT_UNITS, "V"),
    AMPERAGE: _converted_tenth(units.AMPERE_UNITS, "A"),
    AMPERAGE_MAX: _converted_tenth(units.AMPERE_UNITS, "A"),
    AMPERAGE_REQUESTED: _converted_tenth(units.AMPERE_UNITS, "A"),
    TIME_TO_COMPLETE: _minutes,
    CHARGE_RATE: _converted_tenth(units.SPEED_KMH_UNITS, "km/h"),
    HEATER_ACTIVE: _bool,
}


# --- one signal ------------------------------------------------------------------------------------


def code_from_name(text: str) -> str:
    """`Group.Name` (as old payloads write signals) → the code (`group-name`, lower case)."""
    group, _, name = text.partition(".")
    return f"{group}-{name}".lower() if name else text.lower()


def _error(status: Mapping[str, Any]) -> SignalError | None:
    error = status.get("error")
    if not isinstance(error, dict):
        return None
    resolution = error.get("resolution")
    return SignalError(
        type=error.get("type") if isinstance(error.get("type"), str) else None,
        code=error.get("code") if isinstance(error.get("code"), str) else None,
        description=error.get("description") if isinstance(error.get("description"), str) else None,
        resolution_type=resolution.get("type") if isinstance(resolution, dict) else None,
    )


def parse_signal(item: Any) -> Signal:
    """One signal from either shape (REST item with `attributes`, or a webhook entry).

    Raises UnitError only when the item has no code at all; every other problem becomes a signal
    with status INVALID, so one bad signal never hides the others."""
    if not isinstance(item, dict):
        raise UnitError(f"signal: expected an object, got {item!r}")
    attributes = item.get("attributes") if isinstance(item.get("attributes"), dict) else item
    code = attributes.get("code") or item.get("id") or item.get("code")
    if not isinstance(code, str) or not code:
        raise UnitError(f"signal without a code: {item!r}")
    code = code.lower()
    meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
    status_obj = attributes.get("status") if isinstance(attributes.get("status"), dict) else {}
    raw_status = status_obj.get("value")
    body = attributes.get("body") if isinstance(attributes.get("body"), dict) else {}
    common = {
        "code": code,
        "name": attributes.get("name") if isinstance(attributes.get("name"), str) else None,
        "group": attributes.get("group") if isinstance(attributes.get("group"), str) else None,
        "oem_updated_at": units.parse_timestamp(meta.get("oemUpdatedAt")),
        # `fetchedAt` is how some copies name it (§9: meta.fetchedAt vs retrievedAt).
        "retrieved_at": units.parse_timestamp(meta.get("retrievedAt", meta.get("fetchedAt"))),
        "body": body,
    }
    # A missing status with a body is a value (older payloads); a missing body is not.
    if raw_status in (None, "SUCCESS") and (raw_status == "SUCCESS" or body):
        parser = PARSERS.get(code)
        if parser is None:
            return Signal(status=SignalStatus.SUCCESS, **common)
        try:
            value, unit = parser(body, code)
        except UnitError as exc:
            problem = SignalError(type="CLIENT", code="INVALID_DATA", description=str(exc))
            return Signal(status=SignalStatus.INVALID, error=problem, **common)
        return Signal(status=SignalStatus.SUCCESS, value=value, unit=unit, **common)
    if raw_status == "ERROR":
        return Signal(status=SignalStatus.ERROR, error=_error(status_obj), **common)
    return Signal(status=SignalStatus.UNAVAILABLE, error=_error(status_obj), **common)


# --- a set of signals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalSet(Mapping[str, Signal]):
    """Signals by code, with typed shortcuts for what charging needs. A shortcut answers None when
    the signal is absent or not SUCCESS; ask `capabilities()` why."""

    signals: Mapping[str, Signal] = field(default_factory=dict)
    vehicle: Mapping[str, Any] | None = None  # `included.vehicle` of the REST answer, if any

    @classmethod
    def from_items(cls, items: Iterable[Any], vehicle: Mapping[str, Any] | None = None) -> SignalSet:
        out: dict[str, Signal] = {}
        for item in items:
            signal = parse_signal(item)
            previous = out.get(signal.code)
            # A code listed twice (a retried page): keep the newer reading.
            if previous is None or _newer(signal, previous):
                out[signal.code] = signal
        return cls(out, vehicle)

    def __getitem__(self, code: str) -> Signal:
        return self.signals[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self.signals)

    def __len__(self) -> int:
        return len(self.signals)

    def value(self, code: str) -> Any:
        signal = self.signals.get(code)
        return signal.value if signal is not None and signal.ok else None

    def capabilities(self) -> dict[str, Capability]:
        """code → capability, for every signal answered (absent codes are simply not known)."""
        return {code: signal.capability for code, signal in self.signals.items()}

    @property
    def soc_bp(self) -> int | None:
        return self.value(SOC)

    @property
    def energy_added_wh(self) -> int | None:
        return self.value(ENERGY_ADDED)

    @property
    def power_w(self) -> int | None:
        return self.value(WATTAGE)

    @property
    def is_charging(self) -> bool | None:
        return self.value(IS_CHARGING)

    @property
    def is_plugged_in(self) -> bool | None:
        return self.value(IS_PLUGGED_IN)

    @property
    def heater_active(self) -> bool | None:
        """Whether the pack heater runs; None (unknown) when the car does not say, as most do not."""
        return self.value(HEATER_ACTIVE)

    @property
    def charging_status(self) -> str | None:
        return self.value(CHARGING_STATUS)

    @property
    def charge_limit_bp(self) -> int | None:
        limits = self.value(CHARGE_LIMITS)
        return limits.effective_limit_bp if limits is not None else None

    @property
    def capacity_wh(self) -> int | None:
        capacity = self.value(NOMINAL_CAPACITY)
        return capacity.capacity_wh if capacity is not None else None

    @property
    def range_km(self) -> Decimal | None:
        value = self.value(RANGE)
        return value.km if value is not None else None


def _newer(candidate: Signal, current: Signal) -> bool:
    if candidate.data_time is None:
        return False
    return current.data_time is None or candidate.data_time > current.data_time
