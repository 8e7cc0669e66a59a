"""A v3 simulator on a real loopback port (for the async client and the official SDKs) and in
process (for the sync client), on a virtual clock the tests advance."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer

START = datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc)
CLIENT_ID, CLIENT_SECRET = "contract-v3-client", "contract-v3-secret"
AMT = "contract-v3-amt"


class Env:
    def __init__(self, sim: Simulator, clock: VirtualClock, url: str):
        self.sim, self.clock, self.url = sim, clock, url
        self.admin = httpx.Client(base_url=url, timeout=10)

    def car(self, **fields) -> tuple[str, str]:
        """A car connected to a new user: (vehicle id, user id)."""
        fields.setdefault("soc", 0.3)
        fields.setdefault("plugged", True)
        vehicle_id = self.admin.post("/_sim/vehicles", json={**fields, "connect": False}).json()["id"]
        user_id = self.admin.post("/_sim/v3/connections", json={"vehicle_id": vehicle_id}).json()["user_id"]
        # Deterministic deliveries for contract tests: no loss, no duplicates, no jitter.
        self.admin.post(
            f"/_sim/v3/vehicles/{vehicle_id}/traits", json={"loss_rate": 0, "duplicate_rate": 0, "jitter_s": 0}
        )
        return vehicle_id, user_id

    def webhook(self, url="http://127.0.0.1:9/hook") -> str:
        return self.admin.post("/_sim/v3/webhooks", json={"callbackUri": url, "verified": True}).json()["id"]

    def configure(self, **settings) -> None:
        assert self.admin.post("/_sim/v3/config", json=settings).status_code == 200

    def client_options(self, **extra) -> dict:
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "api_origin": self.url,
            "management_origin": self.url,
            "iam_url": f"{self.url}/oauth2/token",
            "clock": self.clock.now,
            **extra,
        }


@pytest.fixture
def server_env():
    clock = VirtualClock(START)
    sim = Simulator(
        clock, seed=5, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, amt=AMT, command_latency_s=(10, 10)
    )
    with SimulatorServer(sim) as server:
        env = Env(sim, clock, server.url)
        yield env
        env.admin.close()


@pytest.fixture
def wsgi_env():
    clock = VirtualClock(START)
    sim = Simulator(
        clock, seed=5, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, amt=AMT, command_latency_s=(10, 10)
    )
    app = make_app(sim, sleep=lambda seconds: None)
    env = Env(sim, clock, "http://sim.test")
    env.admin = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=env.url)
    env.transport = httpx.WSGITransport(app=app)
    yield env
    env.admin.close()
