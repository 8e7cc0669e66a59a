"""Writes of the payments app: purchases, fulfilment, the webhook inbox, refunds and disputes.

Stripe is called through payments.stripe_api only, and never inside a transaction: claim a row
and commit, call Stripe, record the answer in a new transaction. Lock order follows prepaid:
wallet first, then purchase / refund part / dispute.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from monitoring.logs import log_context
from payments import invoices, ledger, stripe_api
from payments.models import (
    Dispute,
    PaymentAttempt,
    Purchase,
    PurchaseTransition,
    RefundPart,
    StripeCustomer,
    StripeEvent,
)
from prepaid import pricing, taskqueue
from prepaid import services as wallet_services
from prepaid.errors import WalletError
from prepaid.models import EnergyPackage
from sessions import services as session_services
from sessions.grid import services as grid
from sessions.grid.selectors import vehicle_region

logger = logging.getLogger(__name__)


class PurchaseError(Exception):
    """A purchase cannot be created or paid as asked (bad amount, wrong state)."""


# --- Purchases ------------------------------------------------------------------------------------


def purchase_create(
    *,
    user,
    package: EnergyPackage | None = None,
    energy_kwh: Decimal | None = None,
    charge_vehicle=None,
    charge_deadline=None,
) -> Purchase:
    """A purchase of a package or of a custom amount (CUSTOM_KWH_MIN..MAX at PRICE_PER_KWH).

    Energy, gross amount and its VAT share are fixed here and never change afterwards.
    `charge_vehicle` (one of the user's cars): start a session on it once paid ("buy and charge"),
    in the cheapest hours by `charge_deadline` if given.
    """
    if charge_vehicle is not None and charge_vehicle.owner_id != user.pk:
        raise PurchaseError(gettext("that vehicle is not yours"))
    stripe_budget_check(user=user)  # a purchase that could not be paid now is not created
    vat_rate = settings.VAT_RATE
    if package is not None:
        if not package.active:
            raise PurchaseError(gettext("this package is no longer sold"))
        energy_wh, amount_minor, currency = package.energy_wh, package.price_minor, package.currency
    else:
        if energy_kwh is None:
            raise PurchaseError(gettext("choose a package or an amount"))
        if not settings.CUSTOM_KWH_MIN <= energy_kwh <= settings.CUSTOM_KWH_MAX:
            raise PurchaseError(
                gettext("choose between %(min)s and %(max)s kWh")
                % {"min": settings.CUSTOM_KWH_MIN, "max": settings.CUSTOM_KWH_MAX}
            )
        currency = settings.CURRENCY
        energy_wh = pricing.kwh_to_wh(energy_kwh)
        amount_minor = pricing.price_minor_for(energy_wh, price_per_kwh=settings.PRICE_PER_KWH, currency=currency)
    return Purchase.objects.create(
        user=user,
        package=package,
        energy_wh=energy_wh,
        amount_minor=amount_minor,
        currency=currency,
        vat_minor=pricing.vat_share_minor(amount_minor, vat_rate=vat_rate),
        vat_rate=vat_rate,
        checkout_mode=settings.STRIPE_CHECKOUT,
        charge_vehicle=charge_vehicle,
        charge_deadline=charge_deadline if charge_vehicle is not None else None,
    )


def purchase_transition(*, purchase_id: int, to_status: str, reason: str = "") -> bool:
    """Move a purchase forward by compare-and-set and log it; False if it had moved on already."""
    with transaction.atomic():
        current = Purchase.objects.values_list("status", flat=True).get(pk=purchase_id)
        if to_status not in Purchase.TRANSITIONS[current]:
            return False
        updates = {"status": to_status, "updated_at": timezone.now()}
        if to_status == Purchase.Status.PAID:
            updates["paid_at"] = timezone.now()
        moved = Purchase.objects.filter(pk=purchase_id, status=current).update(**updates)
        if moved:
            PurchaseTransition.objects.create(
                purchase_id=purchase_id, from_status=current, to_status=to_status, reason=reason[:200]
            )
            if to_status == Purchase.Status.PAID:
                # Issued with the payment, in its transaction: the number is not spent if it rolls back.
                invoices.invoice_issue(purchase_id=purchase_id)
        return bool(moved)


def purchase_fulfil(*, purchase_id: int, payment_intent: stripe_api.PaymentIntentInfo, source: str) -> bool:
    """Credit a purchase whose PaymentIntent succeeded: the ONE fulfilment, reached from the webhook,
    the return page and the reconciliation task. Idempotent; returns True if this call credited it.

    Refuses (logs, returns False) a PaymentIntent that is not succeeded or whose amount, currency or
    purchase_id does not match the purchase. A second succeeded payment of a purchase already paid
    (or of one failed or canceled) is surplus: recorded and refunded (payments.reconcile).
    """
    purchase = Purchase.objects.select_related("user").get(pk=purchase_id)
    pi = payment_intent
    if pi.status != "succeeded":
        return False
    if (
        pi.purchase_id != str(purchase.public_id)
        or pi.amount != purchase.amount_minor
        or pi.currency != purchase.currency
    ):
        logger.error(
            "purchase %s: payment %s does not match (%s %s for %s)",
            purchase.public_id,
            pi.id,
            pi.amount,
            pi.currency,
            pi.purchase_id,
        )
        return False
    wallet = wallet_services.wallet_get_or_create(user=purchase.user)
    credited = surplus = False
    with transaction.atomic():
        # Wallet first (prepaid's lock order), then the purchase row.
        wallet_services.wallet_lock(wallet_id=wallet.pk)
        purchase = Purchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status == Purchase.Status.PAID:
            surplus = purchase.stripe_payment_intent_id != pi.id
        elif purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID, reason=f"{source}: {pi.id}"):
            Purchase.objects.filter(pk=purchase.pk).update(
                stripe_payment_intent_id=pi.id,
                stripe_charge_id=pi.charge_id or purchase.stripe_charge_id,
                last_error="",
            )
            PaymentAttempt.objects.filter(payment_intent_id=pi.id).update(status=PaymentAttempt.Status.SUCCEEDED)
            purchase.refresh_from_db()
            wallet_services.wallet_credit_purchase(purchase=purchase)
            credited = True
        else:
            # A failed or canceled purchase whose money arrived anyway: nothing was credited for it.
            logger.error("purchase %s is %s but %s succeeded", purchase.public_id, purchase.status, pi.id)
            surplus = True
    if surplus:
        from payments import reconcile  # reconcile builds on this module

        reconcile.surplus_payment(payment_intent_id=pi.id, purchase_id=purchase.pk, source=source)
    if not credited:
        return False
    # A dispute stored before the payment was credited (events come in any order, or its payment
    # was not known yet) takes its claw-back now, so the credit is never spendable.
    _disputes_link(purchase)
    for dispute in Dispute.objects.filter(purchase=purchase).exclude(status=Dispute.Status.WON):
        ledger.wallet_dispute_clawback(dispute_id=dispute.pk)
    if purchase.charge_vehicle_id:
        purchase_start_charge(purchase_id=purchase.pk)
    return True


def _disputes_link(purchase: Purchase) -> None:
    """Attach disputes stored before their payment was known to the purchase it credited."""
    match = Q(payment_intent_id=purchase.stripe_payment_intent_id)
    if purchase.stripe_charge_id:
        match |= Q(charge_id=purchase.stripe_charge_id)
    linked = list(Dispute.objects.filter(match, purchase__isnull=True).values_list("pk", flat=True))
    if linked:
        from payments import reconcile  # reconcile builds on this module

        Dispute.objects.filter(pk__in=linked, purchase__isnull=True).update(purchase=purchase)
        reconcile.disputes_linked(dispute_ids=linked, purchase=purchase)


def purchase_start_charge(*, purchase_id: int) -> None:
    """ "Buy and charge": turn a paid purchase's chosen car into a session of its energy.

    Runs after the credit committed, so a car that cannot start leaves the energy in the wallet
    (the reason is kept for the driver's page). Idempotent: at most one session per purchase.
    """
    purchase = Purchase.objects.select_related("user").get(pk=purchase_id)
    if purchase.status != Purchase.Status.PAID or purchase.charge_session_id or not purchase.charge_vehicle_id:
        return
    try:
        session = _charge_session(purchase)
    except (session_services.SessionError, WalletError) as exc:
        Purchase.objects.filter(pk=purchase.pk, charge_session__isnull=True).update(charge_error=str(exc)[:255])
        return
    if not Purchase.objects.filter(pk=purchase.pk, charge_session__isnull=True).update(charge_session=session):
        # A concurrent call linked its own session first: give this one's hold back at once.
        session_services.session_close_stuck(session_id=session.pk, reason="duplicate")


def _charge_session(purchase: Purchase):
    """The purchase's session: by its deadline when one was chosen and is still ahead (a payment
    that took longer than the deadline charges now), else at once."""
    args = {"user": purchase.user, "vehicle_id": purchase.charge_vehicle_id, "energy_wh": purchase.energy_wh}
    if purchase.charge_deadline is not None:
        try:
            return session_services.smart_session_request(
                **args, deadline=purchase.charge_deadline, region=vehicle_region(purchase.charge_vehicle)
            )
        except grid.GridError:
            logger.info(
                "purchase %s: deadline %s passed while paying; charging now", purchase.pk, purchase.charge_deadline
            )
    return session_services.session_request(**args)


# --- Card payments (docs/reference/payments.md §2.1) ----------------------------------------------


@dataclass(frozen=True)
class CardSetup:
    client_secret: str
    customer_id: str


@dataclass(frozen=True)
class CardPaymentResult:
    """What the browser does next: done (succeeded), authenticate (requires_action) or show `message`."""

    status: str  # succeeded | requires_action | processing | declined | error
    client_secret: str = ""
    message: str = ""


def customer_ensure(*, user) -> str:
    """The user's Stripe customer id, created at Stripe on first use."""
    existing = StripeCustomer.objects.filter(user=user).first()
    if existing is not None:
        return existing.customer_id
    # The idempotency key `user:<id>:customer` makes a concurrent double creation return one id.
    customer_id = stripe_api.customer_create(user_id=user.pk, email=user.email)
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(user=user, customer_id=customer_id)
    except IntegrityError:
        return StripeCustomer.objects.get(user=user).customer_id
    return customer_id


class PaymentRateLimited(PurchaseError):
    """The user asked Stripe for more payment objects than STRIPE_OBJECTS_PER_USER_HOUR allows."""

    retry_after_s = 3600


def _stripe_budget_key(user) -> str:
    return f"stripe-objects:user:{user.pk}"


def stripe_budget_check(*, user) -> None:
    """Refuse (PaymentRateLimited) a user who used up their hourly budget of Stripe objects.

    Every SetupIntent and PaymentIntent created for a driver costs a call against the account's
    rate limit; without a bound, one account could create them in a loop (POST /purchases/)."""
    if cache.get(_stripe_budget_key(user), 0) >= settings.STRIPE_OBJECTS_PER_USER_HOUR:
        raise PaymentRateLimited("too many payment attempts in the last hour; please wait and try again")


def _stripe_budget_spend(user) -> None:
    stripe_budget_check(user=user)
    key = _stripe_budget_key(user)
    # add() then incr(): atomic on Redis and locmem; the window starts at the first object.
    cache.add(key, 0, timeout=3600)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=3600)


