"""The world's knobs: pack and charger physics, each car's draws, and what the API then shows."""

import itertools
import random
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.clock import SteppedClock
from vehicle_sim.engine import Simulator
from vehicle_sim.physics import Charger, Pack, charge, trajectory
from vehicle_sim.profiles import PROFILES
from vehicle_sim.telemetry import report_level
from vehicle_sim.world import WORLDS, World, draw_car

from .conftest import LIMITS, START, WATTAGE, Car, live_reads

REALISTIC = WORLDS["realistic"]


# --- physics -------------------------------------------------------------------------------------


def test_a_linear_pack_holds_the_same_energy_in_every_percent():
    pack = Pack(75_000)
    assert pack.wh_between(0.1, 0.11) == pytest.approx(750)
    assert pack.wh_between(0.8, 0.81) == pytest.approx(750)


def test_the_voltage_curve_puts_more_energy_in_a_high_percent_than_a_low_one():
    pack = Pack(75_000, voltage_slope=0.15)
    low, high = pack.wh_between(0.10, 0.11), pack.wh_between(0.90, 0.91)
    assert low == pytest.approx(750 * (1 + 0.15 * (0.105 - 0.5)), rel=1e-6)
    assert high / low == pytest.approx((1 + 0.15 * 0.405) / (1 - 0.15 * 0.395), rel=1e-6)
    # Still the whole capacity from empty to full, and soc_at inverts energy_at.
    assert pack.energy_at(1.0) == pytest.approx(75_000)
    for soc in (0.0, 0.123, 0.5, 0.97):
        assert pack.soc_at(pack.energy_at(soc)) == pytest.approx(soc, abs=1e-12)


def test_power_steps_and_the_heater_change_what_reaches_the_battery():
    pack = Pack(75_000, taper_start=0.95)
    charger = Charger(
        wall_w=10_000, rated_w=11_000, efficiency=0.9, steps=((600, 0.5), (1200, 1.0)), heater_w=1_000, heat_until_s=300
    )
    first = charge(pack, charger, soc=0.2, charging_s=0, seconds=300, until_soc=1.0)
    assert first.battery_wh == pytest.approx((9_000 - 1_000) * 300 / 3600)
    assert first.wall_wh == pytest.approx(10_000 * 300 / 3600)
    rest = charge(pack, charger, soc=first.soc, charging_s=300, seconds=1500, until_soc=1.0)
    # 300 s at 9 kW, 600 s at half power, 600 s back at 9 kW.
    assert rest.battery_wh == pytest.approx((9_000 * 300 + 4_500 * 600 + 9_000 * 600) / 3600)
    assert rest.charging_s == pytest.approx(1800)


def test_a_weak_wallbox_feels_the_taper_later_than_the_cars_rating():
    pack = Pack(75_000, taper_start=0.8, taper_min_fraction=0.25)
    strong = Charger(wall_w=11_000, rated_w=11_000, efficiency=1.0)
    weak = Charger(wall_w=5_000, rated_w=11_000, efficiency=1.0)
    assert strong.powers(pack, 0.9, 0)[1] == pytest.approx(11_000 * (1 - 0.75 * 0.5))
    assert weak.powers(pack, 0.9, 0)[1] == pytest.approx(5_000)  # 6.9 kW accepted, 5 kW given
    assert weak.powers(pack, 0.99, 0)[1] < 5_000


def test_charge_stops_at_the_level_asked_for():
    pack = Pack(50_000, voltage_slope=0.1)
    done = charge(pack, Charger(10_000, 10_000, 1.0), soc=0.5, charging_s=0, seconds=7200, until_soc=0.6)
    assert done.reached and done.soc == pytest.approx(0.6)
    assert done.battery_wh == pytest.approx(pack.wh_between(0.5, 0.6))
    assert done.seconds == pytest.approx(done.battery_wh / 10_000 * 3600)


def test_a_trajectory_replays_the_charge():
    pack, charger = Pack(75_000), Charger(11_000, 11_000, 1.0, steps=((1800, 0.5),))
    points = trajectory(pack, charger, soc=0.2, charging_s=0, until_wh=8_000, step_s=60)
    assert points[0] == (0.0, 0.0)
    assert points[30] == pytest.approx((1800.0, 5500.0))
    assert points[-1][1] >= 8_000
    assert points[-1][0] == pytest.approx(1800 + 2500 / 5500 * 3600, abs=60)


# --- draws ---------------------------------------------------------------------------------------


