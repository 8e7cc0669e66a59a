"""The pure decisions about webhook readings: what a delivery's signals make, when a delivery
pulls the next step forward, when it answers a read, how long a read waits for one."""

from datetime import UTC, datetime, timedelta

import pytest

from sessions.controller import metering
from sessions.controller.webhook_readings import (
    WEBHOOK_GRACE,
    SessionView,
    answers_read,
    charge_state,
    pulls_forward,
    reading_from_signals,
    wait_for_webhook_until,
)
from sessions.vehicle_api.signals import SignalSet

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


def item(code, body, *, at_ms=MS, status="SUCCESS"):
    _group, _, _ = code.partition("-")
    out = {"code": code, "status": {"value": status}, "meta": {"oemUpdatedAt": at_ms, "retrievedAt": at_ms + 5000}}
    if status == "SUCCESS":
        out["body"] = body
    else:
        out["status"]["error"] = {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}
    return out


def signals(*items):
    return SignalSet.from_items(list(items))


def reading(at_s=0, **values):
    values.setdefault("charge_state", metering.CHARGING)
    values.setdefault("is_plugged_in", True)
    return metering.Reading(
        taken_at=T0 + timedelta(seconds=at_s), fetched_at=T0 + timedelta(seconds=at_s + 20), source="soc", **values
    )


# --- signals → reading ---------------------------------------------------------------------------------------


def test_a_car_with_an_energy_counter_gives_an_energy_reading_at_the_counters_own_time():
    got = reading_from_signals(
        signals(
            item("charge-energyadded", {"value": 4.2, "unit": "kWh"}, at_ms=MS - 30_000),
            item("tractionbattery-stateofcharge", {"value": 55, "unit": "percent"}, at_ms=MS - 90_000),
            item("charge-wattage", {"value": 7200, "unit": "watts"}),
            item("charge-ischarging", {"value": True}),
            item("charge-ischargingcableconnected", {"value": True}),
        ),
        received_at=T0 + timedelta(seconds=40),
    )
    assert got.source == metering.SOURCE_ENERGY_ADDED
    assert (got.energy_added_wh, got.soc_bp, got.power_w) == (4200, 5500, 7200)
    assert got.taken_at == T0 - timedelta(seconds=30)  # the counter's time, not the SoC's
    assert got.fetched_at == T0 + timedelta(seconds=40)
    assert (got.charge_state, got.is_plugged_in) == (metering.CHARGING, True)


def test_a_soc_only_car_gives_a_soc_reading_and_a_not_capable_counter_is_ignored():
    got = reading_from_signals(
        signals(
            item("charge-energyadded", None, status="ERROR"),
            item("tractionbattery-stateofcharge", {"value": 61, "unit": "percent"}, at_ms=MS - 10_000),
            item("charge-ischarging", {"value": False}),
        ),
        received_at=T0,
    )
    assert got.source == metering.SOURCE_SOC and got.energy_added_wh is None and got.soc_bp == 6100
    assert got.charge_state == metering.NOT_CHARGING and got.taken_at == T0 - timedelta(seconds=10)


def test_a_timestamp_ahead_of_our_clock_is_taken_as_the_time_we_got_it():
    got = reading_from_signals(
        signals(item("tractionbattery-stateofcharge", {"value": 61, "unit": "percent"}, at_ms=MS + 600_000)),
        received_at=T0,
    )
    assert got.taken_at == T0


def test_signals_the_controller_does_not_use_make_no_reading():
    assert (
        reading_from_signals(signals(item("tractionbattery-range", {"value": 200, "unit": "km"})), received_at=T0)
        is None
    )
    assert reading_from_signals(signals(), received_at=T0) is None


@pytest.mark.parametrize(
    ("status", "charging", "expected"),
    [
        ("FULLY_CHARGED", False, metering.FULLY_CHARGED),
        ("charging", True, metering.CHARGING),
        ("SOMETHING_ELSE", True, metering.CHARGING),  # an unknown detailed status: IsCharging decides
        (None, False, metering.NOT_CHARGING),
    ],
)
def test_the_charge_state_comes_from_the_detailed_status_else_from_is_charging(status, charging, expected):
    items = [item("charge-ischarging", {"value": charging})]
    if status:
        items.append(item("charge-detailedchargingstatus", {"value": status}))
    assert charge_state(signals(*items)) == expected


