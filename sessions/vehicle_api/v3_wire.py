"""The v3 wire protocol as pure functions: request building and response parsing, no I/O.

Every operation is a *plan*: a generator that yields `Request`s and receives `Reply`s, and returns
the typed result (or raises a typed `errors.VehicleApiError`). The synchronous client
(`httpx.Client`) and the asynchronous one (`httpx.AsyncClient`) in `v3.py` only carry requests
and replies, so both speak exactly the same protocol, paging and fallbacks included.

Reference: docs/reference/vehicle-api-v3.md — §1.1 hosts, §2 auth, §3 connections/vehicles/
signals, §4 commands, §5 errors, §6 management API.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote

from . import errors, units
from .signals import SignalSet, parse_signal
from .v3_types import (
    AppToken,
    CommandResult,
    Connection,
    Meta,
    Signals,
    SingleSignal,
    SubscribeResult,
    Subscription,
    VehicleInfo,
    Webhook,
)

T = TypeVar("T")

API_ORIGIN = "https://vehicle.api.smartcar.com"
MANAGEMENT_ORIGIN = "https://management.api.smartcar.com"
IAM_URL = "https://iam.smartcar.com/oauth2/token"
USER_AGENT = "PrepaidCharge/0.1 (httpx; vehicle API v3)"
# "One app token per hour" (§1.2): used only if a token answer omits `expires_in`; a 401 renews
# it earlier anyway.
DEFAULT_TOKEN_LIFETIME_S = 3600
# Set-limit takes a whole percent, 50..100 (§4).
LIMIT_MIN_PERCENT, LIMIT_MAX_PERCENT = 50, 100
MAX_PAGES = 1000  # a server that keeps announcing more pages must not loop us forever
CONNECTIONS_PAGE_SIZE = 50
SUBSCRIPTIONS_PAGE_SIZE = 100


@dataclass(frozen=True)
class Request:
    """One HTTP request to make. `app_auth`: the transport adds `Authorization: Bearer <app token>`.
    `form` carries the client secret: it is never part of the repr (logs, tracebacks)."""

    method: str
    url: str
    what: str  # "GET /v3/vehicles/{id}/signals": for messages; never holds a secret
    headers: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    form: tuple[tuple[str, str], ...] | None = field(default=None, repr=False)
    app_auth: bool = True


@dataclass(frozen=True)
class Reply:
    """What came back: status, headers, the parsed JSON body (None if not JSON) and the text."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str = ""
    latency_s: float | None = None

    def meta(self) -> Meta:
        return Meta(
            request_id=_header(self.headers, "SC-Request-Id"), latency_s=self.latency_s, http_status=self.status
        )


Plan = Generator[Request, Reply, T]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _seg(value: str, what: str) -> str:
    """An id as one path segment: ids are opaque, so encode everything (no id can change the path)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is required")
    return quote(value, safe="")


# --- errors ------------------------------------------------------------------------------------------


def error_from_reply(reply: Reply) -> errors.VehicleApiError:
    """The typed error for a failed reply: v3 `errors[]` bodies, then v2 / OAuth bodies, else
    MalformedResponse. The class follows the body's `type`, else the HTTP status (§5)."""
    body = reply.body
    retry_after_s = errors.parse_retry_after(_header(reply.headers, "Retry-After"))
    header_request_id = _header(reply.headers, "SC-Request-Id")
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
        type_ = first.get("type") if isinstance(first.get("type"), str) else None
        code = first.get("code") if isinstance(first.get("code"), str) else None
        # An error body may come with 200/202 on a streamed command ("its status may differ from
        # the response header", §4): then the body's own status picks the class.
        status = reply.status
        if 200 <= status < 300:
            try:
                status = int(first.get("status"))
            except (TypeError, ValueError):
                status = 500
        cls = errors.ERROR_TYPES.get(type_ or "") or errors.STATUS_CLASSES.get(status, errors.VehicleApiError)
        links = first.get("links") if isinstance(first.get("links"), dict) else {}
        resolution = first.get("resolution")
        resolution_type = resolution.get("type") if isinstance(resolution, dict) else resolution
        meta = first.get("meta") if isinstance(first.get("meta"), dict) else {}
        return cls(
            status=status,
            type=type_,
            # The spec's generic errors use lowercase codes (`unauthorized`, `not_found`): kept as
            # sent; the class then comes from the HTTP status.
            code=code,
            description=first.get("detail") or first.get("title"),
            doc_url=links.get("about"),
            resolution_type=resolution_type if isinstance(resolution_type, str) else None,
            request_id=meta.get("requestId") or header_request_id,
            retry_after_s=retry_after_s,
            suggested_user_message=first.get("suggestedUserMessage"),
            detail=first.get("source"),
            body=body,
        )
    if body is None:
        return errors.MalformedResponse(
            f"HTTP {reply.status} with a non-JSON body",
            status=reply.status,
            request_id=header_request_id,
            retry_after_s=retry_after_s,
            body=reply.text[:500],
        )
    return errors.error_from_body(reply.status, body, reply.headers)


