"""Money the ledger cannot see: Stripe's charges, refunds and disputes matched to our books.

Reached from the webhook handlers (a second payment of a paid purchase, a refund or a dispute we
did not make) and from `payments_reconcile` (hourly, django-q2), which walks every charge, refund
and dispute at Stripe over a window. Each finding is a PaymentDiscrepancy row, shown on the
operator dashboard until acknowledged. What is safe is fixed here:
- a surplus charge (a second successful payment of a paid purchase, or a payment of a failed or
  canceled one: money nothing was credited for) is refunded in full;
- a refund made at Stripe, not through the app, takes the energy it paid for out of the wallet;
- a payment or dispute whose webhook never came is applied as the webhook would have applied it.
What is not (a charge that names no purchase, an amount that differs) is reported only.
Money only moves on Stripe's own word: a payment is re-fetched before it is refunded.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from payments import ledger, services, stripe_api
from payments.models import Dispute, PaymentDiscrepancy, Purchase, RefundPart
from prepaid import formats, taskqueue

logger = logging.getLogger(__name__)

Kind = PaymentDiscrepancy.Kind
Status = PaymentDiscrepancy.Status


def record(
    kind: str,
    stripe_object_id: str,
    *,
    detail: str,
    purchase: Purchase | None = None,
    amount_minor: int = 0,
    currency: str = "",
    status: str = Status.OPEN,
    action: str = "",
) -> PaymentDiscrepancy:
    """Record a finding once per (kind, Stripe object); a later report of it can only mark an
    open finding fixed, never reopen one an operator resolved."""
    row, created = PaymentDiscrepancy.objects.get_or_create(
        kind=kind,
        stripe_object_id=stripe_object_id,
        defaults={
            "purchase": purchase,
            "amount_minor": amount_minor,
            "currency": currency,
            "detail": detail[:500],
            "status": status,
            "action": action[:300],
        },
    )
    if created:
        logger.warning("payment discrepancy: %s %s: %s", kind, stripe_object_id, detail)
    elif row.status == Status.OPEN and status == Status.FIXED:
        PaymentDiscrepancy.objects.filter(pk=row.pk, status=Status.OPEN).update(status=status, action=action[:300])
        row.refresh_from_db()
    return row


def _money(amount_minor: int, currency: str) -> str:
    return formats.format_money(amount_minor, currency) if currency else str(amount_minor)


# --- surplus payments -------------------------------------------------------------------------------


def surplus_payment(*, payment_intent_id: str, purchase_id: int, source: str) -> PaymentDiscrepancy | None:
    """A succeeded payment of a purchase that it did not credit: record it and refund it in full.

    Re-fetched from Stripe first; only a succeeded PaymentIntent that names this purchase, while
    the purchase is paid by another payment (or failed, or canceled), is refunded."""
    pi = stripe_api.payment_intent_retrieve(payment_intent_id)
    purchase = Purchase.objects.get(pk=purchase_id)
    if pi.status != "succeeded" or pi.purchase_id != str(purchase.public_id):
        return None
    if purchase.status == Purchase.Status.PAID:
        if purchase.stripe_payment_intent_id == pi.id:
            return None  # the payment that credited it
        why = f"a second payment of purchase {purchase.public_id}, credited by {purchase.stripe_payment_intent_id}"
    elif purchase.status in (Purchase.Status.FAILED, Purchase.Status.CANCELED):
        why = f"a payment of purchase {purchase.public_id}, which is {purchase.status}: nothing was credited for it"
    else:
        return None  # still awaiting payment: this payment will credit it
    row = record(
        Kind.SURPLUS_CHARGE,
        pi.id,
        purchase=purchase,
        amount_minor=pi.amount,
        currency=pi.currency,
        detail=f"{source}: {why}",
    )
    if not row.refund_key:
        PaymentDiscrepancy.objects.filter(pk=row.pk, refund_key="").update(refund_key=f"surplus:{pi.id}")
    if not row.stripe_refund_id:
        transaction.on_commit(lambda: _enqueue_surplus_refund(row.pk))
    return row


def _enqueue_surplus_refund(discrepancy_pk: int) -> None:
    try:
        taskqueue.enqueue("payments.tasks.refund_surplus", discrepancy_pk, task_name=f"surplus-{discrepancy_pk}")
    except Exception:
        logger.exception("surplus refund %s not enqueued; payments_reconcile retries it", discrepancy_pk)


def surplus_refund(*, discrepancy_id: int) -> bool:
    """Refund a surplus charge in full (what is left of it), once, with its own idempotency key."""
    row = PaymentDiscrepancy.objects.select_related("purchase").get(pk=discrepancy_id)
    if row.kind != Kind.SURPLUS_CHARGE or row.stripe_refund_id or row.status == Status.RESOLVED:
        return False
    try:
        info = stripe_api.refund_create(
            payment_intent_id=row.stripe_object_id,
            amount_minor=None,
            idempotency_key=row.refund_key or f"surplus:{row.stripe_object_id}",
            metadata={"surplus_of": str(row.purchase.public_id) if row.purchase else ""},
        )
    except stripe_api.StripeFailure as exc:
        logger.warning("surplus refund of %s: %s", row.stripe_object_id, exc)
        if not exc.retryable:
            PaymentDiscrepancy.objects.filter(pk=row.pk).update(action=f"refund refused by Stripe: {exc.message}"[:300])
        return False
    PaymentDiscrepancy.objects.filter(pk=row.pk).update(
        stripe_refund_id=info.id,
        status=Status.FIXED,
        action=f"refunded in full automatically ({info.id}, {info.status})"[:300],
    )
    return True


# --- refunds and disputes we did not make -------------------------------------------------------------


def refund_not_ours(info: stripe_api.RefundInfo) -> None:
    """A refund at Stripe that is no refund part of ours: our own surplus refund, a surplus refunded
    by hand, a refund made in Stripe's dashboard (its energy leaves the wallet), or a refund of a
    payment we do not know (reported)."""
    surplus = PaymentDiscrepancy.objects.filter(
        Q(stripe_refund_id=info.id) | Q(kind=Kind.SURPLUS_CHARGE, stripe_object_id=info.payment_intent_id or None)
    ).first()
    if surplus is not None:
        if not surplus.stripe_refund_id:
            PaymentDiscrepancy.objects.filter(pk=surplus.pk, stripe_refund_id="").update(
                stripe_refund_id=info.id, status=Status.FIXED, action=f"refunded at Stripe ({info.id})"
            )
        return
    if info.status != "succeeded":
        return  # pending: acted on once it succeeded (refund.updated, or the next reconciliation)
    purchase = services.credited_purchase(payment_intent_id=info.payment_intent_id, charge_id=info.charge_id)
    money = _money(info.amount, info.currency)
    if purchase is None:
        record(
            Kind.UNMATCHED_REFUND,
            info.id,
            amount_minor=info.amount,
            currency=info.currency,
            detail=f"refund of {money} of a payment that credited no purchase "
            f"({info.payment_intent_id or info.charge_id})",
        )
        return
    result = ledger.wallet_external_refund(purchase_id=purchase.pk, stripe_refund_id=info.id, amount_minor=info.amount)
    if result is None:
        return
    part, shortfall_wh = result
    detail = f"refund of {money} made at Stripe, not through the app: {part.energy_wh} Wh taken out of the wallet"
    if shortfall_wh:
        detail += f"; {shortfall_wh} Wh it paid for were already used or are held by a session"
    record(
        Kind.EXTERNAL_REFUND,
        info.id,
        purchase=purchase,
        amount_minor=info.amount,
        currency=info.currency,
        detail=detail,
        status=Status.OPEN if shortfall_wh else Status.FIXED,
        action=f"credit reduced by {part.energy_wh} Wh",
    )


def dispute_unmatched(dispute: Dispute) -> None:
    record(
        Kind.UNMATCHED_DISPUTE,
        dispute.stripe_dispute_id,
        amount_minor=dispute.amount_minor,
        currency=dispute.currency,
        detail=(
            f"dispute of {_money(dispute.amount_minor, dispute.currency)} of a payment that credited no purchase"
            f" ({dispute.payment_intent_id or dispute.charge_id}); clawed back if that payment is ever credited"
        ),
    )


def disputes_linked(*, dispute_ids: list[int], purchase: Purchase) -> None:
    ids = list(Dispute.objects.filter(pk__in=dispute_ids).values_list("stripe_dispute_id", flat=True))
    PaymentDiscrepancy.objects.filter(kind=Kind.UNMATCHED_DISPUTE, stripe_object_id__in=ids, status=Status.OPEN).update(
        purchase=purchase,
        status=Status.FIXED,
        action=f"linked to purchase {purchase.public_id} when its payment was credited; credit clawed back",
    )


# --- the sweep ------------------------------------------------------------------------------------------


@dataclass
class Report:
    charges: int = 0
    refunds: int = 0
    disputes: int | None = 0  # None: Stripe's dispute list could not be read
    disputes_error: str = ""
    findings: list[str] = field(default_factory=list)

    def add(self, row: PaymentDiscrepancy | None) -> None:
        if row is not None:
            self.findings.append(f"{row.kind} {row.stripe_object_id} ({row.status}): {row.detail}")


def _purchase_of_charge(charge: stripe_api.ChargeInfo) -> Purchase | None:
    try:
        public_id = uuid.UUID(charge.purchase_id) if charge.purchase_id else None
    except ValueError:
        public_id = None
    if public_id is not None:
        purchase = Purchase.objects.filter(public_id=public_id).first()
        if purchase is not None:
            return purchase
    if not charge.payment_intent_id:
        return None
    return (
        Purchase.objects.filter(
            Q(stripe_payment_intent_id=charge.payment_intent_id)
            | Q(payment_attempts__payment_intent_id=charge.payment_intent_id)
        )
        .distinct()
        .first()
    )


def _check_charge(charge: stripe_api.ChargeInfo, report: Report) -> None:
    purchase = _purchase_of_charge(charge)
    money = _money(charge.amount, charge.currency)

    def found(kind: str, object_id: str, **fields) -> None:
        report.add(record(kind, object_id, amount_minor=charge.amount, currency=charge.currency, **fields))

    if purchase is None:
        found(
            Kind.UNMATCHED_CHARGE,
            charge.id,
            detail=f"charge of {money} that names no purchase of ours "
            f"({charge.payment_intent_id or 'no payment intent'})",
        )
        return
    unpaid = (Purchase.Status.CREATED, Purchase.Status.AWAITING_PAYMENT)
    if purchase.status in unpaid and charge.payment_intent_id:
        # Its webhook never came: credit it now, as the webhook would have.
        pi = stripe_api.payment_intent_retrieve(charge.payment_intent_id)
        services.purchase_fulfil(purchase_id=purchase.pk, payment_intent=pi, source="reconcile")
        purchase.refresh_from_db()
    if purchase.status == Purchase.Status.PAID and purchase.stripe_payment_intent_id == charge.payment_intent_id:
        if (charge.amount, charge.currency) != (purchase.amount_minor, purchase.currency):
            found(
                Kind.AMOUNT_MISMATCH,
                charge.id,
                purchase=purchase,
                detail=f"charge of {money} credited purchase {purchase.public_id} of "
                f"{_money(purchase.amount_minor, purchase.currency)}",
            )
        return
    if purchase.status in unpaid:
        found(
            Kind.AMOUNT_MISMATCH,
            charge.id,
            purchase=purchase,
            detail=f"charge of {money} for purchase {purchase.public_id} of "
            f"{_money(purchase.amount_minor, purchase.currency)} could not credit it",
        )
        return
    if charge.amount_refunded >= charge.amount:
        # Refunded already (by us or by hand): only a surplus still unknown to us is recorded.
        found(
            Kind.SURPLUS_CHARGE,
            charge.payment_intent_id or charge.id,
            purchase=purchase,
            detail=f"a charge of {money} of purchase {purchase.public_id} that did not credit it",
            status=Status.FIXED,
            action="already refunded at Stripe",
        )
        return
    report.add(surplus_payment(payment_intent_id=charge.payment_intent_id, purchase_id=purchase.pk, source="reconcile"))


def _check_refunds(charge: stripe_api.ChargeInfo, report: Report, seen: set[str]) -> None:
    for info in stripe_api.refunds_of_charge(charge.id):
        report.refunds += 1
        seen.add(info.id)
        key = info.metadata.get("refund_part")
        part = RefundPart.objects.filter(Q(stripe_refund_id=info.id) | Q(idempotency_key=key or None)).first()
        if part is None:
            refund_not_ours(info)
            continue
        if info.amount != part.amount_minor:
            report.add(
                record(
                    Kind.AMOUNT_MISMATCH,
                    info.id,
                    purchase=part.purchase,
                    amount_minor=info.amount,
                    currency=info.currency,
                    detail=f"refund of {_money(info.amount, info.currency)} at Stripe, "
                    f"{_money(part.amount_minor, part.currency)} in our books ({part.idempotency_key})",
                )
            )
        expected = {"succeeded": RefundPart.Status.SUCCEEDED, "failed": RefundPart.Status.FAILED}.get(info.status)
        if expected and part.status != expected:
            services.apply_refund(part, info)  # its refund.* event was lost


def _check_disputes(since: int, report: Report) -> None:
    count = 0
    try:
        for obj in stripe_api.disputes_since(since):
            count += 1
            info = stripe_api.dispute_info(obj)
            known = Dispute.objects.filter(stripe_dispute_id=info.id).first()
            closed = info.status in ("won", "lost", "warning_closed")
            if known is None or (closed and known.status == Dispute.Status.OPEN):
                # Its webhook never came (or its closing one): apply it as the webhook would have.
                services.EVENT_HANDLERS["charge.dispute.closed" if closed else "charge.dispute.created"](obj)
                known = Dispute.objects.get(stripe_dispute_id=info.id)
                report.findings.append(f"dispute {info.id} ({info.status}) was missing from our books; applied")
            if info.amount != known.amount_minor:
                report.add(
                    record(
                        Kind.AMOUNT_MISMATCH,
                        info.id,
                        purchase=known.purchase,
                        amount_minor=info.amount,
                        currency=info.currency,
                        detail=f"dispute of {_money(info.amount, info.currency)} at Stripe, "
                        f"{_money(known.amount_minor, known.currency)} in our books",
                    )
                )
    except stripe_api.StripeFailure as exc:
        report.disputes, report.disputes_error = None, exc.message
        return
    report.disputes = count


def _check_our_books(since: datetime, until: datetime, seen_payments: set[str], report: Report) -> None:
    """Purchases we credited in the window whose payment Stripe does not show as succeeded."""
    paid = Purchase.objects.filter(status=Purchase.Status.PAID, paid_at__gte=since, paid_at__lt=until)
    for purchase in paid.exclude(stripe_payment_intent_id__in=seen_payments).iterator():
        pi = (
            stripe_api.payment_intent_retrieve(purchase.stripe_payment_intent_id)
            if purchase.stripe_payment_intent_id
            else None
        )
        if pi is not None and pi.status == "succeeded" and pi.amount == purchase.amount_minor:
            continue  # charged just before the window
        report.add(
            record(
                Kind.MISSING_AT_STRIPE,
                purchase.stripe_payment_intent_id or f"purchase:{purchase.public_id}",
                purchase=purchase,
                amount_minor=purchase.amount_minor,
                currency=purchase.currency,
                detail=f"purchase {purchase.public_id} was credited but Stripe shows "
                + (f"its payment {pi.status}, {_money(pi.amount, pi.currency)}" if pi else "no payment for it"),
            )
        )


def reconcile(*, since: datetime, until: datetime) -> Report:
    """Match every succeeded charge at Stripe created in [since, until], its refunds, and every
    dispute of the window to our purchases, refund parts and disputes; fix what is safe, record
    the rest. Safe to run again: every finding and fix is idempotent on its Stripe object."""
    report = Report()
    after = int(since.timestamp()) - 1
    before = until.timestamp()
    seen_payments: set[str] = set()
    seen_refunds: set[str] = set()
    for charge in stripe_api.charges_since(after):
        if charge.created > before or charge.status != "succeeded" or not charge.captured:
            continue
        report.charges += 1
        if charge.payment_intent_id:
            seen_payments.add(charge.payment_intent_id)
        _check_charge(charge, report)
        if charge.amount_refunded:
            _check_refunds(charge, report, seen_refunds)
    _check_disputes(after, report)
    _check_our_books(since, until, seen_payments, report)
    # Surplus refunds that could not be made yet (Stripe was down, the queue lost the task).
    for pk in PaymentDiscrepancy.objects.filter(
        kind=Kind.SURPLUS_CHARGE, status=Status.OPEN, stripe_refund_id=""
    ).values_list("pk", flat=True):
        surplus_refund(discrepancy_id=pk)
    return report