def purchase_begin_card(*, purchase_id: int) -> CardSetup:
    """Open the card step: a SetupIntent the browser confirms with confirmCardSetup.

    The purchase's SetupIntent is handed out again while it is unused, so reloading the pay page
    creates nothing at Stripe; a new one (after a card was saved and declined) counts against the
    user's budget of Stripe objects.
    """
    purchase = Purchase.objects.select_related("user").get(pk=purchase_id)
    if purchase.status == Purchase.Status.CREATED:
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT, reason="card step")
        purchase.refresh_from_db()
    if purchase.status != Purchase.Status.AWAITING_PAYMENT:
        raise PurchaseError(gettext("this purchase is %(status)s") % {"status": purchase.get_status_display().lower()})
    customer_id = customer_ensure(user=purchase.user)
    previous = purchase.stripe_setup_intent_id
    if previous:
        status, client_secret = stripe_api.setup_intent_retrieve(previous)
        if status in ("requires_payment_method", "requires_confirmation", "requires_action"):
            return CardSetup(client_secret=client_secret, customer_id=customer_id)
    _stripe_budget_spend(purchase.user)
    # Keyed on the SetupIntent it replaces: a retried call gets the same one back from Stripe.
    setup_id, client_secret = stripe_api.setup_intent_create(
        customer_id=customer_id, idempotency_key=f"purchase:{purchase.public_id}:setup:after:{previous or 'none'}"
    )
    Purchase.objects.filter(pk=purchase.pk).update(stripe_setup_intent_id=setup_id)
    return CardSetup(client_secret=client_secret, customer_id=customer_id)


