"""Webhook deliveries of the v3 management API (payload version 4.0): verify, then parse.

Trust rule (docs/reference/vehicle-api-v3.md §6): `SC-Signature` is the hex HMAC-SHA256 of the
raw bytes keyed by the Application Management Token (AMT). VERIFY is said to arrive unsigned
(3P), so it is accepted without a signature and answered with HMAC(AMT, challenge); every other
event is untrusted until its signature verifies over the exact bytes received.

Answering an unsigned VERIFY is a signing oracle if done blindly: HMAC(AMT, challenge) *is* a
valid `SC-Signature` for a body equal to the challenge. So an unsigned challenge is answered only
when it cannot be a delivery body (a short token of URL-safe characters, never a JSON object);
a VERIFY whose signature verifies is answered whatever its challenge.

Tolerated variants (all CONFLICT/UNKNOWN in the reference, each tested): timestamps in epoch
seconds, milliseconds or ISO 8601; `triggers[]` as `{type, signal:{code,name,group}}`,
`{code, name, group}` or `{signal: "Group.Name"}`; `VEHICLE_ERROR` `signals` entries as objects
or `"Group.Name"` strings; the legacy VERIFY `{"eventName":"verify","payload":{"challenge"}}`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import units
from .signals import SignalSet, code_from_name

# Real challenges are random strings; anything else is not answered unsigned (see above).
SAFE_CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
# Smartcar caps payloads at 50 KB; anything much larger is not from it.
MAX_BODY_BYTES = 64 * 1024


class DeliveryRejected(Exception):
    """The delivery must be refused. `status`: 401 untrusted (signature missing or wrong), 400
    malformed, 413 too large. The message never contains the key or the expected signature."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


