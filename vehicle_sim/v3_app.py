"""The simulator's v3 routes, served by the WSGI app `app.SimulatorApp` (its `dispatch`).

One origin stands for every v3 host (docs/reference/vehicle-api-v3.md §1.1): the IAM endpoint
`POST /oauth2/token`, the vehicle API `/v3/connections|users|vehicles/…` and the management API
`/v3/webhooks|subscriptions/…` (no path of one collides with the other's). Admin routes for tests
and tools live under `/_sim/v3/…` (loopback only). v3 errors use the `errors[]` body (§5).
"""

from __future__ import annotations

from typing import Any

from . import v3_webhooks
from .app import LOOPBACK, Request, Response, error_response, json_response
from .errors import ApiError, OAuthError
from .v3 import GenericError, V3Platform, platform

COMMANDS = {"start", "stop", "set-limit"}


def dispatch_v3(app, request: Request) -> Response | None:
    """The v3 answer for this request, or None when the path is not a v3 one."""
    path = request.path
    if path == "/oauth2/token":
        return token(app, request)
    if path == "/_sim/v3" or path.startswith("/_sim/v3/"):
        return admin(app, request)
    if path == "/v3" or path.startswith("/v3/"):
        return api(app, request)
    return None


# --- IAM ----------------------------------------------------------------------------------------------


def token(app, request: Request) -> Response:
    """Client-credentials token. The docs' cURL posts a form, the spec a JSON body: both are
    accepted (§2 "Encoding"). 400 invalid_request / unsupported_grant_type, 401 invalid_client."""
    if request.method != "POST":
        return json_response(405, {"error": "invalid_request", "error_description": "Use POST."})
    try:
        if "json" in (request.header("Content-Type") or "").lower():
            params = request.json()
        else:
            params = {k: v[-1] for k, v in request.form().items()}
    except (ValueError, UnicodeDecodeError):
        params = None
    if not isinstance(params, dict):
        return json_response(
            400, {"error": "invalid_request", "error_description": "The body is not a form or a JSON object."}
        )
    client_id, client_secret = params.get("client_id"), params.get("client_secret")
    if client_id is None:
        client_id, client_secret = app._basic_auth(request)
    if not params.get("grant_type"):
        return json_response(400, {"error": "invalid_request", "error_description": "grant_type is required."})
    sim = app.sim
    try:
        with sim.lock:
            plat = platform(sim)
            if params["grant_type"] != "client_credentials":
                plat.engine.check_client(client_id, client_secret)
                raise OAuthError("unsupported_grant_type", "Use client_credentials.")
            payload = plat.issue_app_token(client_id, client_secret)
    except OAuthError as error:
        return json_response(error.status, error.to_body())
    return json_response(200, payload)


# --- the API --------------------------------------------------------------------------------------------


def _page(items: list, query: dict, default_size: int, base: str) -> tuple[list, dict, dict]:
    try:
        number = int(query.get("page[number]") or 1)
        size = int(query.get("page[size]") or default_size)
    except ValueError:
        raise ApiError("VALIDATION", "PARAMETER", "page[number] and page[size] must be integers.") from None
    if number < 1 or not 1 <= size <= 100:
        raise ApiError("VALIDATION", "PARAMETER", "page[number] ≥ 1 and 1 ≤ page[size] ≤ 100.")
    start = (number - 1) * size
    chunk = items[start : start + size]
    more = start + size < len(items)
    meta = {"page": number, "pageSize": size, "totalCount": len(items)}
    links = {
        "self": f"{base}?page[number]={number}&page[size]={size}",
        "next": f"{base}?page[number]={number + 1}&page[size]={size}" if more else None,
    }
    return chunk, meta, links


def _json_body(request: Request) -> Any:
    try:
        return request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError("VALIDATION", None, "The request body is not valid JSON.") from None


def api(app, request: Request) -> Response:
    sim = app.sim
    try:
        with sim.lock:
            plat = platform(sim)
            plat.authenticate(request.bearer())
            plat.engine.take_app_token()
            status, body, delay = _route(plat, request)
    except (ApiError, GenericError) as error:
        return error_response(error)
    response = Response(204, b"", {}) if status == 204 else json_response(status, body)
    response.delay_s = delay
    return response


