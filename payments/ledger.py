"""The ledger side of refunds and disputes: the writes that tie a ledger line to a Refund or a
Dispute of this app.

They follow prepaid's rules (prepaid/services.py): one transaction per call, the wallet row locked
first through `wallet_lock`, every change of a balance or lot explained by a ledger line appended
with `ledger_post` in the same transaction, idempotent on the caller's key. Stripe is called
outside these transactions (services.refund_submit).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from payments import notices
from payments.models import Dispute, Refund, RefundPart
from prepaid import services as wallet_services
from prepaid.allocation import allocate_fifo, refund_part_minor
from prepaid.errors import InsufficientCredit, LedgerInconsistent, NothingToRefund, WalletBlocked
from prepaid.models import CreditLot, LedgerEntry, Wallet

# A refund whose money (all or part of it) went back to the card: the driver is told.
MONEY_SENT = (Refund.Status.SUCCEEDED, Refund.Status.PARTIALLY_FAILED)

# --- Refunds of unused credit ---------------------------------------------------------------------


def wallet_refund_request(*, wallet_id: int, idempotency_key: str, energy_wh: int | None = None, requested_by=None):
    """Debit unused paid credit (all of it by default) and split it into one refund part per payment.

    Only paid lots are refunded (bonus credit has no payment and stays in the wallet), newest
    first: consumption draws bonus lots and then the oldest, so the two never compete. Each part
    never exceeds what is left refundable on its payment. Stripe is called afterwards, outside
    this transaction (payments.services.refund_submit). Returns the payments.Refund.
    Raises WalletBlocked, NothingToRefund, InsufficientCredit.
    """
    with transaction.atomic():
        wallet = wallet_services.wallet_lock(wallet_id=wallet_id)
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        if wallet.blocked:
            raise WalletBlocked(wallet.blocked_reason or "wallet blocked")
        # Lock the lots only: `purchase` is nullable (bonus lots), so its join is an outer one,
        # which PostgreSQL cannot lock; the purchases are only read here.
        lots = list(
            CreditLot.objects.select_for_update(of=("self",))
            .refundable()
            .filter(wallet=wallet, remaining_wh__gt=0)
            .select_related("purchase")
            .order_by("-created_at", "-id")
        )
        # Held energy is still in the lots: refunding at most the balance leaves Σ remaining ≥
        # held, so every hold stays backed whichever lots (bonus or paid) it later draws from.
        refundable_wh = min(wallet.balance_wh, sum(lot.remaining_wh for lot in lots))
        wanted = refundable_wh if energy_wh is None else energy_wh
        if wanted <= 0:
            bonus_only = wallet.balance_wh > 0 and refundable_wh == 0
            raise NothingToRefund("no unused paid credit" + (" (bonus credit is not refundable)" if bonus_only else ""))
        if wanted > wallet.balance_wh:
            raise InsufficientCredit(f"{wanted} Wh asked, {wallet.balance_wh} Wh available")
        if wanted > refundable_wh:
            raise InsufficientCredit(f"{wanted} Wh asked, {refundable_wh} Wh refundable (bonus credit is not)")
        by_id = {lot.pk: lot for lot in lots}
        taken = allocate_fifo([(lot.pk, lot.remaining_wh) for lot in lots], wanted)
        if sum(wh for _, wh in taken) < wanted:
            raise LedgerInconsistent(f"wallet {wallet.pk}: lots do not back the balance")
        currencies = {by_id[lot_id].currency for lot_id, _ in taken}
        refund = Refund.objects.create(
            wallet=wallet,
            requested_by=requested_by,
            energy_wh=wanted,
            amount_minor=0,
            currency=next(iter(currencies)),
            idempotency_key=idempotency_key,
        )
        total_minor = 0
        for number, (lot_id, wh) in enumerate(taken, start=1):
            lot = by_id[lot_id]
            minor = refund_part_minor(
                amount_minor=lot.amount_minor,
                energy_wh=lot.energy_wh,
                refunded_wh=lot.refunded_wh,
                refunded_minor=lot.refunded_minor,
                part_wh=wh,
            )
            part = RefundPart.objects.create(
                refund=refund,
                number=number,
                purchase=lot.purchase,
                lot=lot,
                energy_wh=wh,
                amount_minor=minor,
                currency=lot.currency,
                idempotency_key=f"refund:{refund.public_id}:part:{number}",
            )
            _take_refunded(wallet, lot, part)
            total_minor += minor
        refund.amount_minor = total_minor
        refund.save(update_fields=["amount_minor"])
        return refund


def _take_refunded(wallet, lot, part, **note) -> None:
    """A refund part's energy and money leave its lot, and its energy the wallet (one ledger line);
    the lot's refunded figures are what later refunds price against, so they move together."""
    lot.remaining_wh -= part.energy_wh
    lot.refunded_wh += part.energy_wh
    lot.refunded_minor += part.amount_minor
    lot.save(update_fields=["remaining_wh", "refunded_wh", "refunded_minor"])
    wallet_services.ledger_post(
        wallet,
        kind=LedgerEntry.Kind.REFUND,
        delta_wh=-part.energy_wh,
        key=part.idempotency_key,
        lot=lot,
        purchase_id=part.purchase_id,
        refund_part=part,
        **note,
    )


