"""Clients of Smartcar's v3 API: `VehicleApiV3Client` (httpx.Client) and
`AsyncVehicleApiV3Client` (httpx.AsyncClient), over the same pure protocol (`v3_wire.py`).

The clients only carry requests: they add the application token (from a `TokenSource`, renewed
once on a 401), measure latency, and turn transport failures into typed errors. Everything the
protocol says — paths, `sc-user-id`, paging, parsing, error mapping, route fallbacks — lives in
`v3_wire.V3Protocol`, so the two clients cannot drift apart.

Secrets: the client secret is sent only in the IAM request's form body; tokens and the secret are
never logged, never in a repr or an error message.
Reference: docs/reference/vehicle-api-v3.md.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from monitoring.logs import remember_secret

from . import errors
from .app_token import MemoryTokenCache, TokenSource
from .v3_types import AppToken
from .v3_wire import API_ORIGIN, IAM_URL, MANAGEMENT_ORIGIN, USER_AGENT, Plan, Reply, Request, V3Protocol

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _json_or_none(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("Content-Type", "").lower():
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _reply(response: httpx.Response, latency_s: float) -> Reply:
    return Reply(
        status=response.status_code,
        headers=response.headers,
        body=_json_or_none(response),
        text=response.text[:500],
        latency_s=latency_s,
    )


def _httpx_args(request: Request, token: str | None) -> dict[str, Any]:
    headers = dict(request.headers)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    args: dict[str, Any] = {"headers": headers}
    if request.params:
        args["params"] = list(request.params)
    if request.form is not None:
        args["data"] = dict(request.form)
    elif request.json is not None:
        args["json"] = request.json
    return args


def _transport_error(request: Request, exc: httpx.HTTPError) -> errors.VehicleApiError:
    # The exception's repr names the failure (timeout, refused, reset) but holds no request body,
    # so no secret can leak through it.
    if isinstance(exc, httpx.TimeoutException):
        return errors.RequestTimeout(f"{request.what} timed out: {exc!r}")
    return errors.TransportError(f"{request.what} failed: {exc!r}")


class _Settings:
    """Construction shared by both clients."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        api_origin: str = API_ORIGIN,
        management_origin: str = MANAGEMENT_ORIGIN,
        iam_url: str = IAM_URL,
        unit_system: str = "metric",
        token_source: TokenSource | None = None,
        timeout_s: float = 310,
        connect_timeout_s: float = 10,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.protocol = V3Protocol(
            client_id=client_id,
            client_secret=client_secret,
            api_origin=api_origin,
            management_origin=management_origin,
            iam_url=iam_url,
            unit_system=unit_system,
        )
        self.clock = clock
        self.tokens: TokenSource = token_source if token_source is not None else MemoryTokenCache(clock=clock)
        # Commands are synchronous in v3 and may hold the answer up to ~300 s (§4, "Latency"):
        # one explicit timeout for everything, a short one for connecting.
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.default_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}

    @classmethod
    def settings_kwargs(cls) -> dict[str, Any]:
        """Constructor arguments from the VEHICLE_* settings (prepaid/settings.py)."""
        from django.conf import settings

        return {
            "client_id": settings.VEHICLE_M2M_CLIENT_ID,
            "client_secret": settings.VEHICLE_M2M_CLIENT_SECRET,
            "api_origin": settings.VEHICLE_API_V3_ORIGIN,
            "management_origin": settings.VEHICLE_MANAGEMENT_ORIGIN,
            "iam_url": settings.VEHICLE_IAM_URL,
            "timeout_s": settings.VEHICLE_API_TIMEOUT_S,
            "connect_timeout_s": settings.VEHICLE_API_CONNECT_TIMEOUT_S,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client_id={self.protocol.client_id!r}, api={self.protocol.api_origin!r})"


def _sync_operation(name: str):
    plan_method = getattr(V3Protocol, name)

    @functools.wraps(plan_method)
    def method(self: VehicleApiV3Client, *args, **kwargs):
        return self.run(plan_method(self.protocol, *args, **kwargs))

    return method


def _async_operation(name: str):
    plan_method = getattr(V3Protocol, name)

    @functools.wraps(plan_method)
    async def method(self: AsyncVehicleApiV3Client, *args, **kwargs):
        return await self.run(plan_method(self.protocol, *args, **kwargs))

    return method


