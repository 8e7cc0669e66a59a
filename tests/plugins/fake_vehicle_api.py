"""A stateful stand-in for the vehicle API (v3) behind httpx.MockTransport, for service and view tests.

It speaks the v3 wire shapes of docs/reference/vehicle-api-v3.md (the shapes
tests/sessions/vehicle_api/v3/fixtures/reference.json replays): the IAM token endpoint
(client credentials), `/v3/connections` (user × vehicle, filterable by user), `/v3/vehicles/{id}`,
its signals (each with its own status and times; `sc-user-id` required, 403 PERMISSION for a user
who has not connected the car) and the disconnect. Every request is recorded so tests can count
calls; any answer can be replaced (`responses`) to test a failure."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from django.db import connection as db_connection

from sessions.vehicle_api.v3 import VehicleApiV3Client

API = "https://vehicle.example.test"
IAM_URL = "https://iam.example.test/oauth2/token"
JSON = {"Content-Type": "application/json"}


def error_response(status, type_, code, detail, *, retry_after=None, resolution=None):
    """A v3 `errors[]` answer."""
    headers = dict(JSON, **{"SC-Request-Id": str(uuid.uuid4())})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    item = {"status": str(status), "type": type_, "code": code, "title": "Error", "detail": detail}
    if resolution:
        item["resolution"] = {"type": resolution}
    return httpx.Response(status, headers=headers, content=json.dumps({"errors": [item]}).encode())


SIGNAL_NAMES = {
    "tractionbattery-stateofcharge": ("StateOfCharge", "TractionBattery"),
    "tractionbattery-nominalcapacity": ("NominalCapacity", "TractionBattery"),
    "charge-ischargingcableconnected": ("IsChargingCableConnected", "Charge"),
    "charge-ischarging": ("IsCharging", "Charge"),
    "charge-detailedchargingstatus": ("DetailedChargingStatus", "Charge"),
    "charge-chargelimits": ("ChargeLimits", "Charge"),
    "charge-energyadded": ("EnergyAdded", "Charge"),
    "charge-wattage": ("Wattage", "Charge"),
}


class FakeVehicleApi:
    def __init__(self):
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.users: dict[str, list[str]] = {}  # user id -> vehicle ids connected
        self.vehicles: dict[str, dict] = {}
        self.app_tokens: set[str] = set()
        self.requests: list[httpx.Request] = []
        self.token_calls = 0
        self.data_age = "2026-11-25T08:57:00.000Z"
        self.fetched_at = "2026-11-25T08:59:30.000Z"
        # (method, path suffix) -> response: a failure in place of the normal answer.
        self.responses: dict[tuple[str, str], httpx.Response] = {}

    # --- scenario set-up -------------------------------------------------------------------------

    def add_vehicle(self, vid=None, **attrs):
        vid = vid or str(uuid.uuid4())
        self.vehicles[vid] = {
            "make": "TESLA",
            "model": "Model 3",
            "year": 2022,
            "capacity_kwh": 57.5,
            "limit": 80,  # percent; None: the car has no readable limit (NOT_CAPABLE)
            "soc": 42,  # percent
            "plugged": True,
            "state": "CHARGING",
            "energy_kwh": 1.25,  # None: the car has no counter (NOT_CAPABLE)
            "signals": None,  # None: every signal above; else the codes the car reports
            **attrs,
        }
        return vid

    def connect(self, *vehicle_ids, user_id=None) -> str:
        """What Connect does: the user (new unless given) connects the cars. Returns the user id."""
        user_id = user_id or str(uuid.uuid4())
        with self.lock:
            linked = self.users.setdefault(user_id, [])
            linked.extend(v for v in vehicle_ids if v not in linked)
        return user_id

    def disconnect(self, user_id, vehicle_id=None):
        """The driver removes the car (or every car) from the application at the vehicle API."""
        with self.lock:
            linked = self.users.get(user_id, [])
            self.users[user_id] = [] if vehicle_id is None else [v for v in linked if v != vehicle_id]

    def paths(self, method=None):
        return [r.url.path for r in self.requests if method is None or r.method == method]

    @staticmethod
    def connection_id(user_id, vehicle_id):
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-connection:{user_id}:{vehicle_id}"))

    # --- transport ----------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        if str(request.url) == IAM_URL:
            return self._token(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.app_tokens:
            return error_response(401, "AUTHENTICATION", None, "The Authorization token is missing or invalid.")
        parts = request.url.path.removeprefix("/v3/").strip("/").split("/")
        for (method, suffix), response in self.responses.items():
            if request.method == method and request.url.path.endswith(suffix):
                return response
        if parts == ["connections"] and request.method == "GET":
            return self._connections(request)
        if parts[0] == "connections" and len(parts) == 2 and request.method == "DELETE":
            return self._delete_connection(parts[1])
        if parts[0] != "vehicles" or len(parts) < 2 or parts[1] not in self.vehicles:
            return error_response(404, "RESOURCE_NOT_FOUND", None, f"No such path {request.url.path}")
        vid, car = parts[1], self.vehicles[parts[1]]
        if len(parts) == 2 and request.method == "GET":
            attributes = {"make": car["make"], "model": car["model"], "year": car["year"], "mode": "live"}
            return self._json({"data": {"id": vid, "type": "vehicle", "attributes": attributes}})
        user_id = request.headers.get("sc-user-id")
        if not user_id:
            return error_response(400, "VALIDATION", "MISSING_PARAMETER", "missing userId")
        if vid not in self.users.get(user_id, []):
            return error_response(403, "PERMISSION", None, "This user has not connected this vehicle.")
        if parts[2:] == ["signals"] and request.method == "GET":
            items = self._signals(vid, car)
            return self._json({"data": items, "meta": {"page": 1, "pageSize": len(items), "totalCount": len(items)}})
        return error_response(404, "RESOURCE_NOT_FOUND", None, f"No such path {request.url.path}")

    def _json(self, body, status=200):
        headers = dict(JSON, **{"SC-Request-Id": str(uuid.uuid4())})
        return httpx.Response(status, headers=headers, content=json.dumps(body).encode())

    def _token(self, request):
        form = dict(httpx.QueryParams(request.content.decode()))
        if form.get("grant_type") != "client_credentials":
            return httpx.Response(400, headers=JSON, json={"error": "unsupported_grant_type"})
        self.token_calls += 1
        token = f"app-{next(self.counter)}-{uuid.uuid4()}"
        self.app_tokens.add(token)
        return self._json({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _connections(self, request):
        wanted = request.url.params.get("filter[userId]")
        wanted_vehicle = request.url.params.get("filter[vehicleId]")
        items = []
        for user_id, vehicle_ids in self.users.items():
            if wanted and user_id != wanted:
                continue
            for vid in vehicle_ids:
                if wanted_vehicle and vid != wanted_vehicle:
                    continue
                items.append(
                    {
                        "id": self.connection_id(user_id, vid),
                        "type": "connection",
                        "attributes": {"permissions": ["read_battery", "read_charge", "control_charge"]},
                        "relationships": {
                            "vehicle": {"data": {"id": vid, "type": "vehicle"}},
                            "user": {"data": {"id": user_id, "type": "user"}},
                        },
                    }
                )
        return self._json({"data": items, "meta": {"totalCount": len(items)}, "links": {"next": None}})

    def _delete_connection(self, connection_id):
        for user_id, vehicle_ids in self.users.items():
            for vid in vehicle_ids:
                if self.connection_id(user_id, vid) == connection_id:
                    self.disconnect(user_id, vid)
                    return httpx.Response(204)
        return error_response(404, "RESOURCE_NOT_FOUND", None, "No such connection.")

    def _signals(self, vid, car):
        bodies = {
            "tractionbattery-stateofcharge": {"value": car["soc"], "unit": "percent"},
            "tractionbattery-nominalcapacity": {"capacity": car["capacity_kwh"], "unit": "kWh"},
            "charge-ischargingcableconnected": {"value": car["plugged"]},
            "charge-ischarging": {"value": car["state"] == "CHARGING"},
            "charge-detailedchargingstatus": {"value": car["state"]},
            "charge-chargelimits": None
            if car["limit"] is None
            else {
                "values": [{"type": "GLOBAL", "limit": car["limit"]}],
                "activeLimit": car["limit"] if car["plugged"] else None,
                "unit": "percent",
            },
            "charge-energyadded": None if car["energy_kwh"] is None else {"value": car["energy_kwh"], "unit": "kWh"},
        }
        reported = car["signals"]
        items = []
        for code, body in bodies.items():
            name, group = SIGNAL_NAMES[code]
            if body is None or (reported is not None and code not in reported):
                status = {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}}
                attributes, meta = {"code": code, "name": name, "group": group, "status": status}, {}
            else:
                attributes = {"code": code, "name": name, "group": group, "status": {"value": "SUCCESS"}, "body": body}
                meta = {"oemUpdatedAt": self.data_age, "retrievedAt": self.fetched_at}
            items.append({"id": code, "type": "signal", "attributes": attributes, "meta": meta})
        return items


@pytest.fixture
def fake_api():
    return FakeVehicleApi()


@pytest.fixture
def api_client(fake_api):
    client = VehicleApiV3Client(
        api_origin=API,
        management_origin=API,
        iam_url=IAM_URL,
        client_id="client-123",
        client_secret="secret-456",
        transport=httpx.MockTransport(fake_api),
    )
    yield client
    client.close()


@pytest.fixture
def use_fake_api(api_client, monkeypatch):
    """Route the services' default client (views have no client argument) to the fake."""
    from sessions.vehicles import services as vehicles

    monkeypatch.setattr(vehicles, "get_client", lambda: api_client)
    return api_client


@pytest.fixture
def postgres_only():
    if db_connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks (select_for_update is a no-op on SQLite)")


NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