# --- pull forward ----------------------------------------------------------------------------------------------


def view(**fields):
    base = {
        "status": "charging",
        "planned_action": "read",
        "next_action_at": T0 + timedelta(minutes=10),
        "purchased_wh": 10_000,
        "delivered_wh": 2_000,
        "power_w": 7_000,
        "baseline_energy_wh": 0,
        "start_soc_bp": 3_000,
        "capacity_wh": 60_000,
    }
    return SessionView(**{**base, **fields})


NOW = T0 + timedelta(seconds=30)


def test_a_reading_that_changes_nothing_leaves_the_planned_step_alone():
    assert not pulls_forward(view(), reading(-60, energy_added_wh=2_000), reading(0, energy_added_wh=2_100), NOW)


def test_a_step_waiting_for_a_webhook_is_pulled_forward():
    assert pulls_forward(
        view(planned_action="webhook"), reading(-60, energy_added_wh=2_000), reading(0, energy_added_wh=2_100), NOW
    )


def test_the_first_reading_of_a_session_is_looked_at_at_once():
    assert pulls_forward(view(status="starting"), None, reading(0), NOW)


@pytest.mark.parametrize(
    "changed", [{"charge_state": metering.NOT_CHARGING}, {"is_plugged_in": False}, {"charge_state": "FULLY_CHARGED"}]
)
def test_a_change_of_the_cars_state_pulls_the_step_forward(changed):
    assert pulls_forward(view(), reading(-60, soc_bp=4_000), reading(0, soc_bp=4_000, **changed), NOW)


def test_a_purchase_reached_before_the_planned_step_pulls_it_forward():
    # 9.2 kWh in, 7.2 kW for the 10 minutes to the planned step: 10.4 kWh > 10 kWh bought.
    assert pulls_forward(
        view(), reading(-60, energy_added_wh=9_000), reading(0, energy_added_wh=9_200, power_w=7_200), NOW
    )
    assert not pulls_forward(
        view(), reading(-60, energy_added_wh=8_000), reading(0, energy_added_wh=8_200, power_w=7_200), NOW
    )
    # A SoC-only car: from the level (30 % → 46 % of 60 kWh = 9.6 kWh) and the session's power.
    assert pulls_forward(view(), reading(-60, soc_bp=4_500), reading(0, soc_bp=4_600), NOW)


def test_an_older_snapshot_delivered_late_or_an_ended_session_pulls_nothing():
    assert not pulls_forward(view(planned_action="webhook"), reading(0), reading(-60, charge_state="NOT_CHARGING"), NOW)
    assert not pulls_forward(view(status="completed", planned_action="webhook"), reading(-60), reading(0), NOW)


# --- answers a read / waits for one ---------------------------------------------------------------------------


def test_a_fresh_unused_webhook_reading_answers_a_read_once():
    at = T0
    assert answers_read(webhook_at=at, used_at=None, newest_at=at, now=at + timedelta(seconds=200), refresh_s=180)
    assert not answers_read(webhook_at=at, used_at=at, newest_at=at, now=at + timedelta(seconds=10), refresh_s=180)
    assert answers_read(
        webhook_at=at, used_at=at - timedelta(seconds=180), newest_at=at, now=at + timedelta(seconds=10), refresh_s=180
    )


def test_a_webhook_reading_older_than_a_polled_one_or_than_the_next_snapshot_answers_nothing():
    at = T0
    assert not answers_read(webhook_at=at, used_at=None, newest_at=at + timedelta(seconds=1), now=at, refresh_s=180)
    stale = at + timedelta(seconds=180) + WEBHOOK_GRACE + timedelta(seconds=1)
    assert not answers_read(webhook_at=at, used_at=None, newest_at=at, now=stale, refresh_s=180)
    assert not answers_read(webhook_at=None, used_at=None, newest_at=at, now=at, refresh_s=180)


