"""What the v3 signals and commands change in a session: the source a car is metered by comes
from what its signals report, capabilities are facts learned per vehicle, limits are whole
percent, and an empty signal store is waited out."""

import pytest

from benchmarks.cars import vehicle_connect_simulated
from sessions import services
from sessions.controller import metering
from sessions.controller.step import limit_percent
from sessions.models import MeterReading, SessionStatus, Vehicle, VehicleCommand
from sessions.models.charging import CommandKind
from tests.plugins.cars import delivered_wh
from vehicle_sim import profiles, v3

S = SessionStatus


def start(driver, car, energy_wh=10_000):
    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


@pytest.mark.parametrize(("limit_bp", "percent"), [(5000, 50), (5001, 51), (5899, 59), (5900, 59), (10_000, 100)])
def test_a_limit_is_sent_in_whole_percent_rounded_up(limit_bp, percent):
    # Up: a backstop computed in basis points never stops the car below the level it was made for.
    assert limit_percent(limit_bp) == percent


def test_limits_below_fifty_or_above_a_hundred_percent_are_clamped_to_what_the_api_takes():
    assert (limit_percent(3000), limit_percent(12_000)) == (50, 100)


def test_a_car_reporting_power_but_no_counter_is_metered_by_power_and_level(sim, connect, credit, drive, driver):
    car = connect(driver, profile="bmw_mini", soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)

    session = drive(start(driver, car, energy_wh=10_000))

    assert session.status == S.COMPLETED, session.reason
    assert session.energy_step_wh == 0  # BMW has no EnergyAdded (docs/reference/vehicle-api-v3.md §3.2)
    sources = set(MeterReading.objects.filter(session=session).values_list("source", flat=True))
    assert sources == {metering.SOURCE_POWER}
    assert all(r.power_w is not None for r in MeterReading.objects.filter(session=session))
    # The receipt says what the energy was measured from.
    assert session.data_source == metering.SOURCE_POWER
    assert abs(delivered_wh(sim, car, before) - 10_000) < 2_500


def test_a_counter_the_request_did_not_know_of_is_learned_at_the_first_read(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=0.9)
    Vehicle.objects.filter(pk=car.vehicle.pk).update(signal_capabilities={})  # a connect that read no signals
    credit(driver, energy_wh=40_000)
    session = start(driver, car, energy_wh=8_000)
    assert session.energy_step_wh == 0

    session = drive(session)

    assert session.status == S.COMPLETED, session.reason
    assert session.energy_step_wh > 0 and session.data_source == metering.SOURCE_ENERGY_ADDED
    vehicle = Vehicle.objects.get(pk=car.vehicle.pk)
    assert vehicle.signal_capabilities[profiles.ENERGY_ADDED] == "capable"


def test_a_car_that_says_it_has_no_counter_is_metered_without_one(sim, api, credit, drive, driver):
    parked = sim.create_vehicle("generic", plugged=True, soc=0.3, limit=0.9)
    v3.platform(sim).set_traits(parked.id, {"signals": sorted(profiles.CORE)})  # a Tesla-made car without it
    vehicle = vehicle_connect_simulated(user=driver, sim=sim, sim_vehicle_id=parked.id)
    assert vehicle.signal_capabilities[profiles.ENERGY_ADDED] == "not_capable"
    credit(driver, energy_wh=40_000)
    session = drive(services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=8_000))
    assert session.status == S.COMPLETED, session.reason
    assert session.energy_step_wh == 0 and session.data_source == metering.SOURCE_SOC


def test_a_limit_the_car_refuses_is_not_asked_for_again(sim, connect, credit, drive, driver):
    # Mercedes: the limit is readable but not settable (docs/reference/makes.md; the profile's own).
    car = connect(driver, profile="mercedes_eq_eu", soc=0.6, limit=0.9)
    credit(driver, energy_wh=40_000)
    first = drive(start(driver, car, energy_wh=5_000))
    assert first.status == S.COMPLETED, first.reason
    refused = VehicleCommand.objects.filter(session=first, kind=CommandKind.SET_LIMIT)
    assert [(c.ok, c.error_type) for c in refused] == [(False, "COMPATIBILITY")]
    assert Vehicle.objects.get(pk=car.vehicle.pk).charge_limit_settable is False

    second = drive(start(driver, car, energy_wh=3_000))
    assert second.status == S.COMPLETED, second.reason
    assert not VehicleCommand.objects.filter(session=second, kind=CommandKind.SET_LIMIT).exists()


def test_an_empty_signal_store_is_waited_out_not_acted_on(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    platform = v3.platform(sim)
    platform.config.update({"unsubscribed_signals": "empty"})  # not subscribed: `data: []`
    session = drive(start(driver, car, energy_wh=5_000), until=lambda s: s.attempts >= 2)
    assert session.status == S.REQUESTED and session.reason == "vehicle_error"
    assert not VehicleCommand.objects.filter(session=session, kind=CommandKind.START).exists()

    platform.config.update({"unsubscribed_signals": "live"})
    session = drive(session)
    assert session.status == S.COMPLETED, session.reason
