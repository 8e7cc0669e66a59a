"""The in-flight worker (issue 17): many steps' vehicle API calls in flight at once from one
thread, no transaction held while a call waits, rate limits kept across workers.

Functional, not timed: the vehicle API's answers are held by a gate the test opens, so "in
flight at once" is a count the test reads, not a duration it measures.
"""

import asyncio
import sys
import threading
import time
import uuid
from datetime import timedelta

import greenlet
import httpx
import pytest
from django.db import connection, transaction

from sessions import clock, services
from sessions.controller import inflight, ratelimit, runtime
from sessions.models import ChargingSession, SessionStatus
from sessions.vehicles import services as vehicles
from tests.plugins.cars import simulator_client
from vehicle_sim.async_transport import AsyncSimulatorTransport

S = SessionStatus
pytestmark = pytest.mark.django_db(transaction=True)


class Gate(httpx.AsyncBaseTransport):
    """Holds every request until opened; notes whether the worker's connection was inside a
    transaction when the request left."""

    def __init__(self, inner: httpx.AsyncBaseTransport, worker_connection) -> None:
        self.inner = inner
        self.worker_connection = worker_connection
        self.waiting = 0
        self.arrived = 0
        self.in_transaction: list[bool] = []
        self._open: asyncio.Event | None = None

    async def handle_async_request(self, request):
        self._open = self._open or asyncio.Event()
        self.arrived += 1
        self.in_transaction.append(self.worker_connection.in_atomic_block)
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        return await self.inner.handle_async_request(request)

    def open(self) -> None:
        self._open = self._open or asyncio.Event()
        self._open.set()


@pytest.fixture
def world(sim, connect, credit, django_user_model):
    """N cars with a session requested each; the controller's client goes through a bridge."""
    made = []

    def _world(n: int, *, limiter=None, gate=True):
        bridge = inflight.CallBridge(AsyncSimulatorTransport(sim), limiter=limiter)
        client = simulator_client(inflight.BridgeTransport(bridge), clock=sim.clock.now)
        transport = bridge.transport
        if gate:
            # The application token first (one IAM call, cached): what the gate holds are the
            # steps' own calls to the car.
            client.tokens.get(client.request_app_token)
            transport = bridge.transport = Gate(bridge.transport, connection)
        sessions = []
        for i in range(n):
            driver = django_user_model.objects.create_user(username=f"driver-{i}-{uuid.uuid4().hex[:6]}")
            car = connect(driver, soc=0.3)
            credit(driver, energy_wh=20_000)
            sessions.append(services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_000))
        vehicles.use_client(client)
        made.append((bridge, client))
        return bridge, transport, sessions

    with clock.use(sim.clock.now, all_threads=True):
        yield _world
    for bridge, client in made:
        client.close()
        bridge.close()
    vehicles.use_client(None)


