"""Vehicle webhooks the simulator sends: VEHICLE_STATE events and the VERIFY challenge.

Bodies are compact JSON (`separators=(",", ":")`) and signed over exactly those bytes, because
the Node SDK re-serializes the parsed body before hashing (docs/reference/vehicle-api.md §5.1). `sign` and
`hash_challenge` are pure and may be reused by the receiving side's tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from .clock import iso_ms

if TYPE_CHECKING:
    from .engine import Simulator

log = logging.getLogger(__name__)

# Smartcar retries a failed delivery 3 times: +25 s, +50 s, +100 s (delivery-behavior docs).
RETRY_DELAYS_S = (25, 50, 100)
DELIVERY_TIMEOUT_S = 15.0
WEBHOOK_ID = "sim-webhook"
WEBHOOK_NAME = "Simulator vehicle state"
USER_AGENT = "Smartcar/4.0 (simulator)"


def sign(amt: str, body: bytes) -> str:
    """`SC-Signature`: hex HMAC-SHA256 of the raw body, keyed with the Application Management Token."""
    return hmac.new(amt.encode(), body, hashlib.sha256).hexdigest()


def hash_challenge(amt: str, challenge: str) -> str:
    """The answer a receiver must give to a VERIFY challenge."""
    return hmac.new(amt.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def compact(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _signal(code: str, name: str, group: str, body: dict, at: float) -> dict:
    stamp = iso_ms(at)
    return {
        "code": code,
        "name": name,
        "group": group,
        "body": body,
        "status": {"value": "SUCCESS"},
        "meta": {"retrievedAt": stamp, "oemUpdatedAt": stamp},
    }


def vehicle_state_event(v: Any, t: float, rng) -> dict:
    """A v4 VEHICLE_STATE envelope for a charge-state change of vehicle `v` at time `t`."""
    state = "CHARGING" if v.charging else ("FULLY_CHARGED" if v.plugged and v.soc >= v.limit - 1e-9 else "NOT_CHARGING")
    signals = [
        _signal("charge-ischarging", "IsCharging", "Charge", {"value": v.charging}, t),
        _signal("charge-ischargingcableconnected", "IsChargingCableConnected", "Charge", {"value": v.plugged}, t),
        _signal("charge-detailedchargingstatus", "DetailedChargingStatus", "Charge", {"value": state}, t),
        _signal(
            "tractionbattery-stateofcharge",
            "StateOfCharge",
            "TractionBattery",
            {"value": round(v.soc * 100, 1), "unit": "percent"},
            t,
        ),
        _signal(
            "charge-energyadded",
            "EnergyAdded",
            "Charge",
            {"value": round(v.session_battery_wh / 1000, 3), "unit": "kilowattHours"},
            t,
        ),
        _signal(
            "charge-chargelimits",
            "ChargeLimits",
            "Charge",
            {"values": [], "activeLimit": round(v.limit * 100), "unit": "percent"},
            t,
        ),
    ]
    return {
        "eventId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "eventType": "VEHICLE_STATE",
        "vehicleId": v.id,
        "data": {
            "vehicle": {"id": v.id, "make": v.make, "model": v.profile.model, "year": v.profile.year, "vin": v.vin},
            "signals": signals,
            "user": {"id": v.owner_user_id},
        },
        "triggers": [{"type": "SIGNAL_UPDATED", "signal": {"code": "charge-ischarging"}}],
        "meta": {
            "version": "4.0",
            "webhookId": WEBHOOK_ID,
            "webhookName": WEBHOOK_NAME,
            "deliveryId": None,
            "deliveredAt": None,
            "signalCount": len(signals),
            "mode": "TEST",
        },
    }


def _post(client: httpx.Client | None, url: str, body: bytes, amt: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", "SC-Signature": sign(amt, body), "User-Agent": USER_AGENT}
    if client is not None:
        return client.post(url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT_S)
    return httpx.post(url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT_S)


def deliver_pending(sim: Simulator, client: httpx.Client | None = None) -> int:
    """Send every event that is due; failures are retried later (+25/+50/+100 s). Returns sends.

    The HTTP calls run outside the simulator lock so vehicle requests are never held up.
    """
    with sim.lock:
        sim.advance_all()
        now = sim.now()
        due = [item for item in sim.webhook_outbox if item["due"] <= now]
        sim.webhook_outbox = [item for item in sim.webhook_outbox if item["due"] > now]
        url, amt = sim.webhook_url, sim.amt
    sent = 0
    for item in due:
        event = json.loads(json.dumps(item["event"]))
        # The eventId stays across retries; each attempt gets its own deliveryId and deliveredAt.
        event["meta"]["deliveryId"] = str(uuid.uuid4())
        event["meta"]["deliveredAt"] = iso_ms(now)
        body = compact(event)
        try:
            response = _post(client, url, body, amt)
            ok = 200 <= response.status_code < 300
            status: int | str = response.status_code
        except httpx.HTTPError as exc:
            ok, status = False, type(exc).__name__
        sent += 1
        with sim.lock:
            sim.webhook_log.append(
                {"eventId": event["eventId"], "deliveryId": event["meta"]["deliveryId"], "status": status, "ok": ok}
            )
            if not ok and item["attempt"] < len(RETRY_DELAYS_S):
                sim.webhook_outbox.append(
                    {**item, "attempt": item["attempt"] + 1, "due": now + RETRY_DELAYS_S[item["attempt"]]}
                )
            elif not ok:
                log.warning("webhook event %s dropped after %s attempts", event["eventId"], item["attempt"] + 1)
    return sent


def send_verify(sim: Simulator, client: httpx.Client | None = None, url: str | None = None) -> bool:
    """POST a VERIFY challenge; True if the receiver answered with the right HMAC."""
    with sim.lock:
        url = url or sim.webhook_url
        amt = sim.amt
        now = sim.now()
    challenge = secrets.token_hex(16)
    payload = {
        "eventId": str(uuid.uuid4()),
        "eventType": "VERIFY",
        "data": {"challenge": challenge},
        "meta": {
            "version": "4.0",
            "webhookId": WEBHOOK_ID,
            "webhookName": WEBHOOK_NAME,
            "deliveryId": str(uuid.uuid4()),
            "deliveredAt": iso_ms(now),
        },
    }
    try:
        response = _post(client, url, compact(payload), amt)
        answer = response.json().get("challenge") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return isinstance(answer, str) and hmac.compare_digest(answer, hash_challenge(amt, challenge))