PAYMENT_UNDER_WAY = gettext_lazy("A payment for this purchase is already under way; its result will show here shortly.")


def purchase_pay_with_card(*, purchase_id: int, payment_method_id: str) -> CardPaymentResult:
    """Charge the card saved by the SetupIntent: at most one successful charge per purchase.

    By construction: one request at a time owns the payment step (a claim on the purchase row
    with a lease, so a double click or a parallel confirm waits instead of paying again), and
    attempt n+1 creates its PaymentIntent only after every earlier one is canceled at Stripe (a
    canceled PaymentIntent can never charge; one that succeeded meanwhile — a 3-D Secure finished
    in another tab, a confirm whose worker was killed — pays the purchase instead). Each
    PaymentIntent is created unconfirmed and its id recorded before it is confirmed, so no
    PaymentIntent that could charge is ever unknown to us. Stripe is called outside any
    transaction.
    """
    now = timezone.now()
    with transaction.atomic():
        purchase = Purchase.objects.select_for_update().select_related("user").get(pk=purchase_id)
        if purchase.status == Purchase.Status.PAID:
            return CardPaymentResult(status="succeeded")
        if purchase.status != Purchase.Status.AWAITING_PAYMENT:
            return CardPaymentResult(
                status="error",
                message=gettext("This purchase is %(status)s.") % {"status": purchase.get_status_display()},
            )
        if purchase.payment_claimed_until is not None and purchase.payment_claimed_until > now:
            return CardPaymentResult(status="processing", message=str(PAYMENT_UNDER_WAY))
        purchase.attempts += 1
        purchase.payment_claimed_until = now + timedelta(seconds=settings.STRIPE_PAYMENT_CLAIM_S)
        purchase.save(update_fields=["attempts", "payment_claimed_until", "updated_at"])
        PaymentAttempt.objects.create(purchase=purchase, number=purchase.attempts)
    number = purchase.attempts
    # The claim is released on every answer; a worker killed mid-payment leaves it to expire.
    release = Purchase.objects.filter(pk=purchase.pk, attempts=number)
    try:
        result = _pay_attempt(purchase, number, payment_method_id)
    except PaymentRateLimited:
        release.update(payment_claimed_until=None)
        raise
    except stripe_api.StripeFailure as exc:
        # Nothing unknown is left behind: a PaymentIntent created or confirmed before the failure
        # is recorded, and the next attempt cancels it (or is paid by it) before creating another.
        logger.warning("purchase %s: payment call failed: %s", purchase.public_id, exc)
        result = CardPaymentResult(
            status="error", message=gettext("The payment could not be started. Please try again.")
        )
    release.update(payment_claimed_until=None)
    return result


