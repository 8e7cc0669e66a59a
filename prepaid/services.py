"""Every write to wallets, holds, lots and the ledger.

Rules every service here follows:
- one transaction per call; the wallet row is locked first (select_for_update), then the hold,
  then lots, always in that order, so two services can never deadlock on each other;
- the cached balances on Wallet/CreditLot/Hold change only in the transaction that appends the
  ledger line explaining the change;
- idempotent on the caller's key: a repeat returns the first result and changes nothing.
`select_for_update` is a no-op on SQLite; there the IMMEDIATE transactions serialise writers.
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from prepaid.allocation import allocate_fifo, refund_part_minor
from prepaid.errors import (
    HoldNotActive,
    IdempotencyConflict,
    InsufficientCredit,
    LedgerInconsistent,
    NothingToRefund,
    WalletBlocked,
)
from prepaid.models import CreditLot, Hold, LedgerEntry, LotConsumption, Wallet

logger = logging.getLogger(__name__)


def wallet_get_or_create(*, user) -> Wallet:
    """The user's wallet, created empty on first use (safe under concurrent first calls)."""
    wallet = Wallet.objects.filter(user=user).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(user=user)
    except IntegrityError:
        # A concurrent request created it between our read and our insert.
        return Wallet.objects.get(user=user)


def _lock_wallet(wallet_id: int) -> Wallet:
    return Wallet.objects.select_for_update().get(pk=wallet_id)


