"""Realistic answer times without a thread per request (issue 17): the simulator behind an asyncio
transport awaits each answer's delay, in wall seconds on a sped-up clock; its failure mix."""

import asyncio
from dataclasses import replace

import httpx
import pytest

from vehicle_sim import async_transport
from vehicle_sim.app import make_app
from vehicle_sim.async_transport import AsyncSimulatorTransport
from vehicle_sim.clock import RealClock
from vehicle_sim.engine import Simulator
from vehicle_sim.world import WORLDS

from .conftest import CLIENT_ID, CLIENT_SECRET, START, live_reads

WORLD = replace(WORLDS["ideal"], answer_latency_s=(6, 6), separate_latencies=True, start_latency_s=(40, 40))


@pytest.fixture
def awaited(monkeypatch):
    """The delays the transport awaits, recorded instead of slept."""
    seen: list[float] = []

    async def sleep(seconds):
        seen.append(seconds)

    monkeypatch.setattr(async_transport.asyncio, "sleep", sleep)
    return seen


def simulator(clock):
    return live_reads(Simulator(clock, seed=1, world=WORLD))


def car_of(sim):
    """(vehicle id, headers of a v3 request for its user with an app token)."""
    v = sim.create_vehicle("generic", soc=0.3, limit=0.9, plugged=True)
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    with httpx.Client(transport=httpx.WSGITransport(app=make_app(sim)), base_url="http://sim") as client:
        token = client.post("/oauth2/token", data=form).json()["access_token"]
    return v.id, {"Authorization": f"Bearer {token}", "sc-user-id": sim.connect([v.id])}


def call(transport, method, path, headers, **kwargs):
    async def go():
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            return await client.request(method, path, headers=headers, **kwargs)

    return asyncio.run(go())


def test_a_read_and_a_command_answer_after_their_times_in_wall_seconds_of_a_sped_up_clock(awaited):
    sim = simulator(RealClock(speed=4, start=START))
    vid, headers = car_of(sim)
    transport = AsyncSimulatorTransport(sim)

    assert call(transport, "GET", f"/v3/vehicles/{vid}/signals", headers).status_code == 200
    assert call(transport, "POST", f"/v3/vehicles/{vid}/commands/charge/start", headers).status_code == 200

    # 6 s of read answer and the START's 40 s latency (v3 answers 200 once it is done), at 4× speed.
    assert awaited == [pytest.approx(1.5), pytest.approx(10.0)]


def test_the_served_simulator_sleeps_the_same_wall_seconds():
    sim = simulator(RealClock(speed=4, start=START))
    vid, headers = car_of(sim)
    slept: list[float] = []
    client = httpx.Client(transport=httpx.WSGITransport(app=make_app(sim, sleep=slept.append)), base_url="http://s")
    assert client.get(f"/v3/vehicles/{vid}/signals", headers=headers).status_code == 200
    assert slept == [pytest.approx(1.5)]


def test_a_share_of_calls_fails_as_429_502_or_timeout(awaited):
    sim = live_reads(Simulator(RealClock(speed=2, start=START), seed=1))
    vid, headers = car_of(sim)
    transport = AsyncSimulatorTransport(sim, failure_rate=1.0, speed=2, seed=5)
    outcomes = []
    for _ in range(30):
        try:
            response = call(transport, "GET", f"/v3/vehicles/{vid}/signals", headers)
            outcomes.append(response.status_code)
            if response.status_code == 429:
                assert 30 <= int(response.headers["retry-after"]) <= 120
        except httpx.ReadTimeout:
            outcomes.append("timeout")
    assert set(outcomes) == {429, 502, "timeout"}
    assert sum(transport.failures.values()) == 30
    # A timeout waits for the client's read timeout (httpx's default 5 s), in simulated seconds.
    assert pytest.approx(2.5) in awaited


def test_no_failures_by_default(awaited):
    sim = live_reads(Simulator(RealClock(speed=2, start=START), seed=1))
    vid, headers = car_of(sim)
    transport = AsyncSimulatorTransport(sim)
    assert {call(transport, "GET", f"/v3/vehicles/{vid}/signals", headers).status_code for _ in range(5)} == {200}