def _pay_attempt(purchase: Purchase, number: int, payment_method_id: str) -> CardPaymentResult:
    settled = _settle_earlier_attempts(purchase, before=number)
    if settled is not None:
        return settled
    customer_id = customer_ensure(user=purchase.user)
    _stripe_budget_spend(purchase.user)
    key = f"purchase:{purchase.public_id}:pi:{number}"
    pi = stripe_api.payment_intent_create(
        amount_minor=purchase.amount_minor,
        currency=purchase.currency,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        purchase_id=str(purchase.public_id),
        idempotency_key=key,
    )
    if not _attempt_record(purchase, number, pi.id):
        # A later attempt took over while this one waited for Stripe: never confirm this one.
        _attempt_cancel(PaymentAttempt.objects.get(payment_intent_id=pi.id))
        return CardPaymentResult(status="processing", message=str(PAYMENT_UNDER_WAY))
    try:
        pi = stripe_api.payment_intent_confirm(pi.id, idempotency_key=f"{key}:confirm")
    except stripe_api.CardDeclined as exc:
        PaymentAttempt.objects.filter(payment_intent_id=pi.id).update(status=PaymentAttempt.Status.FAILED)
        message = exc.message or gettext("Your card was declined.")
        Purchase.objects.filter(pk=purchase.pk).update(last_error=message[:300], updated_at=timezone.now())
        return CardPaymentResult(
            status="declined",
            message=gettext("%(message)s You can try again with another card.") % {"message": message},
        )
    _attempt_status(pi)
    if pi.status == "succeeded":
        purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source="confirm")
        return CardPaymentResult(status="succeeded")
    if pi.status == "requires_action":
        return CardPaymentResult(status="requires_action", client_secret=pi.client_secret)
    if pi.status == "processing":
        return CardPaymentResult(status="processing")
    return CardPaymentResult(status="declined", message=pi.error_message or gettext("The payment did not go through."))


def _attempt_record(purchase: Purchase, number: int, payment_intent_id: str) -> bool:
    """Record attempt `number`'s PaymentIntent before it is confirmed; False if a later attempt
    claimed the purchase meanwhile (the PaymentIntent is then recorded as superseded)."""
    with transaction.atomic():
        current = Purchase.objects.select_for_update().values_list("attempts", flat=True).get(pk=purchase.pk)
        status = PaymentAttempt.Status.CREATED if current == number else PaymentAttempt.Status.SUPERSEDED
        PaymentAttempt.objects.filter(purchase=purchase, number=number).update(
            payment_intent_id=payment_intent_id, status=status, updated_at=timezone.now()
        )
        if current != number:
            return False
        Purchase.objects.filter(pk=purchase.pk).update(
            stripe_payment_intent_id=payment_intent_id, updated_at=timezone.now()
        )
    return True


_ATTEMPT_STATUS = {
    "requires_confirmation": PaymentAttempt.Status.CREATED,
    "requires_action": PaymentAttempt.Status.REQUIRES_ACTION,
    "processing": PaymentAttempt.Status.PROCESSING,
    "requires_payment_method": PaymentAttempt.Status.FAILED,
    "succeeded": PaymentAttempt.Status.SUCCEEDED,
    "canceled": PaymentAttempt.Status.CANCELED,
}


def _attempt_status(pi: stripe_api.PaymentIntentInfo) -> None:
    """Keep the attempt's status in step with what Stripe said (terminal states never change)."""
    status = _ATTEMPT_STATUS.get(pi.status)
    if status is not None:
        PaymentAttempt.objects.filter(payment_intent_id=pi.id).exclude(
            status__in=[PaymentAttempt.Status.SUCCEEDED, PaymentAttempt.Status.CANCELED]
        ).update(status=status, updated_at=timezone.now())


def _attempt_cancel(attempt: PaymentAttempt) -> stripe_api.PaymentIntentInfo:
    """Cancel an attempt's PaymentIntent at Stripe; what Stripe then says it is (canceled, or
    succeeded/processing if it got there first). Marked superseded first, so its
    `payment_intent.canceled` event is known to be ours."""
    PaymentAttempt.objects.filter(pk=attempt.pk, status__in=PaymentAttempt.LIVE).update(
        status=PaymentAttempt.Status.SUPERSEDED, updated_at=timezone.now()
    )
    try:
        pi = stripe_api.payment_intent_cancel(attempt.payment_intent_id)
    except stripe_api.StripeFailure as exc:
        if exc.retryable:
            raise
        # Refused: it is in a state that cannot be canceled (succeeded, processing, canceled).
        pi = stripe_api.payment_intent_retrieve(attempt.payment_intent_id)
    _attempt_status(pi)
    return pi


def _settle_earlier_attempts(purchase: Purchase, *, before: int | None = None) -> CardPaymentResult | None:
    """Cancel every PaymentIntent of the purchase's attempts before `before` (all when None) that
    could still charge. None when all are canceled; otherwise what the caller answers instead of
    paying again: `succeeded` (one of them was paid: the purchase is fulfilled with it) or
    `processing` (one is being paid and cannot be stopped)."""
    attempts = PaymentAttempt.objects.filter(
        purchase=purchase,
        status__in=[*PaymentAttempt.LIVE, PaymentAttempt.Status.SUCCEEDED],
        payment_intent_id__isnull=False,
    )
    if before is not None:
        attempts = attempts.filter(number__lt=before)
    for attempt in attempts.order_by("number"):
        if attempt.status == PaymentAttempt.Status.SUCCEEDED:
            # Its worker may have died between Stripe's answer and the credit.
            pi = stripe_api.payment_intent_retrieve(attempt.payment_intent_id)
        else:
            pi = _attempt_cancel(attempt)
        if pi.status == "succeeded":
            purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source=f"attempt {attempt.number}")
            return CardPaymentResult(status="succeeded")
        if pi.status != "canceled":
            return CardPaymentResult(status="processing", message=str(PAYMENT_UNDER_WAY))
    return None