def _route(plat: V3Platform, request: Request) -> tuple[int, Any, float]:
    parts = request.path.strip("/").split("/")[1:]
    method = request.method
    query = request.query
    unit = "imperial" if (request.header("SC-Unit-System") or "").lower() == "imperial" else "metric"
    user_header = request.header("sc-user-id")
    head = parts[0] if parts else ""

    if head == "vehicles" and len(parts) >= 2:
        vid = parts[1]
        if len(parts) == 2 and method == "GET":
            return 200, plat.vehicle_body(vid), 0.0
        if len(parts) == 3 and parts[2] == "signals" and method == "GET":
            body, v = plat.read_signals(user_header, vid, unit)
            return 200, body, plat.read_delay(v)
        if len(parts) == 4 and parts[2] == "signals" and method == "GET":
            body, v = plat.read_signals(user_header, vid, unit)
            item = next((i for i in body["data"] if i["id"] == parts[3].lower()), None)
            if item is None:
                raise ApiError("RESOURCE_NOT_FOUND", None, f"No signal {parts[3]} for this vehicle.")
            return 200, item, plat.read_delay(v)
        if len(parts) == 5 and parts[2:4] == ["commands", "charge"] and parts[4] in COMMANDS and method == "POST":
            return plat.command(user_header, vid, parts[4], _json_body(request))
    if head == "connections":
        if len(parts) == 1 and method == "GET":
            items = plat.connections()
            for key, field in (("filter[userId]", "user_id"), ("filter[vehicleId]", "vehicle_id")):
                if query.get(key):
                    items = [c for c in items if c[field] == query[key]]
            if query.get("filter[vehicle.mode]") not in (None, "", "live"):
                items = []  # every simulated car is a "live" one
            chunk, meta, links = _page(items, query, 10, "/connections")
            return 200, {"data": [plat.connection_body(c) for c in chunk], "meta": meta, "links": links}, 0.0
        if len(parts) == 2 and method == "GET":
            return 200, {"data": plat.connection_body(plat.find_connection(parts[1]))}, 0.0
        if len(parts) == 2 and method == "DELETE":
            plat.delete_connection(parts[1])
            return 204, None, 0.0
    if head == "users" and len(parts) == 2 and method == "DELETE":
        plat.delete_user(parts[1])
        return 204, None, 0.0
    if head == "webhooks" and len(parts) == 1 and method == "GET":
        hooks = sorted(plat.webhooks.values(), key=lambda h: h["createdAt"])
        chunk, meta, links = _page(hooks, query, 50, "/webhooks")
        return 200, {"data": [plat.webhook_body(h) for h in chunk], "meta": meta, "links": links}, 0.0
    if head == "webhooks" and len(parts) == 2 and method == "GET":
        return 200, {"data": plat.webhook_body(plat.webhook(parts[1]))}, 0.0
    routes = plat.config.subscription_routes
    if head == "subscriptions" and routes in {"spec", "both"}:
        return _subscriptions(plat, request, parts[1:], webhook_id=None)
    if head == "webhooks" and len(parts) >= 3 and parts[2] == "subscriptions" and routes in {"blog", "both"}:
        plat.webhook(parts[1])
        return _subscriptions(plat, request, parts[3:], webhook_id=parts[1])
    raise ApiError("RESOURCE_NOT_FOUND", "PATH", f"Path {request.path} does not exist for {method}.")


