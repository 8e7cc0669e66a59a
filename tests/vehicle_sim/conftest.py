"""The simulator's physics, faults, admin and server tests, spoken through its v3 routes.

Cars are connected through the admin API and read with the application's token plus `sc-user-id`.
The simulator answers an unsubscribed car's signals by reading the car (`unsubscribed_signals` =
"live"): every read reaches the car and passes its gates, which is what these tests are about.
"""

from datetime import datetime, timezone

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator
from vehicle_sim.v3 import platform

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
CLIENT_ID, CLIENT_SECRET = "sim-client-id", "sim-client-secret"
SOC = "tractionbattery-stateofcharge"
LIMITS = "charge-chargelimits"
WATTAGE = "charge-wattage"


def at_ms(iso: str) -> int:
    """An ISO 8601 instant as the epoch milliseconds the simulator stamps signals with."""
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def assert_error(response, status, type_, code):
    """A v3 error body (`errors[]`) of this status, type and code; returns the error item."""
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    assert (error["status"], error["type"], error["code"]) == (str(status), type_, code)
    return error


def live_reads(sim):
    """An unsubscribed car's signals are read from the car itself (see the module docstring)."""
    with sim.lock:
        platform(sim).config.update({"unsubscribed_signals": "live"})
    return sim


@pytest.fixture
def clock():
    return VirtualClock(START)


@pytest.fixture
def sim(clock):
    # Fixed 10 s command latency: tests can say exactly when a command takes effect.
    return live_reads(Simulator(clock, seed=7, command_latency_s=(10, 10)))


@pytest.fixture
def client(sim):
    slept = []
    app = make_app(sim, sleep=slept.append)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sim.test") as c:
        c.slept = slept
        yield c


def app_token(client) -> str:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    response = client.post("/oauth2/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Car:
    """A connected vehicle and helpers speaking the v3 wire protocol."""

    def __init__(self, client, data):
        self.client = client
        self.id = data["id"]
        self.user_id = data["user_id"]
        self.data = data
        self.token = app_token(client)

    def headers(self, **extra):
        return {"Authorization": f"Bearer {self.token}", "sc-user-id": self.user_id, **extra}

    def read(self, **headers):
        """`GET /v3/vehicles/{id}/signals`: the response."""
        return self.client.get(f"/v3/vehicles/{self.id}/signals", headers=self.headers(**headers))

    def signals(self, response=None):
        """code → the signal item's attributes, of a successful read (a new one unless given)."""
        response = response or self.read()
        assert response.status_code == 200, response.text
        return {item["id"]: item["attributes"] | {"meta": item["meta"]} for item in response.json()["data"]}

    def value(self, code, response=None):
        """One signal's value (its `body.value`), None when the car does not report it."""
        body = self.signals(response)[code].get("body")
        return None if body is None else body.get("value", body)

    def level(self, response=None):
        """The reported level as a fraction (the signal is in whole percent or its step)."""
        return self.value(SOC, response) / 100

    def command(self, name, body=None):
        return self.client.post(f"/v3/vehicles/{self.id}/commands/charge/{name}", json=body, headers=self.headers())

    def start(self):
        return self.command("start")

    def stop(self):
        return self.command("stop")

    def set_limit(self, percent):
        return self.command("set-limit", {"data": {"attributes": {"percent": percent}}})

    def renew(self):
        """A fresh app token, for tests that skip past its one-hour lifetime."""
        self.token = app_token(self.client)

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
