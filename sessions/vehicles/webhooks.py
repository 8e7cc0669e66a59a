"""Vehicle API webhooks (SC-Signature, VERIFY challenge, VEHICLE_STATE / VEHICLE_ERROR).

Deliveries are at-least-once with no ordering guarantee and may arrive concurrently
(docs/reference/vehicle-api.md §5.3): each event is stored once under its `eventId`, and a
VEHICLE_STATE for a car with an open session only pulls that session's next step forward — the
step itself reads the car, so a late or duplicated event cannot move a session on its own.
"""

import hashlib
import hmac
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from monitoring.logs import log_context_add
from prepaid import jsonbody
from prepaid.jsonbody import problem
from sessions import clock
from sessions.models.charging import OPEN_STATUSES, ChargingSession, VehicleEvent

logger = logging.getLogger(__name__)

# Smartcar caps payloads at 50 KB; anything much larger is not from it.
MAX_BODY_BYTES = 64 * 1024


def signature(key: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of `message` keyed with the Application Management Token."""
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _error(request: HttpRequest, status: int, detail: str) -> JsonResponse:
    # A problem body (RFC 9457) that keeps the `error` member senders already read.
    return problem(request, status, detail, error=detail)


def _event_fields(event) -> tuple[str, str, str] | str:
    """(event type, eventId, vehicle id) of a signed body, or why it is not an event we store:
    every field checked for its type and bounded to its column, so nothing is stored half-way."""
    if not isinstance(event, dict):
        return "body is not a JSON object"
    event_type = event.get("eventType") or event.get("eventName") or ""
    if not isinstance(event_type, str) or len(event_type) > VehicleEvent._meta.get_field("event_type").max_length:
        return "eventType must be a short string"
    data = event.get("data")
    if data is not None and not isinstance(data, dict):
        return "data must be an object"
    if event_type.upper() == "VERIFY":
        return event_type, "", ""
    event_id = event.get("eventId")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= VehicleEvent._meta.get_field("event_id").max_length:
        return "eventId must be a string of 1 to 64 characters"
    vehicle = (data or {}).get("vehicle")
    if vehicle is not None and not isinstance(vehicle, dict):
        return "data.vehicle must be an object"
    vehicle_id = event.get("vehicleId") or (vehicle or {}).get("id") or ""
    limit = VehicleEvent._meta.get_field("vehicle_external_id").max_length
    if not isinstance(vehicle_id, str) or len(vehicle_id) > limit:
        return f"the vehicle id must be a string of at most {limit} characters"
    return event_type, event_id, vehicle_id


@csrf_exempt
@require_POST
def receive(request: HttpRequest) -> JsonResponse:
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return _error(request, 413, "payload too large")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return _error(request, 413, "payload too large")
    given = request.headers.get("SC-Signature", "")
    # Compare in constant time; the signature covers the raw bytes, never a re-serialisation.
    if not given or not hmac.compare_digest(given, signature(settings.VEHICLE_WEBHOOK_AMT, body)):
        logger.warning("vehicle webhook rejected: bad signature")
        return _error(request, 401, "invalid signature")
    try:
        event = jsonbody.loads(body)
    except jsonbody.MalformedJSON as exc:
        return _error(request, 400, f"body is not JSON we accept: {exc}")
    fields = _event_fields(event)
    if isinstance(fields, str):
        return _error(request, 400, fields)
    event_type, event_id, vehicle_id = fields
    log_context_add(event_id=event_id)

    if event_type.upper() == "VERIFY":
        verify = event.get("data") or event.get("payload") or {}
        challenge = verify.get("challenge") if isinstance(verify, dict) else None
        if not isinstance(challenge, str):
            return _error(request, 400, "VERIFY without a challenge")
        return JsonResponse({"challenge": signature(settings.VEHICLE_WEBHOOK_AMT, challenge.encode())})

    try:
        with transaction.atomic():
            VehicleEvent.objects.create(
                event_id=event_id, event_type=event_type, vehicle_external_id=vehicle_id, payload=event
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    if vehicle_id:
        # Pull the next step of the car's open session forward; the controller loop claims it.
        ChargingSession.objects.filter(vehicle__external_id=vehicle_id, status__in=OPEN_STATUSES).update(
            next_action_at=clock.now()
        )
    return JsonResponse({"status": "stored"})
