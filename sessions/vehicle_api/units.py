"""Numbers, units and timestamps of the v3 wire, converted once, here (STYLE.md "Units and money").

Every float from the API becomes an integer (Wh, W, V, basis points, minutes) or a `Decimal` with a
fixed number of places through `Decimal(str(x))` and ROUND_HALF_UP, never `int(x * 1000)`.

Units: v3 documents `percentage`, `kilometers`, `kilowatt-hours`, `minutes` while real payloads say
`percent`, `km`, `kWh`, `watts`, `ampere`, `volts`, `km/h` (and imperial `miles`); both spellings
are accepted (docs/reference/vehicle-api-v3.md §3.1, "Units CONFLICT").
Timestamps: epoch seconds, epoch milliseconds or ISO 8601 are all accepted (§3 "Timestamp
encoding", CONFLICT).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

ONE = Decimal(1)
TENTH = Decimal("0.1")
MILES_TO_KM = Decimal("1.609344")
# Epoch values at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973.
MS_THRESHOLD = 10**11


class UnitError(ValueError):
    """A value or unit the parser cannot convert (wrong type, unknown unit, out of range)."""


def decimal(value: Any, what: str) -> Decimal:
    """A finite `Decimal` from an int, float or numeric string; `bool` is refused (`true` is not 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnitError(f"{what}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise UnitError(f"{what}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise UnitError(f"{what}: not a finite number: {value!r}")
    return number


def round_int(number: Decimal) -> int:
    return int(number.quantize(ONE, rounding=ROUND_HALF_UP))


def round_tenth(number: Decimal) -> Decimal:
    return number.quantize(TENTH, rounding=ROUND_HALF_UP)


def _key(unit: Any) -> str | None:
    if unit is None:
        return None
    if not isinstance(unit, str):
        raise UnitError(f"unit must be a string, got {unit!r}")
    return unit.strip().lower().replace("_", "-").replace(" ", "-")


# unit (normalised by `_key`) → factor to our unit. None = the unit key is absent.
PERCENT_UNITS = {None: ONE, "percent": ONE, "percentage": ONE, "%": ONE}
ENERGY_WH_UNITS = {
    "kwh": Decimal(1000),
    "kilowatt-hours": Decimal(1000),
    "kilowatt-hour": Decimal(1000),
    "kilowatthours": Decimal(1000),
    "wh": ONE,
    "watt-hours": ONE,
}
POWER_W_UNITS = {None: ONE, "watts": ONE, "watt": ONE, "w": ONE, "kw": Decimal(1000), "kilowatts": Decimal(1000)}
VOLT_UNITS = {None: ONE, "volts": ONE, "volt": ONE, "v": ONE}
AMPERE_UNITS = {None: ONE, "ampere": ONE, "amperes": ONE, "amps": ONE, "amp": ONE, "a": ONE}
DISTANCE_KM_UNITS = {
    "km": ONE,
    "kilometers": ONE,
    "kilometres": ONE,
    "miles": MILES_TO_KM,
    "mi": MILES_TO_KM,
}
SPEED_KMH_UNITS = {
    "km/h": ONE,
    "kph": ONE,
    "kilometers-per-hour": ONE,
    "mi/h": MILES_TO_KM,
    "mph": MILES_TO_KM,
    "miles/h": MILES_TO_KM,
    "miles-per-hour": MILES_TO_KM,
}
# `charge-timetocomplete` carries no unit key in real payloads; the docs say minutes.
MINUTE_UNITS = {None: ONE, "minutes": ONE, "minute": ONE, "min": ONE, "seconds": Decimal(1) / Decimal(60)}


def convert(value: Any, unit: Any, table: dict[str | None, Decimal], what: str) -> Decimal:
    """`value` in `unit` → our unit, exactly (no rounding yet). Raises UnitError for an unknown unit."""
    key = _key(unit)
    if key not in table:
        raise UnitError(f"{what}: unknown unit {unit!r}")
    return decimal(value, what) * table[key]


def percent_to_bp(value: Any, unit: Any = None, what: str = "percent") -> int:
    """0..100 percent → integer basis points 0..10000, rounded half up. Out of range is refused:
    a 0..1 fraction here would be a v2 value slipped into v3 and must not pass as 0.8 %."""
    number = convert(value, unit, PERCENT_UNITS, what)
    if number < 0 or number > 100:
        raise UnitError(f"{what}: expected 0..100, got {value!r}")
    return round_int(number * 100)


def parse_timestamp(value: Any) -> datetime | None:
    """Epoch seconds, epoch milliseconds (numbers or numeric strings) or ISO 8601 → aware UTC.

    None when absent or unparsable: a garbled timestamp must not discard an otherwise good value
    (the caller then treats its age as unknown)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = Decimal(text)
        except InvalidOperation:
            return _parse_iso(text)
    if isinstance(value, int | float | Decimal):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        if not number.is_finite() or number < 0:
            return None
        seconds = number / 1000 if number >= MS_THRESHOLD else number
        try:
            return datetime.fromtimestamp(float(seconds), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _parse_iso(text: str) -> datetime | None:
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the API speaks UTC; a naive value is UTC without the marker
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
