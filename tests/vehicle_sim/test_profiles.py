"""Make profiles: each OEM's conditions from docs/reference/makes.md §4."""

import pytest

from vehicle_sim.profiles import OEM_PROFILES, PROFILES

from .conftest import LIMITS, assert_error, at_ms


def test_there_are_eight_oem_profiles_kept_as_data():
    assert sorted(OEM_PROFILES) == sorted(
        [
            "tesla_fleet",
            "gm_onstar",
            "hk_event_gen2",
            "vw_group",
            "bmw_mini",
            "mercedes_eq_eu",
            "ford_schedule",
            "nissan_start_only",
        ]
    )
    assert PROFILES["hk_event_gen2"].soc_step == 0.1


@pytest.mark.parametrize("name", OEM_PROFILES)
def test_every_profile_reads_and_starts(make_car, clock, name):
    car = make_car(profile=name, soc=0.6, limit=0.9, command_failure_rate=0)
    signals = car.signals()  # one read: GM refuses a second poll within 30 min
    assert signals["charge-ischargingcableconnected"]["body"]["value"] is True
    assert signals["tractionbattery-stateofcharge"]["body"]["value"] == 60
    assert car.start().status_code == 200
    clock.advance(10)
    assert car.truth()["charging"] is True


def test_gm_accepts_start_and_stop_only_from_half_charge(make_car, clock):
    car = make_car(profile="gm_onstar", soc=0.4, limit=0.9)
    assert_error(car.start(), 409, "VEHICLE_STATE", "LOW_BATTERY")
    car.set(soc=0.55)
    assert car.start().status_code == 200


def test_gm_refuses_polls_closer_than_thirty_minutes(make_car, clock):
    car = make_car(profile="gm_onstar", soc=0.6)
    assert car.read().status_code == 200
    assert_error(car.read(), 502, "UPSTREAM", "RATE_LIMIT")
    clock.advance(1800)
    signals = car.signals()
    # GM does not report its charge limit (docs/reference/makes.md §4).
    assert signals[LIMITS]["status"]["error"] == {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}


def test_gm_falls_into_deep_sleep_until_driven(make_car, clock):
    car = make_car(profile="gm_onstar", soc=0.6, plugged=False)
    clock.advance(72 * 3600)
    car.renew()
    assert_error(car.read(), 409, "VEHICLE_STATE", "ASLEEP")
    # The vehicle's attributes come from the platform, not the car.
    assert car.client.get(f"/v3/vehicles/{car.id}", headers=car.headers()).status_code == 200
    car.client.post(f"/_sim/vehicles/{car.id}/drive")
    assert car.read().status_code == 200


def test_hyundai_reports_only_at_ten_percent_steps_with_the_event_time(make_car, clock):
    car = make_car(profile="hk_event_gen2", soc=0.35, limit=0.9, capacity_kwh=50, charger_kw=10, efficiency=1.0)
    car.start()
    clock.advance(10 + 600)  # +600 s at 10 kW into 50 kWh: 0.35 → 0.383
    soc = car.signals()["tractionbattery-stateofcharge"]
    assert soc["body"]["value"] == 30
    # The last report came when the command completed (+10 s).
    assert soc["meta"]["oemUpdatedAt"] == at_ms("2026-03-02T08:00:10Z")
    clock.advance(600)  # crossed 0.40 at +10 + 900 s
    soc = car.signals()["tractionbattery-stateofcharge"]
    assert soc["body"]["value"] == 40
    assert soc["meta"]["oemUpdatedAt"] == at_ms("2026-03-02T08:15:10Z")


def test_hyundai_allows_twenty_car_contacts_a_day(make_car, clock):
    car = make_car(profile="hk_event_gen2", soc=0.3, limit=0.9)
    car.set(quotas={"car_contacts": 3})
    assert car.start().status_code == 200
    clock.advance(10)
    assert car.stop().status_code == 200  # every command is a car contact
    clock.advance(10)
    assert car.start().status_code == 200
    clock.advance(10)
    assert_error(car.stop(), 502, "UPSTREAM", "RATE_LIMIT")
    assert car.read().status_code == 200  # reads fall back to the cloud copy
    clock.advance(24 * 3600)
    car.renew()
    car.set(soc=0.3)
    assert car.start().status_code == 200


