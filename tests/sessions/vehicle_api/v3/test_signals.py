"""Signals: typed values converted once, per-signal time, unit and status, capability facts."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sessions.vehicle_api import signals as sig
from sessions.vehicle_api import units
from sessions.vehicle_api.signals import Capability, SignalSet, SignalStatus, parse_signal

from .conftest import reference


def rest(code, body, status="SUCCESS", meta=None):
    return {
        "id": code,
        "type": "signal",
        "attributes": {"code": code, "status": {"value": status}, "body": body},
        "meta": meta or {"oemUpdatedAt": 1769937933000, "retrievedAt": 1769937943244},
    }


# --- timestamps: seconds, milliseconds, ISO 8601 (CONFLICT: all three are accepted) --------------------


@pytest.mark.parametrize(
    "value",
    [1769937933, 1769937933000, "1769937933", "1769937933000", "2026-02-01T09:25:33Z", "2026-02-01T10:25:33+01:00"],
)
def test_it_reads_a_timestamp_in_every_encoding_as_the_same_instant(value):
    assert units.parse_timestamp(value) == datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC)


def test_it_keeps_milliseconds_and_treats_naive_iso_as_utc():
    assert units.parse_timestamp(1769937943244) == datetime(2026, 2, 1, 9, 25, 43, 244000, tzinfo=UTC)
    assert units.parse_timestamp("2026-02-01T09:25:33.5") == datetime(2026, 2, 1, 9, 25, 33, 500000, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, "", "yesterday", True, -5, {"t": 1}, float("nan")])
def test_it_answers_none_for_a_missing_or_garbled_timestamp(value):
    assert units.parse_timestamp(value) is None


# --- units ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "wh"),
    [
        ({"value": 12.3456, "unit": "kWh"}, 12346),
        ({"value": 12.3455, "unit": "kilowatt-hours"}, 12346),  # half up, on the decimal value
        ({"value": "0.0005", "unit": "kilowattHours"}, 1),
        ({"value": 850, "unit": "Wh"}, 850),
        ({"value": 0, "unit": "kWh"}, 0),
    ],
)
def test_energy_added_becomes_whole_watt_hours_rounded_half_up(body, wh):
    signal = parse_signal(rest(sig.ENERGY_ADDED, body))
    assert (signal.status, signal.value, signal.unit) == (SignalStatus.SUCCESS, wh, "Wh")


def test_an_energy_value_without_a_unit_is_invalid_not_guessed():
    # kWh read as Wh (or the reverse) is off by 1000: no unit, no value.
    signal = parse_signal(rest(sig.ENERGY_ADDED, {"value": 12.5}))
    assert signal.status == SignalStatus.INVALID
    assert signal.value is None
    assert signal.capability == Capability.UNKNOWN


@pytest.mark.parametrize(
    ("code", "body", "value", "unit"),
    [
        (sig.SOC, {"value": 89, "unit": "percent"}, 8900, "bp"),
        (sig.SOC, {"value": 54.55, "unit": "percentage"}, 5455, "bp"),
        (sig.SOC, {"value": 42}, 4200, "bp"),
        (sig.WATTAGE, {"value": 4683, "unit": "watts"}, 4683, "W"),
        (sig.WATTAGE, {"value": 7.2, "unit": "kW"}, 7200, "W"),
        (sig.VOLTAGE, {"value": 223, "unit": "volts"}, 223, "V"),
        (sig.AMPERAGE, {"value": 7.25, "unit": "ampere"}, Decimal("7.3"), "A"),
        (sig.TIME_TO_COMPLETE, {"value": 15}, 15, "min"),
        (sig.CHARGE_RATE, {"value": 10, "unit": "mi/h"}, Decimal("16.1"), "km/h"),
        (sig.IS_CHARGING, {"value": True}, True, None),
        (sig.CHARGING_STATUS, {"value": "fully_charged"}, "FULLY_CHARGED", None),
    ],
)
def test_it_types_each_known_signal_in_our_units(code, body, value, unit):
    signal = parse_signal(rest(code, body))
    assert (signal.value, signal.unit) == (value, unit)


def test_a_v2_fraction_in_a_percent_signal_is_not_read_as_a_percent():
    # 0.8 would pass as 0.8 %; only out-of-range values can be caught, and 120 % is one.
    assert parse_signal(rest(sig.SOC, {"value": 120, "unit": "percent"})).status == SignalStatus.INVALID
    assert parse_signal(rest(sig.SOC, {"value": "lots", "unit": "percent"})).status == SignalStatus.INVALID
    assert parse_signal(rest(sig.IS_CHARGING, {"value": "true"})).status == SignalStatus.INVALID


def test_range_converts_miles_and_keeps_the_additional_estimates():
    body = {"value": 100, "unit": "miles", "type": "DEFAULT", "additionalValues": [{"type": "RATED", "value": 110}]}
    value = parse_signal(rest(sig.RANGE, body)).value
    assert value.km == Decimal("160.9")
    assert value.type == "DEFAULT"
    assert value.additional_km == (("RATED", Decimal("177.0")),)


def test_charge_limits_active_limit_or_global_limit():
    plugged = {
        "values": [{"type": "GLOBAL", "limit": 80, "condition": None}, {"type": "LOCATION", "limit": 90}],
        "activeLimit": 90,
        "unit": "percent",
    }
    limits = parse_signal(rest(sig.CHARGE_LIMITS, plugged)).value
    assert (limits.active_limit_bp, limits.global_limit_bp, limits.effective_limit_bp) == (9000, 8000, 9000)
    unplugged = {"values": [{"type": "GLOBAL", "limit": 80}], "activeLimit": None, "unit": "percent"}
    assert parse_signal(rest(sig.CHARGE_LIMITS, unplugged)).value.effective_limit_bp == 8000
    empty = parse_signal(rest(sig.CHARGE_LIMITS, {"values": [], "activeLimit": None})).value
    assert empty.effective_limit_bp is None


def test_nominal_capacity_has_no_value_key_and_may_be_ambiguous():
    chosen = {"capacity": 82, "source": "SMARTCAR", "availableCapacities": [{"capacity": 82}], "unit": "kWh"}
    assert parse_signal(rest(sig.NOMINAL_CAPACITY, chosen)).value.capacity_wh == 82000
    one_candidate = {"availableCapacities": [{"capacity": 90, "description": "90 kWh"}], "unit": "kWh"}
    assert parse_signal(rest(sig.NOMINAL_CAPACITY, one_candidate)).value.capacity_wh == 90000
    several = {"availableCapacities": [{"capacity": 77}, {"capacity": 82}], "source": "USER_SELECTED"}
    value = parse_signal(rest(sig.NOMINAL_CAPACITY, several)).value
    assert value.capacity_wh is None
    assert value.available_wh == (77000, 82000)


# --- status, capability, time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "capability"),
    [
        ({"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}, Capability.NOT_CAPABLE),
        ({"type": "COMPATIBILITY", "code": "SMARTCAR_NOT_CAPABLE"}, Capability.NOT_CAPABLE),
        ({"type": "PERMISSION", "code": None}, Capability.NOT_PERMITTED),
        ({"type": "SERVER", "code": "INTERNAL"}, Capability.UNKNOWN),
        ({"type": "VEHICLE_STATE", "code": "ASLEEP"}, Capability.UNKNOWN),
    ],
)
def test_a_signal_error_is_a_capability_fact_only_when_it_says_so(error, capability):
    item = {"code": sig.WATTAGE, "status": {"value": "ERROR", "error": error}}
    signal = parse_signal(item)
    assert signal.status == SignalStatus.ERROR
    assert signal.capability == capability
    assert signal.error.code == error["code"]


def test_an_unavailable_signal_is_unknown_not_incapable():
    signal = parse_signal({"code": sig.SOC, "status": {"value": "UNAVAILABLE"}})
    assert (signal.status, signal.capability) == (SignalStatus.UNAVAILABLE, Capability.UNKNOWN)


def test_each_signal_carries_its_own_times_and_the_oem_time_is_the_data_time():
    item = rest(
        sig.SOC, {"value": 89, "unit": "percent"}, meta={"oemUpdatedAt": 1769937933000, "retrievedAt": 1769937943244}
    )
    signal = parse_signal(item)
    assert signal.oem_updated_at == datetime(2026, 2, 1, 9, 25, 33, tzinfo=UTC)
    assert signal.retrieved_at == datetime(2026, 2, 1, 9, 25, 43, 244000, tzinfo=UTC)
    assert signal.data_time == signal.oem_updated_at
    only_fetched = parse_signal(rest(sig.SOC, {"value": 89}, meta={"fetchedAt": "2026-02-01T09:30:00Z"}))
    assert only_fetched.data_time == datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


def test_the_reference_signals_example_parses_with_its_capability_fact():
    body = reference("signals")["body"]
    signals = SignalSet.from_items(body["data"], body["included"]["vehicle"])
    voltage = signals["charge-voltage"]
    assert (voltage.value, voltage.unit, voltage.name, voltage.group) == (85, "V", "Voltage", "Charge")
    # The spec's example is in seconds: 1696156799 s = 2023-10-01T10:39:59Z.
    assert voltage.oem_updated_at == datetime(2023, 10, 1, 10, 39, 59, tzinfo=UTC)
    assert signals.capabilities() == {
        "charge-voltage": Capability.CAPABLE,
        "tractionbattery-range": Capability.NOT_CAPABLE,
    }
    assert signals.range_km is None
    assert signals.vehicle["attributes"]["year"] == 2020


def test_a_code_listed_twice_keeps_the_newer_reading():
    old = rest(sig.SOC, {"value": 50}, meta={"oemUpdatedAt": 1000 * 1769937000})
    new = rest(sig.SOC, {"value": 55}, meta={"oemUpdatedAt": 1000 * 1769937600})
    assert SignalSet.from_items([new, old]).soc_bp == 5500
    assert SignalSet.from_items([old, new]).soc_bp == 5500


def test_shortcuts_answer_none_unless_the_signal_succeeded():
    signals = SignalSet.from_items(
        [
            rest(sig.SOC, {"value": 40, "unit": "percent"}),
            rest(sig.ENERGY_ADDED, {"value": 3.2, "unit": "kWh"}),
            {
                "code": sig.WATTAGE,
                "status": {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}},
            },
            rest(sig.IS_PLUGGED_IN, {"value": True}),
            rest(sig.CHARGE_LIMITS, {"values": [{"type": "GLOBAL", "limit": 80}], "activeLimit": 80}),
            rest(sig.NOMINAL_CAPACITY, {"capacity": 75, "unit": "kWh"}),
        ]
    )
    assert (signals.soc_bp, signals.energy_added_wh, signals.power_w) == (4000, 3200, None)
    assert (signals.is_plugged_in, signals.is_charging, signals.charge_limit_bp) == (True, None, 8000)
    assert signals.capacity_wh == 75000
    assert signals.capabilities()[sig.WATTAGE] == Capability.NOT_CAPABLE
    assert len(signals) == 6
    assert sig.SOC in signals


def test_an_item_without_a_code_is_refused_and_unknown_codes_keep_their_body():
    with pytest.raises(units.UnitError):
        parse_signal({"attributes": {"status": {"value": "SUCCESS"}}})
    other = parse_signal(rest("odometer-traveleddistance", {"value": 115071.5, "unit": "kilometers"}))
    assert (other.status, other.value, other.body["value"]) == (SignalStatus.SUCCESS, None, 115071.5)


# --- the pack heater (`tractionbattery-isheateractive`): availability per make unknown ---------------


def _heater(*items):
    return SignalSet.from_items([rest(sig.SOC, {"value": 40, "unit": "percent"}), *items]).heater_active


def test_the_heater_signal_is_a_boolean_like_the_charge_booleans():
    assert _heater(rest(sig.HEATER_ACTIVE, {"value": True})) is True
    assert _heater(rest(sig.HEATER_ACTIVE, {"value": False})) is False
    # The webhook shape (no `attributes`) reads the same.
    flat = {"code": sig.HEATER_ACTIVE, "status": {"value": "SUCCESS"}, "body": {"value": True}}
    assert SignalSet.from_items([flat]).heater_active is True


def test_a_heater_signal_absent_refused_or_garbled_is_unknown_never_an_error():
    not_capable = {
        "code": sig.HEATER_ACTIVE,
        "status": {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}},
    }
    assert _heater() is None
    assert _heater(not_capable) is None
    assert _heater(rest(sig.HEATER_ACTIVE, {"value": "yes"})) is None
    assert _heater(rest(sig.HEATER_ACTIVE, {}, status="UNAVAILABLE")) is None
    signals = SignalSet.from_items([rest(sig.SOC, {"value": 40, "unit": "percent"}), not_capable])
    assert signals.soc_bp == 4000
    assert signals.capabilities()[sig.HEATER_ACTIVE] == Capability.NOT_CAPABLE
