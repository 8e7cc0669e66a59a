"""A stateful stand-in for the vehicle API behind httpx.MockTransport, for service and view tests.

It speaks the same wire shapes as tests/sessions/vehicle_api/fixtures: a token endpoint that issues codes
and single-use, rotating refresh tokens (a reused one gets `invalid_grant`), and the vehicle
endpoints the services call. Every request is recorded so tests can count calls."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from django.db import connection as db_connection

from sessions.vehicle_api import VehicleApiClient

API = "https://api.example.test"
AUTH_URL = "https://auth.example.test/oauth/token"
CONNECT = "https://connect.example.test"
JSON = {"Content-Type": "application/json"}


def error_response(status, type_, code, description, *, retry_after=None, resolution=None):
    headers = dict(JSON, **{"SC-Request-Id": str(uuid.uuid4())})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = {
        "type": type_,
        "code": code,
        "description": description,
        "docURL": None,
        "statusCode": status,
        "requestId": headers["SC-Request-Id"],
        "resolution": {"type": resolution},
        "suggestedUserMessage": None,
    }
    return httpx.Response(status, headers=headers, content=json.dumps(body).encode())


class FakeVehicleApi:
    def __init__(self):
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.codes: dict[str, list[str]] = {}  # code -> vehicle ids
        self.access: dict[str, list[str]] = {}  # access token -> vehicle ids
        self.refresh_tokens: dict[str, list[str]] = {}  # live refresh token -> vehicle ids
        self.vehicles: dict[str, dict] = {}
        self.requests: list[httpx.Request] = []
        self.refresh_calls = 0
        self.refresh_gate: threading.Event | None = None  # tests may hold refreshes here
        self.refresh_entered = threading.Event()
        self.fail_refresh_with: httpx.Response | None = None
        self.data_age = "2026-11-25T08:57:00.000Z"
        self.fetched_at = "2026-11-25T08:59:30.000Z"
        self.capacity_response: httpx.Response | None = None
        self.user_id = "e0514ef4-5226-11e8-8c13-8f6e8f02e27e"
        self.disconnect_response: httpx.Response | None = None

    # --- scenario set-up -------------------------------------------------------------------------

    def add_vehicle(self, vid=None, **attrs):
        vid = vid or str(uuid.uuid4())
        self.vehicles[vid] = {
            "make": "TESLA",
            "model": "Model 3",
            "year": 2022,
            "capacity_kwh": 57.5,
            "limit": 0.8,
            "soc": 0.42,
            "range": 210.3,
            "plugged": True,
            "state": "CHARGING",
            "connected": True,
            **attrs,
        }
        return vid

    def issue_code(self, *vehicle_ids) -> str:
        code = str(uuid.uuid4())
        self.codes[code] = list(vehicle_ids)
        return code

    def revoke_all_tokens(self):
        self.access.clear()
        self.refresh_tokens.clear()

    def paths(self, method=None):
        return [r.url.path for r in self.requests if method is None or r.method == method]

    # --- transport ----------------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        if str(request.url) == AUTH_URL:
            return self._token(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            allowed = self.access.get(token)
        if allowed is None:
            return error_response(401, "AUTHENTICATION", None, "Invalid or expired token.", resolution="REAUTHENTICATE")
        parts = request.url.path.removeprefix("/v2.0/").strip("/").split("/")
        if parts == ["user"]:
            return self._json({"id": self.user_id})
        if parts == ["vehicles"]:
            return self._json({"vehicles": allowed, "paging": {"count": len(allowed), "offset": 0}})
        vid, rest = parts[1], "/".join(parts[2:])
        if vid not in allowed or not self.vehicles[vid]["connected"]:
            return error_response(403, "PERMISSION", None, "No access to this vehicle.", resolution="REAUTHENTICATE")
        car = self.vehicles[vid]
        data = {"SC-Data-Age": self.data_age, "SC-Fetched-At": self.fetched_at, "SC-Unit-System": "metric"}
        if rest == "" and request.method == "GET":
            return self._json({"id": vid, "make": car["make"], "model": car["model"], "year": car["year"]})
        if rest == "battery/capacity":
            if self.capacity_response is not None:
                return self.capacity_response
            return self._json({"capacity": car["capacity_kwh"]}, data)
        if rest == "charge/limit" and request.method == "GET":
            if car["limit"] is None:
                return error_response(501, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "Not capable.")
            return self._json({"limit": car["limit"]}, data)
        if rest == "charge" and request.method == "GET":
            return self._json({"isPluggedIn": car["plugged"], "state": car["state"]}, data)
        if rest == "battery":
            return self._json({"percentRemaining": car["soc"], "range": car["range"]}, data)
        if rest == "application" and request.method == "DELETE":
            if self.disconnect_response is not None:
                return self.disconnect_response
            car["connected"] = False
            return self._json({"status": "success"})
        return error_response(404, "RESOURCE_NOT_FOUND", "PATH", f"No such path {request.url.path}")

    def _json(self, body, headers=None):
        all_headers = dict(JSON, **{"SC-Request-Id": str(uuid.uuid4())}, **(headers or {}))
        return httpx.Response(200, headers=all_headers, content=json.dumps(body).encode())

    def _issue_pair(self, vehicle_ids):
        n = next(self.counter)
        access, refresh = f"access-{n}-{uuid.uuid4()}", f"refresh-{n}-{uuid.uuid4()}"
        self.access[access] = vehicle_ids
        self.refresh_tokens[refresh] = vehicle_ids
        body = {"access_token": access, "token_type": "Bearer", "expires_in": 7200, "refresh_token": refresh}
        return self._json(body)

    def _token(self, request):
        form = dict(httpx.QueryParams(request.content.decode()))
        if form.get("grant_type") == "authorization_code":
            with self.lock:
                vehicle_ids = self.codes.pop(form.get("code"), None)
                if vehicle_ids is None:
                    return httpx.Response(
                        400,
                        headers=JSON,
                        json={"error": "invalid_grant", "error_description": "Invalid or expired code."},
                    )
                return self._issue_pair(vehicle_ids)
        self.refresh_calls += 1
        self.refresh_entered.set()
        if self.refresh_gate is not None:
            self.refresh_gate.wait(timeout=10)
        if self.fail_refresh_with is not None:
            return self.fail_refresh_with
        with self.lock:
            # Single use: the presented refresh token dies now (no grace window here: strictest).
            vehicle_ids = self.refresh_tokens.pop(form.get("refresh_token"), None)
            if vehicle_ids is None:
                return httpx.Response(
                    400,
                    headers=JSON,
                    json={"error": "invalid_grant", "error_description": "Invalid or expired refresh token."},
                )
            return self._issue_pair(vehicle_ids)


@pytest.fixture
def fake_api():
    return FakeVehicleApi()


@pytest.fixture
def api_client(fake_api):
    client = VehicleApiClient(
        api_origin=API,
        auth_url=AUTH_URL,
        connect_origin=CONNECT,
        client_id="client-123",
        client_secret="secret-456",
        redirect_uri="http://testserver/vehicles/connect/callback/",
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
