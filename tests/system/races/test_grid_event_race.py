"""A grid event declared while one of its sessions' steps is running (the step holds the lease
and is talking to the car) must be acted on at once, not at the step's own planned next action."""

from datetime import timedelta

from sessions import clock, services
from sessions.controller import machine, runtime
from sessions.grid import services as grid
from sessions.models import SessionStatus, SmartPlan
from sessions.models.charging import CommandKind

S = SessionStatus
M = timedelta(minutes=1)


def test_an_event_declared_during_a_step_pauses_the_session_at_the_next_tick(sim, api, drive, enrolled_charging):
    _, session = enrolled_charging
    sim.clock.set(session.next_action_at)
    [(session_id, token)] = runtime.sessions_claim_due()
    declared = []
    read = api.get_signals

    def read_while_the_grid_declares(user_id, vehicle_id):
        # The step is between its session load and its compare-and-set commit.
        now = clock.now()
        event, _ = grid.grid_event_declare(
            source="operator", external_id="ev-race", starts_at=now, ends_at=now + 30 * M, region="DE"
        )
        declared.append((event, now))
        return read(user_id, vehicle_id)

    api.get_signals = read_while_the_grid_declares
    try:
        machine.session_step(session_id=session_id, lease_token=token)
    finally:
        api.get_signals = read
    [(event, declared_at)] = declared
    session.refresh_from_db()
    assert session.status == S.CHARGING and event.participations.filter(session=session).exists()
    # Due at once (the step's own plan was the next read, minutes later), and re-planned.
    assert session.next_action_at <= declared_at
    assert SmartPlan.objects.get(session=session).planned_at is None

    runtime.tick()  # the next tick, at the same instant: the session pauses for the event

    plan = SmartPlan.objects.get(session=session)
    session.refresh_from_db()
    assert plan.paused and session.reason == "paused_grid"
    pause = session.commands.get(kind=CommandKind.STOP, detail="pause")
    assert pause.sent_at < declared_at + M


def test_an_event_joined_while_a_step_re_plans_is_not_lost_in_its_plan(
    sim, api, connect, credit, drive, driver, prices, monkeypatch
):
    prices([30] * 12)  # flat: the plan charges at once, one window to the purchase
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=40_000)
    session = drive(
        services.smart_session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000, deadline=None),
        until=lambda s: s.status == S.CHARGING,
    )
    # The next step re-plans (as after a drift); the event is declared just after it planned.
    SmartPlan.objects.filter(session=session).update(planned_at=None)
    sim.clock.set(session.next_action_at)
    [(session_id, token)] = runtime.sessions_claim_due()
    declared = []
    plan_session = grid.plan_session

    def plan_then_the_grid_declares(*args, **kwargs):
        planned = plan_session(*args, **kwargs)
        if not declared:
            now = clock.now()
            grid.grid_event_declare(
                source="operator", external_id="ev-race-2", starts_at=now, ends_at=now + 30 * M, region="DE"
            )
            declared.append(now)
        return planned

    monkeypatch.setattr(grid, "plan_session", plan_then_the_grid_declares)
    machine.session_step(session_id=session_id, lease_token=token)
    monkeypatch.setattr(grid, "plan_session", plan_session)
    [declared_at] = declared
    session.refresh_from_db()
    # The step's plan (made without the event) is not taken as current: the next step re-plans.
    assert SmartPlan.objects.get(session=session).planned_at is None
    assert session.next_action_at <= declared_at

    runtime.tick()

    plan = SmartPlan.objects.get(session=session)
    session.refresh_from_db()
    assert plan.paused and session.reason == "paused_grid"