def test_the_ideal_world_draws_the_profile_itself():
    profile = PROFILES["tesla_fleet"]
    draws = draw_car(WORLDS["ideal"], profile, random.Random(1))
    assert draws["capacity_wh"] == profile.capacity_kwh * 1000 == draws["nominal_capacity_kwh"] * 1000
    assert draws["charger_kw"] == profile.charger_kw
    assert draws["power_steps"] == [] and draws["heater_w"] == 0 and draws["soc_offset_steps"] == []
    assert draws["telemetry_refresh_s"] == profile.telemetry_refresh_s


def test_realistic_draws_stay_in_their_ranges_and_repeat_with_the_seed():
    profile = PROFILES["vw_group"]
    cars = [draw_car(REALISTIC, profile, random.Random(i), horizon_s=7200) for i in range(300)]
    assert cars[7] == draw_car(REALISTIC, profile, random.Random(7), horizon_s=7200)
    for car in cars:
        assert 0.85 * 77_000 <= car["capacity_wh"] <= 77_000
        assert 0.55 * 11 <= car["charger_kw"] <= 11
        assert 300 <= car["telemetry_refresh_s"] <= 600
        for at, factor in car["power_steps"]:
            assert 0 < at < 7200 + 3600 and (0.4 <= factor <= 0.8 or factor == 1.0)
    dropped = sum(1 for car in cars if car["power_steps"])
    assert 0.12 * 300 < dropped < 0.28 * 300
    assert any(car["heater_w"] for car in cars) and any(not car["heater_w"] for car in cars)
    assert any(car["soc_offset_steps"] for car in cars)


# --- what the API shows --------------------------------------------------------------------------


@pytest.fixture
def world_sim():
    def make(world: World, **kwargs):
        clock = SteppedClock(START)
        sim = live_reads(Simulator(clock, seed=3, world=world, **kwargs))
        slept: list[float] = []
        client = httpx.Client(transport=httpx.WSGITransport(app=make_app(sim, sleep=slept.append)), base_url="http://t")
        return sim, clock, client, slept

    return make


def _car(sim, client, profile="generic", **fields):
    v = sim.create_vehicle(profile, soc=fields.pop("soc", 0.3), limit=0.9, plugged=True, **fields)
    data = {**sim.true_state(v.id), "user_id": sim.connect([v.id])}
    return Car(client, data)


def test_the_api_reports_the_nominal_capacity_not_the_usable_one(world_sim):
    sim, _clock, client, _ = world_sim(replace(REALISTIC, capacity_error_pct=15))
    car = _car(sim, client)
    truth = sim.true_state(car.id)
    assert truth["capacity_wh"] < truth["nominal_capacity_wh"] == 75_000
    assert car.signals()["tractionbattery-nominalcapacity"]["body"]["capacity"] == 75.0


def test_start_and_stop_take_their_own_latency(world_sim):
    world = replace(WORLDS["ideal"], separate_latencies=True, start_latency_s=(100, 100), stop_latency_s=(5, 5))
    sim, clock, client, _ = world_sim(world)
    car = _car(sim, client)
    car.start()
    clock.advance(99)
    assert not sim.true_state(car.id)["charging"]
    clock.advance(2)
    assert sim.true_state(car.id)["charging"]
    car.stop()
    clock.advance(6)
    truth = sim.true_state(car.id)
    assert not truth["charging"] and truth["latencies"] == {"START": [100.0], "STOP": [5.0]}


def test_a_stepped_clock_makes_one_actor_wait_for_its_own_answers():
    clock = SteppedClock(START)
    with clock.actor():
        clock.hold(10)  # what the app does with an answer's delay (`make_app(sleep=clock.hold)`)
        clock.hold(10)
        assert (clock.now() - START).total_seconds() == 20
    assert clock.now() == START  # the others did not wait
    with clock.actor(ahead_s=5):
        assert (clock.now() - START).total_seconds() == 5


def test_the_vehicle_throttle_is_on_in_the_realistic_world(world_sim):
    sim, _clock, client, _ = world_sim(REALISTIC)
    car = _car(sim, client)
    codes = [car.read().status_code for _ in range(7)]
    assert codes == [200] * 6 + [429]
    response = car.read()
    assert int(response.headers["Retry-After"]) == 20  # one token refills in 60/3 s


