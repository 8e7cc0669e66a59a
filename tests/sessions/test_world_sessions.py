"""Sessions against cars of the realistic world (issue 16 §2): what the controller does with them."""

import itertools
from dataclasses import replace

import pytest

from sessions import services
from sessions.controller import readings
from sessions.models import SessionStatus, VehicleCommand
from sessions.models.charging import CommandKind
from sessions.vehicles import makes
from tests.plugins.cars import delivered_wh
from vehicle_sim.world import WORLDS

S = SessionStatus


def start(driver, car, energy_wh):
    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


@pytest.fixture
def soc_only(sim, connect):
    """A car that reports only its level (1 % steps, data every 60 s) with an 11-kW nominal."""

    def _car(driver, **fields):
        car = connect(driver, profile="vw_group", telemetry_refresh_s=60, **fields)
        return car

    return _car


def test_an_soc_only_session_is_billed_what_its_levels_prove_and_the_rest_is_recorded(
    sim, soc_only, credit, drive, driver, ledger_clean
):
    car = soc_only(driver, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = drive(start(driver, car, energy_wh=15_000))
    assert session.status == S.COMPLETED, session.reason
    true = delivered_wh(sim, car, before)
    # Proven = the estimate's low bound: a level step and a pack as small as 85 % of its nominal.
    assert session.billed_wh == min(session.delivered_low_wh, 15_000) < session.delivered_wh
    assert session.billed_wh <= true
    assert session.unbilled_wh == min(session.delivered_wh, 15_000) - session.billed_wh > 0
    ledger_clean()


def test_a_make_with_a_daily_data_quota_gets_a_share_of_it_per_session(connect, credit, driver):
    car = connect(driver, profile="bmw_mini", soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = start(driver, car, energy_wh=10_000)
    assert makes.traits_for("BMW").daily_data_quota == 50
    assert session.call_budget == 25


def test_failed_reads_while_charging_back_off(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=20_000), until=lambda s: s.status == S.CHARGING)
    sim.set_vehicle(car.sim_id, faults={"upstream_error": "RATE_LIMIT"})
    first = session.next_action_at
    session = drive(session, until=lambda s: s.attempts >= 5)
    reads = list(
        VehicleCommand.objects.filter(session=session, kind=CommandKind.READ, ok=False, sent_at__gte=first)
        .order_by("id")
        .values_list("sent_at", flat=True)
    )
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(reads)]
    assert len(gaps) >= 3
    # 15 s doubling per failure in a row, jittered between half and all of it (or the policy's
    # next planned read, if later): by the fifth failure the wait is at least a minute.
    assert session.attempts >= 5 and gaps[-1] >= 60
    sim.set_vehicle(car.sim_id, faults={"upstream_error": None})
    session = drive(session)
    assert session.status == S.COMPLETED


def test_start_and_stop_latencies_are_learned_per_make(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=8_000))
    assert session.status == S.COMPLETED, session.reason
    learned = dict(
        VehicleCommand.objects.filter(session=session, effect_latency_ms__isnull=False).values_list(
            "kind", "effect_latency_max_ms"
        )
    )
    # The API times both commands itself (a 200 SUCCESS's completedAt − executedAt): exact, not
    # bounded by the snapshots either side of the charge-state flip.
    assert learned[CommandKind.STOP] is None
    assert learned[CommandKind.START] is None
    commands = VehicleCommand.objects.filter(session=session, kind__in=(CommandKind.START, CommandKind.STOP))
    assert all(c.effect_latency_ms > 0 for c in commands)
    readings._latency_models_cached.cache_clear()
    start_model = readings.latency_model("TESLA", CommandKind.START)
    stop_model = readings.latency_model("TESLA", CommandKind.STOP)
    assert start_model.samples and not start_model.intervals
    assert stop_model.samples and not stop_model.intervals
    assert (start_model.prior_min_s, start_model.prior_max_s) == makes.traits_for("TESLA").command_latency_s


def test_a_level_only_car_refreshed_every_few_minutes_cannot_time_its_commands(sim, connect, credit, drive, driver):
    # VW data is 300–600 s apart (docs/reference/makes.md): a flip between two snapshots says only "under 5 min".
    car = connect(driver, profile="vw_group", soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=8_000))
    assert session.status == S.COMPLETED, session.reason
    readings._latency_models_cached.cache_clear()
    assert not readings.latency_model("VOLKSWAGEN", CommandKind.START).intervals


def test_a_realistic_car_whose_power_drops_still_lands_on_the_purchase(sim, connect, credit, drive, driver):
    sim.world = replace(WORLDS["ideal"], name="drops")
    car = connect(driver, soc=0.3, limit=0.9)
    # The power halves 40 minutes into the charge: a STOP planned on the first hour's power
    # would land ~1.8 kWh late; reads near the end see the drop.
    sim.vehicles[car.sim_id].power_steps = [[2400.0, 0.5]]
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = drive(start(driver, car, energy_wh=15_000))
    assert session.status == S.COMPLETED, session.reason
    assert abs(delivered_wh(sim, car, before) - 15_000) <= 150
