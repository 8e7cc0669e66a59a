"""Vehicle API webhooks, payload version 4.0 (docs/reference/vehicle-api-v3.md §6).

`parse_delivery` checks and parses a delivery (sessions/vehicle_api/webhooks_v3.py): VERIFY is
answered with HMAC(AMT, challenge) at once, without touching the database (the 15 s window);
every other event is untrusted until its `SC-Signature` verifies over the raw bytes under one of
the configured keys (two during an AMT rotation). Then, in ONE transaction before the 200:
the event is stored once under its `eventId` (at-least-once deliveries: a retry is a duplicate),
a VEHICLE_STATE's signal values become a reading of the car's open session
(sessions/controller/webhook_readings.py), a VEHICLE_ERROR marks the session or the connection
and its RESOLVED clears the mark. A failure rolls all of it back and answers 500, so the sender
retries; a 200 means it is stored. Malformed, forged or oversized bodies get a 4xx problem body
and nothing is stored.
"""

from __future__ import annotations

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
from sessions.controller import webhook_readings
from sessions.models import Vehicle, VehicleConnection
from sessions.models.charging import OPEN_STATUSES, ChargingSession, SessionStatus, VehicleEvent
from sessions.vehicle_api import webhooks_v3 as v4
from sessions.vehicle_api.webhooks_v3 import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

__all__ = ["MAX_BODY_BYTES", "receive", "signature"]

# VEHICLE_ERROR types about the account or its permissions, not about one car's state: they mark
# the connection (the driver may have to act), the others mark the car's open session.
ACCOUNT_ERROR_TYPES = {"CONNECTED_SERVICES_ACCOUNT", "PERMISSION"}