def wait_for(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def run_until_idle(worker: inflight.InFlightWorker, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while worker.active:
        assert time.monotonic() < deadline, f"{len(worker.active)} steps still running"
        worker._resume_until(time.monotonic() + 0.2)


def test_many_steps_have_their_calls_in_flight_at_once_from_one_thread(world):
    n = 25
    bridge, gate, sessions = world(n)
    worker = inflight.InFlightWorker(max_in_flight=100)
    threads_before = threading.active_count()

    assert worker.tick() == n
    wait_for(lambda: gate.waiting == n)

    # Every step is parked on its first call: n calls in flight, no thread per call.
    assert bridge.in_flight == n and len(worker.active) == n
    assert threading.active_count() == threads_before
    # No step waits for the car inside a transaction.
    assert gate.in_transaction == [False] * n
    # The worker's connection is free: another writer can move these very rows meanwhile.
    assert not connection.in_atomic_block
    with transaction.atomic():
        assert ChargingSession.objects.select_for_update().filter(pk__in=[s.pk for s in sessions]).count() == n

    bridge.loop.call_soon_threadsafe(gate.open)
    run_until_idle(worker)

    assert worker.errors == 0
    assert gate.in_transaction == [False] * gate.arrived
    statuses = set(ChargingSession.objects.filter(pk__in=[s.pk for s in sessions]).values_list("status", flat=True))
    assert statuses == {S.STARTING}
    assert bridge.in_flight == 0 and bridge.in_flight_max == n


def test_steps_of_one_thread_that_all_need_a_new_application_token_share_one_renewal(world):
    # The first step renews the token through the bridge and parks; the others wait for that
    # renewal without blocking the hub's thread (a thread lock here deadlocked the hub).
    n = 12
    *_, sessions = world(n, gate=False)
    client = vehicles.get_client()
    worker = inflight.InFlightWorker(max_in_flight=100)

    assert worker.tick() == n
    run_until_idle(worker)

    assert worker.errors == 0
    statuses = set(ChargingSession.objects.filter(pk__in=[s.pk for s in sessions]).values_list("status", flat=True))
    assert statuses == {S.STARTING}
    assert client.tokens.renewals == 1


def test_the_worker_claims_no_more_than_its_capacity(world):
    bridge, gate, _sessions = world(6)
    worker = inflight.InFlightWorker(max_in_flight=4)

    assert worker.tick() == 4
    wait_for(lambda: gate.waiting == 4)
    assert worker.tick() == 0  # full: the other two stay unclaimed for another worker
    assert ChargingSession.objects.filter(lease_token__isnull=True).count() == 2

    bridge.loop.call_soon_threadsafe(gate.open)
    run_until_idle(worker)
    assert worker.tick() == 2


def test_a_running_step_keeps_its_lease_however_long_the_car_takes_to_answer(world, sim):
    bridge, gate, (session,) = world(1)
    worker = inflight.InFlightWorker(max_in_flight=10)
    assert worker.tick() == 1
    wait_for(lambda: gate.waiting == 1)

    # The car answers later than a lease lasts (three calls running into the client's 310-s
    # timeout would): while the worker lives, its ticks renew the lease and no one takes it over.
    for _ in range(3):
        sim.clock.advance(runtime.LEASE.total_seconds() * 0.6)
        assert worker.tick() == 0
        assert runtime.sessions_claim_due() == []
    assert worker.renewed == 3

    bridge.loop.call_soon_threadsafe(gate.open)
    run_until_idle(worker)
    session.refresh_from_db()
    assert worker.errors == 0
    assert session.status == S.STARTING  # the step's result was committed, not discarded
    assert session.lease_token is None


def test_a_vehicle_call_inside_a_transaction_is_refused(world, sim):
    world(1, gate=False)
    client = vehicles.get_client()
    seen = []

    def step():
        with transaction.atomic():
            try:
                client.list_connections(user_id="any-user")
            except inflight.VehicleCallInTransaction as exc:
                seen.append(exc)

    g = inflight.StepGreenlet(step, greenlet.getcurrent(), session_id=1, ready=None)
    g.switch()
    assert g.dead and len(seen) == 1


def test_a_call_outside_a_step_simply_waits_in_its_thread(world, sim):
    *_, sessions = world(1, gate=False)
    car = sessions[0].vehicle
    user_id = car.connection.external_user_id
    # A web request (no worker, no greenlet) uses the same client and gets its answer.
    found = vehicles.get_client().list_connections(user_id=user_id)
    assert car.external_id in {c.vehicle_id for c in found}


def test_a_429_delays_only_that_vehicle(world, sim):
    limiter = ratelimit.Limiter()
    *_, sessions = world(2, limiter=limiter, gate=False)
    throttled, other = sessions
    external = throttled.vehicle.external_id
    sim.vehicles[external].faults.inject.append({"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 300})
    worker = inflight.InFlightWorker(max_in_flight=10)
    now = clock.now()

    assert worker.tick() == 2
    run_until_idle(worker)

    throttled.refresh_from_db()
    other.refresh_from_db()
    assert other.status == S.STARTING  # the worker went on with the other car
    assert throttled.status == S.REQUESTED
    assert throttled.next_action_at >= now + timedelta(seconds=300)
    # Any further request for that car waits out the retry-after; the other car's does not.
    assert asyncio.run(limiter._try(external)) == pytest.approx(300, abs=1)
    assert asyncio.run(limiter._try(other.vehicle.external_id)) == 0


class FakeTime:
    """A clock the limiter reads and a sleep that moves it: waits are counted, not slept."""

    def __init__(self):
        self.t = 1_000_000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def test_the_application_limit_makes_the_request_over_it_wait():
    fake = FakeTime()
    limiter = ratelimit.Limiter(ratelimit.Limits(app=(3, 60.0)), now=fake.now, sleep=fake.sleep)

    async def four():
        for vehicle in ("a", "b", "c", "d"):
            await limiter.acquire(vehicle)

    asyncio.run(four())
    assert fake.slept == [pytest.approx(1.0)]  # the 4th waits one refill (60/min)


def test_an_application_429_blocks_every_vehicle():
    fake = FakeTime()
    limiter = ratelimit.Limiter(now=fake.now, sleep=fake.sleep)
    body = b'{"type":"RATE_LIMIT","code":"SMARTCAR_API"}'
    asyncio.run(limiter.observe("car-1", 429, {"retry-after": "40"}, body))
    assert asyncio.run(limiter._try("car-2")) == pytest.approx(40)


@pytest.fixture
def redis_url():
    import os

    url = os.environ.get("REDIS_URL", "")
    if not url:
        pytest.skip("needs Redis (set REDIS_URL=redis://...)")
    return url


def test_the_limits_hold_across_workers_through_redis(redis_url):
    fake = FakeTime()
    prefix = f"test-limits-{uuid.uuid4().hex}"
    limits = ratelimit.Limits(app=(100, 600.0), vehicle=(2, 1.0))
    first = ratelimit.RedisLimiter(redis_url, limits, prefix=prefix, now=fake.now, sleep=fake.sleep)
    second = ratelimit.RedisLimiter(redis_url, limits, prefix=prefix, now=fake.now, sleep=fake.sleep)

    async def scenario():
        try:
            await first.acquire("car-x")
            await first.acquire("car-x")  # the car's burst is spent by the first worker
            await second.acquire("car-y")  # another car: no wait
            assert fake.slept == []
            await second.acquire("car-x")  # the second worker waits for the car's refill
            assert fake.slept == [pytest.approx(60.0)]
            # A 429 one worker saw holds the car for every worker, and only that car.
            await first.observe("car-x", 429, {"retry-after": "90"}, b'{"code":"VEHICLE"}')
            assert await second._try("car-x") == pytest.approx(90.0)
            assert await second._try("car-z") == 0
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(scenario())


def test_hundreds_of_requests_leaving_at_once_wait_for_a_redis_connection_instead_of_failing(redis_url):
    limiter = ratelimit.RedisLimiter(redis_url, ratelimit.Limits(app=(10_000, 60_000.0)), prefix=uuid.uuid4().hex)

    async def burst():
        try:
            await asyncio.gather(*(limiter.acquire(f"car-{i}") for i in range(4 * ratelimit.REDIS_CONNECTIONS + 300)))
        finally:
            await limiter.aclose()

    asyncio.run(burst())  # more at once than the pool holds: they queue for a connection
    assert limiter.waits == 0


def test_the_worker_command_steps_due_sessions_until_told_to_stop(world, sim):
    *_, sessions = world(3, gate=False)
    ids = [s.pk for s in sessions]

    def started() -> bool:
        return not ChargingSession.objects.filter(pk__in=ids, status=S.REQUESTED).exists()

    inflight.run_worker(
        max_in_flight=10,
        hubs=1,  # SQLite: one writer
        interval_s=0.05,
        limiter=ratelimit.Limiter(),
        transport=AsyncSimulatorTransport(sim),
        stop=started,
    )

    assert set(ChargingSession.objects.filter(pk__in=ids).values_list("status", flat=True)) == {S.STARTING}
    assert ChargingSession.objects.filter(pk__in=ids, lease_token__isnull=False).count() == 0


def test_the_hubs_run_with_a_short_switch_interval_and_put_it_back():
    """A hub whose query's answer is in must take the interpreter lock back before it goes on;
    with CPython's 5 ms switch interval, the other hubs, the event loop and the simulator made
    that wait most of a step's database time (docs/scale.md). The hubs run with a shorter one."""
    seen: list[float] = []
    worker = inflight.InFlightWorker(
        max_in_flight=1, interval_s=0.01, on_tick=lambda: seen.append(sys.getswitchinterval())
    )
    before = sys.getswitchinterval()

    inflight.run_hubs([worker], stop=lambda: bool(seen))

    assert seen == [inflight.SWITCH_INTERVAL_S] and inflight.SWITCH_INTERVAL_S <= 0.001
    assert sys.getswitchinterval() == before