def _record_payment_error(purchase: Purchase, pi: stripe_api.PaymentIntentInfo) -> None:
    if pi.error_code == "payment_intent_authentication_failure":
        message = gettext("The card authentication (3-D Secure) failed. You can try again.")
    else:
        message = pi.error_message or gettext("The payment did not go through. You can try again.")
    Purchase.objects.filter(pk=purchase.pk, status=Purchase.Status.AWAITING_PAYMENT).update(
        last_error=message[:300], updated_at=timezone.now()
    )


def purchase_refresh(*, purchase_id: int, source: str = "return") -> Purchase:
    """Re-fetch the payment of a purchase still awaiting it and act on what Stripe says.

    Reached from the driver's return page and from the reconciliation task.
    """
    purchase = Purchase.objects.get(pk=purchase_id)
    if purchase.status != Purchase.Status.AWAITING_PAYMENT:
        return purchase
    if purchase.stripe_payment_intent_id:
        pi = stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id)
        _apply_payment_intent(purchase, pi, source=source)
    elif purchase.stripe_checkout_session_id:
        session = stripe_api.checkout_session_retrieve(purchase.stripe_checkout_session_id)
        _apply_checkout_session(purchase, session, source=source)
    purchase.refresh_from_db()
    return purchase


def _apply_payment_intent(purchase: Purchase, pi: stripe_api.PaymentIntentInfo, *, source: str) -> None:
    if pi.status == "succeeded":
        purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source=source)
    elif pi.status == "canceled":
        # Only the purchase's current PaymentIntent decides, and only if it was canceled outside
        # the app: one we canceled for a retry (attempt marked superseded) leaves the purchase open.
        ours = PaymentAttempt.objects.filter(
            payment_intent_id=pi.id, status__in=[PaymentAttempt.Status.SUPERSEDED, PaymentAttempt.Status.CANCELED]
        ).exists()
        if purchase.stripe_payment_intent_id in ("", None, pi.id) and not ours:
            purchase_transition(
                purchase_id=purchase.pk, to_status=Purchase.Status.CANCELED, reason=f"{source}: {pi.id}"
            )
    elif pi.status == "requires_payment_method" and (pi.error_code or pi.error_message):
        _record_payment_error(purchase, pi)


def purchases_reconcile(*, now=None) -> int:
    """Re-fetch purchases left awaiting payment; cancel the abandoned ones. Returns how many moved."""
    now = now or timezone.now()
    moved = 0
    stale = Purchase.objects.filter(
        status=Purchase.Status.AWAITING_PAYMENT,
        updated_at__lt=now - timedelta(seconds=settings.STRIPE_RECONCILE_AFTER_S),
    )
    for purchase in stale:
        try:
            refreshed = purchase_refresh(purchase_id=purchase.pk, source="reconcile")
        except stripe_api.StripeFailure as exc:
            logger.warning("reconcile %s: %s", purchase.public_id, exc)
            continue
        if refreshed.status != Purchase.Status.AWAITING_PAYMENT:
            moved += 1
        elif refreshed.created_at < now - timedelta(seconds=settings.STRIPE_ABANDON_AFTER_S):
            moved += purchase_abandon(purchase_id=purchase.pk)
    return moved


def purchase_abandon(*, purchase_id: int) -> bool:
    """Cancel an unpaid purchase and every PaymentIntent of it (so a late confirmation cannot
    charge it); a PaymentIntent found succeeded pays the purchase instead."""
    purchase = Purchase.objects.get(pk=purchase_id)
    if purchase.payment_claimed_until is not None and purchase.payment_claimed_until > timezone.now():
        return False  # a payment is under way right now; the next sweep looks again
    settled = _settle_earlier_attempts(purchase)
    if settled is not None:
        # One was paid (the purchase is credited with it now) or is being paid: not abandoned.
        return settled.status == "succeeded"
    if purchase.stripe_payment_intent_id and not purchase.payment_attempts.exists():
        # A PaymentIntent of a hosted checkout (no attempts of ours): cancel it the same way.
        try:
            pi = stripe_api.payment_intent_cancel(purchase.stripe_payment_intent_id)
        except stripe_api.StripeFailure:
            pi = stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id)
        if pi.status == "succeeded":
            return purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source="abandon")
    return purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.CANCELED, reason="abandoned")


# --- Hosted Checkout (STRIPE_CHECKOUT=hosted) -----------------------------------------------------