def signature(key: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of `message` keyed with the Application Management Token."""
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def webhook_keys() -> list[str]:
    """The AMT and, during a rotation, the previous ones (VEHICLE_WEBHOOK_AMT_PREVIOUS)."""
    return [settings.VEHICLE_WEBHOOK_AMT, *getattr(settings, "VEHICLE_WEBHOOK_AMT_PREVIOUS", [])]


def _error(request: HttpRequest, status: int, detail: str) -> JsonResponse:
    # A problem body (RFC 9457) that keeps the `error` member senders already read.
    return problem(request, status, detail, error=detail)


def _shape_problem(event: dict) -> str | None:
    """Why a signed event's envelope is not one we store (the parser reads what it can of any
    shape; stored events must be whole): a wrong type where an object or a string belongs."""
    event_type = event.get("eventType", event.get("eventName"))
    if not isinstance(event_type, str):
        return "eventType must be a string"
    for member in ("data", "meta"):
        if member in event and not isinstance(event[member], dict):
            return f"{member} must be an object"
    data = event.get("data") or {}
    for member in ("vehicle", "user"):
        if member in data and not isinstance(data[member], dict):
            return f"data.{member} must be an object"
    for where, value in (
        ("vehicleId", event.get("vehicleId")),
        ("data.vehicle.id", (data.get("vehicle") or {}).get("id")),
    ):
        limit = VehicleEvent._meta.get_field("vehicle_external_id").max_length
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return f"{where} must be a string of at most {limit} characters"
    if "signals" in data and not isinstance(data["signals"], list):
        return "data.signals must be a list"
    if "errors" in data and not isinstance(data["errors"], list):
        return "data.errors must be a list"
    return None


def _fits(delivery) -> str | None:
    """Why the event cannot be stored whole (a field longer than its column), else None."""
    envelope = delivery.envelope
    if len(envelope.event_id or "") > VehicleEvent._meta.get_field("event_id").max_length:
        return "eventId must be a string of 1 to 64 characters"
    if len(envelope.event_type) > VehicleEvent._meta.get_field("event_type").max_length:
        return "eventType must be a short string"
    vehicle = getattr(delivery, "vehicle", None)
    limit = VehicleEvent._meta.get_field("vehicle_external_id").max_length
    if vehicle is not None and len(vehicle.id or "") > limit:
        return f"the vehicle id must be a string of at most {limit} characters"
    return None


@csrf_exempt
@require_POST
@transaction.non_atomic_requests
def receive(request: HttpRequest) -> JsonResponse:
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return _error(request, 413, "payload too large")
    body = request.body
    given = request.headers.get("SC-Signature")
    try:
        # First the checks json.loads lacks (depth, NaN, NUL: what the database or the parser
        # would choke on); only a sender who signed is told more than "untrusted".
        payload = jsonbody.loads(body)
    except jsonbody.MalformedJSON as exc:
        if v4.verify_signature(body, given, webhook_keys()):
            return _error(request, 400, f"body is not JSON we accept: {exc}")
        return _error(request, 401, "untrusted: SC-Signature missing or wrong")
    try:
        delivery = v4.parse_delivery(body, given, webhook_keys())
    except v4.DeliveryRejected as exc:
        if exc.status == 401:
            logger.warning("vehicle webhook rejected: %s", exc.reason)
        return _error(request, exc.status, exc.reason)
    if isinstance(delivery, v4.Verify):
        return JsonResponse(v4.challenge_answer(settings.VEHICLE_WEBHOOK_AMT, delivery.challenge))
    unfit = _shape_problem(payload) or _fits(delivery)
    if unfit:
        return _error(request, 400, unfit)
    log_context_add(event_id=delivery.envelope.event_id)
    vehicle_id = delivery.vehicle.id if isinstance(delivery, v4.VehicleState | v4.VehicleError) else None
    with transaction.atomic():
        try:
            with transaction.atomic():
                VehicleEvent.objects.create(
                    event_id=delivery.envelope.event_id,
                    event_type=delivery.envelope.event_type,
                    vehicle_external_id=vehicle_id or "",
                    payload=payload,
                )
        except IntegrityError:
            return JsonResponse({"status": "duplicate"})
        if isinstance(delivery, v4.VehicleState) and vehicle_id:
            outcome = _vehicle_state(delivery)
        elif isinstance(delivery, v4.VehicleError) and vehicle_id:
            outcome = _vehicle_error(delivery)
        else:
            outcome = "stored"
    return JsonResponse({"status": outcome})


def _open_session(vehicle_id: str, user_id: str | None) -> ChargingSession | None:
    """The open session of the car the event is about (of its Smartcar user, when both say)."""
    sessions = ChargingSession.objects.filter(vehicle__external_id=vehicle_id, status__in=OPEN_STATUSES)
    if user_id:
        sessions = sessions.filter(vehicle__connection__external_user_id__in=("", user_id))
    return sessions.order_by("-pk").first()


def _vehicle_state(delivery: v4.VehicleState) -> str:
    session = _open_session(delivery.vehicle.id, delivery.vehicle.user_id)
    if session is None:
        return "stored"
    if (delivery.envelope.mode or "").upper() == "TEST":
        # The dashboard's test payloads carry made-up values: kept, never metered.
        return "stored"
    now = clock.now()
    # Metered as the session's reads are: by the car's counter once the session counts on one (its
    # first read decides; until then a counter the car sends is taken as one).
    counter = session.energy_step_wh != 0 or session.status == SessionStatus.REQUESTED
    reading = webhook_readings.reading_from_signals(delivery.signals, received_at=now, counter=counter)
    if reading is None:
        # Nothing to meter (no signal the controller reads): the step reads the car instead.
        ChargingSession.objects.filter(pk=session.pk).update(next_action_at=now)
        return "stored"
    outcome = webhook_readings.store_webhook_reading(session.pk, reading, now=now)
    return "stored" if outcome == "closed" else outcome


def _vehicle_error(delivery: v4.VehicleError) -> str:
    """Mark (ERROR) or clear (RESOLVED) each error on the car's open session, or on the
    connection for account errors and for a car with no open session."""
    vehicle_id, user_id = delivery.vehicle.id, delivery.vehicle.user_id
    session = _open_session(vehicle_id, user_id)
    vehicles = Vehicle.objects.filter(external_id=vehicle_id, is_active=True)
    if user_id:
        vehicles = vehicles.filter(connection__external_user_id__in=("", user_id))
    connections = VehicleConnection.objects.filter(pk__in=vehicles.values("connection_id"))
    now = clock.now()
    for error in delivery.errors:
        if (error.type or "").upper() == "COMPATIBILITY" and error.signal_codes:
            # Signals this car cannot report: a capability, not a fault to show (the event is kept).
            continue
        code = f"{error.type or 'ERROR'}:{error.code or ''}".rstrip(":")[:64]
        message = (error.description or code)[:255]
        on_session = session is not None and (error.type or "").upper() not in ACCOUNT_ERROR_TYPES
        if error.resolved:
            # RESOLVED clears the mark it names wherever it is (the session may have ended).
            ChargingSession.objects.filter(vehicle__in=vehicles, vehicle_error=code).update(
                vehicle_error="", vehicle_error_message=""
            )
            connections.filter(api_error=code).update(api_error="", api_error_message="", api_error_at=None)
        elif on_session:
            ChargingSession.objects.filter(pk=session.pk).update(vehicle_error=code, vehicle_error_message=message)
        else:
            connections.update(api_error=code, api_error_message=message, api_error_at=now)
        logger.info("vehicle %s: VEHICLE_ERROR %s %s", vehicle_id, code, error.state or "")
    return "stored"
