"""The driver's own charge limit (issue 18 §5): whenever the product changed the car's limit, the
driver's limit goes back however the session ends, and is retried until the car takes it; the
driver's limit is never recorded from a limit the product set."""

import pytest

from sessions import services, tasks
from sessions.controller import limits
from sessions.models import SessionStatus
from sessions.models.charging import CommandKind

S = SessionStatus
DRIVER_LIMIT = 0.8


def start(driver, car, energy_wh=10_000):
    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


def car_limit(sim, car) -> float:
    sim.clock.advance(180)  # a limit, like any command, takes effect after the command's latency
    return sim.true_state(car.sim_id)["limit"]


def sweep_until_quiet(sim, session, *, hours=6):
    """Run the every-minute sweep in virtual time until the session owes nothing."""
    for _ in range(hours * 60):
        session.refresh_from_db()
        if session.limit_restore_due_at is None:
            return session
        sim.clock.set(max(sim.clock.now(), session.limit_restore_due_at))
        tasks.restore_charge_limits()
    raise AssertionError("the driver's limit was still owed")


def test_a_driver_who_stops_while_the_car_is_starting_gets_their_limit_back(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.STARTING)
    assert session.backstop_limit_bp is not None and session.backstop_limit_bp < 8000
    services.session_request_stop(session_id=session.pk)
    session = drive(session)
    assert session.charging_at is None and session.status in (S.INTERRUPTED, S.COMPLETED)
    assert session.limit_restored and session.limit_restore_due_at is None
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_a_start_refused_with_charge_fault_gives_the_limit_back(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    sim.set_vehicle(car.sim_id, faults={"charge_fault": True})
    session = drive(start(driver, car))
    assert session.status == S.FAILED and session.reason == "charge_fault"
    assert session.backstop_limit_bp is not None and session.limit_restored
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_a_restore_that_keeps_failing_is_retried_by_the_sweep_until_it_sticks(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.STARTING)
    # The car's cloud now refuses every limit for a while (six answers), then recovers.
    refusals = [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge/limit"}] * 6
    sim.set_vehicle(car.sim_id, faults={"inject": refusals})
    services.session_request_stop(session_id=session.pk)
    session = drive(session)
    assert session.status in (S.INTERRUPTED, S.COMPLETED) and not session.limit_restored
    assert session.limit_restore_due_at is not None
    assert car_limit(sim, car) < DRIVER_LIMIT
    session = sweep_until_quiet(sim, session)
    assert session.limit_restored
    restores = list(session.commands.filter(kind=CommandKind.SET_LIMIT, detail="restore").values_list("ok", flat=True))
    assert restores == [False] * 6 + [True]
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_a_session_closed_by_the_operator_gets_the_limit_back_from_the_sweep(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.CHARGING)
    assert services.session_close_stuck(session_id=session.pk)
    session.refresh_from_db()
    assert session.limit_restore_due_at is not None
    assert sweep_until_quiet(sim, session).limit_restored
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_the_next_session_records_the_drivers_limit_not_the_backstop_left_on_the_car(
    sim, connect, credit, drive, driver
):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    first = drive(start(driver, car), until=lambda s: s.status == S.STARTING)
    # Every restore of the first session fails: the car keeps the backstop.
    refusals = [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge/limit"}] * 3
    sim.set_vehicle(car.sim_id, faults={"inject": refusals})
    services.session_request_stop(session_id=first.pk)
    first = drive(first)
    assert not first.limit_restored and car_limit(sim, car) == pytest.approx(first.backstop_limit_bp / 10_000)
    second = drive(start(driver, car, energy_wh=5_000))
    assert second.status == S.COMPLETED, second.reason
    assert second.driver_limit_bp == 8000  # not the first session's backstop
    assert second.limit_restored
    first.refresh_from_db()
    assert first.limit_restore_due_at is None  # handed over to the second session
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_a_restored_limit_the_car_data_does_not_show_yet_is_not_taken_for_the_drivers(
    sim, connect, credit, drive, driver
):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    first = drive(start(driver, car, energy_wh=3_000))
    assert first.limit_restored
    # The car (or its stale data) still shows the backstop when the next session reads it.
    sim.set_vehicle(car.sim_id, limit=first.backstop_limit_bp / 10_000)
    second = drive(start(driver, car, energy_wh=3_000))
    assert second.driver_limit_bp == 8000
    assert car_limit(sim, car) == pytest.approx(DRIVER_LIMIT)


def test_a_limit_the_driver_changed_after_the_restore_is_theirs(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    first = drive(start(driver, car, energy_wh=3_000))
    assert first.limit_restored
    sim.set_vehicle(car.sim_id, limit=0.9)
    second = drive(start(driver, car, energy_wh=3_000))
    assert second.driver_limit_bp == 9000
    assert limits.product_limits(first) and 9000 not in limits.product_limits(first)


def test_a_step_that_has_not_read_the_car_reads_its_signals_for_the_drivers_limit(sim, connect, credit, driver):
    # A step whose read a webhook answered (no call) knows no limit: v3 shows it in the signals.
    from sessions.controller.machine import _session_for_step
    from sessions.controller.step import _Step

    car = connect(driver, soc=0.3, limit=DRIVER_LIMIT)
    credit(driver, energy_wh=30_000)
    step = _Step(_session_for_step(start(driver, car).pk))
    assert limits.driver_limit(step) == (8000, {"driver_limit_bp": 8000})
    assert [(r.kind, r.detail) for r in step.records] == [(CommandKind.READ, "signals")]
    # Once the step has read the car, the read's own limit is used: no second call.
    step.reported_limit_bp = 7000
    assert limits.driver_limit(step) == (7000, {"driver_limit_bp": 7000})
    assert len(step.records) == 1
