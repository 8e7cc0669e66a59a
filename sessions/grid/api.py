"""The grid-event endpoint: a utility (HMAC-signed JSON) or a staff operator declares an event.

Signature: header `X-Grid-Timestamp: <unix seconds>` and `X-Grid-Signature: sha256=<hex>` where
hex = HMAC-SHA256(GRID_API_SECRET, f"{timestamp}.{raw body}"). A timestamp further than
GRID_API_MAX_SKEW_S from now is refused (replay window); the event's `id` makes a replay inside
the window harmless (the same event is returned, nothing new is created).
"""

import hashlib
import hmac
from datetime import datetime, timezone

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from prepaid import jsonbody
from prepaid.jsonbody import problem
from sessions import clock
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models.grid import DemandResponseEvent

MAX_VEHICLES = 1000
MAX_ID = 2**63 - 1


def _signed(request: HttpRequest) -> bool:
    stamp = request.headers.get("X-Grid-Timestamp", "")
    given = request.headers.get("X-Grid-Signature", "")
    if not settings.GRID_API_SECRET or not stamp.isdigit() or not given.startswith("sha256="):
        return False
    if abs(clock.now().timestamp() - int(stamp)) > settings.GRID_API_MAX_SKEW_S:
        return False
    mac = hmac.new(settings.GRID_API_SECRET.encode(), stamp.encode() + b"." + request.body, hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), given.removeprefix("sha256="))


def sign(body: bytes, *, timestamp: int, secret: str | None = None) -> dict[str, str]:
    """The headers a utility sends (used by tests and by operators scripting the endpoint)."""
    key = (secret or settings.GRID_API_SECRET).encode()
    mac = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Grid-Timestamp": str(timestamp), "X-Grid-Signature": f"sha256={mac}"}


def _caller(request: HttpRequest) -> str | None:
    if _signed(request):
        return DemandResponseEvent.Source.UTILITY
    if request.user.is_authenticated and request.user.is_staff:
        return DemandResponseEvent.Source.OPERATOR
    return None


def _aware(value) -> datetime:
    if not isinstance(value, str):
        raise ValueError("timestamps are ISO 8601 strings")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("timestamps need a UTC offset")
    return when.astimezone(timezone.utc)  # OverflowError at the ends of the calendar


def _text(data: dict, name: str, limit: int, *, required: bool = False) -> str:
    value = data[name] if required else data.get(name, "")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a utility's numeric event id
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise ValueError(f"`{name}` must be a string of {'1' if required else '0'} to {limit} characters")
    return value


def _vehicle_ids(value) -> list[int]:
    if not isinstance(value, list) or len(value) > MAX_VEHICLES:
        raise ValueError(f"`vehicle_ids` must be a list of at most {MAX_VEHICLES} ids")
    ids = []
    for item in value:
        if isinstance(item, str) and item.isascii() and item.isdigit():
            item = int(item)
        if not isinstance(item, int) or isinstance(item, bool) or not 0 < item <= MAX_ID:
            raise ValueError("`vehicle_ids` holds vehicle ids (positive integers)")
        ids.append(item)
    return ids


def _event_fields(data) -> dict:
    """The declaration's fields, each checked for its type and bounded (ValueError otherwise);
    the window and the bonus are bounded by grid.grid_event_declare."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    bonus = data.get("bonus_minor_per_kwh")
    if bonus is not None and (not isinstance(bonus, int) or isinstance(bonus, bool)):
        raise ValueError("`bonus_minor_per_kwh` must be a whole number of minor units")
    return {
        "external_id": _text(data, "id", DemandResponseEvent._meta.get_field("external_id").max_length, required=True),
        "starts_at": _aware(data["starts_at"]),
        "ends_at": _aware(data["ends_at"]),
        "region": _text(data, "region", DemandResponseEvent._meta.get_field("region").max_length),
        "vehicle_ids": _vehicle_ids(data.get("vehicle_ids", [])),
        "bonus_minor_per_kwh": bonus,
    }


def _refused(request: HttpRequest, status: int, error: str, detail: str) -> JsonResponse:
    # A problem body (RFC 9457) that keeps the `error` code senders already read.
    return problem(request, status, detail, error=error)


@csrf_exempt  # authenticated by signature (utilities) or staff session (operators, same origin)
@require_POST
def event_declare(request: HttpRequest) -> JsonResponse:
    source = _caller(request)
    if source is None:
        return _refused(request, 403, "forbidden", "Sign the request, or sign in as an operator.")
    if source == DemandResponseEvent.Source.OPERATOR and not _signed(request):
        # Operators post from the dashboard; CSRF still protects their session cookie.
        from django.middleware.csrf import CsrfViewMiddleware

        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return _refused(request, 403, "csrf", "CSRF check failed.")
    try:
        fields = _event_fields(jsonbody.loads(request.body or b"{}"))
    except KeyError as exc:
        return _refused(request, 400, "invalid", f"missing {exc}")
    except (ValueError, TypeError, OverflowError) as exc:  # jsonbody.MalformedJSON is a ValueError
        return _refused(request, 400, "invalid", str(exc)[:200])
    try:
        event, created = grid.grid_event_declare(
            source=source, declared_by=request.user if request.user.is_authenticated else None, **fields
        )
    except grid.GridError as exc:
        return _refused(request, 400, exc.code, str(exc))
    body = {"event": str(event.public_id), "created": created, "participants": event.participations.count()}
    return JsonResponse(body, status=201 if created else 200)


@require_GET
def event_report(request: HttpRequest, public_id) -> JsonResponse:
    if _caller(request) is None:
        return _refused(request, 403, "forbidden", "Sign the request, or sign in as an operator.")
    event = get_object_or_404(DemandResponseEvent, public_id=public_id)
    return JsonResponse(grid_selectors.grid_event_report(event=event))
