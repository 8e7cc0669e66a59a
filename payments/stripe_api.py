"""The one module that calls Stripe. Typed results in, typed errors out; no database access.

Every POST carries a deterministic idempotency key derived from our own rows, so a retried
application call cannot create a second object at Stripe (stripe-python's own random key only
covers its network retries). localstripe ignores the keys; real Stripe honours them for 24 h.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import stripe
from django.conf import settings

from prepaid import jsonbody


class StripeFailure(Exception):
    """A Stripe call failed. `retryable` says whether trying again later can help."""

    retryable = False

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code


class CardDeclined(StripeFailure):
    """The card was declined (402); the driver can try another card."""


class StripeUnavailable(StripeFailure):
    """Network trouble, rate limit or a Stripe 5xx: retry later."""

    retryable = True


@dataclass(frozen=True)
class PaymentIntentInfo:
    id: str
    status: str
    amount: int
    currency: str
    purchase_id: str
    client_secret: str = ""
    charge_id: str = ""
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class RefundInfo:
    id: str
    status: str  # pending | requires_action | succeeded | failed | canceled
    amount: int
    failure_reason: str = ""
    payment_intent_id: str = ""
    charge_id: str = ""
    currency: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ChargeInfo:
    """A charge as the reconciliation sees it, with its PaymentIntent's link to our purchase."""

    id: str
    status: str  # succeeded | pending | failed
    amount: int
    amount_refunded: int
    currency: str
    captured: bool
    payment_intent_id: str
    purchase_id: str  # the PaymentIntent's metadata.purchase_id ("" when none)
    created: int


@dataclass(frozen=True)
class DisputeInfo:
    id: str
    status: str
    amount: int
    currency: str
    reason: str
    payment_intent_id: str
    charge_id: str


@dataclass(frozen=True)
class CheckoutSessionInfo:
    id: str
    url: str
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    amount_total: int
    currency: str
    client_reference_id: str
    payment_intent_id: str
    metadata: dict = field(default_factory=dict)


# Tests that cannot run against localstripe (Checkout Sessions) put an httpx.MockTransport here.
_transport = None


@lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str, transport) -> stripe.StripeClient:
    http_client = stripe.HTTPXClient(timeout=settings.STRIPE_API_TIMEOUT_S, allow_sync_methods=True)
    if transport is not None:
        import httpx

        http_client._client = httpx.Client(transport=transport)
    kwargs = {"http_client": http_client, "max_network_retries": 2}
    if api_base:
        kwargs["base_addresses"] = {"api": api_base}
    return stripe.StripeClient(secret_key, **kwargs)


def client() -> stripe.StripeClient:
    # Keyed on the settings so tests pointing STRIPE_API_BASE elsewhere get their own client.
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, _transport)


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Every call to Stripe runs inside this: its errors come out as this module's typed ones."""
    try:
        yield
    except stripe.StripeError as exc:
        raise _wrap(exc) from exc


def _wrap(exc: stripe.StripeError) -> StripeFailure:
    if isinstance(exc, stripe.CardError):
        return CardDeclined(exc.user_message or str(exc.user_message or exc), code=exc.code or "card_declined")
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return StripeUnavailable(str(exc))
    if (exc.http_status or 0) >= 500:
        return StripeUnavailable(str(exc))
    return StripeFailure(str(exc), code=getattr(exc, "code", "") or "")


def _id(value) -> str:
    # localstripe always expands some references (latest_charge) that real Stripe returns as ids.
    if value is None:
        return ""
    return value if isinstance(value, str) else value["id"]


def payment_intent_info(pi) -> PaymentIntentInfo:
    """Convert a PaymentIntent (StripeObject or plain dict from an event) into our type."""
    data = pi if isinstance(pi, dict) else pi.to_dict()
    error = data.get("last_payment_error") or {}
    return PaymentIntentInfo(
        id=data["id"],
        status=data["status"],
        amount=int(data["amount"]),
        currency=data["currency"],
        purchase_id=(data.get("metadata") or {}).get("purchase_id", ""),
        client_secret=data.get("client_secret") or "",
        charge_id=_id(data.get("latest_charge")),
        error_code=error.get("code") or "",
        error_message=error.get("message") or "",
    )