def test_nissan_starts_but_cannot_stop(make_car, clock):
    car = make_car(profile="nissan_start_only")
    assert car.start().status_code == 200
    clock.advance(10)
    assert_error(car.stop(), 501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")
    assert car.signals()[LIMITS]["status"]["value"] == "ERROR"


@pytest.mark.parametrize(("stop_min_soc", "soc", "refused"), [(0.2, 0.15, True), (0.2, 0.3, False), (0.5, 0.3, True)])
def test_mercedes_refuses_stop_below_its_threshold(make_car, clock, stop_min_soc, soc, refused):
    car = make_car(profile="mercedes_eq_eu", soc=soc, stop_min_soc=stop_min_soc)
    car.start()
    clock.advance(10)
    response = car.stop()
    if refused:
        assert_error(response, 409, "VEHICLE_STATE", "LOW_BATTERY")
    else:
        assert response.status_code == 200
    assert_error(car.set_limit(90), 501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE")


def test_ford_start_with_a_location_schedule_charges_to_100(make_car, clock):
    car = make_car(profile="ford_schedule", soc=0.5, limit=0.8, command_failure_rate=0)
    car.start()
    clock.advance(450)  # the next telemetry refresh
    assert car.signals()[LIMITS]["body"]["activeLimit"] == 100
    clock.advance(10 * 3600)
    assert car.truth()["soc"] == pytest.approx(1.0)


def test_ford_commands_fail_at_the_profile_rate(make_car):
    car = make_car(profile="ford_schedule", command_failure_rate=1.0)
    assert_error(car.start(), 502, "UPSTREAM", "UNKNOWN_ISSUE")


def test_vw_throttles_repeated_charge_commands_until_driven(make_car, clock):
    car = make_car(profile="vw_group", soc=0.3)
    for command in (car.start, car.stop, car.start, car.stop, car.start):
        assert command().status_code == 200
        clock.advance(10)
    assert_error(car.stop(), 502, "UPSTREAM", "RATE_LIMIT")
    car.client.post(f"/_sim/vehicles/{car.id}/drive")
    assert car.stop().status_code == 200


def test_bmw_has_a_daily_data_budget_and_a_stop_budget(make_car, clock):
    car = make_car(profile="bmw_mini", soc=0.3)
    car.set(quotas={"data": 2, "stops_30d": 1})
    assert car.read().status_code == 200
    assert car.read().status_code == 200
    assert_error(car.read(), 502, "UPSTREAM", "RATE_LIMIT")
    car.start()
    clock.advance(10)
    assert car.stop().status_code == 200
    car.start()
    clock.advance(10)
    assert_error(car.stop(), 502, "UPSTREAM", "RATE_LIMIT")
    clock.advance(24 * 3600)
    car.renew()
    assert car.read().status_code == 200


def test_tesla_strict_quotas_answer_429_until_midnight(make_car, clock):
    car = make_car(profile="tesla_fleet", strict_quotas=True, soc=0.3)
    for _ in range(5):
        car.start()
        clock.advance(10)
        car.set(plugged=False)
        car.set(plugged=True)
    error = assert_error(car.start(), 429, "RATE_LIMIT", "VEHICLE")
    assert error["resolution"]["type"] == "RETRY_LATER"
    retry = int(car.start().headers["Retry-After"])
    # 5 × 10 s after 08:00 UTC: the quota resets at midnight UTC.
    assert retry == 16 * 3600 - 50


def test_a_sleeping_tesla_adds_wake_up_time_to_commands(make_car, clock, sim):
    car = make_car(profile="tesla_fleet", soc=0.3)
    clock.advance(15 * 60)
    car.start()
    clock.advance(10 + 9.9)  # wake-up takes 10–30 s on top of the command latency
    assert car.truth()["charging"] is False
    clock.advance(20.2)
    assert car.truth()["charging"] is True
