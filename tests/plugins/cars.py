"""Charging sessions against the real simulator, in virtual time.

The simulator runs in-process (httpx.WSGITransport, no socket) on a VirtualClock; the controller
reads the same clock through `sessions.clock`, so hours of charging take milliseconds and every
test is deterministic under its seed.
"""

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from benchmarks.cars import vehicle_connect_simulated
from sessions import clock
from sessions.controller import readings, runtime
from sessions.models import ChargingSession, Vehicle
from sessions.models.charging import TERMINAL_STATUSES
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import services as vehicles
from tests.plugins.wallet import paid_credit
from vehicle_sim import v3
from vehicle_sim.app import make_app
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ORIGIN = "http://sim.test"
REDIRECT_URI = "http://testserver/vehicles/connect/callback/"


@pytest.fixture
def fresh_latency_cache():
    """The learned STOP latency is cached per make and minute; tests must not share it."""
    readings._latency_models_cached.cache_clear()
    yield
    readings._latency_models_cached.cache_clear()


@pytest.fixture
def sim():
    return Simulator(VirtualClock(START), seed=7)


def simulator_transport(sim) -> httpx.WSGITransport:
    """The simulator's WSGI app in process: no socket, no sleeping for its latencies. Its signal
    store answers a car without a webhook subscription by reading it live (one reading of the
    reference's CONFLICT): these tests subscribe nothing."""
    v3.platform(sim).config.update({"unsubscribed_signals": "live"})
    return httpx.WSGITransport(app=make_app(sim, sleep=lambda seconds: None))


def simulator_client(transport: httpx.BaseTransport, **options) -> VehicleApiV3Client:
    """Our vehicle API client pointed at a simulator behind `transport`, as the settings point it
    at the real vehicle API (one origin stands for every v3 host)."""
    return VehicleApiV3Client(
        api_origin=ORIGIN,
        management_origin=ORIGIN,
        iam_url=f"{ORIGIN}/oauth2/token",
        client_id="sim-client-id",
        client_secret="sim-client-secret",
        transport=transport,
        **options,
    )


@contextlib.contextmanager
def client_in_use(sim, client: VehicleApiV3Client):
    """The controller and the token service use `client`, on the simulator's clock; closed after."""
    vehicles.use_client(client)
    with clock.use(sim.clock.now, all_threads=True):
        yield client
    vehicles.use_client(None)
    client.close()


def approve(transport: httpx.BaseTransport, authorize_url: str, vehicle_ids) -> dict:
    """What the driver does on the simulator's consent page: tick the cars, press Allow. Returns
    the query of the redirect back to us (user_id and state; v3 never exchanges the code)."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    form = {**query, "action": "approve", "vehicle": list(vehicle_ids)}
    with httpx.Client(transport=transport, base_url=ORIGIN) as consent:
        response = consent.post("/oauth/authorize", data=form)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {k: v[-1] for k, v in parse_qs(location.query).items()}


@pytest.fixture
def api(sim):
    """Our client wired into the simulator; the controller and token service use it."""
    with client_in_use(sim, simulator_client(simulator_transport(sim), clock=sim.clock.now)) as client:
        yield client


@dataclass
class Car:
    sim_id: str
    vehicle: Vehicle


@pytest.fixture
def connect(sim, api, db):
    """Connect a simulated car to `user` as Connect would: a (user, vehicle) connection at the API."""

    def _connect(user, profile="generic", **car):
        car.setdefault("plugged", True)
        car.setdefault("soc", 0.3)
        simulated = sim.create_vehicle(profile, **car)
        return Car(simulated.id, vehicle_connect_simulated(user=user, sim=sim, sim_vehicle_id=simulated.id))

    return _connect


@pytest.fixture
def credit(db):
    """Credit `energy_wh` of paid energy to `user`'s wallet."""
    return paid_credit


@pytest.fixture
def drive(sim):
    """Run the controller loop in virtual time until the session ends (or `until` says so).

    Each turn jumps the clock to the session's next due action and runs one loop tick, which
    claims due sessions and runs their steps (django-q2 runs tasks inline in tests)."""

    def _drive(session, *, until=None, max_steps=400, max_hours=24):
        deadline = sim.clock.now() + timedelta(hours=max_hours)
        for _ in range(max_steps):
            session.refresh_from_db()
            if session.status in TERMINAL_STATUSES or (until and until(session)):
                return session
            due = session.next_action_at
            assert due is not None, f"open session without a next action: {session.status}"
            if due > sim.clock.now():
                sim.clock.set(due)
            assert sim.clock.now() < deadline, "session did not end in virtual time"
            runtime.tick()
        raise AssertionError(f"session still {session.status} after {max_steps} steps")

    return _drive


def delivered_wh(sim, car: Car, before: dict) -> int:
    """True energy that reached the battery since `before` (a true_state snapshot)."""
    return round(sim.true_state(car.sim_id)["delivered_battery_wh"] - before["delivered_battery_wh"])


__all__ = ["ChargingSession", "delivered_wh"]