def _check(reply: Reply, ok: tuple[int, ...] = (200,)) -> Any:
    """The JSON body of a successful reply; raises the typed error otherwise. A success status
    that still carries an `errors[]` body is an error."""
    if reply.status not in ok or (isinstance(reply.body, dict) and isinstance(reply.body.get("errors"), list)):
        raise error_from_reply(reply)
    if reply.body is None:
        raise errors.MalformedResponse(
            f"HTTP {reply.status} with a non-JSON body",
            status=reply.status,
            request_id=_header(reply.headers, "SC-Request-Id"),
            body=reply.text[:500],
        )
    return reply.body


def _malformed(what: str, reply: Reply) -> errors.MalformedResponse:
    return errors.MalformedResponse(
        f"{what}: unexpected shape",
        status=reply.status,
        request_id=_header(reply.headers, "SC-Request-Id"),
        body=reply.body,
    )


def _is_missing_route(reply: Reply) -> bool:
    """A 404/405 that says the *path* does not exist (not that a resource is missing)."""
    if reply.status == 405:
        return True
    if reply.status != 404:
        return False
    error = error_from_reply(reply)
    return reply.body is None or error.code in {"PATH", "VERSION"}


# --- small field readers -------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _rel_id(item: dict, name: str) -> str | None:
    return _str(_obj(_obj(_obj(item.get("relationships")).get(name)).get("data")).get("id"))


def _items(body: Any, what: str, reply: Reply) -> list[dict]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise _malformed(what, reply)
    return [item for item in data if isinstance(item, dict)]


def _more_pages(body: dict, size: int, got: int, collected: int) -> bool:
    """Whether to ask for the next page. `links.next: null` or a reached `totalCount` end it; a
    short page ends it too (paging key names vary between copies: `page` / `pageNumber`)."""
    links = _obj(body.get("links"))
    if "next" in links and not links["next"]:
        return False
    meta = _obj(body.get("meta"))
    total = _int(meta.get("totalCount"))
    if total is not None:
        return collected < total and got > 0
    return got >= size > 0


# --- the protocol ----------------------------------------------------------------------------------------


class SubscriptionRoutes:
    """Which path family the management API answers for subscriptions (§6, CONFLICT): the spec's
    `/v3/subscriptions[/{id}]` or the blog's `/v3/webhooks/{webhookId}/subscriptions[/{id}]`.
    Unknown until a call shows it; the spec's is tried first, and a route-not-found answer makes
    the other one the default from then on."""

    SPEC = "spec"
    BLOG = "blog"

    def __init__(self) -> None:
        self.preferred = self.SPEC

    def order(self) -> tuple[str, str]:
        return (self.preferred, self.BLOG if self.preferred == self.SPEC else self.SPEC)


