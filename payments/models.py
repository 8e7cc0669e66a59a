"""Stripe-facing records: purchases and their transitions, the webhook inbox, refunds, disputes.

Money is integer minor units with a currency; energy integer Wh. Writes go through
payments/services.py; statuses move forward only, by compare-and-set.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy


class StripeCustomer(models.Model):
    """The driver's Stripe customer: SetupIntents save the card on it for later top-ups."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="stripe_customer",
        verbose_name=gettext_lazy("driver"),
    )
    customer_id = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("Stripe customer ID"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("Stripe customer")
        verbose_name_plural = gettext_lazy("Stripe customers")

    def __str__(self) -> str:
        return self.customer_id


class Purchase(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", gettext_lazy("Created")
        AWAITING_PAYMENT = "awaiting_payment", gettext_lazy("Awaiting Payment")
        PAID = "paid", gettext_lazy("Paid")
        FAILED = "failed", gettext_lazy("Failed")
        CANCELED = "canceled", gettext_lazy("Canceled")

    # Allowed transitions; anything else (in particular backwards) is refused.
    TRANSITIONS = {
        Status.CREATED: {Status.AWAITING_PAYMENT, Status.CANCELED, Status.PAID, Status.FAILED},
        Status.AWAITING_PAYMENT: {Status.PAID, Status.FAILED, Status.CANCELED},
        Status.PAID: set(),
        Status.FAILED: set(),
        Status.CANCELED: set(),
    }

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name=gettext_lazy("public ID")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="purchases",
        verbose_name=gettext_lazy("driver"),
    )
    package = models.ForeignKey(
        "prepaid.EnergyPackage", null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("package")
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    amount_minor = models.BigIntegerField(verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, verbose_name=gettext_lazy("currency"))
    vat_minor = models.BigIntegerField(verbose_name=gettext_lazy("VAT"))
    vat_rate = models.DecimalField(max_digits=6, decimal_places=4, verbose_name=gettext_lazy("VAT rate"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.CREATED, verbose_name=gettext_lazy("status")
    )
    checkout_mode = models.CharField(max_length=10, default="elements", verbose_name=gettext_lazy("checkout mode"))
    # Each card attempt gets its own PaymentIntent (PaymentAttempt), created only once every earlier
    # one is canceled at Stripe, so at most one of them can ever succeed (services.purchase_pay_with_card).
    attempts = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("attempts"))
    # While set and ahead, one request owns the payment step (a double click waits for it); a worker
    # killed mid-payment leaves it to expire (STRIPE_PAYMENT_CLAIM_S).
    payment_claimed_until = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("payment claimed until")
    )
    stripe_payment_intent_id = models.CharField(
        max_length=100, null=True, blank=True, unique=True, verbose_name=gettext_lazy("Stripe PaymentIntent ID")
    )
    # The SetupIntent the pay page hands the browser; reused until it is used (no new object per visit).
    stripe_setup_intent_id = models.CharField(
        max_length=100, blank=True, verbose_name=gettext_lazy("Stripe SetupIntent ID")
    )
    stripe_checkout_session_id = models.CharField(
        max_length=100, null=True, blank=True, unique=True, verbose_name=gettext_lazy("Stripe Checkout session ID")
    )
    stripe_charge_id = models.CharField(max_length=100, blank=True, verbose_name=gettext_lazy("Stripe charge ID"))
    last_error = models.CharField(max_length=300, blank=True, verbose_name=gettext_lazy("last error"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))
    paid_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("paid at"))
    # "Buy and charge": the car to start charging on once this purchase is paid (the hook at the
    # end of services.purchase_fulfil), the session it started, or why it could not.
    charge_vehicle = models.ForeignKey(
        "charging.Vehicle",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=gettext_lazy("vehicle to charge"),
    )
    charge_session = models.OneToOneField(
        "charging.ChargingSession",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="purchase",
        verbose_name=gettext_lazy("charging session started"),
    )
    charge_error = models.CharField(max_length=255, blank=True, verbose_name=gettext_lazy("charge error"))
    # "Buy and charge" in the cheapest hours: the session gets this deadline (empty: charge now).
    charge_deadline = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("ready by"))

    class Meta:
        verbose_name = gettext_lazy("purchase")
        verbose_name_plural = gettext_lazy("purchases")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(energy_wh__gt=0), name="purchase_energy_positive"),
            models.CheckConstraint(condition=Q(amount_minor__gt=0), name="purchase_amount_positive"),
            models.CheckConstraint(
                condition=Q(vat_minor__gte=0) & Q(vat_minor__lte=F("amount_minor")), name="purchase_vat_range"
            ),
        ]

    def __str__(self) -> str:
        return f"purchase {self.public_id} ({self.status})"

    @property
    def net_minor(self) -> int:
        return self.amount_minor - self.vat_minor


