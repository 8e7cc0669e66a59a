"""A STOP that meets an outage (issue 18 §4): the controller keeps sending it whenever the car is
seen charging past the purchase and the API answers again, for as long as the session is open.
Overshoot measured in the simulator under a 150-s outage at the STOP and under 50 % random
failures, on several seeds (the numbers are printed with `-s`)."""

from datetime import timedelta

import pytest

from sessions import services
from sessions.controller import runtime
from sessions.models import SessionStatus
from sessions.models.charging import TERMINAL_STATUSES, CommandKind
from tests.plugins.cars import START
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

S = SessionStatus
PURCHASE_WH = 300
OUTAGE = timedelta(seconds=150)
CHARGER_W = 11_000


@pytest.fixture(params=[7, 11, 13, 17])
def sim(request):
    return Simulator(VirtualClock(START), seed=request.param)


def run(sim, session, *, before_tick=lambda s: None, max_steps=2_000, max_hours=12):
    """The controller loop in virtual time, with a hook before each tick (to start and end faults)."""
    deadline = sim.clock.now() + timedelta(hours=max_hours)
    for _ in range(max_steps):
        session.refresh_from_db()
        if session.status in TERMINAL_STATUSES:
            return session
        if session.next_action_at > sim.clock.now():
            sim.clock.set(session.next_action_at)
        assert sim.clock.now() < deadline, "session did not end in virtual time"
        before_tick(session)
        runtime.tick()
    raise AssertionError(f"session still {session.status}")


def overshoot_wh(sim, car, before) -> int:
    true = sim.true_state(car.sim_id)["delivered_battery_wh"] - before["delivered_battery_wh"]
    return round(true) - PURCHASE_WH


def test_a_150_s_outage_at_the_stop_costs_the_outage_not_the_rest_of_the_charge(
    sim, connect, credit, driver, ledger_clean
):
    car = connect(driver, soc=0.3, limit=1.0)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=PURCHASE_WH)
    window = {}

    def outage(s):
        now = sim.clock.now()
        if not window and s.status == S.CHARGING and s.stop_first_sent_at is None:
            # The vehicle API answers 502 for 150 s from the moment the car is seen charging:
            # 300 Wh take ~100 s at 11 kW, so the STOP falls due inside the outage.
            window["start"], window["end"] = now, now + OUTAGE
            sim.set_vehicle(car.sim_id, faults={"upstream_error": "UNKNOWN_ISSUE"})
        elif window and now >= window["end"]:
            sim.set_vehicle(car.sim_id, faults={"upstream_error": None})

    session = run(sim, session, before_tick=outage)
    assert window, "the STOP went out before the outage could start (choose another seed)"
    over = overshoot_wh(sim, car, before)
    print(f"seed {sim.seed}: 150-s outage at the STOP, overshoot {over} Wh for {PURCHASE_WH} Wh")
    assert sim.true_state(car.sim_id)["charging"] is False
    assert session.status == S.COMPLETED and session.billed_wh <= PURCHASE_WH
    stops = list(session.commands.filter(kind=CommandKind.STOP).values_list("sent_at", "ok"))
    # The STOP met the outage, and got through once the API answered again, within two minutes.
    assert any(not ok and window["start"] <= at < window["end"] for at, ok in stops), stops
    first_ok = next(at for at, ok in stops if ok)
    assert window["end"] <= first_ok <= window["end"] + timedelta(seconds=120), stops
    # The charge the outage cost: its 150 s, the wait for the next check and the car's STOP
    # latency (≤ 45 s) at 11 kW; never the rest of the battery (the defect took 1.5 kWh more).
    assert over <= CHARGER_W * (150 + 120 + 45) / 3600, over
    ledger_clean()


def test_half_the_calls_failing_at_random_still_stops_the_car_near_the_purchase(
    sim, connect, credit, driver, ledger_clean
):
    car = connect(driver, soc=0.3, limit=1.0)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    sim.set_vehicle(car.sim_id, faults={"failure_rate": 0.5})
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=PURCHASE_WH)
    session = run(sim, session)
    over = overshoot_wh(sim, car, before)
    print(f"seed {sim.seed}: 50 % random failures, overshoot {over} Wh for {PURCHASE_WH} Wh ({session.reason})")
    assert sim.true_state(car.sim_id)["charging"] is False
    assert session.billed_wh <= PURCHASE_WH
    # The defect let the car take 5 kWh for 300 Wh: every failed STOP is tried again within
    # two minutes, and each one that gets through stops the car within its latency.
    assert over <= 1_000, over
    ledger_clean()