def test_a_read_waits_for_the_next_webhook_until_it_is_overdue():
    at = T0
    due = at + timedelta(seconds=300) + WEBHOOK_GRACE
    assert wait_for_webhook_until(webhook_at=at, now=at + timedelta(seconds=100), refresh_s=300) == due
    assert wait_for_webhook_until(webhook_at=at, now=due, refresh_s=300) is None
    assert wait_for_webhook_until(webhook_at=None, now=at, refresh_s=300) is None  # no webhooks: poll


def test_a_car_without_a_counter_that_reports_its_power_gives_a_power_reading_timed_by_its_level():
    # The same function builds polled and webhook readings: a session that does not count on the
    # car's counter is metered by its charging power with the level, at the level's own time.
    got = reading_from_signals(
        signals(
            item("charge-energyadded", {"value": 4.2, "unit": "kWh"}, at_ms=MS - 5_000),
            item("tractionbattery-stateofcharge", {"value": 55, "unit": "percent"}, at_ms=MS - 90_000),
            item("charge-wattage", {"value": 7200, "unit": "watts"}, at_ms=MS - 20_000),
            item("charge-ischarging", {"value": True}),
        ),
        received_at=T0,
        counter=False,
    )
    assert got.source == metering.SOURCE_POWER
    assert (got.energy_added_wh, got.soc_bp, got.power_w) == (None, 5500, 7200)
    assert got.taken_at == T0 - timedelta(seconds=90)


# --- the pack heater's state (`tractionbattery-isheateractive`) -----------------------------------------


def _power_signals(*extra):
    return signals(
        item("tractionbattery-stateofcharge", {"value": 55, "unit": "percent"}),
        item("charge-wattage", {"value": 7200, "unit": "watts"}),
        item("charge-ischarging", {"value": True}),
        *extra,
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((item("tractionbattery-isheateractive", {"value": True}),), True),
        ((item("tractionbattery-isheateractive", {"value": False}),), False),
        ((), None),
        ((item("tractionbattery-isheateractive", None, status="ERROR"),), None),
    ],
)
def test_a_reading_carries_the_heater_state_the_car_said_and_unknown_otherwise(extra, expected):
    got = reading_from_signals(_power_signals(*extra), received_at=T0, counter=False)
    assert got.source == metering.SOURCE_POWER and got.power_w == 7200
    assert got.heater_active is expected


def test_a_purchase_is_not_taken_as_reached_on_the_wattage_of_a_running_heater():
    # 46 % of 60 kWh from 30 % = 9.6 kWh; 7.2 kW for 10 minutes would reach the 10 kWh bought,
    # the session's 2 kW (the heater takes the rest) would not.
    new = {"soc_bp": 4_600, "power_w": 7_200}
    assert pulls_forward(view(power_w=2_000), reading(-60, soc_bp=4_500), reading(0, **new), NOW)
    assert not pulls_forward(
        view(power_w=2_000), reading(-60, soc_bp=4_500), reading(0, **new, heater_active=True), NOW
    )


def test_the_readings_copy_on_the_session_keeps_the_heater_state_and_an_older_copy_reads_unknown():
    from sessions.controller.readings import _cache_row, _from_cache_row
    from sessions.models.charging import MeterReading

    row = MeterReading(
        taken_at=T0,
        fetched_at=T0 + timedelta(seconds=20),
        source=metering.SOURCE_POWER,
        soc_bp=5_500,
        power_w=7_200,
        charge_state=metering.CHARGING,
        is_plugged_in=True,
        via="webhook",
        heater_active=True,
    )
    copy = _cache_row(row)
    assert _from_cache_row(copy).heater_active is True
    older = _from_cache_row(copy[:9])  # written before the heater's field
    assert older.heater_active is None
    assert (older.power_w, older.via, older.taken_at) == (7_200, "webhook", T0)