class V3Protocol:
    """Request builders and parsers for one application. Holds no secret in its repr."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        api_origin: str = API_ORIGIN,
        management_origin: str = MANAGEMENT_ORIGIN,
        iam_url: str = IAM_URL,
        unit_system: str = "metric",
    ) -> None:
        if unit_system not in {"metric", "imperial"}:
            raise ValueError("unit_system must be metric or imperial")
        self.client_id = client_id
        self._client_secret = client_secret
        self.api_origin = api_origin.rstrip("/")
        self.management_origin = management_origin.rstrip("/")
        self.iam_url = iam_url  # the FULL token URL
        self.unit_system = unit_system
        self.subscription_routes = SubscriptionRoutes()

    def __repr__(self) -> str:
        return f"V3Protocol(client_id={self.client_id!r}, api_origin={self.api_origin!r})"

    # --- auth ------------------------------------------------------------------------------------------

    def app_token(self, sent_at: datetime) -> Plan[AppToken]:
        """`POST iam/oauth2/token` with client credentials (form-encoded, like the docs' cURL).
        `sent_at`: our clock before the request; the expiry counts from it.
        Raises OAuthError (`invalid_client` 401, `invalid_request` 400), MalformedResponse."""
        reply = yield Request(
            "POST",
            self.iam_url,
            "POST /oauth2/token",
            form=(
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id),
                ("client_secret", self._client_secret),
            ),
            app_auth=False,
        )
        body = _check(reply)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise _malformed("token", reply)
        expires_in = body.get("expires_in", DEFAULT_TOKEN_LIFETIME_S)
        try:
            seconds = units.round_int(units.decimal(expires_in, "expires_in"))
        except units.UnitError:
            raise _malformed("token", reply) from None
        return AppToken(
            access_token=token,
            expires_at=sent_at + timedelta(seconds=seconds),
            expires_in_s=seconds,
            token_type=_str(body.get("token_type")) or "Bearer",
        )

    # --- connections and users ------------------------------------------------------------------------

    def list_connections(
        self, *, user_id: str | None = None, vehicle_id: str | None = None, mode: str | None = None
    ) -> Plan[list[Connection]]:
        """Every connection (user × vehicle) of the application, following pages (not billed, 3P)."""
        filters = [("filter[userId]", user_id), ("filter[vehicleId]", vehicle_id), ("filter[vehicle.mode]", mode)]
        base = tuple((k, v) for k, v in filters if v)
        found: list[Connection] = []
        for page in range(1, MAX_PAGES + 1):
            params = (*base, ("page[number]", str(page)), ("page[size]", str(CONNECTIONS_PAGE_SIZE)))
            reply = yield Request("GET", f"{self.api_origin}/v3/connections", "GET /v3/connections", params=params)
            body = _check(reply)
            items = _items(body, "connections", reply)
            found.extend(parse_connection(item) for item in items)
            if not _more_pages(body, CONNECTIONS_PAGE_SIZE, len(items), len(found)):
                break
        return found

    def get_connection(self, connection_id: str) -> Plan[Connection]:
        path = f"/v3/connections/{_seg(connection_id, 'connection_id')}"
        reply = yield Request("GET", f"{self.api_origin}{path}", "GET /v3/connections/{id}")
        body = _check(reply)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _malformed("connection", reply)
        return parse_connection(data)

    def delete_connection(self, connection_id: str) -> Plan[bool]:
        """Disconnect one (user, vehicle). True when removed, False when it was already gone (404).
        The success answer is UNKNOWN (§3): any 2xx, with or without a body, is success."""
        path = f"/v3/connections/{_seg(connection_id, 'connection_id')}"
        reply = yield Request("DELETE", f"{self.api_origin}{path}", "DELETE /v3/connections/{id}")
        return _deleted(reply)

    def delete_user(self, user_id: str) -> Plan[bool]:
        """`DELETE /v3/users/{id}` (204): purge the user and all their connections at Smartcar."""
        reply = yield Request(
            "DELETE", f"{self.api_origin}/v3/users/{_seg(user_id, 'user_id')}", "DELETE /v3/users/{id}"
        )
        return _deleted(reply)

    # --- vehicles and signals ---------------------------------------------------------------------------

    def get_vehicle(self, vehicle_id: str) -> Plan[VehicleInfo]:
        """`GET /v3/vehicles/{id}` (no `sc-user-id`, §2). Wrapped in `data` per the docs, or
        unwrapped per the Nov-2025 spec and SDKs (CONFLICT): both are read."""
        path = f"/v3/vehicles/{_seg(vehicle_id, 'vehicle_id')}"
        reply = yield Request("GET", f"{self.api_origin}{path}", "GET /v3/vehicles/{id}")
        body = _check(reply)
        data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
        if not isinstance(data, dict):
            raise _malformed("vehicle", reply)
        attributes = data.get("attributes") if isinstance(data.get("attributes"), dict) else data
        vid = _str(data.get("id"))
        if vid is None:
            raise _malformed("vehicle", reply)
        return VehicleInfo(
            id=vid,
            make=_str(attributes.get("make")),
            model=_str(attributes.get("model")),
            year=_int(attributes.get("year")),
            powertrain_type=_str(attributes.get("powertrainType")),
            mode=_str(attributes.get("mode")),
            meta=reply.meta(),
        )

    def _user_headers(self, user_id: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(user_id, str) or not user_id:
            # Without it the API answers 400 "missing userId"; refusing here saves a billed call.
            raise ValueError("user_id (sc-user-id) is required on signals and commands")
        return (("sc-user-id", user_id),)

    def get_signals(self, user_id: str, vehicle_id: str) -> Plan[Signals]:
        """`GET /v3/vehicles/{id}/signals`: every signal in the store, each with its own time,
        unit and status (errors per signal do not fail the call). Follows pages if announced."""
        path = f"/v3/vehicles/{_seg(vehicle_id, 'vehicle_id')}/signals"
        headers = (*self._user_headers(user_id), ("SC-Unit-System", self.unit_system))
        items: list[dict] = []
        vehicle = None
        first_meta = None
        for page in range(1, MAX_PAGES + 1):
            params = () if page == 1 else (("page", str(page)),)
            reply = yield Request("GET", f"{self.api_origin}{path}", "GET /v3/vehicles/{id}/signals", headers, params)
            body = _check(reply)
            page_items = _items(body, "signals", reply)
            items.extend(page_items)
            first_meta = first_meta or reply.meta()
            included = _obj(body.get("included")).get("vehicle")
            vehicle = vehicle or (included if isinstance(included, dict) else None)
            size = _int(_obj(body.get("meta")).get("pageSize")) or len(page_items)
            if not _more_pages(body, size, len(page_items), len(items)):
                break
        try:
            signal_set = SignalSet.from_items(items, vehicle)
        except units.UnitError as exc:
            raise errors.MalformedResponse(f"signals: {exc}", status=200) from exc
        return Signals(signal_set, first_meta or Meta())

    def get_signal(self, user_id: str, vehicle_id: str, code: str) -> Plan[SingleSignal]:
        """`GET /v3/vehicles/{id}/signals/{code}`: one signal, not wrapped in `data` (accepted
        wrapped too). Raises ResourceNotFound for an unknown code or an empty store (404)."""
        path = f"/v3/vehicles/{_seg(vehicle_id, 'vehicle_id')}/signals/{_seg(code, 'code')}"
        headers = (*self._user_headers(user_id), ("SC-Unit-System", self.unit_system))
        reply = yield Request("GET", f"{self.api_origin}{path}", "GET /v3/vehicles/{id}/signals/{code}", headers)
        body = _check(reply)
        item = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
        try:
            return SingleSignal(parse_signal(item), reply.meta())
        except units.UnitError as exc:
            raise errors.MalformedResponse(f"signal: {exc}", status=reply.status) from exc

    # --- commands ---------------------------------------------------------------------------------------

    def _command(self, user_id: str, vehicle_id: str, name: str, body: Any) -> Plan[CommandResult]:
        path = f"/v3/vehicles/{_seg(vehicle_id, 'vehicle_id')}/commands/charge/{name}"
        reply = yield Request(
            "POST",
            f"{self.api_origin}{path}",
            f"POST /v3/vehicles/{{id}}/commands/charge/{name}",
            self._user_headers(user_id),
            json=body,
        )
        return parse_command(reply)

    def start_charge(self, user_id: str, vehicle_id: str) -> Plan[CommandResult]:
        """`POST commands/charge/start`. 200 = executed, 202 = accepted and still running."""
        return self._command(user_id, vehicle_id, "start", None)

    def stop_charge(self, user_id: str, vehicle_id: str) -> Plan[CommandResult]:
        return self._command(user_id, vehicle_id, "stop", None)

    def set_charge_limit(self, user_id: str, vehicle_id: str, percent: int) -> Plan[CommandResult]:
        """`POST commands/charge/set-limit {"data":{"attributes":{"percent":N}}}`, N a whole
        percent 50..100. Raises ValueError before any request otherwise."""
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise ValueError(f"percent must be a whole number, got {percent!r}")
        if not LIMIT_MIN_PERCENT <= percent <= LIMIT_MAX_PERCENT:
            raise ValueError(f"percent must be within {LIMIT_MIN_PERCENT}..{LIMIT_MAX_PERCENT}, got {percent}")
        return self._command(user_id, vehicle_id, "set-limit", {"data": {"attributes": {"percent": percent}}})

    # --- management API: webhooks and subscriptions -------------------------------------------------------

    def get_webhook(self, webhook_id: str) -> Plan[Webhook]:
        path = f"/v3/webhooks/{_seg(webhook_id, 'webhook_id')}"
        reply = yield Request("GET", f"{self.management_origin}{path}", "GET /v3/webhooks/{id}")
        body = _check(reply)
        data = _obj(body.get("data") if isinstance(body, dict) else None)
        if not _str(data.get("id")):
            raise _malformed("webhook", reply)
        attributes = _obj(data.get("attributes"))

        def codes(key: str) -> tuple[str, ...]:
            return tuple(
                str(item.get("code"))
                for item in attributes.get(key) or []
                if isinstance(item, dict) and item.get("code")
            )

        enabled = attributes.get("isEnabled")
        return Webhook(
            id=data["id"],
            name=_str(attributes.get("name")),
            callback_uri=_str(attributes.get("callbackUri")),
            enabled=enabled if isinstance(enabled, bool) else None,
            triggers=codes("triggers"),
            data=codes("data"),
            error_callback_uri=_str(attributes.get("errorCallbackUri")),
        )

    def _subscriptions_url(self, variant: str, webhook_id: str, subscription_id: str | None = None) -> str:
        tail = f"/{_seg(subscription_id, 'subscription_id')}" if subscription_id is not None else ""
        if variant == SubscriptionRoutes.SPEC:
            return f"{self.management_origin}/v3/subscriptions{tail}"
        return f"{self.management_origin}/v3/webhooks/{_seg(webhook_id, 'webhook_id')}/subscriptions{tail}"

    def _on_either_route(self, build) -> Plan[Reply]:
        """Send on the preferred route family; on a route-not-found answer, on the other one, and
        remember whichever answered."""
        first, second = self.subscription_routes.order()
        reply = yield build(first)
        if not _is_missing_route(reply):
            self.subscription_routes.preferred = first
            return reply
        other = yield build(second)
        if not _is_missing_route(other):
            self.subscription_routes.preferred = second
        return other

    def subscribe(self, webhook_id: str, user_id: str, vehicle_id: str) -> Plan[SubscribeResult]:
        """Subscribe a vehicle to a webhook: 202 "creation in progress" → created, 409 → it already
        exists (both are success for the caller). Body attribute names from 3P code (§6)."""
        payload = {"data": {"attributes": {"webhookId": webhook_id, "userId": user_id, "vehicleId": vehicle_id}}}

        def build(variant: str) -> Request:
            return Request(
                "POST", self._subscriptions_url(variant, webhook_id), f"POST subscriptions ({variant})", json=payload
            )

        reply = yield from self._on_either_route(build)
        if reply.status == 409:
            return SubscribeResult(created=False, already=True, meta=reply.meta())
        if reply.status not in (200, 201, 202) or isinstance(_obj(reply.body).get("errors"), list):
            raise error_from_reply(reply)
        message = _str(_obj(_obj(reply.body).get("meta")).get("message"))
        return SubscribeResult(created=True, already=False, message=message, meta=reply.meta())

    def list_subscriptions(
        self, webhook_id: str, *, user_id: str | None = None, vehicle_id: str | None = None
    ) -> Plan[list[Subscription]]:
        filters = [("filter[webhookId]", webhook_id), ("filter[userId]", user_id), ("filter[vehicleId]", vehicle_id)]
        base = tuple((k, v) for k, v in filters if v)
        found: list[Subscription] = []
        for page in range(1, MAX_PAGES + 1):
            params = (*base, ("page[number]", str(page)), ("page[size]", str(SUBSCRIPTIONS_PAGE_SIZE)))

            def build(variant: str, params=params) -> Request:
                return Request(
                    "GET", self._subscriptions_url(variant, webhook_id), f"GET subscriptions ({variant})", params=params
                )

            reply = yield from self._on_either_route(build)
            body = _check(reply)
            items = _items(body, "subscriptions", reply)
            found.extend(parse_subscription(item, webhook_id) for item in items)
            if not _more_pages(body, SUBSCRIPTIONS_PAGE_SIZE, len(items), len(found)):
                break
        return found

    def unsubscribe(self, webhook_id: str, subscription_id: str) -> Plan[bool]:
        """Delete a subscription. True when removed, False when already gone (404)."""

        def build(variant: str) -> Request:
            return Request(
                "DELETE",
                self._subscriptions_url(variant, webhook_id, subscription_id),
                f"DELETE subscriptions/{{id}} ({variant})",
            )

        reply = yield from self._on_either_route(build)
        return _deleted(reply)


def _deleted(reply: Reply) -> bool:
    if 200 <= reply.status < 300 and not isinstance(_obj(reply.body).get("errors"), list):
        return True
    if reply.status == 404 and not _is_missing_route(reply):
        return False  # already gone: deleting is idempotent for the caller
    raise error_from_reply(reply)


# --- parsers shared by the plans ----------------------------------------------------------------------------


def parse_connection(item: dict) -> Connection:
    attributes = _obj(item.get("attributes"))
    vehicle = _obj(attributes.get("vehicle"))
    permissions = attributes.get("permissions")
    return Connection(
        id=str(item.get("id") or ""),
        user_id=_rel_id(item, "user"),
        vehicle_id=_rel_id(item, "vehicle"),
        permissions=tuple(p for p in permissions if isinstance(p, str)) if isinstance(permissions, list) else (),
        make=_str(vehicle.get("make")),
        model=_str(vehicle.get("model")),
        year=_int(vehicle.get("year")),
        mode=_str(vehicle.get("mode")),
        powertrain_type=_str(vehicle.get("powertrainType")),
        created_at=units.parse_timestamp(_obj(item.get("meta")).get("createdAt")),
    )


def parse_subscription(item: dict, webhook_id: str | None = None) -> Subscription:
    vehicle = _obj(_obj(item.get("attributes")).get("vehicle"))
    return Subscription(
        id=_str(item.get("id")),
        webhook_id=_rel_id(item, "webhook") or webhook_id,
        user_id=_rel_id(item, "user"),
        vehicle_id=_rel_id(item, "vehicle"),
        make=_str(vehicle.get("make")),
        model=_str(vehicle.get("model")),
        year=_int(vehicle.get("year")),
        mode=_str(vehicle.get("mode")),
    )


FINAL_FAILURE = {"FAILURE", "FAILED", "ERROR"}


def parse_command(reply: Reply) -> CommandResult:
    """200 = executed; 202 = "in process but long-running: always read the body" (§4). An
    `errors[]` body raises whatever the HTTP status; a FAILURE status raises CommandFailed."""
    if reply.status not in (200, 202) or isinstance(_obj(reply.body).get("errors"), list):
        raise error_from_reply(reply)
    data = _obj(_obj(reply.body).get("data"))
    attributes = _obj(data.get("attributes"))
    meta = _obj(data.get("meta"))
    status = _str(_obj(attributes.get("status")).get("value"))
    status = status.upper() if status else None
    if status in FINAL_FAILURE:
        raise errors.CommandFailed(
            f"command {attributes.get('commandType') or ''} reported {status}".strip(),
            status=reply.status,
            type="COMMAND",
            code=status,
            request_id=_header(reply.headers, "SC-Request-Id"),
            body=reply.body,
        )
    # 200 without a readable status is still "executed synchronously and successfully"; a 202 is
    # done only once its body says SUCCESS (the outcome streamed on the held connection).
    done = status == "SUCCESS" or (reply.status == 200 and status is None)
    try:
        duration = (
            units.decimal(meta["durationInSeconds"], "durationInSeconds") if "durationInSeconds" in meta else None
        )
    except units.UnitError:
        duration = None
    parameters = attributes.get("parameters")
    return CommandResult(
        command_type=_str(attributes.get("commandType")),
        done=done,
        status=status,
        execution_id=_str(data.get("id")),
        execution_mode=_str(attributes.get("executionMode")),
        parameters=dict(parameters) if isinstance(parameters, dict) else {},
        executed_at=units.parse_timestamp(meta.get("executedAt")),
        completed_at=units.parse_timestamp(meta.get("completedAt")),
        duration_s=duration if isinstance(duration, Decimal) else None,
        meta=reply.meta(),
    )
