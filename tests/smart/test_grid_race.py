"""A grid event declared while one of its sessions' steps is running (the step holds the lease
and is talking to the car) must be acted on at once, not at the step's own planned next action."""

from datetime import timedelta

from sessions import clock, grid, runtime, services
from sessions.models import SessionStatus, SmartPlan
from sessions.models.charging import CommandKind

S = SessionStatus
M = timedelta(minutes=1)


def test_an_event_declared_during_a_step_pauses_the_session_at_the_next_tick(sim, api, connect, credit, drive, driver):
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=40_000)
    session = drive(
        services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=20_000),
        until=lambda s: s.status == S.CHARGING,
    )
    sim.clock.set(session.next_action_at)
    [(session_id, token)] = runtime.sessions_claim_due()
    declared = []
    read = api.tesla_charge

    def read_while_the_grid_declares(token, vehicle_id):
        # The step is between its session load and its compare-and-set commit.
        now = clock.now()
        event, _ = grid.grid_event_declare(
            source="operator", external_id="ev-race", starts_at=now, ends_at=now + 30 * M, region="DE"
        )
        declared.append((event, now))
        return read(token, vehicle_id)

    api.tesla_charge = read_while_the_grid_declares
    try:
        services.session_step(session_id=session_id, lease_token=token)
    finally:
        api.tesla_charge = read
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
