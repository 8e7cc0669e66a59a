"""A step that waited in the queue past its lease must not talk to the car (issue 9 §3)."""

import pytest

from sessions import services
from sessions.controller import machine, runtime
from sessions.models import SessionStatus

pytestmark = [pytest.mark.faults, pytest.mark.django_db]


def test_a_step_dequeued_after_its_lease_expired_does_nothing(sim, api, connect, credit, driver):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    [(session_id, stale)] = runtime.sessions_claim_due()

    sim.clock.advance(runtime.LEASE.total_seconds() + 1)  # the task sat in a backlog
    machine.session_step(session_id=session_id, lease_token=stale)

    session.refresh_from_db()
    assert session.commands.count() == 0 and session.status == SessionStatus.REQUESTED
    # The controller hands it out again; the fresh lease runs the step.
    [(again, fresh)] = runtime.sessions_claim_due()
    assert (again, fresh != stale) == (session_id, True)
    machine.session_step(session_id=again, lease_token=fresh)
    session.refresh_from_db()
    assert session.status == SessionStatus.STARTING and session.commands.count() >= 2
    # The stale task, delivered once more, still changes nothing.
    version = session.version
    machine.session_step(session_id=session_id, lease_token=stale)
    session.refresh_from_db()
    assert session.version == version
