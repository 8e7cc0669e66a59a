"""Every write to wallets, holds, lots and the ledger, but for refunds and disputes: those are
written by payments/ledger.py next to their records, through `wallet_lock` and `ledger_post` here.

Rules every service here (and there) follows:
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

from prepaid.allocation import allocate_fifo
from prepaid.errors import (
    HoldNotActive,
    IdempotencyConflict,
    InsufficientCredit,
    LedgerInconsistent,
    WalletBlocked,
)
from prepaid.models import CreditLot, Hold, LedgerEntry, LotConsumption, Profile, Wallet

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


def ledger_post(wallet: Wallet, *, kind: str, delta_wh: int, held_delta_wh: int = 0, key: str, **links) -> LedgerEntry:
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
        ledger_post(
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
        ledger_post(
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
        ledger_post(
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
        entry = ledger_post(
            wallet,
            kind=LedgerEntry.Kind.CONSUME,
            delta_wh=0,
            held_delta_wh=-consumed_wh,
            key=f"{idempotency_key}:consume",
            hold=hold,
        )
        _consume_from_lots(wallet, hold, entry, consumed_wh)
    if released_wh:
        ledger_post(
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
    "ledger_post",
    "wallet_credit_bonus",
    "wallet_credit_purchase",
    "wallet_get_or_create",
    "wallet_hold",
    "wallet_lock",
    "wallet_unblock",
]


def profile_set_language(*, user, language: str) -> Profile:
    """Keep the language a person chose for their pages and emails on their account; a code not
    in settings.LANGUAGES is refused (ValueError)."""
    if language not in dict(settings.LANGUAGES):
        raise ValueError(f"not a language of this site: {language!r}")
    profile, _ = Profile.objects.update_or_create(user=user, defaults={"language": language})
    return profile
