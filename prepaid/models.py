"""The prepaid-credit domain: energy packages, wallets, the append-only ledger and credit lots.

Energy is integer watt-hours, money integer minor units. Every write goes through
prepaid/services.py; these models only hold fields, constraints and small derived values.

Balances and disputes (the design choice, see also payments.ledger.wallet_dispute_clawback):
- `Wallet.balance_wh` is the available energy, `Wallet.held_wh` the energy reserved by active
  holds. The balance may go below zero only while the wallet is blocked: a dispute claws back
  the whole credit of the disputed payment, including energy already consumed, and blocks the
  wallet. The CheckConstraint `balance_wh >= 0 OR blocked` keeps every other path non-negative.
- Each credit lot satisfies energy = consumed + refunded + remaining + dispute_removed. At any
  time, per wallet: balance + held = Σ remaining − Σ (disputed − dispute_removed), i.e. the
  claw-back debt is explicit on the disputed lots. `ledger_check` verifies all of this.

Credit without a payment (the design choice, see services.wallet_credit_bonus):
- A lot is either paid (`kind=purchase`, backed by its Purchase) or a bonus (`kind=bonus`, backed
  by a grant such as a demand-response bonus `charging.GridBonusEntry`). A bonus lot has no
  payment and no money (`amount_minor = 0`), so it can never be refunded or disputed; the
  database refuses a bonus lot with a purchase, money, refunds or a dispute.
- Charging draws bonus lots before paid ones (then oldest first): the bonus is spent before
  money the driver could still get back, so a refund returns as much as possible.
"""

from django.conf import settings
from django.db import models
from django.db.models import Case, F, IntegerField, Q, Value, When
from django.utils.translation import gettext_lazy