# The public operations: each is `V3Protocol.<name>` (same arguments, same docstring), run by the
# client. Every one raises `errors.VehicleApiError` subclasses, never a bare httpx exception.
OPERATIONS = (
    "list_connections",
    "get_connection",
    "delete_connection",
    "delete_user",
    "get_vehicle",
    "get_signals",
    "get_signal",
    "start_charge",
    "stop_charge",
    "set_charge_limit",
    "get_webhook",
    "subscribe",
    "list_subscriptions",
    "unsubscribe",
)


class VehicleApiV3Client(_Settings):
    """Synchronous client; thread-safe (one pooled `httpx.Client`, one shared token source)."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, limits: httpx.Limits | None = None, **kwargs):
        super().__init__(**kwargs)
        options: dict[str, Any] = {"transport": transport, "timeout": self.timeout, "follow_redirects": False}
        if limits is not None:
            options["limits"] = limits
        self._http = httpx.Client(headers=self.default_headers, **options)

    @classmethod
    def from_settings(cls, **kwargs) -> VehicleApiV3Client:
        return cls(**{**cls.settings_kwargs(), **kwargs})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VehicleApiV3Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------------------

    def send(self, request: Request, token: str | None = None) -> Reply:
        started = time.perf_counter()
        try:
            response = self._http.request(request.method, request.url, **_httpx_args(request, token))
        except httpx.HTTPError as exc:
            raise _transport_error(request, exc) from exc
        reply = _reply(response, time.perf_counter() - started)
        logger.debug("%s → %s in %.3f s", request.what, reply.status, reply.latency_s)
        return reply

    def exchange(self, request: Request) -> Reply:
        """Send with the app token; on 401 renew it once (it may have died early) and resend."""
        if not request.app_auth:
            return self.send(request)
        token = self.tokens.get(self.request_app_token)
        reply = self.send(request, token)
        if reply.status == 401:
            token = self.tokens.get(self.request_app_token, rejected=token)
            reply = self.send(request, token)
        return reply

    def run(self, plan: Plan):
        try:
            request = next(plan)
            while True:
                request = plan.send(self.exchange(request))
        except StopIteration as done:
            return done.value

    # --- operations --------------------------------------------------------------------------------------

    def request_app_token(self) -> AppToken:
        """A NEW application token from the IAM endpoint (bypasses the cache). Raises OAuthError."""
        token = self.run(self.protocol.app_token(self.clock()))
        remember_secret(token.access_token)  # never in a log line, whatever quotes it
        return token

    def app_token(self) -> str:
        """The cached application token, renewed first when near expiry."""
        return self.tokens.get(self.request_app_token)


class AsyncVehicleApiV3Client(_Settings):
    """Asynchronous client for many requests in flight (`httpx.AsyncClient`, pooled)."""

    def __init__(
        self, *, transport: httpx.AsyncBaseTransport | None = None, limits: httpx.Limits | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        options: dict[str, Any] = {"transport": transport, "timeout": self.timeout, "follow_redirects": False}
        if limits is not None:
            options["limits"] = limits
        self._http = httpx.AsyncClient(headers=self.default_headers, **options)

    @classmethod
    def from_settings(cls, **kwargs) -> AsyncVehicleApiV3Client:
        return cls(**{**cls.settings_kwargs(), **kwargs})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncVehicleApiV3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, request: Request, token: str | None = None) -> Reply:
        started = time.perf_counter()
        try:
            response = await self._http.request(request.method, request.url, **_httpx_args(request, token))
        except httpx.HTTPError as exc:
            raise _transport_error(request, exc) from exc
        reply = _reply(response, time.perf_counter() - started)
        logger.debug("%s → %s in %.3f s", request.what, reply.status, reply.latency_s)
        return reply

    async def exchange(self, request: Request) -> Reply:
        if not request.app_auth:
            return await self.send(request)
        token = await self.tokens.aget(self.request_app_token)
        reply = await self.send(request, token)
        if reply.status == 401:
            token = await self.tokens.aget(self.request_app_token, rejected=token)
            reply = await self.send(request, token)
        return reply

    async def run(self, plan: Plan):
        try:
            request = next(plan)
            while True:
                request = plan.send(await self.exchange(request))
        except StopIteration as done:
            return done.value

    async def request_app_token(self) -> AppToken:
        token = await self.run(self.protocol.app_token(self.clock()))
        remember_secret(token.access_token)
        return token

    async def app_token(self) -> str:
        return await self.tokens.aget(self.request_app_token)


for _name in OPERATIONS:
    setattr(VehicleApiV3Client, _name, _sync_operation(_name))
    setattr(AsyncVehicleApiV3Client, _name, _async_operation(_name))
del _name
