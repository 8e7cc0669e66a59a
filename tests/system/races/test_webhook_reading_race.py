"""A webhook reading that arrives while one of the session's steps is running (the step holds the
lease and is reading the car) is neither lost nor overwritten by the step's commit: the step
commits "act now" and the next step has the reading."""

from datetime import timedelta

from django.test import Client

from sessions import clock, services
from sessions.controller import machine, readings, runtime
from sessions.models import SessionStatus
from sessions.models.charging import MeterReading
from tests.sessions.vehicles.test_webhooks_v4 import post, state_event

S = SessionStatus


def test_a_delivery_during_a_step_is_kept_and_acted_on_at_once(sim, api, connect, credit, drive, driver):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=10_000)
    session = drive(session, until=lambda s: s.status == S.CHARGING)
    sim.clock.set(session.next_action_at)
    [(session_id, token)] = runtime.sessions_claim_due()
    delivered = []
    read = api.get_signals

    def read_while_a_webhook_arrives(user_id, vehicle_id):
        # The step is between its session load and its compare-and-set commit.
        event = state_event(car, "e-race", at=clock.now() - timedelta(seconds=1), soc=40, charging=False)
        delivered.append((post(Client(), event).json(), clock.now()))
        return read(user_id, vehicle_id)

    api.get_signals = read_while_a_webhook_arrives
    try:
        machine.session_step(session_id=session_id, lease_token=token)
    finally:
        api.get_signals = read
    [(answer, at)] = delivered
    assert answer == {"status": "stored"}
    session.refresh_from_db()
    assert session.webhook_readings == 1
    assert session.next_action_at <= at  # the step's own plan was minutes later
    # The row's copy of the readings misses the one stored meanwhile: the next step rebuilds it.
    assert session.readings_cached == MeterReading.objects.filter(session=session).count() - 1
    session.readings_stored = MeterReading.objects.filter(session=session).count()
    assert any(r.charge_state == "NOT_CHARGING" for r in readings._reading_rows(session))