def customer_create(*, user_id: int, email: str) -> str:
    """Create the Stripe customer of one of our users; returns its id."""
    with stripe_errors():
        customer = client().v1.customers.create(
            {"email": email, "metadata": {"user_id": str(user_id)}},
            {"idempotency_key": f"user:{user_id}:customer"},
        )
    return customer.id


def setup_intent_create(*, customer_id: str, idempotency_key: str) -> tuple[str, str]:
    """A SetupIntent to save a card in the browser (docs/reference/payments.md §2.1 step 1): (id, client_secret)."""
    with stripe_errors():
        intent = client().v1.setup_intents.create(
            {"customer": customer_id, "payment_method_types": ["card"], "usage": "off_session"},
            {"idempotency_key": idempotency_key},
        )
    return intent.id, intent.client_secret


def setup_intent_retrieve(setup_intent_id: str) -> tuple[str, str]:
    """(status, client_secret) of a SetupIntent: an unused one is handed to the browser again."""
    with stripe_errors():
        intent = client().v1.setup_intents.retrieve(setup_intent_id)
    return intent.status, intent.client_secret


def payment_intent_create(
    *,
    amount_minor: int,
    currency: str,
    customer_id: str,
    payment_method_id: str,
    purchase_id: str,
    idempotency_key: str,
) -> PaymentIntentInfo:
    """Create a card PaymentIntent for a purchase, NOT confirmed (docs/reference/payments.md §2.1 step 2, first
    half): it cannot charge anything until `payment_intent_confirm`, so its id can be recorded first.
    """
    with stripe_errors():
        pi = client().v1.payment_intents.create(
            {
                "amount": amount_minor,
                "currency": currency,
                "customer": customer_id,
                "payment_method": payment_method_id,
                "payment_method_types": ["card"],
                "metadata": {"purchase_id": purchase_id},
            },
            {"idempotency_key": idempotency_key},
        )
    return payment_intent_info(pi)


def payment_intent_confirm(payment_intent_id: str, *, idempotency_key: str) -> PaymentIntentInfo:
    """Confirm a PaymentIntent created with its payment method. Returns status `succeeded`,
    `requires_action` (the browser then calls confirmCardPayment(client_secret)) or `processing`.
    Raises CardDeclined on a 402."""
    with stripe_errors():
        pi = client().v1.payment_intents.confirm(payment_intent_id, {}, {"idempotency_key": idempotency_key})
    return payment_intent_info(pi)


def payment_intent_retrieve(payment_intent_id: str) -> PaymentIntentInfo:
    with stripe_errors():
        pi = client().v1.payment_intents.retrieve(payment_intent_id)
    return payment_intent_info(pi)


def payment_intent_cancel(payment_intent_id: str) -> PaymentIntentInfo:
    with stripe_errors():
        pi = client().v1.payment_intents.cancel(payment_intent_id)
    return payment_intent_info(pi)


def refund_create(
    *, payment_intent_id: str, amount_minor: int | None, idempotency_key: str, metadata: dict
) -> RefundInfo:
    """Refund part of a payment (all that is left of it when `amount_minor` is None) to its
    original payment method; may come back `pending`."""
    params = {"payment_intent": payment_intent_id, "metadata": metadata}
    if amount_minor is not None:
        params["amount"] = amount_minor
    with stripe_errors():
        refund = client().v1.refunds.create(params, {"idempotency_key": idempotency_key})
    return refund_info(refund)


def refund_retrieve(refund_id: str) -> RefundInfo:
    with stripe_errors():
        refund = client().v1.refunds.retrieve(refund_id)
    return refund_info(refund)


def refund_info(refund) -> RefundInfo:
    data = refund if isinstance(refund, dict) else refund.to_dict()
    return RefundInfo(
        id=data["id"],
        status=data.get("status") or "pending",
        amount=int(data.get("amount") or 0),
        failure_reason=data.get("failure_reason") or "",
        payment_intent_id=_id(data.get("payment_intent")),
        charge_id=_id(data.get("charge")),
        currency=data.get("currency") or "",
        metadata=data.get("metadata") or {},
    )


