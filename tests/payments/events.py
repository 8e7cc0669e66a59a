"""Real-shaped Stripe events (API 2026-10-28 shapes, trimmed) for what localstripe cannot emit."""

import secrets
import time


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def event(type_: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or _id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def refund(*, refund_id: str, payment_intent: str, amount: int, status: str, refund_part: str, reason: str = ""):
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": _id("ch"),
        "created": int(time.time()),
        "currency": "eur",
        "failure_reason": reason or None,
        "metadata": {"refund_part": refund_part},
        "payment_intent": payment_intent,
        "reason": None,
        "status": status,
    }


def charge_refunded(*, payment_intent: str, amount: int, refunds: list[dict]):
    return {
        "id": _id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": sum(r["amount"] for r in refunds),
        "currency": "eur",
        "payment_intent": payment_intent,
        "refunded": False,
        "refunds": {"object": "list", "data": refunds, "has_more": False, "total_count": len(refunds)},
        "status": "succeeded",
    }


def dispute(*, dispute_id: str, payment_intent: str, charge: str, amount: int, status: str):
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "charge": charge,
        "created": int(time.time()),
        "currency": "eur",
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": payment_intent,
        "reason": "fraudulent",
        "status": status,
    }


def checkout_session(
    *, session_id: str, purchase_id: str, amount: int, status: str, payment_status: str, payment_intent=None
):
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "client_reference_id": purchase_id,
        "currency": "eur",
        "customer_email": "driver@example.com",
        "metadata": {"purchase_id": purchase_id},
        "mode": "payment",
        "payment_intent": payment_intent,
        "payment_status": payment_status,
        "status": status,
        "success_url": "http://testserver/payments/purchases/x/",
        "url": None if status != "open" else f"https://checkout.stripe.com/c/pay/{session_id}",
    }
