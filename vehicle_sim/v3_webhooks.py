"""Webhooks v4.0 of the simulator's v3 platform: VERIFY, VEHICLE_STATE, VEHICLE_ERROR.

Shapes follow docs/reference/vehicle-api-v3.md §6 (the Polestar VEHICLE_STATE, the VEHICLE_ERROR
and VERIFY examples). Each delivery is signed like the real ones: `SC-Signature` = hex
HMAC-SHA256 of exactly the bytes sent, keyed with the Application Management Token. Bodies are
compact UTF-8 JSON with integral numbers printed without `.0`, so that the Node SDK's
`verifyPayload` (which hashes `JSON.stringify` of the parsed body) agrees with the raw bytes.
VERIFY is sent unsigned (3P) unless `V3Config.sign_verify`.

Delivery rules: any 2xx within 15 s is success; otherwise retried at +25, +50, +100 s (4 attempts),
then dropped; at-least-once and unordered — per make, some events are duplicated, some lost
upstream, and `jitter_s` shifts send times so a later event may overtake an earlier one
(`profiles.MakeTraits`).
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
from .profiles import (
    CATALOGUE,
    CHARGE_LIMITS,
    CHARGING_STATUS,
    ENERGY_ADDED,
    IS_CHARGING,
    IS_PLUGGED_IN,
    SOC,
    UNLISTED,
)

if TYPE_CHECKING:
    from .v3 import V3Platform

log = logging.getLogger(__name__)

RETRY_DELAYS_S = (25, 50, 100)  # after the first attempt: 4 attempts in 2 min 55 s
DELIVERY_TIMEOUT_S = 15.0
USER_AGENT = "Smartcar/4.0 (simulator)"
DEFAULT_TRIGGERS = [IS_CHARGING, IS_PLUGGED_IN, CHARGING_STATUS, SOC, ENERGY_ADDED, CHARGE_LIMITS]
LOG_LIMIT = 5000


def sign(amt: str, body: bytes) -> str:
    """`SC-Signature`: hex HMAC-SHA256 of the raw body, keyed with the Application Management Token."""
    return hmac.new(amt.encode(), body, hashlib.sha256).hexdigest()


def hash_challenge(amt: str, challenge: str) -> str:
    """The answer a receiver must give to a VERIFY challenge."""
    return hmac.new(amt.encode(), challenge.encode(), hashlib.sha256).hexdigest()


def compact(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _ms(ts: float) -> int:
    return round(ts * 1000)


def _signal_ref(code: str, shape: str) -> dict:
    name, group, _scope = CATALOGUE[code]
    if shape == "code_object":
        return {"code": code, "name": name, "group": group}
    if shape == "signal_string":
        return {"signal": f"{group}.{name}"}
    return {"type": "SIGNAL_UPDATED", "signal": {"name": name, "code": code, "group": group}}


def _first_delivery(shape: str) -> dict:
    return {"code": "FIRST_DELIVERY"} if shape == "code_object" else {"type": "FIRST_DELIVERY"}


def _envelope(platform: V3Platform, hook: dict, v, sub: dict, event_type: str, data: dict) -> dict:
    return {
        "eventId": platform.new_id(),
        "eventType": event_type,
        "data": {
            "user": {"id": sub["user_id"]},
            "vehicle": {"id": v.id, "make": v.make, "model": v.profile.model, "year": v.profile.year},
            **data,
        },
        "meta": {
            "deliveryId": None,
            "deliveredAt": None,
            "version": "4.0",
            "webhookId": hook["id"],
            "webhookName": hook["name"],
            "mode": "LIVE",
        },
    }


def _live_hooks(platform: V3Platform, vehicle_id: str):
    """(webhook, subscription) pairs that receive this car's events: verified and enabled only
    ("data flows only after VERIFY"; a disabled webhook monitors nothing)."""
    for sub in platform.subscriptions.values():
        hook = platform.webhooks.get(sub["webhook_id"])
        if sub["vehicle_id"] == vehicle_id and hook and hook["verified"] and hook["enabled"]:
            yield hook, sub


def _state_event(platform: V3Platform, hook: dict, sub: dict, v, triggers: list[dict]) -> dict:
    entry = platform.store[v.id]
    scopes = platform.scopes_of(sub["user_id"], v.id) or []
    bodies = platform.signal_bodies(v, entry["snap"], hook["units"])
    # Only the signals the make has: what it lacks is told once, by VEHICLE_ERROR.
    signals = [
        platform.signal_item(v, code, bodies[code], scopes, entry["snap"]["at"], entry["retrieved_at"], rest=False)
        for code in hook["data"]
        if code in bodies
    ]
    event = _envelope(platform, hook, v, sub, "VEHICLE_STATE", {"signals": signals})
    event["triggers"] = triggers
    event["meta"]["signalCount"] = len(signals)
    return event


def queue_state_events(platform: V3Platform, v, changed: set[str], t: float) -> None:
    shape = platform.config.trigger_shape
    for hook, sub in _live_hooks(platform, v.id):
        fired = [code for code in hook["triggers"] if code in changed]
        if fired:
            triggers = [_signal_ref(code, shape) for code in fired]
            _enqueue(platform, hook, v, _state_event(platform, hook, sub, v, triggers), t)


def queue_first_delivery(platform: V3Platform, v, sub: dict, t: float) -> None:
    """After (re)subscribing: a VEHICLE_STATE with FIRST_DELIVERY, and a VEHICLE_ERROR naming the
    webhook's data signals this car cannot report."""
    hook = platform.webhooks[sub["webhook_id"]]
    if not (hook["verified"] and hook["enabled"]):
        return
    event = _state_event(platform, hook, sub, v, [_first_delivery(platform.config.trigger_shape)])
    _enqueue(platform, hook, v, event, t)
    available = platform.available(v)
    missing = [code for code in hook["data"] if code not in available and code not in UNLISTED]
    if missing:
        error = _error_item(platform, "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "ERROR", missing)
        _enqueue(platform, hook, v, _envelope(platform, hook, v, sub, "VEHICLE_ERROR", {"errors": [error]}), t)


ERROR_TEXT = {
    "VEHICLE_NOT_CAPABLE": "The vehicle is incapable of performing your request.",
    "ASLEEP": "The vehicle is in a sleep state and temporarily unable to perform your request.",
    "UNREACHABLE": "The vehicle was unable to perform your request because it is currently unreachable.",
}


def _error_item(platform: V3Platform, type_: str, code: str, state: str, codes: list[str]) -> dict:
    if platform.config.error_signals_as_strings:
        signals: list[Any] = [f"{CATALOGUE[c][1]}.{CATALOGUE[c][0]}" for c in codes]
    else:
        signals = [{"code": c, "name": CATALOGUE[c][0], "group": CATALOGUE[c][1]} for c in codes]
    slug = type_.lower().replace("_", "-")
    return {
        "type": type_,
        "code": code,
        "state": state,
        "description": ERROR_TEXT.get(code, "The vehicle reported an error."),
        "suggestedUserMessage": "Your car is temporarily unable to respond.",
        "docURL": f"https://smartcar.com/docs/errors/api-errors/{slug}-errors#{code.lower().replace('_', '-')}",
        "resolution": {"type": "RETRY_LATER" if type_ == "VEHICLE_STATE" else "CONTACT_SUPPORT"},
        "signals": signals,
    }


def queue_error_events(platform: V3Platform, v, type_: str, code: str, state: str, t: float) -> None:
    for hook, sub in _live_hooks(platform, v.id):
        codes = [c for c in hook["data"] if c in platform.available(v)]
        error = _error_item(platform, type_, code, state, codes)
        _enqueue(platform, hook, v, _envelope(platform, hook, v, sub, "VEHICLE_ERROR", {"errors": [error]}), t)


def _enqueue(platform: V3Platform, hook: dict, v, event: dict, t: float) -> None:
    traits = platform.traits_of(v)
    rng = platform.rng
    url = hook["callbackUri"]
    if event["eventType"] == "VEHICLE_ERROR" and hook.get("errorCallbackUri"):
        url = hook["errorCallbackUri"]
    if rng.random() < traits.loss_rate:
        _log(platform, event, None, "lost upstream", ok=False)
        return
    copies = 2 if rng.random() < traits.duplicate_rate else 1
    for copy in range(copies):
        due = t + rng.uniform(0, traits.jitter_s) + (rng.uniform(1, 30) if copy else 0)
        platform.outbox.append({"event": event, "url": url, "attempt": 0, "due": due})
    platform.sim.dirty = True


def _log(platform: V3Platform, event: dict, delivery_id: str | None, status: Any, ok: bool) -> None:
    platform.log.append(
        {
            "eventId": event["eventId"],
            "eventType": event["eventType"],
            "deliveryId": delivery_id,
            "status": status,
            "ok": ok,
        }
    )
    del platform.log[:-LOG_LIMIT]


def _post(client: httpx.Client | None, url: str, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if signature is not None:
        headers["SC-Signature"] = signature
    if client is not None:
        return client.post(url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT_S)
    return httpx.post(url, content=body, headers=headers, timeout=DELIVERY_TIMEOUT_S)


def deliver_due(sim, client: httpx.Client | None = None) -> int:
    """Bring subscribed cars' stores up to date, then send every due event (outside the lock, so
    vehicle requests are never held up). Failures are retried later. Returns attempts made."""
    from .v3 import platform as get_platform

    platform = get_platform(sim)
    with sim.lock:
        platform.sync_all()
        now = platform.now()
        due = sorted((item for item in platform.outbox if item["due"] <= now), key=lambda item: item["due"])
        platform.outbox = [item for item in platform.outbox if item["due"] > now]
        amt = sim.amt
    attempts = 0
    for item in due:
        # The eventId stays across retries and duplicates; every attempt gets its own deliveryId.
        event = json.loads(json.dumps(item["event"]))
        event["meta"]["deliveryId"] = str(uuid.uuid4())
        event["meta"]["deliveredAt"] = _ms(now)
        body = compact(event)
        try:
            response = _post(client, item["url"], body, sign(amt, body))
            ok, status = 200 <= response.status_code < 300, response.status_code
        except httpx.HTTPError as exc:
            ok, status = False, type(exc).__name__
        attempts += 1
        with sim.lock:
            _log(platform, event, event["meta"]["deliveryId"], status, ok)
            if not ok and item["attempt"] < len(RETRY_DELAYS_S):
                retry = {**item, "attempt": item["attempt"] + 1, "due": now + RETRY_DELAYS_S[item["attempt"]]}
                platform.outbox.append(retry)
            elif not ok:
                log.warning("v3 webhook event %s dropped after %s attempts", event["eventId"], item["attempt"] + 1)
            sim.dirty = True
    return attempts


def verify_payload(platform: V3Platform, hook: dict) -> dict:
    return {
        "eventId": platform.new_id(),
        "eventType": "VERIFY",
        "data": {"challenge": secrets.token_hex(16)},
        "meta": {
            "version": "4.0",
            "webhookId": hook["id"],
            "webhookName": hook["name"],
            "deliveryId": str(uuid.uuid4()),
            "deliveredAt": iso_ms(platform.now()),  # ISO in the VERIFY samples (§6)
        },
    }


def send_verify(sim, webhook_id: str, client: httpx.Client | None = None) -> bool:
    """POST VERIFY to the webhook's callback; it becomes verified (data flows) when the answer is
    `{"challenge": hex HMAC(AMT, challenge)}` with status 200."""
    from .v3 import platform as get_platform

    platform = get_platform(sim)
    with sim.lock:
        hook = platform.webhook(webhook_id)
        payload = verify_payload(platform, hook)
        sign_it, amt, url = platform.config.sign_verify, sim.amt, hook["callbackUri"]
    body = compact(payload)
    challenge = payload["data"]["challenge"]
    try:
        response = _post(client, url, body, sign(amt, body) if sign_it else None)
        answer = response.json().get("challenge") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        answer = None
    ok = isinstance(answer, str) and secrets.compare_digest(answer, hash_challenge(amt, challenge))
    with sim.lock:
        hook["verified"] = hook["verified"] or ok
        _log(platform, payload, payload["meta"]["deliveryId"], "verified" if ok else "not verified", ok)
        sim.dirty = True
    return ok
