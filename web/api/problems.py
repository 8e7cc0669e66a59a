"""One error format for the whole API: RFC 9457 problem details (application/problem+json).

Every error an API view raises (DRF's own, Django's Http404/PermissionDenied, the domain errors of
the wallet, sessions and payments) ends up here and leaves as
  {"type", "title", "status", "detail", "instance"}      plus "errors" for validation failures.
`type` names a problem documented at /api/v1/problems/<slug>/ (or is "about:blank" for plain
HTTP errors, whose title is then the status phrase, as RFC 9457 §4.2.1 asks).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from payments import stripe_api
from payments.services import PaymentRateLimited, PurchaseError
from prepaid import errors as wallet_errors
from sessions.grid.services import GridError
from sessions.services import SessionError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str


PROBLEM_TYPES = {
    p.slug: p
    for p in [
        ProblemType(
            "validation",
            400,
            gettext_lazy("Invalid request"),
            gettext_lazy("A field is missing, malformed or out of range; see `errors`."),
        ),
        ProblemType(
            "insufficient-credit",
            409,
            gettext_lazy("Not enough credit"),
            gettext_lazy("The wallet's available balance is too small."),
        ),
        ProblemType(
            "wallet-blocked", 409, gettext_lazy("Wallet blocked"), gettext_lazy("A payment of this wallet is disputed.")
        ),
        ProblemType(
            "nothing-to-refund",
            409,
            gettext_lazy("Nothing to refund"),
            gettext_lazy("No unused, refundable credit is left."),
        ),
        ProblemType(
            "conflict",
            409,
            gettext_lazy("Conflict"),
            gettext_lazy("The request conflicts with the current state of the resource."),
        ),
        ProblemType(
            "vehicle-unknown",
            422,
            gettext_lazy("Unknown vehicle"),
            gettext_lazy("The vehicle is not connected to your account."),
        ),
        ProblemType(
            "vehicle-needs-consent",
            409,
            gettext_lazy("Reconnect the vehicle"),
            gettext_lazy("Access to the car was withdrawn."),
        ),
        ProblemType(
            "session-open",
            409,
            gettext_lazy("Session already open"),
            gettext_lazy("A session is already running on this vehicle."),
        ),
        ProblemType(
            "car-busy",
            409,
            gettext_lazy("Car busy in another account"),
            gettext_lazy(
                "The same car is connected to another account too, and a session of that account is open on it."
            ),
        ),
        ProblemType(
            "command-budget",
            409,
            gettext_lazy("The car might refuse the stop"),
            gettext_lazy(
                "The car's maker limits remote charge commands (in a row until driven, per day or per month) and "
                "this session's STOP might not fit; the detail says what to do."
            ),
        ),
        ProblemType(
            "session-not-open", 409, gettext_lazy("Session not open"), gettext_lazy("The session has already ended.")
        ),
        ProblemType(
            "receipt-not-ready",
            409,
            gettext_lazy("No receipt yet"),
            gettext_lazy("The purchase is not paid or the session not over."),
        ),
        ProblemType(
            "purchase-conflict",
            409,
            gettext_lazy("Purchase cannot proceed"),
            gettext_lazy("The purchase is not awaiting payment."),
        ),
        ProblemType(
            "payment-rate-limited",
            429,
            gettext_lazy("Too many payment attempts"),
            gettext_lazy("Wait for the time in Retry-After, then retry."),
        ),
        ProblemType(
            "payment-provider-unavailable",
            503,
            gettext_lazy("Payment provider unavailable"),
            gettext_lazy("Try again shortly."),
        ),
        ProblemType(
            "payment-provider-error",
            502,
            gettext_lazy("Payment provider error"),
            gettext_lazy("The payment provider refused."),
        ),
    ]
}


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = gettext_lazy("The request body is too large.")


class Problem(exceptions.APIException):
    """A documented problem type, raised by views (or mapped from a domain error below)."""

    def __init__(self, slug: str, detail: str = "", *, status_code: int | None = None):
        self.problem = PROBLEM_TYPES[slug]
        self.status_code = status_code or self.problem.status
        super().__init__(detail or self.problem.description)


_SESSION_CODES = {
    "vehicle_unknown": "vehicle-unknown",
    "consent": "vehicle-needs-consent",
    "session_open": "session-open",
    "car_busy": "car-busy",
    "command_budget": "command-budget",
}


def _domain_problem(exc: Exception) -> Problem | None:
    """The problem a domain error means to an API client; None if it is not a known domain error."""
    if isinstance(exc, wallet_errors.InsufficientCredit):
        return Problem("insufficient-credit", str(exc))
    if isinstance(exc, wallet_errors.WalletBlocked):
        return Problem("wallet-blocked", str(exc))
    if isinstance(exc, wallet_errors.NothingToRefund):
        return Problem("nothing-to-refund", str(exc))
    if isinstance(exc, wallet_errors.IdempotencyConflict | wallet_errors.HoldNotActive):
        return Problem("conflict", str(exc))
    if isinstance(exc, SessionError):
        return Problem(_SESSION_CODES.get(exc.code, "conflict"), str(exc))
    if isinstance(exc, GridError):
        return Problem("conflict", str(exc))
    if isinstance(exc, PaymentRateLimited):
        problem = Problem("payment-rate-limited", str(exc))
        problem.wait = exc.retry_after_s
        return problem
    if isinstance(exc, PurchaseError):
        return Problem("purchase-conflict", str(exc))
    if isinstance(exc, stripe_api.StripeUnavailable):
        return Problem(
            "payment-provider-unavailable", gettext_lazy("The payment provider is not answering; try again shortly.")
        )
    if isinstance(exc, stripe_api.StripeFailure):
        return Problem("payment-provider-error", exc.message)
    return None


def _errors(detail, pointer: str = "#") -> list[dict]:
    """Flatten DRF's nested validation detail into [{pointer, detail, code}] (JSON pointers)."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = pointer if key == "non_field_errors" else f"{pointer}/{key}"
            out.extend(_errors(value, sub))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail | str) for item in detail):
            return [
                {"pointer": pointer, "detail": str(item), "code": getattr(item, "code", "invalid")} for item in detail
            ]
        out = []
        for index, value in enumerate(detail):
            out.extend(_errors(value, f"{pointer}/{index}"))
        return out
    return [{"pointer": pointer, "detail": str(detail), "code": getattr(detail, "code", "invalid")}]