def wallet_lock(*, wallet_id: int) -> Wallet:
    """Lock the wallet row inside the caller's transaction: the first lock of any operation that
    also locks rows of other apps (purchase, session), so the lock order stays wallet-first."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("wallet_lock needs an open transaction")
    return _lock_wallet(wallet_id)


def _post(wallet: Wallet, *, kind: str, delta_wh: int, held_delta_wh: int = 0, key: str, **links) -> LedgerEntry:
    """Append one ledger line and apply it to the (locked) wallet in the same transaction."""
    entry = LedgerEntry.objects.create(
        wallet=wallet, kind=kind, delta_wh=delta_wh, held_delta_wh=held_delta_wh, idempotency_key=key, **links
    )
    wallet.balance_wh += delta_wh
    wallet.held_wh += held_delta_wh
    wallet.save(update_fields=["balance_wh", "held_wh", "blocked", "blocked_reason", "updated_at"])
    return entry


# --- Credit -------------------------------------------------------------------------------------


def wallet_credit_purchase(*, purchase) -> CreditLot:
    """Turn a paid purchase into a credit lot and a `purchase` ledger line (once per purchase).

    The caller (payments fulfilment) has checked that the payment succeeded for this amount.
    """
    wallet = wallet_get_or_create(user=purchase.user)
    with transaction.atomic():
        wallet = _lock_wallet(wallet.pk)
        existing = CreditLot.objects.filter(purchase=purchase).first()
        if existing is not None:
            return existing
        lot = CreditLot.objects.create(
            wallet=wallet,
            purchase=purchase,
            energy_wh=purchase.energy_wh,
            amount_minor=purchase.amount_minor,
            currency=purchase.currency,
            remaining_wh=purchase.energy_wh,
        )
        _post(
            wallet,
            kind=LedgerEntry.Kind.PURCHASE,
            delta_wh=purchase.energy_wh,
            key=f"purchase:{purchase.public_id}:credit",
            purchase=purchase,
            lot=lot,
        )
        return lot


def wallet_credit_bonus(*, wallet_id: int, energy_wh: int, idempotency_key: str, note: str = "") -> CreditLot:
    """Credit `energy_wh` granted without a payment as a bonus lot and a `bonus` ledger line.

    Once per key (e.g. `grid:<event>:session:<session>:bonus`): a repeat returns the first lot;
    the same key with another wallet or energy raises IdempotencyConflict. The lot has no money,
    so no refund can ever return it; charging spends it before paid credit. A blocked wallet is
    credited too (the bonus was earned), but a block still stops it being spent or refunded.
    The caller keeps the grant (what the bonus is for) and points it at the returned lot.
    """
    if not isinstance(energy_wh, int) or isinstance(energy_wh, bool) or energy_wh <= 0:
        raise ValueError("energy_wh must be a positive integer number of Wh")
    with transaction.atomic():
        wallet = _lock_wallet(wallet_id)
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).select_related("lot").first()
        if existing is not None:
            lot = existing.lot
            if (
                existing.kind != LedgerEntry.Kind.BONUS
                or lot is None
                or lot.wallet_id != wallet_id
                or lot.energy_wh != energy_wh
            ):
                raise IdempotencyConflict(f"{idempotency_key} was used for another credit")
            return lot
        lot = CreditLot.objects.create(
            wallet=wallet,
            kind=CreditLot.Kind.BONUS,
            energy_wh=energy_wh,
            amount_minor=0,
            currency=settings.CURRENCY,
            remaining_wh=energy_wh,
        )
        _post(
            wallet,
            kind=LedgerEntry.Kind.BONUS,
            delta_wh=energy_wh,
            key=idempotency_key,
            lot=lot,
            note=note[:200],
        )
        return lot


# --- Holds for charging sessions ------------------------------------------------------------------


def wallet_hold(*, wallet_id: int, energy_wh: int, idempotency_key: str) -> Hold:
    """Reserve `energy_wh` of the available balance, e.g. key `session:42:hold`.

    Raises InsufficientCredit, WalletBlocked, IdempotencyConflict (same key, other arguments).
    """
    if not isinstance(energy_wh, int) or energy_wh <= 0:
        raise ValueError("energy_wh must be a positive integer number of Wh")
    with transaction.atomic():
        wallet = _lock_wallet(wallet_id)
        existing = Hold.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.wallet_id != wallet_id or existing.energy_wh != energy_wh:
                raise IdempotencyConflict(f"{idempotency_key} was used for another hold")
            return existing
        if wallet.blocked:
            raise WalletBlocked(wallet.blocked_reason or "wallet blocked")
        if wallet.balance_wh < energy_wh:
            raise InsufficientCredit(f"{energy_wh} Wh asked, {wallet.balance_wh} Wh available")
        hold = Hold.objects.create(wallet=wallet, energy_wh=energy_wh, idempotency_key=idempotency_key)
        _post(
            wallet,
            kind=LedgerEntry.Kind.HOLD,
            delta_wh=-energy_wh,
            held_delta_wh=energy_wh,
            key=idempotency_key,
            hold=hold,
        )
        return hold


def _lock_hold_for_close(hold_id: int, idempotency_key: str) -> tuple[Wallet, Hold, bool]:
    """Lock wallet then hold; returns (wallet, hold, already_done_with_this_key)."""
    wallet_id = Hold.objects.values_list("wallet_id", flat=True).get(pk=hold_id)
    wallet = _lock_wallet(wallet_id)
    hold = Hold.objects.select_for_update().get(pk=hold_id)
    if hold.status != Hold.Status.ACTIVE:
        if hold.closed_by_key == idempotency_key:
            return wallet, hold, True
        raise HoldNotActive(f"hold {hold_id} is already {hold.status} (by {hold.closed_by_key})")
    return wallet, hold, False


def _consume_from_lots(wallet: Wallet, hold: Hold, entry: LedgerEntry, energy_wh: int) -> None:
    """Draw consumed energy from the wallet's lots (bonus lots first, then oldest first) and record
    each draw.

    If a dispute took energy out of a lot while it was held, the lots' remaining energy can fall
    short; the shortfall is then drawn from that removed energy (the claw-back debt grows by the
    same amount), so every consumed Wh still names the payment it came from.
    """
    lots = list(CreditLot.objects.select_for_update().filter(wallet=wallet, remaining_wh__gt=0).consumption_order())
    by_id = {lot.pk: lot for lot in lots}
    taken = allocate_fifo([(lot.pk, lot.remaining_wh) for lot in lots], energy_wh)
    for lot_id, wh in taken:
        lot = by_id[lot_id]
        lot.remaining_wh -= wh
        lot.consumed_wh += wh
        lot.save(update_fields=["remaining_wh", "consumed_wh"])
        LotConsumption.objects.create(hold=hold, lot=lot, ledger_entry=entry, energy_wh=wh)
    short = energy_wh - sum(wh for _, wh in taken)
    if short:
        disputed = list(
            CreditLot.objects.select_for_update()
            .filter(wallet=wallet, dispute_removed_wh__gt=0)
            .order_by("created_at", "id")
        )
        by_id = {lot.pk: lot for lot in disputed}
        taken = allocate_fifo([(lot.pk, lot.dispute_removed_wh) for lot in disputed], short)
        for lot_id, wh in taken:
            lot = by_id[lot_id]
            lot.dispute_removed_wh -= wh
            lot.consumed_wh += wh
            lot.save(update_fields=["dispute_removed_wh", "consumed_wh"])
            LotConsumption.objects.create(hold=hold, lot=lot, ledger_entry=entry, energy_wh=wh, from_disputed=True)
        short -= sum(wh for _, wh in taken)
    if short:
        raise LedgerInconsistent(f"wallet {wallet.pk}: lots lack {short} Wh to back hold {hold.pk}")


def _close_hold(wallet: Wallet, hold: Hold, *, consumed_wh: int, status: str, idempotency_key: str) -> Hold:
    released_wh = hold.energy_wh - consumed_wh
    if consumed_wh:
        entry = _post(
            wallet,
            kind=LedgerEntry.Kind.CONSUME,
            delta_wh=0,
            held_delta_wh=-consumed_wh,
            key=f"{idempotency_key}:consume",
            hold=hold,
        )
        _consume_from_lots(wallet, hold, entry, consumed_wh)
    if released_wh:
        _post(
            wallet,
            kind=LedgerEntry.Kind.RELEASE,
            delta_wh=released_wh,
            held_delta_wh=-released_wh,
            key=f"{idempotency_key}:release",
            hold=hold,
        )
    hold.consumed_wh = consumed_wh
    hold.released_wh = released_wh
    hold.status = status
    hold.closed_by_key = idempotency_key
    hold.closed_at = timezone.now()
    hold.save(update_fields=["consumed_wh", "released_wh", "status", "closed_by_key", "closed_at"])
    return hold


def hold_settle(*, hold_id: int, consumed_wh: int, idempotency_key: str) -> Hold:
    """Consume min(consumed_wh, held) from lots FIFO and release the rest, in one transaction.

    Overshoot beyond the hold is never billed (the operator absorbs it). Raises HoldNotActive if
    the hold was closed by a call with another key; a repeat with the same key is a no-op.
    """
    if not isinstance(consumed_wh, int) or consumed_wh < 0:
        raise ValueError("consumed_wh must be a non-negative integer number of Wh")
    with transaction.atomic():
        wallet, hold, done = _lock_hold_for_close(hold_id, idempotency_key)
        if done:
            return hold
        return _close_hold(
            wallet,
            hold,
            consumed_wh=min(consumed_wh, hold.energy_wh),
            status=Hold.Status.SETTLED,
            idempotency_key=idempotency_key,
        )


def hold_release(*, hold_id: int, idempotency_key: str) -> Hold:
    """Give the whole hold back to the balance (a session that never started charging)."""
    with transaction.atomic():
        wallet, hold, done = _lock_hold_for_close(hold_id, idempotency_key)
        if done:
            return hold
        return _close_hold(wallet, hold, consumed_wh=0, status=Hold.Status.RELEASED, idempotency_key=idempotency_key)


# --- Refunds of unused credit ---------------------------------------------------------------------


def wallet_refund_request(*, wallet_id: int, idempotency_key: str, energy_wh: int | None = None, requested_by=None):
    """Debit unused paid credit (all of it by default) and split it into one refund part per payment.

    Only paid lots are refunded (bonus credit has no payment and stays in the wallet), newest
    first: consumption draws bonus lots and then the oldest, so the two never compete. Each part
    never exceeds what is left refundable on its payment. Stripe is called afterwards, outside
    this transaction (payments.services.refund_submit). Returns the payments.Refund.
    Raises WalletBlocked, NothingToRefund, InsufficientCredit.
    """
    from payments.models import Refund, RefundPart  # payments depends on prepaid models too

    with transaction.atomic():
        wallet = _lock_wallet(wallet_id)
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
            lot.remaining_wh -= wh
            lot.refunded_wh += wh
            lot.refunded_minor += minor
            lot.save(update_fields=["remaining_wh", "refunded_wh", "refunded_minor"])
            _post(
                wallet,
                kind=LedgerEntry.Kind.REFUND,
                delta_wh=-wh,
                key=part.idempotency_key,
                lot=lot,
                purchase=lot.purchase,
                refund_part=part,
            )
            total_minor += minor
        refund.amount_minor = total_minor
        refund.save(update_fields=["amount_minor"])
        return refund


def _refund_status(refund) -> str:
    from payments.models import Refund, RefundPart

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
    from payments.models import RefundPart

    with transaction.atomic():
        wallet_id = RefundPart.objects.values_list("refund__wallet_id", flat=True).get(pk=part_id)
        wallet = _lock_wallet(wallet_id)
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
        _post(
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
            _post(
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
    from payments.models import RefundPart

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
    refund.status = _refund_status(refund)
    refund.save(update_fields=["status"])


# --- Disputes -------------------------------------------------------------------------------------


def wallet_dispute_clawback(*, dispute_id: int) -> LedgerEntry | None:
    """Claw back the whole credit of the disputed payment and block the wallet.

    The lot's unused energy leaves it; energy already consumed (or held by a running session)
    becomes claw-back debt, so the balance may go negative — allowed only while blocked.
    Returns the ledger line, or None if the lot was not credited or is already clawed back.
    """
    from payments.models import Dispute

    dispute = Dispute.objects.select_related("purchase").get(pk=dispute_id)
    if dispute.purchase_id is None:
        return None  # its payment is not a credited purchase (yet): linked and clawed back at credit
    lot = CreditLot.objects.filter(purchase_id=dispute.purchase_id).first()
    if lot is None:
        return None  # never credited: nothing to take back
    with transaction.atomic():
        wallet = _lock_wallet(lot.wallet_id)
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
        return _post(
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
    from payments.models import Dispute

    dispute = Dispute.objects.get(pk=dispute_id)
    clawback = LedgerEntry.objects.filter(idempotency_key=f"dispute:{dispute.stripe_dispute_id}:clawback").first()
    if clawback is None:
        return None
    with transaction.atomic():
        wallet = _lock_wallet(clawback.wallet_id)
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
        return _post(
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
    from payments.models import Refund, RefundPart

    lot = CreditLot.objects.filter(purchase_id=purchase_id, kind=CreditLot.Kind.PURCHASE).first()
    if lot is None:
        return None
    key = f"external-refund:{stripe_refund_id}"
    with transaction.atomic():
        wallet = _lock_wallet(lot.wallet_id)
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
        lot.remaining_wh -= taken
        lot.refunded_wh += taken
        lot.refunded_minor += money
        lot.save(update_fields=["remaining_wh", "refunded_wh", "refunded_minor"])
        _post(
            wallet,
            kind=LedgerEntry.Kind.REFUND,
            delta_wh=-taken,
            key=key,
            lot=lot,
            purchase_id=purchase_id,
            refund_part=part,
            note="refunded at Stripe, not through the app",
        )
        return part, wanted - taken


def wallet_unblock(*, wallet_id: int, reason: str) -> Wallet:
    """Operator action: unblock a wallet whose balance is not negative (a lost dispute settled)."""
    with transaction.atomic():
        wallet = _lock_wallet(wallet_id)
        if wallet.balance_wh < 0:
            raise WalletBlocked("the wallet still owes clawed-back energy")
        Wallet.objects.filter(pk=wallet.pk).update(blocked=False, blocked_reason="", updated_at=timezone.now())
        logger.info("wallet %s unblocked: %s", wallet.pk, reason)
        wallet.refresh_from_db()
        return wallet


def new_idempotency_key(prefix: str) -> str:
    """A fresh key for a user action that has no natural one (a refund button press)."""
    return f"{prefix}:{uuid.uuid4()}"


__all__ = [
    "hold_release",
    "hold_settle",
    "refund_part_fail",
    "refund_part_succeed",
    "wallet_credit_bonus",
    "wallet_credit_purchase",
    "wallet_dispute_clawback",
    "wallet_dispute_restore",
    "wallet_external_refund",
    "wallet_get_or_create",
    "wallet_hold",
    "wallet_lock",
    "wallet_refund_request",
    "wallet_unblock",
]
