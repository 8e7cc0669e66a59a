"""The simulator's v3 routes in process (httpx over WSGITransport), on a virtual clock."""

from datetime import datetime, timezone

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

START = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
CLIENT_ID, CLIENT_SECRET = "sim-client-id", "sim-client-secret"


@pytest.fixture
def clock():
    return VirtualClock(START)


@pytest.fixture
def sim(clock):
    # Fixed 10 s command latency: tests can say exactly when a command takes effect.
    return Simulator(clock, seed=11, command_latency_s=(10, 10))


@pytest.fixture
def client(sim):
    slept = []
    app = make_app(sim, sleep=slept.append)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://sim.test") as c:
        c.slept = slept
        yield c


@pytest.fixture
def app_token(client):
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class V3Car:
    """A car connected to a user, and helpers speaking the v3 wire protocol."""

    def __init__(self, client, token, vehicle_id, user_id):
        self.client, self.token, self.id, self.user_id = client, token, vehicle_id, user_id

    def headers(self, user=True, **extra):
        headers = {"Authorization": f"Bearer {self.token}", **extra}
        if user:
            headers["sc-user-id"] = self.user_id
        return headers

    def signals(self, **headers):
        return self.client.get(f"/v3/vehicles/{self.id}/signals", headers=self.headers(**headers))

    def signal_map(self):
        response = self.signals()
        assert response.status_code == 200, response.text
        return {item["id"]: item for item in response.json()["data"]}

    def command(self, name, body=None, **headers):
        return self.client.post(
            f"/v3/vehicles/{self.id}/commands/charge/{name}", json=body, headers=self.headers(**headers)
        )

    def subscribe(self, webhook_id):
        body = {"data": {"attributes": {"webhookId": webhook_id, "userId": self.user_id, "vehicleId": self.id}}}
        return self.client.post("/v3/subscriptions", json=body, headers=self.headers(user=False))

    def truth(self):
        return self.client.get(f"/_sim/vehicles/{self.id}").json()

    def set(self, **changes):
        response = self.client.post(f"/_sim/vehicles/{self.id}", json=changes)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def make_car(client, app_token):
    def make(scopes=None, **fields):
        fields.setdefault("soc", 0.3)
        fields.setdefault("plugged", True)
        fields["connect"] = False
        created = client.post("/_sim/vehicles", json=fields)
        assert created.status_code == 200, created.text
        vehicle_id = created.json()["id"]
        link = client.post("/_sim/v3/connections", json={"vehicle_id": vehicle_id, "scopes": scopes})
        assert link.status_code == 200, link.text
        return V3Car(client, app_token, vehicle_id, link.json()["user_id"])

    return make


@pytest.fixture
def webhook(client):
    """A verified webhook (the Dashboard's job) pointing nowhere reachable: tests read the outbox."""
    response = client.post("/_sim/v3/webhooks", json={"callbackUri": "http://127.0.0.1:9/hook", "verified": True})
    assert response.status_code == 200, response.text
    return response.json()
