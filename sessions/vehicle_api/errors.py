"""Typed errors of the vehicle API (Smartcar v3).

Every failure the client sees becomes one `VehicleApiError` subclass. The class is chosen from the
error's `type` (v3 `errors[]` items keep v2's types and codes), falling back to the HTTP status,
so callers branch on classes and codes, never on message strings. `retryable` answers one
question: "may the *same* request succeed later without a human doing anything?" The per-code
decisions are documented on each class.

Error bodies: docs/reference/vehicle-api-v3.md §5 (`errors[]`, mapped in `v3_wire.error_from_reply`);
a body in the older flat shape (`{type, code, description, …}`, docs/reference/vehicle-api.md §3)
or OAuth's `{error, error_description}` (the IAM endpoint) is read by `error_from_body`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class VehicleApiError(Exception):
    """Base class: any failed exchange with the vehicle API or its token endpoint.

    Attributes (all optional, taken from the error body, then from headers):
    status (HTTP status, or the error item's own `status`), type, code, description, doc_url,
    resolution_type (RETRY_LATER | REAUTHENTICATE | CONTACT_SUPPORT | None), request_id (body
    `requestId`, else the `SC-Request-Id` header), retry_after_s (int seconds from `Retry-After`),
    suggested_user_message, detail (validation details), body (the raw parsed body).
    """

    #: class default; some subclasses decide per code in `_decide_retryable`.
    default_retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        type: str | None = None,  # the wire name; shadows the builtin only here
        code: str | None = None,
        description: str | None = None,
        doc_url: str | None = None,
        resolution_type: str | None = None,
        request_id: str | None = None,
        retry_after_s: int | None = None,
        suggested_user_message: str | None = None,
        detail: Any = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.type = type
        self.code = code
        self.description = description
        self.doc_url = doc_url
        self.resolution_type = resolution_type
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.suggested_user_message = suggested_user_message
        self.detail = detail
        self.body = body
        if not message:
            label = f"{type}:{code}" if code else (type or "VEHICLE_API_ERROR")
            message = f"{label} - {description}" if description else label
        self.message = message
        super().__init__(message)

    @property
    def retryable(self) -> bool:
        """True when repeating the same request later may succeed with no user action."""
        # The server's own advice wins when it says "retry later".
        if self.resolution_type == "RETRY_LATER":
            return True
        return self._decide_retryable()

    def _decide_retryable(self) -> bool:
        return self.default_retryable

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, type={self.type!r}, code={self.code!r})"


class ValidationError(VehicleApiError):
    """400 VALIDATION (code null or PARAMETER): our request was wrong. Not retryable."""


class ConnectedServicesAccountError(VehicleApiError):
    """400 CONNECTED_SERVICES_ACCOUNT: the owner must fix their OEM account (subscription,
    virtual key, missing vehicle...). Not retryable without the user."""


class AuthenticationError(VehicleApiError):
    """401 AUTHENTICATION: token missing, invalid or expired. Not retryable as is (refresh first)."""


class PermissionDenied(VehicleApiError):
    """403 PERMISSION: scope not granted; the user must reconnect. Not retryable."""


class ResourceNotFound(VehicleApiError):
    """404 RESOURCE_NOT_FOUND (PATH, VERSION). Not retryable."""


class VehicleStateError(VehicleApiError):
    """409 VEHICLE_STATE with a `code` (CHARGING_PLUG_NOT_CONNECTED, FULLY_CHARGED, ...).

    Retryable only for transient conditions: ASLEEP (request not sent; the car wakes up on its own
    or after use), UNREACHABLE (no cellular link), UNKNOWN and LOW_BATTERY (documented resolution
    RETRY_LATER). The other codes describe a definite state (plugged out, already charging, full,
    remote access disabled, charge fault...): repeating the request will not change the answer, the
    caller must act on the state instead.
    """

    TRANSIENT_CODES = frozenset({"ASLEEP", "UNREACHABLE", "UNKNOWN", "LOW_BATTERY"})

    def _decide_retryable(self) -> bool:
        return self.code in self.TRANSIENT_CODES


class RateLimited(VehicleApiError):
    """429 RATE_LIMIT. `scope` is the code: VEHICLE (per-vehicle throttle, comes with `Retry-After`
    seconds in `retry_after_s`) or SMARTCAR_API (the application's token bucket). Retryable after
    the wait."""

    default_retryable = True

    @property
    def scope(self) -> str | None:
        return self.code


class BillingError(VehicleApiError):
    """430 BILLING (INVALID_PLAN, VEHICLE_LIMIT, VEHICLE_REQUEST_LIMIT, ACCOUNT_SUSPENDED).
    Not retryable: waits for a plan change or the next billing period."""


class ServerError(VehicleApiError):
    """500 SERVER. INTERNAL (or no code) is retryable; RECORD_NOT_FOUND and MULTIPLE_RECORDS_FOUND
    are deterministic data problems (e.g. no battery-capacity record) and are not."""

    PERMANENT_CODES = frozenset({"RECORD_NOT_FOUND", "MULTIPLE_RECORDS_FOUND"})

    def _decide_retryable(self) -> bool:
        return self.code not in self.PERMANENT_CODES


class CompatibilityError(VehicleApiError):
    """501 COMPATIBILITY (MAKE_NOT_COMPATIBLE, SMARTCAR_NOT_CAPABLE, VEHICLE_NOT_CAPABLE, ...):
    the vehicle cannot do this. Not retryable."""


class UpstreamError(VehicleApiError):
    """502 UPSTREAM (NO_RESPONSE, RATE_LIMIT, INVALID_DATA, KNOWN_ISSUE, UNKNOWN_ISSUE): the OEM's
    cloud failed. Retryable (for code RATE_LIMIT, back off for a long time: the OEM's quota)."""

    default_retryable = True


class TransportError(VehicleApiError):
    """No HTTP response at all (connection refused/reset, DNS, TLS, protocol error). Retryable.

    For a command (START/STOP/limit) the request may or may not have reached the vehicle: the
    caller must read the state back before deciding to repeat it."""

    default_retryable = True


class RequestTimeout(TransportError):
    """The explicit client timeout expired (connect, read, write or pool). Retryable, with the same
    caveat as `TransportError` for commands."""


class MalformedResponse(VehicleApiError):
    """A response we cannot trust: not JSON, not the documented shape, or an error without a usable
    body. Retryable only when the HTTP status is 429 or 5xx (typically a proxy's HTML error page)."""

    def _decide_retryable(self) -> bool:
        return self.status is not None and (self.status == 429 or self.status >= 500)


class CommandFailed(VehicleApiError):
    """v3: a command answered with a final FAILURE status (HTTP 200/202 with a failed execution).
    The car did not carry it out; not retryable as is (read the car's state and decide)."""


class NoSignalData(VehicleApiError):
    """v3: a signals read answered, but with nothing to act on (an empty store: the vehicle is not
    subscribed yet, or its cloud has not reported). Retryable: the store fills as the car reports."""

    default_retryable = True


class OAuthError(VehicleApiError):
    """The token endpoint refused a code or refresh token: body `{error, error_description}` (e.g.
    `invalid_grant` for a used, expired or revoked refresh token). `type` holds `error`.
    Retryable only for `server_error`/`temporarily_unavailable` or a 5xx status."""

    TRANSIENT_ERRORS = frozenset({"server_error", "temporarily_unavailable"})

    @property
    def error(self) -> str | None:
        return self.type

    def _decide_retryable(self) -> bool:
        return self.type in self.TRANSIENT_ERRORS or (self.status is not None and self.status >= 500)


#: `type` → class. Unknown types fall back to the status table below.
ERROR_TYPES: dict[str, type[VehicleApiError]] = {
    "VALIDATION": ValidationError,
    "CONNECTED_SERVICES_ACCOUNT": ConnectedServicesAccountError,
    "AUTHENTICATION": AuthenticationError,
    "PERMISSION": PermissionDenied,
    "RESOURCE_NOT_FOUND": ResourceNotFound,
    "VEHICLE_STATE": VehicleStateError,
    "RATE_LIMIT": RateLimited,
    "BILLING": BillingError,
    "SERVER": ServerError,
    "COMPATIBILITY": CompatibilityError,
    "UPSTREAM": UpstreamError,
}

STATUS_CLASSES: dict[int, type[VehicleApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDenied,
    404: ResourceNotFound,
    409: VehicleStateError,
    429: RateLimited,
    430: BillingError,
    500: ServerError,
    501: CompatibilityError,
    502: UpstreamError,
}

#: Errors after which only the user can restore access (reconnect through Connect).
CONSENT_ERRORS: tuple[type[VehicleApiError], ...] = (AuthenticationError, PermissionDenied, OAuthError)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> int | None:
    """`Retry-After` in whole seconds, from delta-seconds (what the vehicle API sends) or an
    HTTP-date (RFC 9110 allows both; rounded up); None if absent or garbled."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(int(text), 0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(math.ceil(delta), 0)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Batch sub-headers arrive as a plain dict in any casing (the Python SDK needs "Retry-After",
    # Node lower-cases), so look up case-insensitively.
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def error_from_body(status: int | None, body: Any, headers: Mapping[str, str]) -> VehicleApiError:
    """Build the typed error for one failed response from its parsed JSON body and headers.

    Handles the v2 body, the OAuth `{error, error_description}` body and anything else (which
    becomes `MalformedResponse`)."""
    header_request_id = _header(headers, "SC-Request-Id")
    retry_after_s = parse_retry_after(_header(headers, "Retry-After"))
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        resolution = body.get("resolution")
        # The v2 contract says object; tolerate a bare string like the Node SDK does.
        resolution_type = resolution.get("type") if isinstance(resolution, dict) else resolution
        cls = ERROR_TYPES.get(body["type"]) or STATUS_CLASSES.get(status or 0, VehicleApiError)
        body_status = body.get("statusCode")
        return cls(
            status=status if status is not None else (body_status if isinstance(body_status, int) else None),
            type=body["type"],
            code=body.get("code"),
            description=body.get("description"),
            doc_url=body.get("docURL"),
            resolution_type=resolution_type if isinstance(resolution_type, str) else None,
            request_id=body.get("requestId") or header_request_id,
            retry_after_s=retry_after_s,
            suggested_user_message=body.get("suggestedUserMessage"),
            detail=body.get("detail"),
            body=body,
        )
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return OAuthError(
            status=status,
            type=body["error"],
            description=body.get("error_description"),
            request_id=header_request_id,
            retry_after_s=retry_after_s,
            body=body,
        )
    return MalformedResponse(
        f"unexpected error body (HTTP {status})",
        status=status,
        request_id=header_request_id,
        retry_after_s=retry_after_s,
        body=body,
    )