class EnergyPackage(models.Model):
    """A fixed bundle sold on the buy page; the price includes VAT."""

    name = models.CharField(max_length=100, verbose_name=gettext_lazy("name"))
    energy_wh = models.PositiveIntegerField(verbose_name=gettext_lazy("energy"))
    price_minor = models.PositiveIntegerField(verbose_name=gettext_lazy("price"))
    currency = models.CharField(max_length=3, default="eur", verbose_name=gettext_lazy("currency"))
    active = models.BooleanField(default=True, verbose_name=gettext_lazy("active"))
    order = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("order"))

    class Meta:
        verbose_name = gettext_lazy("energy package")
        verbose_name_plural = gettext_lazy("energy packages")
        ordering = ["order", "energy_wh"]
        constraints = [
            models.CheckConstraint(condition=Q(energy_wh__gt=0), name="package_energy_positive"),
            models.CheckConstraint(condition=Q(price_minor__gt=0), name="package_price_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet", verbose_name=gettext_lazy("driver")
    )
    balance_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("balance"))
    held_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("reserved energy"))
    blocked = models.BooleanField(default=False, verbose_name=gettext_lazy("blocked"))
    blocked_reason = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("reason for the block"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    class Meta:
        verbose_name = gettext_lazy("wallet")
        verbose_name_plural = gettext_lazy("wallets")
        constraints = [
            # Negative only through a dispute claw-back, which always blocks the wallet.
            models.CheckConstraint(condition=Q(balance_wh__gte=0) | Q(blocked=True), name="wallet_balance_nonneg"),
            models.CheckConstraint(condition=Q(held_wh__gte=0), name="wallet_held_nonneg"),
        ]

    def __str__(self) -> str:
        return f"wallet of {self.user} ({self.balance_wh} Wh)"


class CreditLotQuerySet(models.QuerySet):
    def consumption_order(self):
        """The order charging draws lots in: bonus lots first, then oldest first.

        Spending the non-refundable bonus before paid credit keeps the refundable money as high
        as it can be; the services and the driver's cost estimate both use this one order."""
        rank = Case(When(kind=CreditLot.Kind.BONUS, then=Value(0)), default=Value(1), output_field=IntegerField())
        return self.alias(consumption_rank=rank).order_by("consumption_rank", "created_at", "id")

    def refundable(self):
        """Lots a refund may take money back from: paid and not disputed (bonus lots have no payment)."""
        return self.filter(kind=CreditLot.Kind.PURCHASE, disputed_wh=0)


class CreditLot(models.Model):
    """The energy of one paid purchase (and its money), or of one bonus granted without payment.

    Consumption draws from lots in `CreditLotQuerySet.consumption_order`; refunds only from paid lots."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", gettext_lazy("Paid purchase")
        BONUS = "bonus", gettext_lazy("Bonus (no payment, not refundable)")

    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="lots", verbose_name=gettext_lazy("wallet")
    )
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.PURCHASE, verbose_name=gettext_lazy("kind")
    )
    # The payment behind a paid lot; empty for a bonus lot (its grant points at the lot).
    purchase = models.OneToOneField(
        "payments.Purchase",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lot",
        verbose_name=gettext_lazy("purchase"),
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    amount_minor = models.BigIntegerField(verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, verbose_name=gettext_lazy("currency"))
    remaining_wh = models.BigIntegerField(verbose_name=gettext_lazy("remaining energy"))
    consumed_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("consumed energy"))
    refunded_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("refunded energy"))
    refunded_minor = models.BigIntegerField(default=0, verbose_name=gettext_lazy("refunded amount"))
    # Energy clawed back from the balance by an open dispute (energy − refunded at the time) and
    # the part of it that was taken out of `remaining_wh`; the difference is claw-back debt.
    disputed_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("disputed energy"))
    dispute_removed_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("energy removed by the dispute"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))

    objects = CreditLotQuerySet.as_manager()

    class Meta:
        verbose_name = gettext_lazy("credit lot")
        verbose_name_plural = gettext_lazy("credit lots")
        ordering = ["created_at", "id"]
        constraints = [
            # A paid lot names its payment; a bonus lot has none, carries no money and so can
            # never be refunded or disputed.
            models.CheckConstraint(
                condition=Q(kind="purchase", purchase__isnull=False)
                | Q(
                    kind="bonus",
                    purchase__isnull=True,
                    amount_minor=0,
                    refunded_wh=0,
                    refunded_minor=0,
                    disputed_wh=0,
                    dispute_removed_wh=0,
                ),
                name="lot_kind_backing",
            ),
            models.CheckConstraint(condition=Q(energy_wh__gt=0), name="lot_energy_positive"),
            models.CheckConstraint(condition=Q(amount_minor__gte=0), name="lot_amount_nonneg"),
            models.CheckConstraint(
                condition=Q(remaining_wh__gte=0)
                & Q(consumed_wh__gte=0)
                & Q(refunded_wh__gte=0)
                & Q(refunded_minor__gte=0)
                & Q(disputed_wh__gte=0)
                & Q(dispute_removed_wh__gte=0),
                name="lot_parts_nonneg",
            ),
            models.CheckConstraint(
                condition=Q(
                    energy_wh=F("remaining_wh") + F("consumed_wh") + F("refunded_wh") + F("dispute_removed_wh")
                ),
                name="lot_energy_balanced",
            ),
            models.CheckConstraint(condition=Q(refunded_minor__lte=F("amount_minor")), name="lot_refund_le_amount"),
            models.CheckConstraint(condition=Q(dispute_removed_wh__lte=F("disputed_wh")), name="lot_dispute_parts"),
        ]

    def __str__(self) -> str:
        bonus = " bonus" if self.kind == self.Kind.BONUS else ""
        return f"lot {self.pk}{bonus}: {self.remaining_wh}/{self.energy_wh} Wh"


class Hold(models.Model):
    """Energy reserved for one charging session, settled (consumed + released) exactly once."""

    class Status(models.TextChoices):
        ACTIVE = "active", gettext_lazy("Active")
        SETTLED = "settled", gettext_lazy("Settled")
        RELEASED = "released", gettext_lazy("Released")

    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="holds", verbose_name=gettext_lazy("wallet")
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    consumed_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("consumed energy"))
    released_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("released energy"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.ACTIVE, verbose_name=gettext_lazy("status")
    )
    idempotency_key = models.CharField(max_length=200, unique=True, verbose_name=gettext_lazy("idempotency key"))
    # The key of the settle/release call that closed the hold: a repeat with it is a no-op.
    closed_by_key = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("closed by key"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("closed at"))

    class Meta:
        verbose_name = gettext_lazy("hold")
        verbose_name_plural = gettext_lazy("holds")
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(energy_wh__gt=0), name="hold_energy_positive"),
            models.CheckConstraint(condition=Q(consumed_wh__gte=0) & Q(released_wh__gte=0), name="hold_parts_nonneg"),
            models.CheckConstraint(
                condition=Q(status="active", consumed_wh=0, released_wh=0)
                | (~Q(status="active") & Q(energy_wh=F("consumed_wh") + F("released_wh"))),
                name="hold_closed_balanced",
            ),
        ]

    def __str__(self) -> str:
        return f"hold {self.idempotency_key} ({self.status})"

    @property
    def open_wh(self) -> int:
        return self.energy_wh - self.consumed_wh - self.released_wh


class LedgerQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise LedgerImmutable("ledger entries are append-only")

    def delete(self):
        raise LedgerImmutable("ledger entries are append-only")


class LedgerImmutable(Exception):
    pass


class LedgerEntry(models.Model):
    """One append-only line: the change of a wallet's balance and held energy, and why."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", gettext_lazy("Purchase")
        BONUS = "bonus", gettext_lazy("Bonus")  # credit granted without a payment (a bonus lot): never refunded
        HOLD = "hold", gettext_lazy("Hold")
        RELEASE = "release", gettext_lazy("Release")
        CONSUME = "consume", gettext_lazy("Consume")
        REFUND = "refund", gettext_lazy("Refund")
        # Stripe reported a refund failed: credit back
        REFUND_REVERSAL = "refund_reversal", gettext_lazy("Refund Reversal")
        DISPUTE = "dispute", gettext_lazy("Dispute")
        DISPUTE_WON = "dispute_won", gettext_lazy("Dispute Won")
        ADJUSTMENT = "adjustment", gettext_lazy("Adjustment")

    wallet = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="entries", verbose_name=gettext_lazy("wallet")
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, verbose_name=gettext_lazy("kind"))
    # Change of the available balance and of the held energy; a hold moves energy from one to
    # the other (−E, +E), a consume only reduces held energy (0, −C).
    delta_wh = models.BigIntegerField(verbose_name=gettext_lazy("balance change"))
    held_delta_wh = models.BigIntegerField(default=0, verbose_name=gettext_lazy("reserved energy change"))
    idempotency_key = models.CharField(max_length=200, unique=True, verbose_name=gettext_lazy("idempotency key"))
    purchase = models.ForeignKey(
        "payments.Purchase", null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("purchase")
    )
    lot = models.ForeignKey(
        CreditLot, null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("credit lot")
    )
    hold = models.ForeignKey(Hold, null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("hold"))
    refund_part = models.ForeignKey(
        "payments.RefundPart", null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("refund part")
    )
    dispute = models.ForeignKey(
        "payments.Dispute", null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("dispute")
    )
    note = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("note"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))

    objects = LedgerQuerySet.as_manager()

    class Meta:
        verbose_name = gettext_lazy("ledger entry")
        ordering = ["created_at", "id"]
        verbose_name_plural = gettext_lazy("ledger entries")
        constraints = [
            # A bonus line credits exactly the lot it created (ledger_check: one line per bonus lot).
            models.CheckConstraint(
                condition=~Q(kind="bonus") | Q(lot__isnull=False, delta_wh__gt=0, held_delta_wh=0),
                name="ledger_bonus_names_lot",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.delta_wh:+d} Wh ({self.idempotency_key})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise LedgerImmutable("ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerImmutable("ledger entries are append-only")


class LotConsumption(models.Model):
    """How much of a hold's consumed energy came from which lot (FIFO), for traceability."""

    hold = models.ForeignKey(
        Hold, on_delete=models.PROTECT, related_name="consumptions", verbose_name=gettext_lazy("hold")
    )
    lot = models.ForeignKey(
        CreditLot, on_delete=models.PROTECT, related_name="consumptions", verbose_name=gettext_lazy("credit lot")
    )
    ledger_entry = models.ForeignKey(
        LedgerEntry, on_delete=models.PROTECT, related_name="consumptions", verbose_name=gettext_lazy("ledger entry")
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    # Drawn from energy a dispute had taken out of the lot while it was held (see services).
    from_disputed = models.BooleanField(default=False, verbose_name=gettext_lazy("from disputed energy"))

    class Meta:
        verbose_name = gettext_lazy("lot consumption")
        verbose_name_plural = gettext_lazy("lot consumptions")
        constraints = [
            models.CheckConstraint(condition=Q(energy_wh__gt=0), name="consumption_energy_positive"),
            models.UniqueConstraint(fields=["hold", "lot", "from_disputed"], name="consumption_unique_per_lot"),
        ]

    def __str__(self) -> str:
        return f"{self.energy_wh} Wh of lot {self.lot_id} for hold {self.hold_id}"


class Profile(models.Model):
    """What a person chose for their account beyond the login: the language of their pages and
    emails (empty: the browser's, then settings.LANGUAGE_CODE). Written by prepaid.language."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="profile"
    )
    language = models.CharField(max_length=8, blank=True, choices=settings.LANGUAGES)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.user_id}"


class AccountTimeZone(models.Model):
    """The time zone a person reads times in (pages, emails, the "ready by" deadline): chosen in
    their settings, or first taken from their browser (prepaid.timezones)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="account_time_zone"
    )
    time_zone = models.CharField(max_length=64)
    chosen = models.BooleanField(default=False, help_text="Chosen by the person (not taken from the browser).")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.time_zone} for {self.user_id}"