def _subscriptions(plat: V3Platform, request: Request, rest: list[str], webhook_id: str | None):
    method = request.method
    query = request.query
    if not rest and method == "POST":
        body = _json_body(request)
        attributes = ((body or {}).get("data") or {}).get("attributes") if isinstance(body, dict) else None
        attributes = attributes if isinstance(attributes, dict) else {}
        plat.subscribe(attributes.get("webhookId") or webhook_id, attributes.get("userId"), attributes.get("vehicleId"))
        return 202, {"meta": {"message": "subscription creation in progress"}}, 0.0
    if not rest and method == "GET":
        items = sorted(plat.subscriptions.values(), key=lambda s: s["created_at"])
        filters = (
            ("filter[webhookId]", "webhook_id"),
            ("filter[userId]", "user_id"),
            ("filter[vehicleId]", "vehicle_id"),
        )
        wanted = {field: query[key] for key, field in filters if query.get(key)}
        if webhook_id:
            wanted["webhook_id"] = webhook_id
        items = [s for s in items if all(s[field] == value for field, value in wanted.items())]
        chunk, meta, links = _page(items, query, 25, "/subscriptions")
        return 200, {"data": [plat.subscription_body(s) for s in chunk], "meta": meta, "links": links}, 0.0
    if len(rest) == 1 and method == "GET":
        return 200, {"data": plat.subscription_body(plat.find_subscription(rest[0], webhook_id))}, 0.0
    if len(rest) == 1 and method == "DELETE":
        plat.unsubscribe(rest[0], webhook_id)
        return 204, None, 0.0
    raise ApiError("RESOURCE_NOT_FOUND", "PATH", f"Path {request.path} does not exist for {method}.")


# --- admin (loopback only) ---------------------------------------------------------------------------------


def admin(app, request: Request) -> Response:
    if request.remote_addr not in LOOPBACK:
        return json_response(403, {"error": "the simulator admin API is loopback-only"})
    try:
        body = request.json() or {}
    except ValueError:
        return json_response(400, {"error": "invalid JSON"})
    parts = request.path.strip("/").split("/")[2:]
    try:
        payload = _admin_route(app, request.method, parts, body)
    except KeyError as exc:
        return json_response(404, {"error": f"not found: {exc.args[0]}"})
    except (ValueError, TypeError, ApiError) as exc:
        return json_response(400, {"error": str(exc)})
    if payload is None:
        return json_response(404, {"error": f"no admin route {request.method} {request.path}"})
    return json_response(200, payload)


def _admin_route(app, method: str, parts: list[str], body: dict) -> Any:
    sim = app.sim
    plat = platform(sim)
    if parts == [] and method == "GET":
        with sim.lock:
            return plat.state()
    if parts == ["config"]:
        with sim.lock:
            if method == "POST":
                plat.config.update(body)
                sim.dirty = True
            return plat.state()["config"]
    if parts == ["connections"] and method == "POST":
        with sim.lock:
            return plat.connect(str(body["vehicle_id"]), body.get("scopes"), body.get("user_id"))
    if parts == ["webhooks"] and method == "GET":
        with sim.lock:
            return {"webhooks": list(plat.webhooks.values())}
    if parts == ["webhooks"] and method == "POST":
        options = {
            "name": body.get("name", "Simulator webhook"),
            "error_callback_uri": body.get("errorCallbackUri"),
            "triggers": body.get("triggers"),
            "data": body.get("data"),
            "units": body.get("units", "metric"),
            "verified": body.get("verified", False),
            "enabled": body.get("enabled", True),
            "webhook_id": body.get("id"),
        }
        with sim.lock:
            return plat.create_webhook(body.get("callbackUri"), **options)
    if len(parts) == 3 and parts[0] == "webhooks" and parts[2] == "verify" and method == "POST":
        with sim.lock:
            plat.webhook(parts[1])
        return {"ok": v3_webhooks.send_verify(sim, parts[1])}
    if parts == ["deliver"] and method == "POST":
        return {"sent": v3_webhooks.deliver_due(sim)}
    if parts == ["outbox"] and method == "GET":
        with sim.lock:
            pending = [
                {
                    "eventId": i["event"]["eventId"],
                    "eventType": i["event"]["eventType"],
                    "due": i["due"],
                    "attempt": i["attempt"],
                    "url": i["url"],
                }
                for i in plat.outbox
            ]
            return {"pending": pending, "log": list(plat.log)}
    if len(parts) == 3 and parts[0] == "vehicles" and parts[2] == "traits":
        with sim.lock:
            if method == "POST":
                return plat.set_traits(parts[1], body)
            return plat.traits_of(sim.vehicles[parts[1]]).to_dict()
    if parts == ["tokens", "expire"] and method == "POST":
        with sim.lock:
            if body.get("token") not in plat.app_tokens:
                raise KeyError("token")
            plat.app_tokens[body["token"]] = plat.now()
            sim.dirty = True
            return {"ok": True}
    return None
