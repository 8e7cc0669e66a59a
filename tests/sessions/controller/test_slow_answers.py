"""A step whose car answers slowly plans its next action from when the answers came in, not from
when the step started: a step that waited minutes for the car must not plan its next action in
the past (due at once, a burst of immediately due steps)."""

from datetime import timedelta

import httpx
import pytest

from sessions import services
from sessions.controller import runtime
from sessions.models import ChargingSession, SessionStatus
from sessions.models.charging import CommandKind
from sessions.vehicles import services as vehicles
from tests.plugins.cars import simulator_client, simulator_transport

S = SessionStatus
ANSWER_S = 120.0


class SlowAnswers(httpx.BaseTransport):
    """The simulator, answering each request `ANSWER_S` virtual seconds after it was sent."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.inner = simulator_transport(sim)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.sim.clock.advance(ANSWER_S)
        return response


@pytest.mark.django_db
def test_the_next_action_is_planned_from_the_last_answer_not_from_the_steps_start(
    sim, connect, credit, django_user_model
):
    driver = django_user_model.objects.create_user("driver")
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=20_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000)
    vehicles.use_client(simulator_client(SlowAnswers(sim), clock=sim.clock.now))
    started = sim.clock.now()

    runtime.tick()  # the START step: reads, the backstop limit, START — each answered 2 min later

    session.refresh_from_db()
    assert session.status == S.STARTING
    commands = list(session.commands.order_by("id"))
    assert len(commands) >= 3
    committed = sim.clock.now()
    assert committed >= started + timedelta(seconds=ANSWER_S * len(commands))
    assert any(c.kind == CommandKind.START for c in commands)
    # The first read after START waits for the START to act, counted from the last answer (the
    # START's), not from the step's start minutes earlier.
    assert session.next_action_at > committed
    assert session.next_action_at - committed >= timedelta(seconds=60)
    assert ChargingSession.objects.filter(pk=session.pk, next_action_at__lte=committed).count() == 0
