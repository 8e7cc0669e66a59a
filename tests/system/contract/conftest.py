"""Contract tests: the same assertions through every client of the vehicle API.

The simulator runs once per session as a real threaded HTTP server on a free loopback port,
driven by a `VirtualClock` that tests advance. Each test runs once per *client adapter*.

Adapter interface (add the project's own client, sessions/vehicle_api/client.py, by writing an
adapter class with these methods and listing it in `ADAPTERS`):

    class SomeAdapter:
        name = "some-client"
        def __init__(self, env: ContractEnv): ...            # env.api_origin, env.auth_url, ...
        def auth_url(self, scopes: list[str], state: str) -> str
        def exchange_code(self, code: str) -> Tokens
        def refresh(self, refresh_token: str) -> Tokens
        def vehicles(self, token: str) -> list[str]
        def user(self, token: str) -> str
        def attributes(self, token, vehicle_id) -> Result        # body {id, make, model, year}
        def charge(self, token, vehicle_id) -> Result            # body {isPluggedIn, state}
        def battery(self, token, vehicle_id) -> Result           # body {percentRemaining, range}
        def battery_capacity(self, token, vehicle_id) -> Result  # body {capacity}
        def get_charge_limit(self, token, vehicle_id) -> Result  # body {limit}
        def set_charge_limit(self, token, vehicle_id, limit: float) -> Result  # body {status, message}
        def start_charge(self, token, vehicle_id) -> Result      # body {status, message}
        def stop_charge(self, token, vehicle_id) -> Result
        def batch(self, token, vehicle_id, paths: list[str]) -> dict[str, Result | ContractError]
        def request(self, token, vehicle_id, method: str, path: str) -> Result  # e.g. "tesla/charge"

Every method returns plain values as the wire has them (fractions stay floats; numbers may be
compared with pytest.approx) and raises `ContractError` for any API or OAuth error, carrying
type, code, status_code, request_id and retry_after (int seconds or None). For OAuth errors the
type is the OAuth `error` (e.g. "invalid_grant"). `Result.meta` holds the response metadata
under the keys data_age, fetched_at, unit_system, request_id (strings, absent when not sent).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer

CLIENT_ID = "contract-client-id"
CLIENT_SECRET = "contract-client-secret"
REDIRECT_URI = "http://127.0.0.1:9/vehicles/callback/"


@dataclass
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass
class Result:
    body: dict
    meta: dict = field(default_factory=dict)


class ContractError(Exception):
    def __init__(self, type_, code=None, status_code=None, request_id=None, retry_after=None, description=None):
        self.type = type_
        self.code = code
        self.status_code = status_code
        self.request_id = request_id
        self.retry_after = retry_after
        self.description = description
        super().__init__(f"{type_}:{code} ({status_code})")


@dataclass
class ContractEnv:
    sim: Simulator
    clock: VirtualClock
    url: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uri: str = REDIRECT_URI

    @property
    def api_origin(self) -> str:
        return self.url

    @property
    def auth_url(self) -> str:
        return f"{self.url}/oauth/token"

    def new_car(self, **fields) -> tuple[str, Tokens]:
        fields.setdefault("soc", 0.3)
        fields.setdefault("plugged", True)
        v = self.sim.create_vehicle(**fields)
        pair = self.sim.issue_tokens([v.id])
        return v.id, Tokens(pair["access_token"], pair["refresh_token"], pair["expires_in"])

    def consent(self, auth_url: str, vehicle_ids: list[str], action: str = "approve") -> dict:
        """Play the user on the consent page; return the redirect's query parameters."""
        page = httpx.get(auth_url)
        assert page.status_code == 200, page.text
        query = {k: v[-1] for k, v in parse_qs(urlsplit(auth_url).query).items()}
        form = {k: query[k] for k in ("client_id", "redirect_uri", "scope", "state") if k in query}
        response = httpx.post(f"{self.url}/oauth/authorize", data={**form, "action": action, "vehicle": vehicle_ids})
        assert response.status_code == 302, response.text
        return {k: v[-1] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


_env_lock = threading.Lock()


@pytest.fixture(scope="session")
def contract_env():
    clock = VirtualClock(datetime(2026, 5, 4, 9, 0, tzinfo=timezone.utc))
    sim = Simulator(clock, seed=3, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, command_latency_s=(10, 10))
    with SimulatorServer(sim) as server:
        yield ContractEnv(sim=sim, clock=clock, url=server.url)


class SmartcarSdkAdapter:
    """The official Smartcar Python SDK (smartcar==6.19.1), pointed at the simulator."""

    name = "smartcar-sdk"

    def __init__(self, env: ContractEnv):
        # The SDK reads its origins from the environment when smartcar.config is imported, so
        # set them and re-execute that module (its users look the values up at call time).
        with _env_lock:
            os.environ["SMARTCAR_API_ORIGIN"] = env.api_origin
            os.environ["SMARTCAR_AUTH_ORIGIN"] = env.auth_url
            os.environ["SMARTCAR_CONNECT_ORIGIN"] = env.url
            os.environ["SMARTCAR_MANAGEMENT_API_ORIGIN"] = env.url
            import smartcar
            import smartcar.config

            importlib.reload(smartcar.config)
        self.sc = smartcar
        self.auth = smartcar.AuthClient(env.client_id, env.client_secret, env.redirect_uri, mode="live")

    # --- helpers --------------------------------------------------------------------------------
    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except self.sc.SmartcarException as exc:
            raise self._error(exc) from exc

    @staticmethod
    def _error(exc) -> ContractError:
        retry = getattr(exc, "retry_after", None)
        return ContractError(
            getattr(exc, "type", None),
            getattr(exc, "code", None),
            getattr(exc, "status_code", None),
            getattr(exc, "request_id", None),
            int(retry) if retry is not None else None,
            getattr(exc, "description", None) or getattr(exc, "message", None),
        )

    @staticmethod
    def _meta(meta) -> dict:
        return dict(meta._asdict()) if meta is not None else {}

    def _vehicle(self, token, vehicle_id):
        return self.sc.Vehicle(vehicle_id, token)

    @staticmethod
    def _tokens(access) -> Tokens:
        return Tokens(access.access_token, access.refresh_token, access.expires_in)

    # --- the interface --------------------------------------------------------------------------
    def auth_url(self, scopes, state):
        return self.auth.get_auth_url(scopes, {"state": state})

    def exchange_code(self, code):
        return self._tokens(self._call(self.auth.exchange_code, code))

    def refresh(self, refresh_token):
        return self._tokens(self._call(self.auth.exchange_refresh_token, refresh_token))

    def vehicles(self, token):
        return list(self._call(self.sc.get_vehicles, token).vehicles)

    def user(self, token):
        return self._call(self.sc.get_user, token).id

    def attributes(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).attributes)
        return Result({"id": r.id, "make": r.make, "model": r.model, "year": r.year}, self._meta(r.meta))

    def charge(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).charge)
        return Result({"isPluggedIn": r.is_plugged_in, "state": r.state}, self._meta(r.meta))

    def battery(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).battery)
        return Result({"percentRemaining": r.percent_remaining, "range": r.range}, self._meta(r.meta))

    def battery_capacity(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).battery_capacity)
        return Result({"capacity": r.capacity}, self._meta(r.meta))

    def get_charge_limit(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).get_charge_limit)
        return Result({"limit": r.limit}, self._meta(r.meta))

    def set_charge_limit(self, token, vehicle_id, limit):
        r = self._call(self._vehicle(token, vehicle_id).set_charge_limit, limit)
        return Result({"status": r.status, "message": r.message}, self._meta(r.meta))

    def start_charge(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).start_charge)
        return Result({"status": r.status, "message": r.message}, self._meta(r.meta))

    def stop_charge(self, token, vehicle_id):
        r = self._call(self._vehicle(token, vehicle_id).stop_charge)
        return Result({"status": r.status, "message": r.message}, self._meta(r.meta))

    def batch(self, token, vehicle_id, paths):
        response = self._call(self._vehicle(token, vehicle_id).batch, paths)
        out = {}
        for path in paths:
            _, attribute = self.sc.helpers.format_path_and_attribute_for_batch(path)
            try:
                value = getattr(response, attribute)()
            except self.sc.SmartcarException as exc:
                out[path] = self._error(exc)
                continue
            fields_ = {k: v for k, v in value._asdict().items() if k != "meta"}
            out[path] = Result(_wire_names(fields_), self._meta(value.meta))
        return out

    def request(self, token, vehicle_id, method, path):
        r = self._call(self._vehicle(token, vehicle_id).request, method, path, {}, {})
        return Result(r.body, self._meta(r.meta))


def _wire_names(values: dict) -> dict:
    """The SDK's snake_case tuple fields back to the wire's camelCase."""
    names = {"percent_remaining": "percentRemaining", "is_plugged_in": "isPluggedIn"}
    return {names.get(k, k): v for k, v in values.items()}


# name → adapter class.
ADAPTERS = {"smartcar-sdk": SmartcarSdkAdapter}

# The project's client (sessions/vehicle_api) joins once it exists in the tree. find_spec rather
# than try/except ImportError, so a real import error in the adapter is not silently skipped.
if importlib.util.find_spec("sessions.vehicle_api") is not None:
    from .project_adapter import ProjectClientAdapter

    ADAPTERS[ProjectClientAdapter.name] = ProjectClientAdapter


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request, contract_env):
    return ADAPTERS[request.param](contract_env)
