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

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_customer")
    customer_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

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

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="purchases")
    package = models.ForeignKey("prepaid.EnergyPackage", null=True, blank=True, on_delete=models.PROTECT)
    energy_wh = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    vat_minor = models.BigIntegerField()
    vat_rate = models.DecimalField(max_digits=6, decimal_places=4)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    checkout_mode = models.CharField(max_length=10, default="elements")
    # Each card attempt gets its own PaymentIntent (PaymentAttempt), created only once every earlier
    # one is canceled at Stripe, so at most one of them can ever succeed (services.purchase_pay_with_card).
    attempts = models.PositiveIntegerField(default=0)
    # While set and ahead, one request owns the payment step (a double click waits for it); a worker
    # killed mid-payment leaves it to expire (STRIPE_PAYMENT_CLAIM_S).
    payment_claimed_until = models.DateTimeField(null=True, blank=True)
    stripe_payment_intent_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    # The SetupIntent the pay page hands the browser; reused until it is used (no new object per visit).
    stripe_setup_intent_id = models.CharField(max_length=100, blank=True)
    stripe_checkout_session_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    stripe_charge_id = models.CharField(max_length=100, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    # "Buy and charge": the car to start charging on once this purchase is paid (the hook at the
    # end of services.purchase_fulfil), the session it started, or why it could not.
    charge_vehicle = models.ForeignKey("charging.Vehicle", null=True, blank=True, on_delete=models.SET_NULL)
    charge_session = models.OneToOneField(
        "charging.ChargingSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="purchase"
    )
    charge_error = models.CharField(max_length=255, blank=True)
    # "Buy and charge" in the cheapest hours: the session gets this deadline (empty: charge now).
    charge_deadline = models.DateTimeField(null=True, blank=True)

    class Meta:
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
        STARTED = "started"  # claimed; its PaymentIntent not created yet (or the answer was lost)
        CREATED = "created"  # created unconfirmed: cannot charge until we confirm it
        REQUIRES_ACTION = "requires_action"  # 3-D Secure in the driver's browser
        PROCESSING = "processing"
        FAILED = "failed"  # declined or authentication failed (confirmable again until canceled)
        SUCCEEDED = "succeeded"
        CANCELED = "canceled"  # canceled at Stripe: can never charge
        SUPERSEDED = "superseded"  # a later attempt took over before this one was confirmed

    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="payment_attempts")
    number = models.PositiveIntegerField()
    payment_intent_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STARTED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Attempts whose PaymentIntent may still be charged (until canceled at Stripe).
    LIVE = (Status.CREATED, Status.REQUIRES_ACTION, Status.PROCESSING, Status.FAILED, Status.SUPERSEDED)

    class Meta:
        ordering = ["purchase", "number"]
        constraints = [models.UniqueConstraint(fields=["purchase", "number"], name="payment_attempt_number_unique")]

    def __str__(self) -> str:
        return f"attempt {self.number} of purchase {self.purchase_id}: {self.payment_intent_id} ({self.status})"


class PurchaseTransition(models.Model):
    """The log of every status flip of a purchase (compare-and-set, see services)."""

    purchase = models.ForeignKey(Purchase, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class StripeEvent(models.Model):
    """The webhook inbox: every verified event is stored before anything else happens."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSED = "processed"
        FAILED = "failed"
        IGNORED = "ignored"

    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    livemode = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When processing was last enqueued; the sweeper re-enqueues events stuck past it.
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
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

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    wallet = models.ForeignKey("prepaid.Wallet", on_delete=models.PROTECT, related_name="refunds")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    energy_wh = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Energy 0: a refund made at Stripe for energy already used (payments.ledger.wallet_external_refund).
        constraints = [models.CheckConstraint(condition=Q(energy_wh__gte=0), name="refund_energy_nonneg")]

    def __str__(self) -> str:
        return f"refund {self.public_id} ({self.status})"


class RefundPart(models.Model):
    """The share of a refund that goes back to one original payment (never more than it)."""

    class Status(models.TextChoices):
        PENDING = "pending"  # debited from the wallet, not yet (or not finally) answered by Stripe
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # the energy was credited back to the wallet

    refund = models.ForeignKey(Refund, on_delete=models.PROTECT, related_name="parts")
    number = models.PositiveIntegerField()
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="refund_parts")
    lot = models.ForeignKey("prepaid.CreditLot", on_delete=models.PROTECT, related_name="refund_parts")
    energy_wh = models.BigIntegerField()
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=200, unique=True)
    stripe_refund_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
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
        OPEN = "open"
        WON = "won"
        LOST = "lost"

    stripe_dispute_id = models.CharField(max_length=100, unique=True)
    # Empty while the disputed payment is not (yet) one of our credited purchases: stored anyway,
    # linked and clawed back the moment that payment is credited (services.purchase_fulfil).
    purchase = models.ForeignKey(Purchase, null=True, blank=True, on_delete=models.PROTECT, related_name="disputes")
    payment_intent_id = models.CharField(max_length=100, blank=True, db_index=True)
    charge_id = models.CharField(max_length=100, blank=True, db_index=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=100, blank=True)
    stripe_status = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} ({self.status})"


class PaymentDiscrepancy(models.Model):
    """Money at Stripe that our books do not explain (or the other way round), found by the
    webhook handlers or by `payments_reconcile`, and what was done about it.

    One row per (kind, Stripe object): a finding reported again by a later run updates its row.
    """

    class Kind(models.TextChoices):
        SURPLUS_CHARGE = "surplus_charge", "second charge for one purchase (refunded)"
        UNMATCHED_CHARGE = "unmatched_charge", "charge without a purchase"
        AMOUNT_MISMATCH = "amount_mismatch", "amount differs from our books"
        MISSING_AT_STRIPE = "missing_at_stripe", "in our books, not at Stripe"
        EXTERNAL_REFUND = "external_refund", "refund not made by us"
        UNMATCHED_REFUND = "unmatched_refund", "refund of a charge without a purchase"
        UNMATCHED_DISPUTE = "unmatched_dispute", "dispute of a charge without a purchase"

    class Status(models.TextChoices):
        OPEN = "open"  # needs the operator
        FIXED = "fixed"  # fixed automatically (e.g. the surplus refunded); shown until acknowledged
        RESOLVED = "resolved"  # acknowledged by an operator

    kind = models.CharField(max_length=30, choices=Kind.choices)
    stripe_object_id = models.CharField(max_length=100)
    purchase = models.ForeignKey(
        Purchase, null=True, blank=True, on_delete=models.PROTECT, related_name="discrepancies"
    )
    amount_minor = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    detail = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # A surplus charge's refund: our idempotency key, then Stripe's id once it answered.
    refund_key = models.CharField(max_length=200, blank=True)
    stripe_refund_id = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "payment discrepancies"
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
