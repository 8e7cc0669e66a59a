"""The simulator's wire protocol: a plain WSGI callable over `engine.Simulator`.

No Django: it runs in-process through `httpx.WSGITransport` and in a threaded `wsgiref` server
(`server.SimulatorServer`). It serves Smartcar's v3 (`v3_app`: the IAM token, `/v3/…`,
`/_sim/v3/…`), the Connect consent page `/oauth/authorize` that v3 still uses for `user_id`, and
the loopback admin API `/_sim/…`. Paths are accepted with and without a trailing slash, because
the official SDKs use both forms.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .auth import ALL_SCOPES
from .clock import UTC, VirtualClock, iso_ms
from .engine import Simulator
from .errors import ApiError
from .v3 import GenericError, platform
from .world import world_named

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
STATUS_TEXT = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "Too Many Requests",
    430: "Billing Limit",  # an unassigned status Smartcar uses for BILLING errors
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
}


class Request:
    def __init__(self, environ: dict):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        # Both forms are valid: `/v3/vehicles/{id}/` and `/v3/vehicles/{id}`.
        self.path = path.rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        self.remote_addr = environ.get("REMOTE_ADDR", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        self.raw_body = environ["wsgi.input"].read(length) if length > 0 else b""

    def header(self, name: str) -> str | None:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        return self.environ.get(key)

    def json(self) -> Any:
        if not self.raw_body.strip():
            return None
        return json.loads(self.raw_body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.raw_body.decode("utf-8", "replace"), keep_blank_values=True)

    def bearer(self) -> str | None:
        auth = self.header("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Response:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None, delay_s: float = 0.0):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.delay_s = delay_s


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None, request_id: str | None = None):
    out = {"Content-Type": "application/json", "SC-Request-Id": request_id or str(uuid.uuid4())}
    out.update(headers or {})
    return Response(status, json.dumps(payload).encode(), out)


def error_body(error: ApiError) -> dict:
    """The v2 error as a v3 `errors[]` item: statusCode → status (string), description → detail
    (+ title), docURL → links.about (§5 "v2→v3 field map")."""
    v2 = error.to_body("")
    item = {
        "status": str(error.status),
        "type": error.type,
        "code": error.code,
        "title": STATUS_TEXT.get(error.status, "Error"),
        "detail": error.description,
        "links": {"about": v2["docURL"]},
        "resolution": v2["resolution"],
        "suggestedUserMessage": v2["suggestedUserMessage"],
    }
    return {"errors": [item]}


def error_response(error: ApiError | GenericError) -> Response:
    if isinstance(error, GenericError):
        body = {
            "errors": [{"status": str(error.status), "code": error.code, "title": error.title, "detail": error.detail}]
        }
        return json_response(error.status, body)
    return json_response(error.status, error_body(error), error.headers())


class SimulatorApp:
    """WSGI callable. `on_change` is called after a request that changed persistent state."""

    def __init__(
        self,
        sim: Simulator,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_change: Callable[[Simulator], None] | None = None,
    ):
        self.sim = sim
        self.sleep = sleep
        self.on_change = on_change

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except ApiError as error:
            response = error_response(error)
        except Exception:
            # A simulator bug still answers like the real API would: a JSON SERVER error.
            log.exception("simulator failed on %s %s", request.method, request.path)
            response = error_response(ApiError("SERVER", "INTERNAL"))
        if response.delay_s > 0:
            # Held outside the simulator lock: a hanging car must not block the others.
            self.sleep(response.delay_s)
        if self.on_change is not None and self.sim.dirty:
            self.sim.dirty = False
            self.on_change(self.sim)
        status_line = f"{response.status} {STATUS_TEXT.get(response.status, 'Unknown')}"
        headers = [*response.headers.items(), ("Content-Length", str(len(response.body)))]
        start_response(status_line, headers)
        return [response.body]

    # --- routing ----------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        from .v3_app import dispatch_v3  # v3_app builds on this module's Request and Response

        v3_response = dispatch_v3(self, request)
        if v3_response is not None:
            return v3_response
        if request.path.startswith("/_sim"):
            return self.admin(request)
        if request.path == "/oauth/authorize":
            return self.authorize(request)
        raise ApiError("RESOURCE_NOT_FOUND", "PATH", f"Path {request.path} does not exist.")

    # --- Connect: the consent page ---------------------------------------------------------------
    def authorize(self, request: Request) -> Response:
        if request.method == "GET":
            params = request.query
        elif request.method == "POST":
            params = {k: v[-1] for k, v in request.form().items()}
            params["vehicle"] = request.form().get("vehicle", [])
        else:
            return self.html(405, "<p>Method not allowed.</p>")
        client_id = params.get("client_id")
        redirect_uri = params.get("redirect_uri") or ""
        if client_id != self.sim.grants.client_id:
            return self.html(400, "<h1>Unknown application</h1><p>The client_id is not registered.</p>")
        if not redirect_uri.startswith(("http://", "https://")):
            return self.html(400, "<h1>Invalid redirect_uri</h1>")
        scopes = [s.removeprefix("required:") for s in (params.get("scope") or "").replace("+", " ").split()]
        scopes = [s for s in scopes if s] or list(ALL_SCOPES)
        state = params.get("state")
        if request.method == "GET":
            return self.consent_page(params, scopes)
        if params.get("action") != "approve":
            return self.redirect(
                redirect_uri,
                {"error": "access_denied", "error_description": "User denied access to application.", "state": state},
            )
        chosen = [vid for vid in params["vehicle"] if vid in {v.id for v in self.sim.connectable_vehicles()}]
        if not chosen:
            return self.redirect(
                redirect_uri,
                {"error": "no_vehicles", "error_description": "No vehicle was selected.", "state": state},
            )
        user_id = self.sim.connect(chosen, scopes)
        # v3 uses the consenting user's id; a `code` still comes along but is never exchanged
        # (docs/reference/vehicle-api-v3.md §1.2), so it is not kept.
        code = str(uuid.uuid4())
        return self.redirect(redirect_uri, {"code": code, "user_id": user_id, "state": state})

    def consent_page(self, params: dict, scopes: list[str]) -> Response:
        esc = html.escape
        vehicles = self.sim.connectable_vehicles()
        single = params.get("single_select") == "true"
        kind = "radio" if single else "checkbox"
        rows = "".join(
            f'<li><label><input type="{kind}" name="vehicle" value="{esc(v.id)}"> '
            f"{esc(v.make)} {esc(v.profile.model)} {v.profile.year} · VIN {esc(v.vin)} · "
            f"{round(v.soc * 100)} %{' · plugged in' if v.plugged else ''}"
            f"{' · <strong>' + esc(v.label) + '</strong>' if v.label else ''}</label></li>"
            for v in vehicles
        )
        hidden = "".join(
            f'<input type="hidden" name="{esc(k)}" value="{esc(str(params[k]))}">'
            for k in ("client_id", "redirect_uri", "scope", "state", "response_type", "mode", "single_select")
            if params.get(k) is not None
        )
        scope_items = "".join(f"<li>{esc(s)}</li>" for s in scopes)
        body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connect your vehicle · Simulator</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
li{{margin:.3rem 0}} button{{padding:.5rem 1rem;margin-right:.5rem}}</style></head>
<body><h1>Connect your vehicle</h1>
<p>The application <strong>{esc(params.get("client_id", ""))}</strong> asks for these permissions:</p>
<ul class="scopes">{scope_items}</ul>
<form method="post" action="/oauth/authorize">{hidden}
<h2>Choose vehicles</h2>
<ul class="vehicles">{rows or "<li>No simulated vehicle is available. Create one with sim_vehicle.</li>"}</ul>
<button type="submit" name="action" value="approve">Allow</button>
<button type="submit" name="action" value="deny">Deny</button>
</form></body></html>"""
        return self.html(200, body)

    @staticmethod
    def _basic_auth(request: Request) -> tuple[str | None, str | None]:
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            decoded = base64.b64decode(encoded.strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret

    @staticmethod
    def redirect(uri: str, params: dict) -> Response:
        parts = urlsplit(uri)
        extra = urlencode({k: v for k, v in params.items() if v is not None})
        query = f"{parts.query}&{extra}" if parts.query else extra
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
        return Response(302, b"", {"Location": location, "Content-Type": "text/html; charset=utf-8"})

    @staticmethod
    def html(status: int, body: str) -> Response:
        return Response(status, body.encode(), {"Content-Type": "text/html; charset=utf-8"})

    # --- admin API for tools and tests (loopback only) ----------------------------------------
    def admin(self, request: Request) -> Response:
        if request.remote_addr not in LOOPBACK:
            return json_response(403, {"error": "the simulator admin API is loopback-only"})
        try:
            body = request.json() or {}
        except ValueError:
            return json_response(400, {"error": "invalid JSON"})
        parts = request.path.strip("/").split("/")[1:]
        method = request.method
        try:
            payload = self._admin_route(method, parts, body)
        except KeyError as exc:
            return json_response(404, {"error": f"not found: {exc.args[0]}"})
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        if payload is None:
            return json_response(404, {"error": f"no admin route {method} {request.path}"})
        return json_response(200, payload)

    def _admin_route(self, method: str, parts: list[str], body: dict) -> Any:
        sim = self.sim
        if parts == ["health"]:
            return {"ok": True, "now": iso_ms(sim.now())}
        if parts == ["vehicles"] and method == "GET":
            return {"vehicles": [sim.true_state(vid) for vid in list(sim.vehicles)]}
        if parts == ["vehicles"] and method == "POST":
            body = dict(body)
            connect = body.pop("connect", True)
            scopes = body.pop("scopes", None)
            vehicle = sim.create_vehicle(**body)
            result = sim.true_state(vehicle.id)
            if connect:
                with sim.lock:
                    result.update(platform(sim).connect(vehicle.id, scopes))
            return result
        if len(parts) == 2 and parts[0] == "vehicles":
            if method == "GET":
                return sim.true_state(parts[1])
            if method in {"POST", "PATCH"}:
                return sim.set_vehicle(parts[1], **body)
        if len(parts) == 3 and parts[0] == "vehicles" and method == "POST":
            vid, action = parts[1], parts[2]
            if action in {"plug", "unplug"}:
                return sim.set_vehicle(vid, plugged=action == "plug", sync_snapshot=body.get("sync_snapshot", False))
            if action == "drive":
                sim.drive(vid)
                return sim.true_state(vid)
            if action == "refresh":
                sim.refresh_snapshot(vid)
                return sim.true_state(vid)
        if parts == ["clock"] and method == "GET":
            return {"now": iso_ms(sim.now()), "virtual": isinstance(sim.clock, VirtualClock)}
        if parts == ["clock", "advance"] and method == "POST":
            return {"now": iso_ms(sim.advance_clock(float(body.get("seconds", 0))).timestamp())}
        if parts == ["clock", "set"] and method == "POST":
            if not isinstance(sim.clock, VirtualClock):
                raise ValueError("only a VirtualClock can be set")
            target = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00")).astimezone(UTC)
            return {"now": iso_ms(sim.clock.set(target).timestamp())}
        if parts == ["reset"] and method == "POST":
            sim.reset()
            platform(sim).reset()
            return {"ok": True}
        if parts == ["faults"]:
            if method == "POST":
                with sim.lock:
                    sim.global_faults.update(body)
                    sim.dirty = True
            return {"faults": sim.global_faults.__dict__}
        if parts == ["counters"] and method == "GET":
            with sim.lock:
                return {"global": dict(sim.calls), "vehicles": {vid: dict(v.calls) for vid, v in sim.vehicles.items()}}
        if parts == ["config"] and method == "POST":
            with sim.lock:
                for name in ("app_rate_limit", "vehicle_rate_limit", "command_latency_s"):
                    if name in body:
                        setattr(sim, name, tuple(body[name]) if body[name] is not None else None)
                if "billing_limit_per_month" in body:
                    sim.billing_limit_per_month = body["billing_limit_per_month"]
                if "world" in body:
                    # Cars created from now on draw from it; answers, limits and its throttle apply at once.
                    sim.world = world_named(body["world"])
                    if "vehicle_rate_limit" not in body:
                        sim.vehicle_rate_limit = sim.world.vehicle_throttle
                sim.dirty = True
            return {"ok": True}
        return None


def make_app(sim: Simulator, **kwargs) -> SimulatorApp:
    return SimulatorApp(sim, **kwargs)


def in_process_client(
    sim: Simulator, base_url: str = "http://simulator.invalid", *, read_timeout_s: float | None = None, **kwargs
):
    """An httpx.Client wired straight into the app: no socket, no thread (tests, benchmarks).

    Response delays are never slept through here. With `read_timeout_s`, a delay longer than it
    raises `httpx.ReadTimeout` in the caller, as a real client would see it; the request has
    still reached the simulator (a command sent before a timeout may take effect).
    """
    import httpx  # local: the WSGI app itself needs nothing beyond the standard library

    def hold(seconds: float) -> None:
        if read_timeout_s is not None and seconds > read_timeout_s:
            raise httpx.ReadTimeout(f"simulated: no answer within {read_timeout_s} s")

    app = make_app(sim, sleep=hold)
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url=base_url, **kwargs)