def purchase_begin_hosted(*, purchase_id: int, success_url: str, cancel_url: str) -> str:
    """Create (once) the Checkout Session of a purchase; returns the URL of Stripe's page."""
    purchase = Purchase.objects.select_related("user", "package").get(pk=purchase_id)
    if purchase.status == Purchase.Status.CREATED:
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT, reason="checkout")
    elif purchase.status != Purchase.Status.AWAITING_PAYMENT:
        raise PurchaseError(gettext("this purchase is %(status)s") % {"status": purchase.get_status_display().lower()})
    name = purchase.package.name if purchase.package else f"{purchase.energy_wh / 1000:g} kWh of charging"
    session = stripe_api.checkout_session_create(
        amount_minor=purchase.amount_minor,
        currency=purchase.currency,
        product_name=name,
        purchase_id=str(purchase.public_id),
        customer_email=purchase.user.email,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=f"purchase:{purchase.public_id}:checkout",
    )
    Purchase.objects.filter(pk=purchase.pk).update(stripe_checkout_session_id=session.id, updated_at=timezone.now())
    return session.url


def _payment_from_session(session: stripe_api.CheckoutSessionInfo) -> stripe_api.PaymentIntentInfo:
    # A paid session is a succeeded payment of amount_total; fulfilment checks it like a PaymentIntent.
    return stripe_api.PaymentIntentInfo(
        id=session.payment_intent_id or session.id,
        status="succeeded" if session.payment_status == "paid" else "processing",
        amount=session.amount_total,
        currency=session.currency,
        purchase_id=session.client_reference_id,
    )


def _apply_checkout_session(purchase: Purchase, session: stripe_api.CheckoutSessionInfo, *, source: str) -> None:
    if session.payment_status == "paid":
        purchase_fulfil(purchase_id=purchase.pk, payment_intent=_payment_from_session(session), source=source)
    elif session.status == "expired":
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.CANCELED, reason=f"{source}: expired")
    if session.payment_intent_id and not purchase.stripe_payment_intent_id:
        Purchase.objects.filter(pk=purchase.pk, stripe_payment_intent_id__isnull=True).update(
            stripe_payment_intent_id=session.payment_intent_id
        )


# --- The webhook inbox ------------------------------------------------------------------------------


def event_malformed(event) -> str:
    """Why a verified body is not an event we can store ("" when it is): bounded to the inbox's
    columns and shaped like Stripe's events, so nothing is stored half-way or refused by the
    database later."""
    if not isinstance(event, dict):
        return "a JSON object was expected"
    limit = StripeEvent._meta.get_field("event_id").max_length  # the `type` column's too
    for name in ("id", "type"):
        value = event.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            return f"`{name}` must be a string of 1 to {limit} characters"
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return "`data.object` must be an object"
    if not isinstance(event.get("livemode", False), bool):
        return "`livemode` must be true or false"
    return ""


def event_store(*, event: dict) -> StripeEvent | None:
    """Store a verified event; None if it was already stored (a duplicate delivery).

    One statement, `INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING id`: a duplicate costs no
    exception, no rollback and no second query. Processing is enqueued only after the row is
    committed (at once in autocommit, as in the webhook view), so the task always finds it.
    """
    row = StripeEvent(
        event_id=event["id"],
        type=event["type"],
        payload=event,
        livemode=bool(event.get("livemode")),
        enqueued_at=timezone.now(),
    )
    row.pk = _insert_unless_exists(row, unique_field="event_id")
    if row.pk is None:
        return None
    transaction.on_commit(lambda: _enqueue_event(row.pk))
    return row


def _insert_unless_exists(row: StripeEvent, *, unique_field: str) -> int | None:
    """INSERT the unsaved row unless one with the same `unique_field` exists; its new pk or None.

    PostgreSQL and SQLite 3.35+ speak ON CONFLICT … DO NOTHING RETURNING; an older SQLite gets
    a savepoint and the IntegrityError instead. Field values go through each field's own
    `pre_save`/`get_db_prep_save`, as in `Model.save()`.
    """
    connection = connections[router.db_for_write(type(row))]
    if not connection.features.can_return_columns_from_insert:
        try:
            with transaction.atomic(using=connection.alias):
                row.save(force_insert=True, using=connection.alias)
        except IntegrityError:
            return None
        return row.pk
    quote = connection.ops.quote_name
    meta = row._meta
    unique_column = meta.get_field(unique_field).column
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    values = [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields]
    # Only names from the model's own meta (quoted) go into the text; every value is a parameter.
    table, columns = quote(meta.db_table), ", ".join(quote(f.column) for f in fields)
    unique, pk, placeholders = quote(unique_column), quote(meta.pk.column), ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT ({unique}) DO NOTHING RETURNING {pk}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        inserted = cursor.fetchone()
    return inserted[0] if inserted else None


def _enqueue_event(event_pk: int) -> None:
    """Hand the stored event to the queue. A broker failure loses nothing: the event is stored
    pending, and `events_sweep` re-enqueues it once `enqueued_at` is old enough."""
    try:
        taskqueue.enqueue("payments.tasks.process_stripe_event", event_pk, task_name=f"stripe-event-{event_pk}")
    except Exception:
        logger.exception("stripe event %s stored but not enqueued; the sweeper will enqueue it", event_pk)


def event_process(*, event_pk: int) -> str:
    """Apply one stored event; records success or the error (and never raises), returns the status.

    Safe to run twice or concurrently: every effect is idempotent on its own key.
    """
    event = StripeEvent.objects.get(pk=event_pk)
    if event.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return event.status
    with log_context(event_id=event.event_id):
        return _event_apply(event)


