from datetime import datetime, timezone

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    return VirtualClock(START)


@pytest.fixture
def sim(clock):
    # Fixed 10 s command latency: tests can say exactly when a command takes effect.
    return Simulator(clock, seed=7, command_latency_s=(10, 10))


@pytest.fixture
def client(sim):
    slept = []
    app = make_app(sim, sleep=slept.append)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sim.test") as c:
        c.slept = slept
        yield c


class Car:
    """A vehicle with its token, and helpers that speak the wire protocol."""

    def __init__(self, client, data):
        self.client = client
        self.id = data["id"]
        self.data = data
        self.token = data["access_token"]

    def headers(self, **extra):
        return {"Authorization": f"Bearer {self.token}", **extra}

    def get(self, sub="", **kw):
        return self.client.get(f"/v2.0/vehicles/{self.id}/{sub}", headers=self.headers(**kw.pop("headers", {})), **kw)

    def post(self, sub, json=None, **kw):
        return self.client.post(f"/v2.0/vehicles/{self.id}/{sub}", json=json, headers=self.headers(), **kw)

    def start(self):
        return self.post("charge", {"action": "START"})

    def stop(self):
        return self.post("charge", {"action": "STOP"})

    def renew(self):
        """A fresh token pair, for tests that skip past the 2 h access-token lifetime."""
        self.token = self.client.post(f"/_sim/vehicles/{self.id}/tokens").json()["access_token"]

    def truth(self):
        return self.client.get(f"/_sim/vehicles/{self.id}").json()

    def set(self, **changes):
        r = self.client.post(f"/_sim/vehicles/{self.id}", json=changes)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def make_car(client):
    def make(**fields):
        fields.setdefault("soc", 0.3)
        fields.setdefault("plugged", True)
        response = client.post("/_sim/vehicles", json=fields)
        assert response.status_code == 200, response.text
        return Car(client, response.json())

    return make


@pytest.fixture
def car(make_car):
    return make_car()