class PaymentAttempt(models.Model):
    """One card attempt of a purchase and its PaymentIntent.

    A purchase's attempts are numbered; attempt n+1 creates its PaymentIntent only after every
    earlier PaymentIntent is canceled at Stripe (or found succeeded, which then pays the purchase),
    so at most one PaymentIntent per purchase can ever be charged.
    """

    class Status(models.TextChoices):
        # claimed; its PaymentIntent not created yet (or the answer was lost)
        STARTED = "started", gettext_lazy("Started")
        CREATED = "created", gettext_lazy("Created")  # created unconfirmed: cannot charge until we confirm it
        REQUIRES_ACTION = "requires_action", gettext_lazy("Requires Action")  # 3-D Secure in the driver's browser
        PROCESSING = "processing", gettext_lazy("Processing")
        # declined or authentication failed (confirmable again until canceled)
        FAILED = "failed", gettext_lazy("Failed")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        CANCELED = "canceled", gettext_lazy("Canceled")  # canceled at Stripe: can never charge
        SUPERSEDED = "superseded", gettext_lazy("Superseded")  # a later attempt took over before this one was confirmed

    purchase = models.ForeignKey(
        Purchase, on_delete=models.PROTECT, related_name="payment_attempts", verbose_name=gettext_lazy("purchase")
    )
    number = models.PositiveIntegerField(verbose_name=gettext_lazy("attempt"))
    payment_intent_id = models.CharField(
        max_length=100, null=True, blank=True, unique=True, verbose_name=gettext_lazy("PaymentIntent ID")
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.STARTED, verbose_name=gettext_lazy("status")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    # Attempts whose PaymentIntent may still be charged (until canceled at Stripe).
    LIVE = (Status.CREATED, Status.REQUIRES_ACTION, Status.PROCESSING, Status.FAILED, Status.SUPERSEDED)

    class Meta:
        verbose_name = gettext_lazy("payment attempt")
        verbose_name_plural = gettext_lazy("payment attempts")
        ordering = ["purchase", "number"]
        constraints = [models.UniqueConstraint(fields=["purchase", "number"], name="payment_attempt_number_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of purchase {self.purchase_id}: {self.payment_intent_id} ({self.status})"


class PurchaseTransition(models.Model):
    """The log of every status flip of a purchase (compare-and-set, see services)."""

    purchase = models.ForeignKey(
        Purchase, on_delete=models.CASCADE, related_name="transitions", verbose_name=gettext_lazy("purchase")
    )
    from_status = models.CharField(max_length=20, verbose_name=gettext_lazy("from status"))
    to_status = models.CharField(max_length=20, verbose_name=gettext_lazy("to status"))
    reason = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("purchase transition")
        verbose_name_plural = gettext_lazy("purchase transitions")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class StripeEvent(models.Model):
    """The webhook inbox: every verified event is stored before anything else happens."""

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        PROCESSED = "processed", gettext_lazy("Processed")
        FAILED = "failed", gettext_lazy("Failed")
        IGNORED = "ignored", gettext_lazy("Ignored")

    event_id = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("event ID"))
    type = models.CharField(max_length=100, verbose_name=gettext_lazy("event type"))
    payload = models.JSONField(verbose_name=gettext_lazy("payload"))
    livemode = models.BooleanField(default=False, verbose_name=gettext_lazy("live mode"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=gettext_lazy("status")
    )
    attempts = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("attempts"))
    last_error = models.TextField(blank=True, verbose_name=gettext_lazy("last error"))
    received_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("received at"))
    processed_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("processed at"))
    # When processing was last enqueued; the sweeper re-enqueues events stuck past it.
    enqueued_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("enqueued at"))

    class Meta:
        verbose_name = gettext_lazy("Stripe webhook event")
        verbose_name_plural = gettext_lazy("Stripe webhook events")
        ordering = ["received_at", "id"]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class Refund(models.Model):
    """A refund of unused credit, split into one part per original payment."""

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        PARTIALLY_FAILED = "partially_failed", gettext_lazy("Partially Failed")
        FAILED = "failed", gettext_lazy("Failed")

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name=gettext_lazy("public ID")
    )
    wallet = models.ForeignKey(
        "prepaid.Wallet", on_delete=models.PROTECT, related_name="refunds", verbose_name=gettext_lazy("wallet")
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=gettext_lazy("requested by"),
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    amount_minor = models.BigIntegerField(verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, verbose_name=gettext_lazy("currency"))
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, verbose_name=gettext_lazy("status")
    )
    idempotency_key = models.CharField(max_length=200, unique=True, verbose_name=gettext_lazy("idempotency key"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("refund")
        verbose_name_plural = gettext_lazy("refunds")
        ordering = ["-created_at", "-id"]
        # Energy 0: a refund made at Stripe for energy already used (payments.ledger.wallet_external_refund).
        constraints = [models.CheckConstraint(condition=Q(energy_wh__gte=0), name="refund_energy_nonneg")]

    def __str__(self) -> str:
        return f"refund {self.public_id} ({self.status})"


class RefundPart(models.Model):
    """The share of a refund that goes back to one original payment (never more than it)."""

    class Status(models.TextChoices):
        # debited from the wallet, not yet (or not finally) answered by Stripe
        PENDING = "pending", gettext_lazy("Pending")
        SUCCEEDED = "succeeded", gettext_lazy("Succeeded")
        FAILED = "failed", gettext_lazy("Failed")  # the energy was credited back to the wallet

    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, related_name="parts", verbose_name=gettext_lazy("refund")
    )
    number = models.PositiveIntegerField(verbose_name=gettext_lazy("part"))
    purchase = models.ForeignKey(
        Purchase, on_delete=models.PROTECT, related_name="refund_parts", verbose_name=gettext_lazy("purchase")
    )
    lot = models.ForeignKey(
        "prepaid.CreditLot",
        on_delete=models.PROTECT,
        related_name="refund_parts",
        verbose_name=gettext_lazy("credit lot"),
    )
    energy_wh = models.BigIntegerField(verbose_name=gettext_lazy("energy"))
    amount_minor = models.BigIntegerField(verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, verbose_name=gettext_lazy("currency"))
    idempotency_key = models.CharField(max_length=200, unique=True, verbose_name=gettext_lazy("idempotency key"))
    stripe_refund_id = models.CharField(
        max_length=100, null=True, blank=True, unique=True, verbose_name=gettext_lazy("Stripe refund ID")
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=gettext_lazy("status")
    )
    failure_reason = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("failure reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    class Meta:
        verbose_name = gettext_lazy("refund part")
        verbose_name_plural = gettext_lazy("refund parts")
        ordering = ["refund", "number"]
        constraints = [
            models.UniqueConstraint(fields=["refund", "number"], name="refund_part_number_unique"),
            models.CheckConstraint(
                condition=Q(energy_wh__gte=0) & Q(amount_minor__gte=0) & (Q(energy_wh__gt=0) | Q(amount_minor__gt=0)),
                name="refund_part_nonneg",
            ),
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class Dispute(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", gettext_lazy("Open")
        WON = "won", gettext_lazy("Won")
        LOST = "lost", gettext_lazy("Lost")

    stripe_dispute_id = models.CharField(max_length=100, unique=True, verbose_name=gettext_lazy("Stripe dispute ID"))
    # Empty while the disputed payment is not (yet) one of our credited purchases: stored anyway,
    # linked and clawed back the moment that payment is credited (services.purchase_fulfil).
    purchase = models.ForeignKey(
        Purchase,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disputes",
        verbose_name=gettext_lazy("purchase"),
    )
    payment_intent_id = models.CharField(
        max_length=100, blank=True, db_index=True, verbose_name=gettext_lazy("PaymentIntent ID")
    )
    charge_id = models.CharField(max_length=100, blank=True, db_index=True, verbose_name=gettext_lazy("charge ID"))
    amount_minor = models.BigIntegerField(verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, verbose_name=gettext_lazy("currency"))
    reason = models.CharField(max_length=100, blank=True, verbose_name=gettext_lazy("reason"))
    stripe_status = models.CharField(max_length=50, blank=True, verbose_name=gettext_lazy("Stripe status"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, verbose_name=gettext_lazy("status")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("closed at"))

    class Meta:
        verbose_name = gettext_lazy("dispute")
        verbose_name_plural = gettext_lazy("disputes")

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} ({self.status})"


class PaymentDiscrepancy(models.Model):
    """Money at Stripe that our books do not explain (or the other way round), found by the
    webhook handlers or by `payments_reconcile`, and what was done about it.

    One row per (kind, Stripe object): a finding reported again by a later run updates its row.
    """

    class Kind(models.TextChoices):
        SURPLUS_CHARGE = "surplus_charge", gettext_lazy("second charge for one purchase (refunded)")
        UNMATCHED_CHARGE = "unmatched_charge", gettext_lazy("charge without a purchase")
        AMOUNT_MISMATCH = "amount_mismatch", gettext_lazy("amount differs from our books")
        MISSING_AT_STRIPE = "missing_at_stripe", gettext_lazy("in our books, not at Stripe")
        EXTERNAL_REFUND = "external_refund", gettext_lazy("refund not made by us")
        UNMATCHED_REFUND = "unmatched_refund", gettext_lazy("refund of a charge without a purchase")
        UNMATCHED_DISPUTE = "unmatched_dispute", gettext_lazy("dispute of a charge without a purchase")

    class Status(models.TextChoices):
        OPEN = "open", gettext_lazy("Open")  # needs the operator
        # fixed automatically (e.g. the surplus refunded); shown until acknowledged
        FIXED = "fixed", gettext_lazy("Fixed")
        RESOLVED = "resolved", gettext_lazy("Resolved")  # acknowledged by an operator

    kind = models.CharField(max_length=30, choices=Kind.choices, verbose_name=gettext_lazy("kind"))
    stripe_object_id = models.CharField(max_length=100, verbose_name=gettext_lazy("Stripe object ID"))
    purchase = models.ForeignKey(
        Purchase,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="discrepancies",
        verbose_name=gettext_lazy("purchase"),
    )
    amount_minor = models.BigIntegerField(default=0, verbose_name=gettext_lazy("amount"))
    currency = models.CharField(max_length=3, blank=True, verbose_name=gettext_lazy("currency"))
    detail = models.CharField(max_length=500, verbose_name=gettext_lazy("detail"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.OPEN, verbose_name=gettext_lazy("status")
    )
    # A surplus charge's refund: our idempotency key, then Stripe's id once it answered.
    refund_key = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("refund key"))
    stripe_refund_id = models.CharField(max_length=100, blank=True, verbose_name=gettext_lazy("Stripe refund ID"))
    action = models.CharField(max_length=300, blank=True, verbose_name=gettext_lazy("action taken"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))
    resolved_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("resolved at"))
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=gettext_lazy("resolved by"),
    )

    class Meta:
        verbose_name = gettext_lazy("payment discrepancy")
        ordering = ["-created_at", "-id"]
        verbose_name_plural = gettext_lazy("payment discrepancies")
        constraints = [
            models.UniqueConstraint(fields=["kind", "stripe_object_id"], name="discrepancy_kind_object_unique")
        ]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.stripe_object_id} ({self.status})"


class InvoiceSequence(models.Model):
    """The last invoice number given, one row per series. Taken under a row lock in the
    transaction that issues the invoice: a rolled-back issue gives its number back, so the
    numbers have no gap (EU VAT directive, art. 226(2): a sequential number)."""

    series = models.CharField(max_length=16, primary_key=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class Invoice(models.Model):
    """The invoice of a paid purchase: the energy is a single-purpose voucher, so its VAT is
    charged when it is paid (EU VAT directive, art. 30b) and the charging sessions that use it
    are not invoiced again. The seller's and the buyer's details are copied at issue: an invoice
    never changes afterwards."""

    number = models.CharField(max_length=32, unique=True)
    series = models.CharField(max_length=16)
    sequence = models.PositiveBigIntegerField()
    purchase = models.OneToOneField(Purchase, on_delete=models.PROTECT, related_name="invoice")
    issued_at = models.DateTimeField()
    seller_name = models.CharField(max_length=200)
    seller_address = models.CharField(max_length=500)
    seller_vat_id = models.CharField(max_length=32)
    buyer_name = models.CharField(max_length=200)
    buyer_email = models.CharField(max_length=254, blank=True)
    description = models.CharField(max_length=200)
    energy_wh = models.BigIntegerField()
    net_minor = models.BigIntegerField()
    vat_minor = models.BigIntegerField()
    gross_minor = models.BigIntegerField()
    vat_rate = models.DecimalField(max_digits=6, decimal_places=4)
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["-sequence"]
        constraints = [models.UniqueConstraint(fields=["series", "sequence"], name="invoice_series_sequence_unique")]

    def __str__(self) -> str:
        return self.number