def _refund_status(refund) -> str:
    statuses = set(refund.parts.values_list("status", flat=True))
    if RefundPart.Status.PENDING in statuses:
        return Refund.Status.PENDING
    if statuses == {RefundPart.Status.SUCCEEDED}:
        return Refund.Status.SUCCEEDED
    if statuses == {RefundPart.Status.FAILED}:
        return Refund.Status.FAILED
    return Refund.Status.PARTIALLY_FAILED


def refund_part_fail(*, part_id: int, reason: str = ""):
    """Stripe reported the part failed: credit its energy back to the wallet and lot (once).

    Allowed from pending and from succeeded (Stripe can fail a refund after reporting success).
    """
    with transaction.atomic():
        wallet_id = RefundPart.objects.values_list("refund__wallet_id", flat=True).get(pk=part_id)
        wallet = wallet_services.wallet_lock(wallet_id=wallet_id)
        part = RefundPart.objects.select_for_update().get(pk=part_id)
        if part.status == RefundPart.Status.FAILED:
            return part
        lot = CreditLot.objects.select_for_update().get(pk=part.lot_id)
        lot.refunded_wh -= part.energy_wh
        lot.refunded_minor -= part.amount_minor
        # The money stayed with us. If the payment is disputed meanwhile, that money is in the
        # dispute too: its energy joins the claw-back (given back only if the dispute is won),
        # never the spendable lot.
        disputed = lot.disputed_wh > 0
        if disputed:
            lot.dispute_removed_wh += part.energy_wh
            lot.disputed_wh += part.energy_wh
        else:
            lot.remaining_wh += part.energy_wh
        lot.save(update_fields=["remaining_wh", "refunded_wh", "refunded_minor", "dispute_removed_wh", "disputed_wh"])
        wallet_services.ledger_post(
            wallet,
            kind=LedgerEntry.Kind.REFUND_REVERSAL,
            delta_wh=part.energy_wh,
            key=f"{part.idempotency_key}:reversal",
            lot=lot,
            purchase_id=part.purchase_id,
            refund_part=part,
        )
        if disputed:
            clawback = LedgerEntry.objects.filter(lot=lot, kind=LedgerEntry.Kind.DISPUTE).order_by("-id").first()
            wallet_services.ledger_post(
                wallet,
                kind=LedgerEntry.Kind.DISPUTE,
                delta_wh=-part.energy_wh,
                key=f"{part.idempotency_key}:reversal:disputed",
                lot=lot,
                purchase_id=part.purchase_id,
                refund_part=part,
                dispute_id=clawback.dispute_id if clawback else None,
            )
        part.status = RefundPart.Status.FAILED
        part.failure_reason = reason[:200]
        part.save(update_fields=["status", "failure_reason", "updated_at"])
        _sync_refund_status(part.refund)
        return part


def refund_part_succeed(*, part_id: int, stripe_refund_id: str | None = None):
    """Stripe reported the part succeeded; only a pending part moves (never back from failed)."""
    with transaction.atomic():
        part = RefundPart.objects.select_for_update().get(pk=part_id)
        updates = {}
        if stripe_refund_id and not part.stripe_refund_id:
            updates["stripe_refund_id"] = stripe_refund_id
        if part.status == RefundPart.Status.PENDING:
            updates["status"] = RefundPart.Status.SUCCEEDED
        if updates:
            RefundPart.objects.filter(pk=part.pk).update(**updates, updated_at=timezone.now())
            part.refresh_from_db()
            _sync_refund_status(part.refund)
        return part


def _sync_refund_status(refund) -> None:
    before, refund.status = refund.status, _refund_status(refund)
    refund.save(update_fields=["status"])
    if before == Refund.Status.PENDING and refund.status in MONEY_SENT:
        notices.refund_made(refund, user_id=Wallet.objects.values_list("user_id", flat=True).get(pk=refund.wallet_id))


# --- Disputes -------------------------------------------------------------------------------------


