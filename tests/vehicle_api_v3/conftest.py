"""The v3 client against recorded or scripted answers (httpx.MockTransport), sync and async.

`api` runs every test twice: once through `VehicleApiV3Client` (httpx.Client) and once through
`AsyncVehicleApiV3Client` (httpx.AsyncClient), behind one synchronous facade, so both clients
are held to the same assertions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sessions.vehicle_api.v3 import AsyncVehicleApiV3Client, VehicleApiV3Client

FIXTURES = Path(__file__).parent / "fixtures"
API = "https://vehicle.api.example.test"
MGMT = "https://management.api.example.test"
IAM = "https://iam.example.test/oauth2/token"
CLIENT_ID = "client_abc123"
SECRET = "s3cr3t-client-secret-value"
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def reference(name: str):
    return json.loads((FIXTURES / "reference.json").read_text())[name]


def respond(status: int, body=None, headers=None) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers or {})
    return httpx.Response(status, json=body, headers=headers or {})


def token_answer(token: str = "app-token-1", expires_in: int = 3600) -> httpx.Response:  # noqa: S107
    return respond(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})


class Recorder:
    """A MockTransport handler from a route table {(method, path): response | callable}; the IAM
    endpoint answers a fresh token unless routed. Records every request."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        if route is None and request.url.path == "/oauth2/token":
            self.tokens_issued += 1
            return token_answer(f"app-token-{self.tokens_issued}")
        if route is None:
            return respond(404, {"errors": [{"status": "404", "type": "RESOURCE_NOT_FOUND", "code": "PATH"}]})
        return route(request) if callable(route) else route

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


class Facade:
    """One synchronous surface over either client; `now` is the client's clock."""

    def __init__(self, kind: str, handler, **options):
        self.kind = kind
        self.now = NOW
        common = {
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "api_origin": API,
            "management_origin": MGMT,
            "iam_url": IAM,
            "clock": lambda: self.now,
            "transport": httpx.MockTransport(handler),
            **options,
        }
        self.client = VehicleApiV3Client(**common) if kind == "sync" else AsyncVehicleApiV3Client(**common)

    def __getattr__(self, name):
        method = getattr(self.client, name)
        if self.kind == "sync" or not callable(method):
            return method

        def run(*args, **kwargs):
            return asyncio.run(method(*args, **kwargs))

        return run


@pytest.fixture(params=["sync", "async"])
def make_api(request):
    def factory(handler, **options) -> Facade:
        return Facade(request.param, handler, **options)

    return factory
