"""Vehicle API webhooks (SC-Signature, VERIFY challenge, VEHICLE_STATE / VEHICLE_ERROR).

Deliveries are at-least-once with no ordering guarantee and may arrive concurrently
(docs/reference/vehicle-api.md §5.3): each event is stored once under its `eventId`, and a
VEHICLE_STATE for a car with an open session only pulls that session's next step forward — the
step itself reads the car, so a late or duplicated event cannot move a session on its own.
"""

import hashlib
import hmac
import json
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sessions import clock
from sessions.models.charging import OPEN_STATUSES, ChargingSession, VehicleEvent

logger = logging.getLogger(__name__)

# Smartcar caps payloads at 50 KB; anything much larger is not from it.
MAX_BODY_BYTES = 64 * 1024


def signature(key: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of `message` keyed with the Application Management Token."""
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"error": detail}, status=status)


@csrf_exempt
@require_POST
def receive(request: HttpRequest) -> JsonResponse:
    length = int(request.headers.get("Content-Length") or 0)
    if length > MAX_BODY_BYTES:
        return _error(413, "payload too large")
    body = request.body
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "payload too large")
    given = request.headers.get("SC-Signature", "")
    # Compare in constant time; the signature covers the raw bytes, never a re-serialisation.
    if not given or not hmac.compare_digest(given, signature(settings.VEHICLE_WEBHOOK_AMT, body)):
        logger.warning("vehicle webhook rejected: bad signature")
        return _error(401, "invalid signature")
    try:
        event = json.loads(body)
        event_type = event.get("eventType") or event.get("eventName", "")
    except (ValueError, AttributeError):
        return _error(400, "body is not a JSON object")

    if str(event_type).upper() == "VERIFY":
        challenge = (event.get("data") or event.get("payload") or {}).get("challenge")
        if not isinstance(challenge, str):
            return _error(400, "VERIFY without a challenge")
        return JsonResponse({"challenge": signature(settings.VEHICLE_WEBHOOK_AMT, challenge.encode())})

    event_id = event.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        return _error(400, "event without eventId")
    vehicle_id = event.get("vehicleId") or ((event.get("data") or {}).get("vehicle") or {}).get("id") or ""
    try:
        with transaction.atomic():
            VehicleEvent.objects.create(
                event_id=event_id,
                event_type=str(event_type)[:32],
                vehicle_external_id=str(vehicle_id)[:64],
                payload=event,
            )
    except IntegrityError:
        return JsonResponse({"status": "duplicate"})
    if vehicle_id:
        # Pull the next step of the car's open session forward; the controller loop claims it.
        ChargingSession.objects.filter(vehicle__external_id=vehicle_id, status__in=OPEN_STATUSES).update(
            next_action_at=clock.now()
        )
    return JsonResponse({"status": "stored"})