def _event_apply(event: StripeEvent) -> str:
    StripeEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    handler = EVENT_HANDLERS.get(event.type)
    if handler is None:
        StripeEvent.objects.filter(pk=event.pk).update(status=StripeEvent.Status.IGNORED, processed_at=timezone.now())
        return StripeEvent.Status.IGNORED
    try:
        handler(event.payload["data"]["object"])
    except Exception as exc:
        logger.exception("stripe event %s (%s) failed", event.event_id, event.type)
        StripeEvent.objects.filter(pk=event.pk).exclude(status=StripeEvent.Status.PROCESSED).update(
            status=StripeEvent.Status.FAILED, last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        return StripeEvent.Status.FAILED
    StripeEvent.objects.filter(pk=event.pk).update(
        status=StripeEvent.Status.PROCESSED, processed_at=timezone.now(), last_error=""
    )
    return StripeEvent.Status.PROCESSED


def events_sweep(*, now=None, stuck_after_s: int = 120) -> int:
    """Re-enqueue events stuck pending (a lost queue message) or failed with attempts left."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=stuck_after_s)
    due = StripeEvent.objects.filter(
        Q(status=StripeEvent.Status.PENDING, enqueued_at__lt=cutoff)
        | Q(status=StripeEvent.Status.FAILED, attempts__lt=settings.STRIPE_EVENT_MAX_ATTEMPTS, enqueued_at__lt=cutoff)
    )
    pks = list(due.values_list("pk", flat=True)[:500])
    for pk in pks:
        StripeEvent.objects.filter(pk=pk).update(enqueued_at=now)
        _enqueue_event(pk)
    return len(pks)


def _purchase_for_intent(obj: dict) -> Purchase | None:
    purchase_id = (obj.get("metadata") or {}).get("purchase_id")
    if purchase_id:
        purchase = Purchase.objects.filter(public_id=purchase_id).first()
        if purchase is not None:
            return purchase
    return Purchase.objects.filter(stripe_payment_intent_id=obj["id"]).first()


def _on_payment_intent(obj: dict) -> None:
    purchase = _purchase_for_intent(obj)
    if purchase is None:
        logger.warning("payment intent %s belongs to no purchase", obj["id"])
        return
    pi = stripe_api.payment_intent_info(obj)
    if pi.status == "succeeded":
        purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source="webhook")
    elif purchase.status == Purchase.Status.AWAITING_PAYMENT:
        _apply_payment_intent(purchase, pi, source="webhook")


def _on_checkout_session(obj: dict) -> None:
    session = stripe_api.checkout_session_info(obj)
    purchase = Purchase.objects.filter(public_id=session.client_reference_id or None).first()
    if purchase is None:
        logger.warning("checkout session %s belongs to no purchase", session.id)
        return
    _apply_checkout_session(purchase, session, source="webhook")


def _on_checkout_async_failed(obj: dict) -> None:
    session = stripe_api.checkout_session_info(obj)
    purchase = Purchase.objects.filter(public_id=session.client_reference_id or None).first()
    if purchase is not None:
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.FAILED, reason="async payment failed")


def _on_charge_refunded(obj: dict) -> None:
    for refund in (obj.get("refunds") or {}).get("data") or []:
        _on_refund(refund)


def _on_refund(obj: dict) -> None:
    info = stripe_api.refund_info(obj)
    part = RefundPart.objects.filter(stripe_refund_id=info.id).first()
    if part is None:
        # The event can arrive before our create call returned: match on our own key.
        key = (obj.get("metadata") or {}).get("refund_part")
        part = RefundPart.objects.filter(idempotency_key=key).first() if key else None
    if part is None:
        from payments import reconcile  # reconcile builds on this module

        reconcile.refund_not_ours(info)
        return
    apply_refund(part, info)


def apply_refund(part: RefundPart, info: stripe_api.RefundInfo) -> None:
    if info.status == "succeeded":
        ledger.refund_part_succeed(part_id=part.pk, stripe_refund_id=info.id)
    elif info.status in ("failed", "canceled"):
        if not part.stripe_refund_id:
            RefundPart.objects.filter(pk=part.pk, stripe_refund_id__isnull=True).update(stripe_refund_id=info.id)
        ledger.refund_part_fail(part_id=part.pk, reason=info.failure_reason or info.status)
    elif not part.stripe_refund_id:
        RefundPart.objects.filter(pk=part.pk, stripe_refund_id__isnull=True).update(stripe_refund_id=info.id)


def credited_purchase(*, payment_intent_id: str = "", charge_id: str = "") -> Purchase | None:
    """The paid purchase credited by this payment (its PaymentIntent or charge), if any."""
    match = Q(pk__in=[])
    if payment_intent_id:
        match |= Q(stripe_payment_intent_id=payment_intent_id)
    if charge_id:
        match |= Q(stripe_charge_id=charge_id)
    return Purchase.objects.filter(match, status=Purchase.Status.PAID).first()


def _dispute_upsert(obj: dict) -> Dispute:
    """Store the dispute, linked to the purchase its payment credited. A dispute whose payment
    credited nothing (yet) is stored all the same and shown to the operator; the purchase's
    fulfilment links it and takes the claw-back before the credit can be spent."""
    info = stripe_api.dispute_info(obj)
    purchase = credited_purchase(payment_intent_id=info.payment_intent_id, charge_id=info.charge_id)
    dispute, _ = Dispute.objects.get_or_create(
        stripe_dispute_id=info.id,
        defaults={
            "purchase": purchase,
            "payment_intent_id": info.payment_intent_id,
            "charge_id": info.charge_id,
            "amount_minor": info.amount,
            "currency": info.currency or settings.CURRENCY,
            "reason": info.reason[:100],
            "stripe_status": info.status[:50],
        },
    )
    from payments import reconcile  # reconcile builds on this module

    if dispute.purchase_id is None and purchase is not None:
        Dispute.objects.filter(pk=dispute.pk, purchase__isnull=True).update(purchase=purchase)
        reconcile.disputes_linked(dispute_ids=[dispute.pk], purchase=purchase)
        dispute.refresh_from_db()
    if dispute.purchase_id is None:
        reconcile.dispute_unmatched(dispute)
    return dispute


def _on_dispute_created(obj: dict) -> None:
    dispute = _dispute_upsert(obj)
    # A dispute already closed (its .closed event came first) is never reopened.
    if dispute.status == Dispute.Status.OPEN:
        ledger.wallet_dispute_clawback(dispute_id=dispute.pk)


def _on_dispute_closed(obj: dict) -> None:
    dispute = _dispute_upsert(obj)
    won = obj.get("status") in ("won", "warning_closed")
    to_status = Dispute.Status.WON if won else Dispute.Status.LOST
    Dispute.objects.filter(pk=dispute.pk, status=Dispute.Status.OPEN).update(
        status=to_status, stripe_status=obj.get("status") or "", closed_at=timezone.now()
    )
    dispute.refresh_from_db()
    if dispute.status == Dispute.Status.WON:
        ledger.wallet_dispute_restore(dispute_id=dispute.pk)
    else:
        # Lost: the money is gone for good; make sure the credit is too (idempotent).
        ledger.wallet_dispute_clawback(dispute_id=dispute.pk)


EVENT_HANDLERS = {
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "charge.refunded": _on_charge_refunded,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.dispute.created": _on_dispute_created,
    "charge.dispute.closed": _on_dispute_closed,
    "checkout.session.completed": _on_checkout_session,
    "checkout.session.async_payment_succeeded": _on_checkout_session,
    "checkout.session.async_payment_failed": _on_checkout_async_failed,
    "checkout.session.expired": _on_checkout_session,
}


# --- Refunds ----------------------------------------------------------------------------------------


def refund_request(*, wallet_id: int, requested_by=None, energy_wh: int | None = None):
    """Refund unused credit (all by default) to the original payments; Stripe is called after commit."""
    refund = ledger.wallet_refund_request(
        wallet_id=wallet_id,
        idempotency_key=wallet_services.new_idempotency_key("refund-request"),
        energy_wh=energy_wh,
        requested_by=requested_by,
    )
    transaction.on_commit(lambda: _enqueue_refund(refund.pk))
    return refund


def _enqueue_refund(refund_pk: int) -> None:
    taskqueue.enqueue("payments.tasks.submit_refund", refund_pk, task_name=f"refund-{refund_pk}")


def refund_submit(*, refund_id: int) -> None:
    """Send each pending part of a refund to Stripe, with the part's own idempotency key.

    A part Stripe refuses outright is failed at once (its energy credited back); a network
    failure leaves it pending for the next run (the key makes the retry safe).
    """
    for part in RefundPart.objects.filter(refund_id=refund_id, status=RefundPart.Status.PENDING).select_related(
        "purchase"
    ):
        if part.stripe_refund_id:
            continue
        if part.amount_minor == 0:
            ledger.refund_part_succeed(part_id=part.pk)  # too little energy to be worth a cent
            continue
        try:
            info = stripe_api.refund_create(
                payment_intent_id=part.purchase.stripe_payment_intent_id,
                amount_minor=part.amount_minor,
                idempotency_key=part.idempotency_key,
                metadata={"refund_part": part.idempotency_key},
            )
        except stripe_api.StripeFailure as exc:
            if exc.retryable:
                logger.warning("refund part %s: %s; will retry", part.idempotency_key, exc)
                continue
            ledger.refund_part_fail(part_id=part.pk, reason=exc.message)
            continue
        apply_refund(part, info)


def refunds_retry_pending(*, older_than_s: int = 300, now=None) -> int:
    """Resubmit refund parts that never reached Stripe (network trouble at the first try) and
    re-fetch those Stripe still reports pending, in case their refund.* event was lost."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than_s)
    stale = RefundPart.objects.filter(status=RefundPart.Status.PENDING, updated_at__lt=cutoff)
    refund_ids = set(stale.filter(stripe_refund_id__isnull=True).values_list("refund_id", flat=True))
    for refund_id in refund_ids:
        refund_submit(refund_id=refund_id)
    for part in stale.filter(stripe_refund_id__isnull=False):
        try:
            info = stripe_api.refund_retrieve(part.stripe_refund_id)
        except stripe_api.StripeFailure as exc:
            logger.warning("refund part %s: %s", part.idempotency_key, exc)
            continue
        apply_refund(part, info)
    return len(refund_ids)