def charge_info(charge) -> ChargeInfo:
    data = charge if isinstance(charge, dict) else charge.to_dict()
    pi = data.get("payment_intent")
    metadata = (pi.get("metadata") if isinstance(pi, dict) else None) or data.get("metadata") or {}
    return ChargeInfo(
        id=data["id"],
        status=data.get("status") or "",
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=data.get("currency") or "",
        # An uncaptured authorization moves no money; real Stripe always sends the flag.
        captured=bool(data.get("captured", True)),
        payment_intent_id=_id(pi),
        purchase_id=str(metadata.get("purchase_id") or ""),
        created=int(data.get("created") or 0),
    )


def dispute_info(dispute) -> DisputeInfo:
    data = dispute if isinstance(dispute, dict) else dispute.to_dict()
    return DisputeInfo(
        id=data["id"],
        status=data.get("status") or "",
        amount=int(data.get("amount") or 0),
        currency=data.get("currency") or "",
        reason=data.get("reason") or "",
        payment_intent_id=_id(data.get("payment_intent")),
        charge_id=_id(data.get("charge")),
    )


def _list_all(resource, params: dict):
    """Every object of a list endpoint, page by page (`starting_after`)."""
    params = {"limit": 100, **params}
    while True:
        with stripe_errors():
            page = resource.list(params)
        yield from page.data
        if not page.has_more or not page.data:
            return
        params = {**params, "starting_after": page.data[-1].id}


def charges_since(created_after: int):
    """Every charge created after the unix time `created_after`, with its PaymentIntent expanded
    (its metadata names our purchase). localstripe supports `created[gt]` only, so that is used."""
    for charge in _list_all(client().v1.charges, {"created": {"gt": created_after}, "expand": ["data.payment_intent"]}):
        yield charge_info(charge)


def refunds_of_charge(charge_id: str) -> list[RefundInfo]:
    return [refund_info(r) for r in _list_all(client().v1.refunds, {"charge": charge_id})]


def disputes_since(created_after: int):
    """Every dispute created after the unix time `created_after`, as plain dicts (the shape of a
    `charge.dispute.*` event's object). localstripe has no disputes: there this raises."""
    for dispute in _list_all(client().v1.disputes, {"created": {"gt": created_after}}):
        yield dispute.to_dict()


def checkout_session_info(session) -> CheckoutSessionInfo:
    data = session if isinstance(session, dict) else session.to_dict()
    return CheckoutSessionInfo(
        id=data["id"],
        url=data.get("url") or "",
        status=data.get("status") or "",
        payment_status=data.get("payment_status") or "",
        amount_total=int(data.get("amount_total") or 0),
        currency=data.get("currency") or "",
        client_reference_id=data.get("client_reference_id") or "",
        payment_intent_id=_id(data.get("payment_intent")),
        metadata=data.get("metadata") or {},
    )


def checkout_session_create(
    *,
    amount_minor: int,
    currency: str,
    product_name: str,
    purchase_id: str,
    customer_email: str,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> CheckoutSessionInfo:
    """A hosted Checkout Session for one purchase (STRIPE_CHECKOUT=hosted)."""
    with stripe_errors():
        session = client().v1.checkout.sessions.create(
            {
                "mode": "payment",
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": currency,
                            "unit_amount": amount_minor,
                            "product_data": {"name": product_name},
                        },
                    }
                ],
                "client_reference_id": purchase_id,
                "customer_email": customer_email,
                "metadata": {"purchase_id": purchase_id},
                # payment_intent.* events carry this metadata, not the session's.
                "payment_intent_data": {"metadata": {"purchase_id": purchase_id}},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            {"idempotency_key": idempotency_key},
        )
    return checkout_session_info(session)


def checkout_session_retrieve(session_id: str) -> CheckoutSessionInfo:
    with stripe_errors():
        session = client().v1.checkout.sessions.retrieve(session_id)
    return checkout_session_info(session)


def webhook_verify(payload: bytes, sig_header: str) -> dict:
    """Check the signature against every configured secret (rotation); return the event as a dict.

    Raises stripe.SignatureVerificationError for a forged or stale signature, and ValueError
    (jsonbody.MalformedJSON) for a signed body that is not JSON we accept.
    """
    last_error: Exception | None = None
    for secret in settings.STRIPE_WEBHOOK_SECRETS:
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), sig_header, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_S
            )
        except stripe.SignatureVerificationError as exc:
            last_error = exc
            continue
        return jsonbody.loads(payload)
    raise last_error or stripe.SignatureVerificationError("no webhook secret configured", sig_header)