def wallet_dispute_clawback(*, dispute_id: int) -> LedgerEntry | None:
    """Claw back the whole credit of the disputed payment and block the wallet.

    The lot's unused energy leaves it; energy already consumed (or held by a running session)
    becomes claw-back debt, so the balance may go negative — allowed only while blocked.
    Returns the ledger line, or None if the lot was not credited or is already clawed back.
    """
    dispute = Dispute.objects.select_related("purchase").get(pk=dispute_id)
    if dispute.purchase_id is None:
        return None  # its payment is not a credited purchase (yet): linked and clawed back at credit
    lot = CreditLot.objects.filter(purchase_id=dispute.purchase_id).first()
    if lot is None:
        return None  # never credited: nothing to take back
    with transaction.atomic():
        wallet = wallet_services.wallet_lock(wallet_id=lot.wallet_id)
        key = f"dispute:{dispute.stripe_dispute_id}:clawback"
        if LedgerEntry.objects.filter(idempotency_key=key).exists():
            return LedgerEntry.objects.get(idempotency_key=key)
        lot = CreditLot.objects.select_for_update().get(pk=lot.pk)
        if lot.disputed_wh:
            return None  # another open dispute on the same payment already took it
        clawback = lot.energy_wh - lot.refunded_wh
        if clawback <= 0:
            return None
        lot.dispute_removed_wh = lot.remaining_wh
        lot.remaining_wh = 0
        lot.disputed_wh = clawback
        lot.save(update_fields=["remaining_wh", "dispute_removed_wh", "disputed_wh"])
        wallet.blocked = True
        wallet.blocked_reason = f"payment disputed ({dispute.stripe_dispute_id})"
        return wallet_services.ledger_post(
            wallet,
            kind=LedgerEntry.Kind.DISPUTE,
            delta_wh=-clawback,
            key=key,
            lot=lot,
            purchase=dispute.purchase,
            dispute=dispute,
        )


def wallet_dispute_restore(*, dispute_id: int) -> LedgerEntry | None:
    """A dispute was won: give back what its claw-back took; unblock if no other dispute is open."""
    dispute = Dispute.objects.get(pk=dispute_id)
    clawback = LedgerEntry.objects.filter(idempotency_key=f"dispute:{dispute.stripe_dispute_id}:clawback").first()
    if clawback is None:
        return None
    with transaction.atomic():
        wallet = wallet_services.wallet_lock(wallet_id=clawback.wallet_id)
        key = f"dispute:{dispute.stripe_dispute_id}:won"
        if LedgerEntry.objects.filter(idempotency_key=key).exists():
            return LedgerEntry.objects.get(idempotency_key=key)
        lot = CreditLot.objects.select_for_update().get(pk=clawback.lot_id)
        restored = lot.disputed_wh
        lot.remaining_wh += lot.dispute_removed_wh
        lot.dispute_removed_wh = 0
        lot.disputed_wh = 0
        lot.save(update_fields=["remaining_wh", "dispute_removed_wh", "disputed_wh"])
        still_open = CreditLot.objects.filter(wallet=wallet, disputed_wh__gt=0).exists()
        if not still_open:
            wallet.blocked = False
            wallet.blocked_reason = ""
        return wallet_services.ledger_post(
            wallet,
            kind=LedgerEntry.Kind.DISPUTE_WON,
            delta_wh=restored,
            key=key,
            lot=lot,
            purchase_id=dispute.purchase_id,
            dispute=dispute,
        )


def wallet_external_refund(*, purchase_id: int, stripe_refund_id: str, amount_minor: int):
    """A refund made at Stripe but not through the app (e.g. in Stripe's dashboard): the money of
    a paid lot went back, so the energy it paid for leaves the wallet (once per Stripe refund).

    Takes the energy the refunded money bought (rounded up), as far as the lot still has it
    unused and unheld; the rest was already used or is held by a running session and is reported
    by the caller. Recorded as a succeeded refund part (no requester) with the money, so later
    refunds never count that money as refundable again. Returns (part, shortfall_wh), or None
    if the purchase was never credited (nothing to take back).
    """
    lot = CreditLot.objects.filter(purchase_id=purchase_id, kind=CreditLot.Kind.PURCHASE).first()
    if lot is None:
        return None
    key = f"external-refund:{stripe_refund_id}"
    with transaction.atomic():
        wallet = wallet_services.wallet_lock(wallet_id=lot.wallet_id)
        existing = RefundPart.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing, 0
        lot = CreditLot.objects.select_for_update().get(pk=lot.pk)
        money = max(0, min(amount_minor, lot.amount_minor - lot.refunded_minor))
        wanted = -(-money * lot.energy_wh // lot.amount_minor) if lot.amount_minor else 0
        taken = max(0, min(wanted, lot.remaining_wh, wallet.balance_wh))
        refund = Refund.objects.create(
            wallet=wallet,
            energy_wh=taken,
            amount_minor=money,
            currency=lot.currency,
            status=Refund.Status.SUCCEEDED,
            idempotency_key=key,
        )
        part = RefundPart.objects.create(
            refund=refund,
            number=1,
            purchase_id=purchase_id,
            lot=lot,
            energy_wh=taken,
            amount_minor=money,
            currency=lot.currency,
            idempotency_key=key,
            stripe_refund_id=stripe_refund_id,
            status=RefundPart.Status.SUCCEEDED,
        )
        _take_refunded(wallet, lot, part, note="refunded at Stripe, not through the app")
        notices.refund_made(refund, user_id=wallet.user_id)
        return part, wanted - taken
