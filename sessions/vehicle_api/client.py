"""The project's only HTTP client to the vehicle API (Smartcar v2.0 wire protocol).

One `httpx.Client` with an explicit timeout (commands may take 300 s at the API; we wait 310 s
like the official SDKs), typed results (`types.py`) and typed errors (`errors.py`). Every float
from the API is converted to integers exactly once, here, with `Decimal(str(x))` and ROUND_HALF_UP.

Reference: shared/docs/vehicle-api.md (§2 endpoints, §3 errors, §4 OAuth).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from . import errors
from .types import (
    ActionResult,
    Battery,
    BatteryCapacity,
    ChargeLimit,
    ChargeState,
    ChargeStatus,
    RawResult,
    ResponseMeta,
    TeslaCharge,
    TokenPair,
    UserInfo,
    VehicleAttributes,
    Vin,
)

API_VERSION = "2.0"
DEFAULT_SCOPES = ("read_vehicle_info", "read_battery", "read_charge", "control_charge")
CONNECT_MODES = ("live", "simulated", "test")
# The token endpoint does not return the refresh token's lifetime; the docs give 60 days and both
# official SDKs compute it client-side (vehicle-api.md §4.2).
REFRESH_TOKEN_LIFETIME = timedelta(days=60)
MAX_VEHICLES_PAGE = 50  # documented maximum of `limit` on GET /vehicles
MILES_TO_KM = Decimal("1.609344")
USER_AGENT = "PrepaidCharge/0.1 (httpx)"

_ONE = Decimal(1)
_TENTH = Decimal("0.1")

BatchResult = ChargeStatus | Battery | BatteryCapacity | ChargeLimit | VehicleAttributes | TeslaCharge | Vin | RawResult


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- unit conversion (the one place floats become integers) -------------------------------------


def _decimal(value: Any, what: str) -> Decimal:
    # bool is an int subclass: `true` must not become 1 kWh.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise errors.MalformedResponse(f"{what}: expected a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise errors.MalformedResponse(f"{what}: expected a number, got {value!r}") from None
    if not number.is_finite():
        raise errors.MalformedResponse(f"{what}: not a finite number: {value!r}")
    return number


def kwh_to_wh(value: Any, what: str = "kWh") -> int:
    """kWh (float or numeric string) → integer Wh, rounded half up."""
    return int((_decimal(value, what) * 1000).quantize(_ONE, rounding=ROUND_HALF_UP))


def kw_to_w(value: Any, what: str = "kW") -> int:
    """kW → integer W, rounded half up."""
    return int((_decimal(value, what) * 1000).quantize(_ONE, rounding=ROUND_HALF_UP))


def fraction_to_bp(value: Any, what: str = "fraction") -> int:
    """0..1 fraction → integer basis points 0..10000, rounded half up.

    Values above 1 are refused rather than clamped: v2 sends fractions, and a 0..100 percentage
    here would mean a protocol mix-up (v3 uses percentages) that must not pass silently."""
    number = _decimal(value, what)
    if number < 0 or number > 1:
        raise errors.MalformedResponse(f"{what}: expected a 0..1 fraction, got {value!r}")
    return int((number * 10000).quantize(_ONE, rounding=ROUND_HALF_UP))


def _optional(value: Any, convert: Callable[[Any, str], Any], what: str) -> Any:
    return None if value is None else convert(value, what)


def _round_int(value: Any, what: str) -> int:
    return int(_decimal(value, what).quantize(_ONE, rounding=ROUND_HALF_UP))


def _distance_km(value: Any, unit_system: str | None, what: str) -> Decimal:
    number = _decimal(value, what)
    if unit_system == "imperial":
        number *= MILES_TO_KM
    return number.quantize(_TENTH, rounding=ROUND_HALF_UP)


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 (with `Z` or an offset) → aware UTC datetime; None when absent or unparsable.

    A garbled freshness header must not fail a reading: the body is still good."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the API always sends UTC; a naive value is UTC without the marker
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _get_header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def meta_from_headers(
    headers: Mapping[str, str], *, latency_s: float | None, request_id: str | None = None
) -> ResponseMeta:
    return ResponseMeta(
        request_id=_get_header(headers, "SC-Request-Id") or request_id,
        data_age=parse_datetime(_get_header(headers, "SC-Data-Age")),
        fetched_at=parse_datetime(_get_header(headers, "SC-Fetched-At")),
        unit_system=_get_header(headers, "SC-Unit-System"),
        latency_s=latency_s,
    )


# --- body parsers (shared by the single endpoints and batch) ------------------------------------


def _require(body: Any, key: str, kinds: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise errors.MalformedResponse(f"{what}: missing field {key!r}", body=body)
    value = body[key]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in _as_tuple(kinds)):
        raise errors.MalformedResponse(f"{what}: field {key!r} has the wrong type: {value!r}", body=body)
    return value


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _charge_state(value: Any, what: str) -> ChargeState:
    try:
        return ChargeState(value)
    except ValueError:
        raise errors.MalformedResponse(f"{what}: unknown charge state {value!r}") from None


def parse_charge(body: Any, meta: ResponseMeta) -> ChargeStatus:
    return ChargeStatus(
        is_plugged_in=_require(body, "isPluggedIn", bool, "charge"),
        state=_charge_state(_require(body, "state", str, "charge"), "charge"),
        meta=meta,
    )


def parse_battery(body: Any, meta: ResponseMeta) -> Battery:
    fraction = _require(body, "percentRemaining", (int, float, str), "battery")
    range_value = body.get("range")
    return Battery(
        soc_bp=fraction_to_bp(fraction, "battery.percentRemaining"),
        range_km=None if range_value is None else _distance_km(range_value, meta.unit_system, "battery.range"),
        meta=meta,
    )


def parse_capacity(body: Any, meta: ResponseMeta) -> BatteryCapacity:
    capacity = _require(body, "capacity", (int, float, str), "battery/capacity")
    capacity_wh = kwh_to_wh(capacity, "battery.capacity")
    return BatteryCapacity(capacity_wh=capacity_wh, source="capacity", available_wh=(capacity_wh,), meta=meta)


def parse_nominal_capacity(body: Any, meta: ResponseMeta) -> BatteryCapacity:
    if not isinstance(body, dict):
        raise errors.MalformedResponse("battery/nominal_capacity: expected an object", body=body)
    available = body.get("availableCapacities") or []
    if not isinstance(available, list):
        raise errors.MalformedResponse("battery/nominal_capacity: availableCapacities is not a list", body=body)
    available_wh = tuple(
        kwh_to_wh(item.get("capacity"), "availableCapacities.capacity")
        for item in available
        if isinstance(item, dict) and item.get("capacity") is not None
    )
    chosen = body.get("capacity")
    if isinstance(chosen, dict) and chosen.get("nominal") is not None:
        capacity_wh: int | None = kwh_to_wh(chosen["nominal"], "capacity.nominal")
    elif len(set(available_wh)) == 1:
        # Only one candidate (possibly listed for several trims): unambiguous.
        capacity_wh = available_wh[0]
    else:
        # Several trims and no selection: guessing would mis-size every estimate; leave it unknown.
        capacity_wh = None
    return BatteryCapacity(capacity_wh=capacity_wh, source="nominal_capacity", available_wh=available_wh, meta=meta)


def parse_charge_limit(body: Any, meta: ResponseMeta) -> ChargeLimit:
    limit = _require(body, "limit", (int, float, str), "charge/limit")
    return ChargeLimit(limit_bp=fraction_to_bp(limit, "charge.limit"), meta=meta)


def parse_attributes(body: Any, meta: ResponseMeta) -> VehicleAttributes:
    year = body.get("year") if isinstance(body, dict) else None
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        try:
            year = int(str(year))
        except ValueError:
            raise errors.MalformedResponse(f"attributes: bad year {year!r}", body=body) from None
    return VehicleAttributes(
        id=_require(body, "id", str, "attributes"),
        make=_require(body, "make", str, "attributes"),
        model=_require(body, "model", str, "attributes"),
        year=year,
        meta=meta,
    )


def parse_vin(body: Any, meta: ResponseMeta) -> Vin:
    return Vin(vin=_require(body, "vin", str, "vin"), meta=meta)


def parse_tesla_charge(body: Any, meta: ResponseMeta) -> TeslaCharge:
    if not isinstance(body, dict):
        raise errors.MalformedResponse("tesla/charge: expected an object", body=body)
    state = body.get("state")
    plugged = body.get("isPluggedIn")
    if plugged is not None and not isinstance(plugged, bool):
        raise errors.MalformedResponse(f"tesla/charge: isPluggedIn is not a boolean: {plugged!r}", body=body)
    charge_rate = body.get("chargeRate")
    return TeslaCharge(
        # `energyAdded` is documented as "kilowatts" but is the session's energy in kWh (§2.2).
        energy_added_wh=_optional(body.get("energyAdded"), kwh_to_wh, "tesla.energyAdded"),
        power_w=_optional(body.get("wattage"), kw_to_w, "tesla.wattage"),
        state=None if state is None else _charge_state(state, "tesla/charge"),
        is_plugged_in=plugged,
        soc_limit_bp=_optional(body.get("socLimit"), fraction_to_bp, "tesla.socLimit"),
        amperage_a=_optional(body.get("amperage"), _round_int, "tesla.amperage"),
        voltage_v=_optional(body.get("voltage"), _round_int, "tesla.voltage"),
        charge_rate_kmh=None
        if charge_rate is None
        else _distance_km(charge_rate, meta.unit_system, "tesla.chargeRate"),
        completion_time=parse_datetime(body.get("completionTime")),
        meta=meta,
    )


def parse_action(body: Any, meta: ResponseMeta) -> ActionResult:
    return ActionResult(
        status=_require(body, "status", str, "action"),
        message=body.get("message") if isinstance(body.get("message"), str) else None,
        meta=meta,
    )


#: batch path → parser. Paths are relative to /vehicles/{id} ("/" is the attributes endpoint).
BATCH_PARSERS: dict[str, Callable[[Any, ResponseMeta], Any]] = {
    "/": parse_attributes,
    "/charge": parse_charge,
    "/battery": parse_battery,
    "/battery/capacity": parse_capacity,
    "/battery/nominal_capacity": parse_nominal_capacity,
    "/charge/limit": parse_charge_limit,
    "/vin": parse_vin,
    "/tesla/charge": parse_tesla_charge,
}


def _normalize_path(path: str) -> str:
    path = "/" + path.strip().lstrip("/")
    return path if path == "/" else path.rstrip("/")


# --- the client -----------------------------------------------------------------------------------


class VehicleApiClient:
    """Client for one application (client id/secret). Thread-safe for concurrent calls (httpx).

    All vehicle methods take the user's access token explicitly: token storage and refresh live in
    `sessions.vehicles`, not here. Every method raises a `errors.VehicleApiError` subclass on
    failure (never a bare httpx exception)."""

    def __init__(
        self,
        *,
        api_origin: str,
        auth_url: str,
        connect_origin: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        connect_mode: str = "live",
        timeout_s: float = 310,
        connect_timeout_s: float = 10,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if connect_mode not in CONNECT_MODES:
            raise ValueError(f"connect_mode must be one of {CONNECT_MODES}, got {connect_mode!r}")
        # Origins are stored without a trailing slash so paths never produce "//v2.0".
        self.api_origin = api_origin.rstrip("/")
        self.auth_url = auth_url  # the FULL token URL (like SMARTCAR_AUTH_ORIGIN in the Python SDK)
        self.connect_origin = connect_origin.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.connect_mode = connect_mode
        self.clock = clock
        # One explicit timeout for everything: reads and commands alike may legitimately take
        # 300 s at the API; connecting should be quick or fail fast.
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._http = httpx.Client(
            transport=transport,
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, *, transport: httpx.BaseTransport | None = None) -> VehicleApiClient:
        """Build the client from the VEHICLE_* settings (prepaid/settings.py)."""
        from django.conf import settings

        return cls(
            api_origin=settings.VEHICLE_API_ORIGIN,
            auth_url=settings.VEHICLE_AUTH_URL,
            connect_origin=settings.VEHICLE_CONNECT_ORIGIN,
            client_id=settings.VEHICLE_CLIENT_ID,
            client_secret=settings.VEHICLE_CLIENT_SECRET,
            redirect_uri=settings.VEHICLE_REDIRECT_URI,
            connect_mode=settings.VEHICLE_CONNECT_MODE,
            timeout_s=settings.VEHICLE_API_TIMEOUT_S,
            connect_timeout_s=settings.VEHICLE_API_CONNECT_TIMEOUT_S,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VehicleApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- OAuth -------------------------------------------------------------------------------------

    def authorize_url(
        self,
        *,
        state: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        mode: str | None = None,
        make: str | None = None,
        single_select: bool | None = None,
        force_prompt: bool = False,
    ) -> str:
        """The Connect URL to send the driver's browser to.

        Query order and encoding follow the official Python SDK (spaces as `+`). `mode` defaults to
        the client's connect mode. Raises ValueError for an unknown mode or an empty state."""
        if not state:
            raise ValueError("state is required (CSRF protection of the callback)")
        mode = mode or self.connect_mode
        if mode not in CONNECT_MODES:
            raise ValueError(f"mode must be one of {CONNECT_MODES}, got {mode!r}")
        query: list[tuple[str, str]] = [
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("approval_prompt", "force" if force_prompt else "auto"),
            ("mode", mode),
            ("redirect_uri", self.redirect_uri),
            ("scope", " ".join(scopes)),
            ("state", state),
        ]
        if make:
            query.append(("make", make))
        if single_select is not None:
            query.append(("single_select", "true" if single_select else "false"))
        return f"{self.connect_origin}/oauth/authorize?{urlencode(query)}"

    def exchange_code(self, code: str) -> TokenPair:
        """Exchange a Connect authorization code (valid 10 min, single use) for tokens.

        Raises OAuthError (e.g. invalid_grant), AuthenticationError (bad client credentials),
        MalformedResponse, TransportError/RequestTimeout."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        return self._token_request(form)

    def refresh(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a NEW pair. The old refresh token is retired by the server, so
        the caller must persist the returned pair before using it. Raises like `exchange_code`."""
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, form: dict[str, str]) -> TokenPair:
        # Expiries count from BEFORE the request: the server issued the token after that, so our
        # expiry is never later than the real one.
        sent_at = self.clock()
        started = time.perf_counter()
        try:
            response = self._http.post(
                self.auth_url,
                data=form,
                auth=httpx.BasicAuth(self.client_id, self._client_secret),
            )
        except httpx.TimeoutException as exc:
            raise errors.RequestTimeout(f"token endpoint timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise errors.TransportError(f"token endpoint unreachable: {exc!r}") from exc
        latency_s = time.perf_counter() - started
        if response.status_code != 200:
            body = _json_or_none(response)
            if body is None and response.status_code in (400, 401):
                # A bare 400/401 from the token endpoint is how a dead refresh token has been seen
                # in the wild (wbyoung/smartcar #27): treat it as a refusal, not as garbage.
                raise errors.OAuthError(
                    f"token endpoint refused the grant (HTTP {response.status_code})",
                    status=response.status_code,
                    request_id=response.headers.get("SC-Request-Id"),
                )
            raise self._error(response, body)
        body = self._success_body(response)
        access_token = _require(body, "access_token", str, "token")
        refresh_token = _require(body, "refresh_token", str, "token")
        # The Python SDK requires expires_in too; without it we cannot schedule a refresh.
        expires_in = _require(body, "expires_in", (int, float), "token")
        return TokenPair(
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=sent_at + timedelta(seconds=int(expires_in)),
            refresh_expires_at=sent_at + REFRESH_TOKEN_LIFETIME,
            expires_in_s=int(expires_in),
            token_type=body.get("token_type") or "Bearer",
            meta=meta_from_headers(response.headers, latency_s=latency_s),
        )

    # --- vehicles ---------------------------------------------------------------------------------

    def list_vehicles(self, token: str, *, limit: int = MAX_VEHICLES_PAGE) -> list[str]:
        """All vehicle ids this token can reach, following `paging` (`count` is the total, `offset`
        where the page starts). Raises AuthenticationError and the other VehicleApiErrors."""
        if not 1 <= limit <= MAX_VEHICLES_PAGE:
            raise ValueError(f"limit must be 1..{MAX_VEHICLES_PAGE}")
        ids: list[str] = []
        offset = 0
        # A hard cap on pages: a server that keeps announcing more must not loop us forever.
        for _ in range(1000):
            body, _meta = self._request("GET", "/vehicles", token, params={"limit": limit, "offset": offset})
            page = _require(body, "vehicles", list, "vehicles")
            if not all(isinstance(vid, str) for vid in page):
                raise errors.MalformedResponse("vehicles: ids must be strings", body=body)
            paging = body.get("paging") if isinstance(body.get("paging"), dict) else {}
            total = paging.get("count")
            for vid in page:
                if vid not in ids:
                    ids.append(vid)
            offset += len(page)
            if not page or not isinstance(total, int) or offset >= total:
                break
        return ids

    def user_id(self, token: str) -> UserInfo:
        """GET /user: the vehicle API's user id for this token (not billed). Raises VehicleApiError."""
        body, meta = self._request("GET", "/user", token)
        return UserInfo(id=_require(body, "id", str, "user"), meta=meta)

    def attributes(self, token: str, vehicle_id: str) -> VehicleAttributes:
        """GET /vehicles/{id}: make, model, year. Raises VehicleApiError subclasses."""
        body, meta = self._vehicle_request("GET", vehicle_id, "", token)
        return parse_attributes(body, meta)

    def vin(self, token: str, vehicle_id: str) -> Vin:
        """GET /vehicles/{id}/vin (needs read_vin, not in the default scopes)."""
        body, meta = self._vehicle_request("GET", vehicle_id, "/vin", token)
        return parse_vin(body, meta)

    def charge_status(self, token: str, vehicle_id: str) -> ChargeStatus:
        """GET /charge: plug state and CHARGING | FULLY_CHARGED | NOT_CHARGING (FULLY_CHARGED may
        come below 100 % when the limit is lower). Raises VehicleApiError subclasses."""
        body, meta = self._vehicle_request("GET", vehicle_id, "/charge", token)
        return parse_charge(body, meta)

    def battery(self, token: str, vehicle_id: str) -> Battery:
        """GET /battery: SoC in basis points (0..10000) and range in km (converted from miles if
        the API answered in imperial). Raises VehicleApiError subclasses."""
        body, meta = self._vehicle_request("GET", vehicle_id, "/battery", token)
        return parse_battery(body, meta)

    def battery_capacity_wh(self, token: str, vehicle_id: str) -> BatteryCapacity:
        """Battery capacity in Wh: GET /battery/capacity, falling back to
        /battery/nominal_capacity when the former is gone (404/410), not capable (501) or has no
        record (500 RECORD_NOT_FOUND): it is unmaintained for the US and Europe (§2.2).
        Raises the nominal endpoint's error when both fail."""
        try:
            body, meta = self._vehicle_request("GET", vehicle_id, "/battery/capacity", token)
            return parse_capacity(body, meta)
        except (errors.ResourceNotFound, errors.CompatibilityError):
            pass
        except errors.ServerError as exc:
            if exc.code != "RECORD_NOT_FOUND":
                raise
        except errors.MalformedResponse as exc:
            if exc.status != 410:
                raise
        body, meta = self._vehicle_request("GET", vehicle_id, "/battery/nominal_capacity", token)
        return parse_nominal_capacity(body, meta)

    def charge_limit(self, token: str, vehicle_id: str) -> ChargeLimit:
        """GET /charge/limit → `limit_bp` (basis points). May raise VehicleStateError
        CHARGING_PLUG_NOT_CONNECTED on makes that expose the limit only while plugged in."""
        body, meta = self._vehicle_request("GET", vehicle_id, "/charge/limit", token)
        return parse_charge_limit(body, meta)

    def set_charge_limit(self, token: str, vehicle_id: str, limit_bp: int) -> ActionResult:
        """POST /charge/limit with `limit_bp` in basis points (5000..10000, i.e. 0.5..1).

        Raises ValueError before any request for a value outside 5000..10000, and
        VehicleApiError subclasses from the API."""
        if isinstance(limit_bp, bool) or not isinstance(limit_bp, int) or not 5000 <= limit_bp <= 10000:
            raise ValueError(f"limit_bp must be an int in 5000..10000, got {limit_bp!r}")
        # Exact decimal → float: 8000 bp is 0.8 with no binary noise in the JSON.
        fraction = float(Decimal(limit_bp) / Decimal(10000))
        body, meta = self._vehicle_request("POST", vehicle_id, "/charge/limit", token, json={"limit": fraction})
        return parse_action(body, meta)

    def start_charge(self, token: str, vehicle_id: str) -> ActionResult:
        """POST /charge START. Success means accepted, not charging: read /charge afterwards.
        Raises VehicleStateError (e.g. CHARGING_PLUG_NOT_CONNECTED, CHARGING_IN_PROGRESS,
        FULLY_CHARGED), RequestTimeout (outcome unknown), and the other VehicleApiErrors."""
        body, meta = self._vehicle_request("POST", vehicle_id, "/charge", token, json={"action": "START"})
        return parse_action(body, meta)

    def stop_charge(self, token: str, vehicle_id: str) -> ActionResult:
        """POST /charge STOP. Raises VehicleStateError (e.g. NOT_CHARGING, UNKNOWN),
        RequestTimeout (outcome unknown), and the other VehicleApiErrors."""
        body, meta = self._vehicle_request("POST", vehicle_id, "/charge", token, json={"action": "STOP"})
        return parse_action(body, meta)

    def tesla_charge(self, token: str, vehicle_id: str) -> TeslaCharge:
        """GET /tesla/charge (make path lower-case, upper-case is a PERMISSION error): energy added
        this session in Wh, power in W, limit in bp... Raises VehicleApiError subclasses."""
        body, meta = self._vehicle_request("GET", vehicle_id, "/tesla/charge", token)
        return parse_tesla_charge(body, meta)

    def batch(
        self, token: str, vehicle_id: str, paths: Iterable[str]
    ) -> dict[str, BatchResult | errors.VehicleApiError]:
        """POST /batch for several GET paths at once (each counts as one billed call).

        Returns {path: typed result or the VehicleApiError of that sub-request}; one failed path
        never fails the others. Raises only when the batch request itself fails."""
        wanted = [_normalize_path(p) for p in paths]
        if not wanted:
            return {}
        started = time.perf_counter()
        body, top_meta = self._vehicle_request(
            "POST",
            vehicle_id,
            "/batch",
            token,
            json={"requests": [{"path": p} for p in wanted]},
            unit_system=True,
        )
        latency_s = time.perf_counter() - started
        responses = _require(body, "responses", list, "batch")
        results: dict[str, BatchResult | errors.VehicleApiError] = {}
        for item in responses:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                continue
            path = _normalize_path(item["path"])
            results[path] = self._batch_item(path, item, top_meta.request_id, latency_s)
        for path in wanted:
            if path not in results:
                results[path] = errors.MalformedResponse(
                    f"batch: no sub-response for {path}", request_id=top_meta.request_id
                )
        return results

    def _batch_item(
        self, path: str, item: dict, top_request_id: str | None, latency_s: float
    ) -> BatchResult | errors.VehicleApiError:
        # Sub-headers may be missing entirely (even on 200, which crashes the Python SDK, and on
        # errors, which crashed the Java SDK), and arrive in any casing.
        headers = item.get("headers") if isinstance(item.get("headers"), dict) else {}
        code = item.get("code")
        sub_body = item.get("body")
        meta = meta_from_headers(headers, latency_s=latency_s, request_id=top_request_id)
        if code in (200, 204):
            parser = BATCH_PARSERS.get(path)
            if parser is None:
                return RawResult(path=path, body=sub_body, meta=meta)
            try:
                return parser(sub_body, meta)
            except errors.MalformedResponse as exc:
                exc.request_id = exc.request_id or meta.request_id
                exc.status = code
                return exc
        status = code if isinstance(code, int) and not isinstance(code, bool) else None
        error = errors.error_from_body(status, sub_body, headers)
        # The sub-request shares the batch's request id unless its body names its own.
        error.request_id = error.request_id or top_request_id
        return error

    def disconnect(self, token: str, vehicle_id: str) -> ActionResult:
        """DELETE /vehicles/{id}/application: revoke this app's access to the vehicle. The token
        stops working for it. Raises VehicleApiError subclasses."""
        body, meta = self._vehicle_request("DELETE", vehicle_id, "/application", token)
        return parse_action(body, meta)

    # --- plumbing ---------------------------------------------------------------------------------

    def _vehicle_request(
        self,
        method: str,
        vehicle_id: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        unit_system: bool | None = None,
    ) -> tuple[Any, ResponseMeta]:
        if not vehicle_id:
            raise ValueError("vehicle_id is required")
        # Ids are opaque: encode everything so an id can never change the path.
        url_path = f"/vehicles/{quote(vehicle_id, safe='')}{path}"
        return self._request(method, url_path, token, json=json, unit_system=unit_system)

    def _request(
        self,
        method: str,
        path: str,
        token: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        unit_system: bool | None = None,
    ) -> tuple[Any, ResponseMeta]:
        headers = {"Authorization": f"Bearer {token}"}
        # Like the SDK: ask for metric on reads and batch; commands carry no unit system.
        if unit_system if unit_system is not None else method == "GET":
            headers["SC-Unit-System"] = "metric"
        url = f"{self.api_origin}/v{API_VERSION}{path}"
        started = time.perf_counter()
        try:
            response = self._http.request(method, url, headers=headers, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise errors.RequestTimeout(f"{method} {path} timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise errors.TransportError(f"{method} {path} failed: {exc!r}") from exc
        latency_s = time.perf_counter() - started
        if response.status_code != 200:
            raise self._error(response, _json_or_none(response))
        body = self._success_body(response)
        return body, meta_from_headers(response.headers, latency_s=latency_s)

    @staticmethod
    def _success_body(response: httpx.Response) -> Any:
        body = _json_or_none(response)
        if body is None:
            raise errors.MalformedResponse(
                f"HTTP {response.status_code} with a non-JSON body",
                status=response.status_code,
                request_id=response.headers.get("SC-Request-Id"),
                body=response.text[:500],
            )
        return body

    @staticmethod
    def _error(response: httpx.Response, body: Any) -> errors.VehicleApiError:
        if body is None:
            return errors.MalformedResponse(
                f"HTTP {response.status_code} with a non-JSON body",
                status=response.status_code,
                request_id=response.headers.get("SC-Request-Id"),
                retry_after_s=errors.parse_retry_after(response.headers.get("Retry-After")),
                body=response.text[:500],
            )
        return errors.error_from_body(response.status_code, body, response.headers)


def _json_or_none(response: httpx.Response) -> Any:
    """The parsed JSON body, or None when the body is not JSON (content type or syntax)."""
    if "json" not in response.headers.get("Content-Type", "").lower():
        return None
    try:
        return response.json()
    except ValueError:
        return None