def problem_response(request, *, status_code: int, title: str, detail: str, type_: str = "about:blank", **extra):
    body = {"type": type_, "title": title, "status": status_code, "detail": detail}
    body["instance"] = request.get_full_path() if request is not None else ""
    body.update(extra)
    if request is not None:
        # A problem is JSON whatever the view renders otherwise (the schema's YAML, the docs' HTML).
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), CONTENT_TYPE
    return Response(body, status=status_code, content_type=CONTENT_TYPE)


def _type_uri(request, slug: str) -> str:
    path = reverse("api:problem", args=[slug])
    return request.build_absolute_uri(path) if request is not None else path


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(gettext_lazy("The request was malformed."))
    else:
        exc = _domain_problem(exc) or exc

    if not isinstance(exc, exceptions.APIException):
        # A bug: answer in the same format (the transaction is rolled back) and log it loudly.
        logger.exception("unhandled API error", exc_info=exc)
        set_rollback()
        return problem_response(
            request,
            status_code=500,
            title=HTTPStatus(500).phrase,
            detail=str(gettext_lazy("An unexpected error occurred.")),
        )

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    extra = {}
    if isinstance(exc, Problem):
        type_, title, detail = _type_uri(request, exc.problem.slug), str(exc.problem.title), str(exc.detail)
    elif isinstance(exc, exceptions.ValidationError):
        type_, title = _type_uri(request, "validation"), str(PROBLEM_TYPES["validation"].title)
        extra["errors"] = _errors(exc.detail)
        detail = "; ".join(f"{e['pointer'].lstrip('#/') or 'request'}: {e['detail']}" for e in extra["errors"][:5])
    else:
        type_, title = "about:blank", HTTPStatus(exc.status_code).phrase
        detail = str(exc.detail) if not isinstance(exc.detail, dict | list) else title

    set_rollback()
    response = problem_response(request, status_code=exc.status_code, title=title, detail=detail, type_=type_, **extra)
    for name, value in headers.items():
        response[name] = value
    return response


# --- OpenAPI: every operation documents its problems ----------------------------------------------

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the problem type, or about:blank."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 100, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors: JSON pointers into the request body or parameters.",
            "items": {
                "type": "object",
                "properties": {
                    "pointer": {"type": "string"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                },
                "required": ["pointer", "detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail", "instance"],
}

_COMMON = {
    "400": "Invalid request (see `errors`).",
    "401": "Not authenticated.",
    "403": "Not allowed.",
    "404": "Not found (or not yours).",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "429": "Too many requests (see Retry-After).",
}
_MUTATING = {
    "409": "Conflict with the current state (insufficient credit, session already open, …).",
    "422": "Unprocessable (e.g. an unknown vehicle).",
    "502": "The payment provider refused.",
    "503": "The payment provider is unavailable.",
}


def add_problem_responses(result, generator, request, public):
    """drf-spectacular post-processing hook: a Problem component and problem responses everywhere."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    ref = {"$ref": "#/components/schemas/Problem"}
    for path in result.get("paths", {}).values():
        for method, operation in path.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            wanted = dict(_COMMON)
            if method != "get":
                wanted.update(_MUTATING)
            for code, description in wanted.items():
                if code not in responses:
                    responses[code] = {"content": {CONTENT_TYPE: {"schema": ref}}, "description": description}
    return result
