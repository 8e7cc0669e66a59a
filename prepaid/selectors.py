"""Reads of the prepaid-credit domain, for views, the dashboard and `ledger_check`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import F, Sum

from prepaid.allocation import money_share
from prepaid.models import CreditLot, EnergyPackage, Hold, LedgerEntry, LotConsumption, Profile, Wallet


def package_list_active():
    return EnergyPackage.objects.filter(active=True).order_by("order", "energy_wh")


def wallet_for_user(*, user) -> Wallet | None:
    return Wallet.objects.filter(user=user).first()


def wallet_lots(*, wallet: Wallet):
    """The wallet's paid lots, newest first (what was bought, paid and refunded); bonus credit: `wallet_bonus`."""
    return (
        CreditLot.objects.filter(wallet=wallet, kind=CreditLot.Kind.PURCHASE)
        .select_related("purchase")
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class BonusCredit:
    """Bonus credit (granted without payment) of one wallet, in Wh."""

    earned_wh: int
    remaining_wh: int

    @property
    def earned_kwh(self) -> float:
        return self.earned_wh / 1000

    @property
    def remaining_kwh(self) -> float:
        return self.remaining_wh / 1000


def wallet_bonus(*, wallet: Wallet) -> BonusCredit:
    """Bonus energy credited to the wallet and what of it is left (spent before paid credit)."""
    sums = CreditLot.objects.filter(wallet=wallet, kind=CreditLot.Kind.BONUS).aggregate(
        earned=Sum("energy_wh"), remaining=Sum("remaining_wh")
    )
    return BonusCredit(earned_wh=sums["earned"] or 0, remaining_wh=sums["remaining"] or 0)


def wallet_history(*, wallet: Wallet, limit: int = 50):
    return LedgerEntry.objects.filter(wallet=wallet).select_related("purchase").order_by("-created_at", "-id")[:limit]


def wallet_refundable_wh(*, wallet: Wallet) -> int:
    """Energy a refund can take back now: unused paid credit, at most the balance (what running
    sessions hold stays; bonus credit is not refundable). As payments.ledger.wallet_refund_request."""
    if wallet.blocked or wallet.balance_wh <= 0:
        return 0
    paid = (
        CreditLot.objects.refundable().filter(wallet=wallet, remaining_wh__gt=0).values_list("remaining_wh", flat=True)
    )
    return min(wallet.balance_wh, sum(paid))


def wallet_refundable_minor(*, wallet: Wallet, energy_wh: int | None = None) -> int:
    """Money a refund of all unused paid credit (or of `energy_wh` of it) would return now (same
    lots and rounding as the refund; bonus credit is not refundable)."""
    from prepaid.allocation import allocate_fifo, refund_part_minor

    if wallet.blocked or wallet.balance_wh <= 0:
        return 0
    lots = list(CreditLot.objects.refundable().filter(wallet=wallet, remaining_wh__gt=0).order_by("-created_at", "-id"))
    by_id = {lot.pk: lot for lot in lots}
    total = 0
    wanted = wallet.balance_wh if energy_wh is None else min(energy_wh, wallet.balance_wh)
    for lot_id, wh in allocate_fifo([(lot.pk, lot.remaining_wh) for lot in lots], wanted):
        lot = by_id[lot_id]
        total += refund_part_minor(
            amount_minor=lot.amount_minor,
            energy_wh=lot.energy_wh,
            refunded_wh=lot.refunded_wh,
            refunded_minor=lot.refunded_minor,
            part_wh=wh,
        )
    return total


def hold_draws(*, hold_id: int) -> list[dict]:
    """What a settled hold drew, one line per lot in draw order: `lot`, `energy_wh` and its money,
    `amount_minor` (the lot's price share, half up: allocation.money_share).

    The one formula of a session's money: the API's receipt lists these lines and the receipt
    page shows their sum, so both show the same amount."""
    lines: dict[int, dict] = {}
    for draw in LotConsumption.objects.filter(hold_id=hold_id).select_related("lot__purchase").order_by("id"):
        line = lines.setdefault(draw.lot_id, {"lot": draw.lot, "energy_wh": 0})
        line["energy_wh"] += draw.energy_wh
    for line in lines.values():
        line["amount_minor"] = money_share(line["lot"].amount_minor, line["lot"].energy_wh, line["energy_wh"])
    return list(lines.values())


def _sums(queryset, key: str, field: str) -> dict[int, int]:
    return {row[key]: row["total"] or 0 for row in queryset.values(key).annotate(total=Sum(field))}


def wallet_drift() -> list[str]:
    """Recompute balances, holds and lots from the ledger; one line per disagreement (empty = clean).

    The records of other apps that lots answer to are checked by those apps: refund parts
    (payments.selectors.refund_drift), bonus grants (sessions.grid.selectors.bonus_drift);
    payments.selectors.ledger_drift runs all three (`manage.py ledger_check`)."""
    problems: list[str] = []
    K = LedgerEntry.Kind
    balance = _sums(LedgerEntry.objects.all(), "wallet_id", "delta_wh")
    held = _sums(LedgerEntry.objects.all(), "wallet_id", "held_delta_wh")
    active_held = _sums(Hold.objects.filter(status=Hold.Status.ACTIVE), "wallet_id", "energy_wh")
    remaining = _sums(CreditLot.objects.all(), "wallet_id", "remaining_wh")
    debt = defaultdict(int)
    for lot in CreditLot.objects.filter(disputed_wh__gt=0):
        debt[lot.wallet_id] += lot.disputed_wh - lot.dispute_removed_wh

    for wallet in Wallet.objects.all():
        b, h = balance.get(wallet.pk, 0), held.get(wallet.pk, 0)
        if wallet.balance_wh != b:
            problems.append(f"wallet {wallet.pk}: balance_wh {wallet.balance_wh} != ledger {b}")
        if wallet.held_wh != h:
            problems.append(f"wallet {wallet.pk}: held_wh {wallet.held_wh} != ledger {h}")
        if h != active_held.get(wallet.pk, 0):
            problems.append(f"wallet {wallet.pk}: ledger held {h} != active holds {active_held.get(wallet.pk, 0)}")
        backed = remaining.get(wallet.pk, 0) - debt[wallet.pk]
        if b + h != backed:
            problems.append(f"wallet {wallet.pk}: balance+held {b + h} != lots remaining minus dispute debt {backed}")
        if b < 0 and not wallet.blocked:
            problems.append(f"wallet {wallet.pk}: negative balance {b} while not blocked")

    hold_sums = defaultdict(lambda: defaultdict(int))
    for row in (
        LedgerEntry.objects.filter(hold__isnull=False).values("hold_id", "kind").annotate(t=Sum("held_delta_wh"))
    ):
        hold_sums[row["hold_id"]][row["kind"]] = row["t"] or 0
    consumed_by_hold = _sums(LotConsumption.objects.all(), "hold_id", "energy_wh")
    for hold in Hold.objects.all():
        s = hold_sums[hold.pk]
        if s[K.HOLD] != hold.energy_wh:
            problems.append(f"hold {hold.pk}: ledger hold {s[K.HOLD]} != energy_wh {hold.energy_wh}")
        if -s[K.CONSUME] != hold.consumed_wh or consumed_by_hold.get(hold.pk, 0) != hold.consumed_wh:
            problems.append(
                f"hold {hold.pk}: consumed_wh {hold.consumed_wh} != ledger {-s[K.CONSUME]}"
                f" / lot draws {consumed_by_hold.get(hold.pk, 0)}"
            )
        if -s[K.RELEASE] != hold.released_wh:
            problems.append(f"hold {hold.pk}: released_wh {hold.released_wh} != ledger {-s[K.RELEASE]}")

    lot_sums = defaultdict(lambda: defaultdict(int))
    for row in LedgerEntry.objects.filter(lot__isnull=False).values("lot_id", "kind").annotate(t=Sum("delta_wh")):
        lot_sums[row["lot_id"]][row["kind"]] = row["t"] or 0
    consumed_by_lot = _sums(LotConsumption.objects.all(), "lot_id", "energy_wh")
    for lot in CreditLot.objects.all():
        s = lot_sums[lot.pk]
        # A paid lot is credited by its purchase line, a bonus lot by its bonus line; never both.
        credit_kind, other_kind = (K.BONUS, K.PURCHASE) if lot.kind == CreditLot.Kind.BONUS else (K.PURCHASE, K.BONUS)
        if s[credit_kind] != lot.energy_wh:
            problems.append(f"lot {lot.pk}: {credit_kind} credit {s[credit_kind]} != energy_wh {lot.energy_wh}")
        if s[other_kind]:
            problems.append(f"lot {lot.pk}: a {lot.kind} lot has {other_kind} credit {s[other_kind]}")
        if consumed_by_lot.get(lot.pk, 0) != lot.consumed_wh:
            problems.append(f"lot {lot.pk}: consumed_wh {lot.consumed_wh} != draws {consumed_by_lot.get(lot.pk, 0)}")
        refunded = -(s[K.REFUND] + s[K.REFUND_REVERSAL])
        if refunded != lot.refunded_wh:
            problems.append(f"lot {lot.pk}: refunded_wh {lot.refunded_wh} != ledger {refunded}")
        disputed = -(s[K.DISPUTE] + s[K.DISPUTE_WON])
        if disputed != lot.disputed_wh:
            problems.append(f"lot {lot.pk}: disputed_wh {lot.disputed_wh} != ledger {disputed}")
        parts = lot.remaining_wh + lot.consumed_wh + lot.refunded_wh + lot.dispute_removed_wh
        if parts != lot.energy_wh:
            problems.append(f"lot {lot.pk}: parts {parts} != energy_wh {lot.energy_wh}")
    misplaced = LedgerEntry.objects.filter(lot__isnull=False).exclude(wallet_id=F("lot__wallet_id"))
    for entry_id, wallet_id in misplaced.values_list("id", "wallet_id"):
        problems.append(f"ledger entry {entry_id}: on wallet {wallet_id}, its lot on another")
    return problems


def language_for(*, user) -> str:
    """The language a person chose for their account ("" when they never did)."""
    if user is None or not getattr(user, "pk", None):
        return ""
    return Profile.objects.filter(user_id=user.pk).values_list("language", flat=True).first() or ""