def signature(key: str, message: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `message` keyed with `key` (the AMT)."""
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, given: str | None, keys: Iterable[str]) -> bool:
    """Constant-time check of `SC-Signature` against every key (two during an AMT rotation)."""
    if not given:
        return False
    if isinstance(keys, str):  # one key given as a string, not as a list of characters
        keys = [keys]
    given = given.strip().lower()
    return any(key and hmac.compare_digest(given, signature(key, body)) for key in keys)


def challenge_answer(key: str, challenge: str) -> dict[str, str]:
    """The JSON body VERIFY must be answered with: `{"challenge": hex HMAC(AMT, challenge)}`."""
    return {"challenge": signature(key, challenge.encode())}


@dataclass(frozen=True)
class Envelope:
    event_id: str | None
    event_type: str
    webhook_id: str | None = None
    webhook_name: str | None = None
    delivery_id: str | None = None
    delivered_at: datetime | None = None
    version: str | None = None
    mode: str | None = None  # LIVE | TEST


@dataclass(frozen=True)
class Verify:
    envelope: Envelope
    challenge: str
    signed: bool  # the signature verified (else it was accepted under the unsigned-VERIFY rule)
    legacy: bool = False


@dataclass(frozen=True)
class Trigger:
    """Why a VEHICLE_STATE was sent: SIGNAL_UPDATED with the signal's code, or FIRST_DELIVERY."""

    type: str
    code: str | None = None
    name: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class VehicleRef:
    id: str | None
    user_id: str | None
    make: str | None = None
    model: str | None = None
    year: int | None = None


@dataclass(frozen=True)
class VehicleState:
    envelope: Envelope
    vehicle: VehicleRef
    signals: SignalSet
    triggers: tuple[Trigger, ...] = ()

    @property
    def first_delivery(self) -> bool:
        return any(trigger.type == "FIRST_DELIVERY" for trigger in self.triggers)


@dataclass(frozen=True)
class WebhookError:
    type: str | None
    code: str | None
    state: str | None  # ERROR, then RESOLVED in a later event
    description: str | None = None
    resolution_type: str | None = None
    signal_codes: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        return (self.state or "").upper() == "RESOLVED"


@dataclass(frozen=True)
class VehicleError:
    envelope: Envelope
    vehicle: VehicleRef
    errors: tuple[WebhookError, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class OtherEvent:
    """A verified event of a type this module does not know (kept, not acted upon)."""

    envelope: Envelope
    payload: dict


Delivery = Verify | VehicleState | VehicleError | OtherEvent


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _envelope(event: dict, event_type: str) -> Envelope:
    meta = _obj(event.get("meta"))
    return Envelope(
        event_id=_str(event.get("eventId")),
        event_type=event_type,
        webhook_id=_str(meta.get("webhookId")) or _str(event.get("webhookId")),
        webhook_name=_str(meta.get("webhookName")),
        delivery_id=_str(meta.get("deliveryId")),
        delivered_at=units.parse_timestamp(meta.get("deliveredAt")),
        version=_str(meta.get("version")) or _str(event.get("version")),
        mode=_str(meta.get("mode")),
    )


def _vehicle(event: dict) -> VehicleRef:
    data = _obj(event.get("data"))
    vehicle = _obj(data.get("vehicle"))
    year = vehicle.get("year")
    return VehicleRef(
        # The overview's top-level `vehicleId` is absent in real payloads; read it if present.
        id=_str(vehicle.get("id")) or _str(event.get("vehicleId")),
        user_id=_str(_obj(data.get("user")).get("id")) or _str(event.get("userId")),
        make=_str(vehicle.get("make")),
        model=_str(vehicle.get("model")),
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
    )


def parse_trigger(item: Any) -> Trigger | None:
    """One `triggers[]` entry in any of its three documented shapes (§6, CONFLICT)."""
    if isinstance(item, str):
        return Trigger(type="SIGNAL_UPDATED", code=code_from_name(item)) if item != "FIRST_DELIVERY" else Trigger(item)
    if not isinstance(item, dict):
        return None
    signal = item.get("signal")
    if isinstance(signal, dict):  # real payloads: {"type":"SIGNAL_UPDATED","signal":{…}}
        code = _str(signal.get("code"))
        return Trigger(
            type=_str(item.get("type")) or "SIGNAL_UPDATED",
            code=code.lower() if code else None,
            name=_str(signal.get("name")),
            group=_str(signal.get("group")),
        )
    if isinstance(signal, str):  # an old fixture: {"signal":"Odometer.TraveledDistance"}
        return Trigger(type=_str(item.get("type")) or "SIGNAL_UPDATED", code=code_from_name(signal))
    code = _str(item.get("code"))
    if code and code.upper() == "FIRST_DELIVERY":  # the event page: {"code":"FIRST_DELIVERY"}
        return Trigger(type="FIRST_DELIVERY")
    if _str(item.get("type")) and not code:  # {"type":"FIRST_DELIVERY"}
        return Trigger(type=item["type"])
    if code:  # the event page: {"code":"…","name","group"}
        return Trigger(
            type="SIGNAL_UPDATED", code=code.lower(), name=_str(item.get("name")), group=_str(item.get("group"))
        )
    return None


def _error_signal_code(item: Any) -> str | None:
    if isinstance(item, str) and item:
        return code_from_name(item) if "." in item else item.lower()
    if isinstance(item, dict):
        code = _str(item.get("code"))
        if code:
            return code.lower()
        if _str(item.get("group")) and _str(item.get("name")):
            return code_from_name(f"{item['group']}.{item['name']}")
    return None


def _webhook_error(item: dict) -> WebhookError:
    resolution = item.get("resolution")
    signals = item.get("signals") if isinstance(item.get("signals"), list) else []
    return WebhookError(
        type=_str(item.get("type")),
        code=_str(item.get("code")),
        state=_str(item.get("state")),
        description=_str(item.get("description")),
        resolution_type=_str(resolution.get("type")) if isinstance(resolution, dict) else _str(resolution),
        signal_codes=tuple(code for code in map(_error_signal_code, signals) if code),
    )


def _event_type(event: dict) -> str:
    raw = event.get("eventType") or event.get("eventName") or ""
    return str(raw).upper()


def parse_delivery(body: bytes, given_signature: str | None, keys: Iterable[str]) -> Delivery:
    """Check and parse one delivery (the raw request body and its `SC-Signature` header).

    Raises DeliveryRejected: 413 too large, 400 not a JSON object / VERIFY without a usable
    challenge / no eventId, 401 signature missing or wrong on anything but a safe VERIFY."""
    if len(body) > MAX_BODY_BYTES:
        raise DeliveryRejected(413, "payload too large")
    keys = [keys] if isinstance(keys, str) else [key for key in keys if key]
    signed = verify_signature(body, given_signature, keys)
    try:
        event = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        event = None
    if not isinstance(event, dict):
        # Unsigned garbage is "untrusted", signed garbage is "malformed": never say more to a
        # sender who could not sign.
        raise DeliveryRejected(400 if signed else 401, "body is not a JSON object" if signed else "untrusted")
    event_type = _event_type(event)
    if event_type == "VERIFY":
        legacy = "payload" in event and "data" not in event
        challenge = _obj(event.get("data") or event.get("payload")).get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise DeliveryRejected(400, "VERIFY without a challenge")
        if not signed and not SAFE_CHALLENGE.match(challenge):
            raise DeliveryRejected(401, "unsigned VERIFY with a challenge that could be a payload")
        return Verify(_envelope(event, event_type), challenge, signed=signed, legacy=legacy)
    if not signed:
        raise DeliveryRejected(401, "untrusted: SC-Signature missing or wrong")
    envelope = _envelope(event, event_type)
    if envelope.event_id is None:
        raise DeliveryRejected(400, "event without eventId")
    data = _obj(event.get("data"))
    if event_type == "VEHICLE_STATE":
        items = data.get("signals") if isinstance(data.get("signals"), list) else []
        try:
            signals = SignalSet.from_items([item for item in items if isinstance(item, dict)])
        except units.UnitError as exc:
            raise DeliveryRejected(400, f"bad signal: {exc}") from exc
        raw_triggers = event.get("triggers") if isinstance(event.get("triggers"), list) else []
        triggers = tuple(trigger for trigger in map(parse_trigger, raw_triggers) if trigger)
        return VehicleState(envelope, _vehicle(event), signals, triggers)
    if event_type == "VEHICLE_ERROR":
        raw_errors = data.get("errors") if isinstance(data.get("errors"), list) else []
        return VehicleError(
            envelope, _vehicle(event), tuple(_webhook_error(item) for item in raw_errors if isinstance(item, dict))
        )
    return OtherEvent(envelope, event)