def test_noisy_levels_jitter_near_a_boundary_only():
    assert report_level(0.4349, 0.01, "floor") == 0.43
    assert report_level(0.4349, 0.01, "round") == 0.43
    assert report_level(0.4351, 0.01, "round") == 0.44
    # 0.4351 is 0.01 step above the rounding boundary 0.435: either side, by the draw.
    assert {report_level(0.4351, 0.01, "noisy", jitter_band=0.15, u=u) for u in (0.1, 0.9)} == {0.43, 0.44}
    assert {report_level(0.4400, 0.01, "noisy", jitter_band=0.15, u=u) for u in (0.1, 0.9)} == {0.44}
    assert report_level(0.999, 0.01, "noisy", jitter_band=0.15, u=0.1) == 1.0


def test_a_recalibration_moves_the_reported_level_and_where_the_car_stops(world_sim):
    sim, clock, client, _ = world_sim(replace(WORLDS["ideal"], soc_rounding="floor"), command_latency_s=(0, 0))
    car = _car(sim, client, soc=0.5)
    sim.vehicles[car.id].soc_offset_steps = [[600.0, 1.0]]  # a draw of the world, set here by hand
    sim.set_vehicle(car.id, limit=0.6)
    car.start()
    clock.advance(599)
    before = car.level()
    clock.advance(2)
    after = car.level()
    assert round(after - before, 2) == 0.01
    clock.advance(3 * 3600)
    truth = sim.true_state(car.id)
    assert truth["bms_soc"] == pytest.approx(0.6) and truth["soc"] == pytest.approx(0.59)
    assert truth["state"] == "FULLY_CHARGED"


def test_snapshot_intervals_vary_in_a_world_with_refresh_jitter(world_sim):
    sim, clock, client, _ = world_sim(replace(WORLDS["ideal"], refresh_jitter=0.25), command_latency_s=(0, 0))
    car = _car(sim, client, telemetry_refresh_s=400)
    car.start()
    ages = set()
    for _ in range(40):
        clock.advance(50)
        ages.add(car.signals()[LIMITS]["meta"]["oemUpdatedAt"])
    stamps = [ms / 1000 for ms in sorted(ages)]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(300 - 1e-3 <= g <= 500 + 1e-3 for g in gaps)
    assert len({round(g) for g in gaps}) > 1


def test_a_power_drop_shows_in_the_reported_wattage(world_sim):
    sim, clock, client, _ = world_sim(WORLDS["ideal"], command_latency_s=(0, 0))
    car = _car(sim, client)
    sim.vehicles[car.id].power_steps = [[1200.0, 0.5]]
    car.start()
    clock.advance(600)
    assert car.value(WATTAGE) == pytest.approx(11_000)
    clock.advance(1200)
    assert car.value(WATTAGE) == pytest.approx(5_500)
    truth = sim.true_state(car.id)
    assert truth["delivered_battery_wh"] == pytest.approx((11_000 * 1200 + 5_500 * 600) * 0.92 / 3600)


def test_a_realistic_car_survives_a_state_round_trip(world_sim):
    sim, clock, _client, _ = world_sim(REALISTIC)
    v = sim.create_vehicle("bmw_mini", soc=0.3, limit=0.9, plugged=True, charge_horizon_s=3600)
    v.charging = True
    v.power_steps = [[900.0, 0.5]]
    clock.advance(600)
    again = Simulator(clock)
    again.load_state(sim.to_state())
    assert again.world == sim.world
    clock.advance(1800)
    mine, theirs = sim.true_state(v.id), again.true_state(v.id)
    assert theirs["soc"] == pytest.approx(mine["soc"]) and theirs["physics"] == mine["physics"]


def test_the_admin_api_switches_the_world(client, sim):
    assert client.post("/_sim/config", json={"world": "realistic"}).status_code == 200
    assert sim.world == REALISTIC and sim.vehicle_rate_limit == REALISTIC.vehicle_throttle
    assert client.post("/_sim/config", json={"world": "harsh"}).status_code == 400


def test_a_coarse_step_shows_the_last_boundary_passed_whatever_the_rounding():
    # Hyundai/Kia report at 10 % events: 35 % shows 30 %, not a rounded 40 %.
    assert report_level(0.35, 0.1, "round") == 0.3
    assert report_level(0.3996, 0.1, "round") == 0.4  # rounds to 40 % at whole percent first
    assert report_level(0.3996, 0.1, "floor") == 0.3


def test_a_real_clock_changes_speed_without_a_jump():
    from vehicle_sim.clock import RealClock

    clock = RealClock(speed=300)
    before = clock.now()
    clock.set_speed(1)
    after = clock.now()
    # Continuous: at most a moment of simulated time passes across the change (not minutes of it).
    assert timedelta(0) <= after - before < timedelta(seconds=30)
    assert clock.speed == 1
    with pytest.raises(ValueError):
        clock.set_speed(0)
