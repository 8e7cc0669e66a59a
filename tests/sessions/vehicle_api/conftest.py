"""Replay real-shaped vehicle API responses (fixtures/*.json) through httpx.MockTransport."""

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sessions.vehicle_api import VehicleApiClient

FIXTURES = Path(__file__).parent / "fixtures"
API = "https://api.example.test"
AUTH_URL = "https://auth.example.test/oauth/token"
CONNECT = "https://connect.example.test"
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


def load(group: str, name: str) -> dict:
    return json.loads((FIXTURES / f"{group}.json").read_text())[name]


def replay(group: str, name: str) -> httpx.Response:
    """The stored response as an httpx.Response (status, headers, body bytes exactly as stored)."""
    fixture = load(group, name)
    body = fixture["body"]
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return httpx.Response(fixture["status"], headers=fixture["headers"], content=content)


class Recorder:
    """A MockTransport handler built from a route table; records every request."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        route = self.routes.get(key)
        if route is None:
            return httpx.Response(404, json={"type": "RESOURCE_NOT_FOUND", "code": "PATH", "description": str(key)})
        return route(request) if callable(route) else route


@pytest.fixture
def make_client():
    clients = []

    def factory(handler, **kwargs):
        options = {
            "api_origin": API,
            "auth_url": AUTH_URL,
            "connect_origin": CONNECT,
            "client_id": "client-123",
            "client_secret": "secret-456",
            "redirect_uri": "https://prepaid.example.test/vehicles/connect/callback/",
            "transport": httpx.MockTransport(handler),
            "clock": lambda: NOW,
        }
        options.update(kwargs)
        client = VehicleApiClient(**options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
