"""The grid-event endpoint: a utility (HMAC-signed JSON) or a staff operator declares an event.

Signature: header `X-Grid-Timestamp: <unix seconds>` and `X-Grid-Signature: sha256=<hex>` where
hex = HMAC-SHA256(GRID_API_SECRET, f"{timestamp}.{raw body}"). A timestamp further than
GRID_API_MAX_SKEW_S from now is refused (replay window); the event's `id` makes a replay inside
the window harmless (the same event is returned, nothing new is created).
"""

import hashlib
import hmac
import json
from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from sessions import clock
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models.grid import DemandResponseEvent


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
    when = datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        raise ValueError("timestamps need a UTC offset")
    return when


@csrf_exempt  # authenticated by signature (utilities) or staff session (operators, same origin)
@require_POST
def event_declare(request: HttpRequest) -> JsonResponse:
    source = _caller(request)
    if source is None:
        return JsonResponse({"error": "forbidden"}, status=403)
    if source == DemandResponseEvent.Source.OPERATOR and not _signed(request):
        # Operators post from the dashboard; CSRF still protects their session cookie.
        from django.middleware.csrf import CsrfViewMiddleware

        reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
        if reason is not None:
            return JsonResponse({"error": "csrf"}, status=403)
    try:
        data = json.loads(request.body or b"{}")
        event, created = grid.grid_event_declare(
            source=source,
            external_id=str(data["id"])[:100],
            starts_at=_aware(data["starts_at"]),
            ends_at=_aware(data["ends_at"]),
            region=str(data.get("region", ""))[:32],
            vehicle_ids=[int(v) for v in data.get("vehicle_ids", [])],
            bonus_minor_per_kwh=int(data["bonus_minor_per_kwh"]) if "bonus_minor_per_kwh" in data else None,
            declared_by=request.user if request.user.is_authenticated else None,
        )
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        return JsonResponse({"error": "invalid", "detail": str(exc)[:200]}, status=400)
    except grid.GridError as exc:
        return JsonResponse({"error": exc.code, "detail": str(exc)}, status=400)
    body = {"event": str(event.public_id), "created": created, "participants": event.participations.count()}
    return JsonResponse(body, status=201 if created else 200)


@require_GET
def event_report(request: HttpRequest, public_id) -> JsonResponse:
    if _caller(request) is None:
        return JsonResponse({"error": "forbidden"}, status=403)
    event = get_object_or_404(DemandResponseEvent, public_id=public_id)
    return JsonResponse(grid_selectors.grid_event_report(event=event))
