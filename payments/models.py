"""Stripe-facing records: purchases and their transitions, the webhook inbox, refunds, disputes.

Money is integer minor units with a currency; energy integer Wh. Writes go through
payments/services.py; statuses move forward only, by compare-and-set.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class StripeCustomer(models.Model):
    """The driver's Stripe customer: SetupIntents save the card on it for later top-ups."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="stripe_customer")
    customer_id = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.customer_id


class Purchase(models.Model):
    class Status(models.TextChoices):
        CREATED = "created"
        AWAITING_PAYMENT = "awaiting_payment"
        PAID = "paid"
        FAILED = "failed"
        CANCELED = "canceled"

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
    # Each card attempt gets its own PaymentIntent (a declined one is not reused, see stripe_api).
    attempts = models.PositiveIntegerField(default=0)
    stripe_payment_intent_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
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
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        PARTIALLY_FAILED = "partially_failed"
        FAILED = "failed"

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
        constraints = [models.CheckConstraint(condition=Q(energy_wh__gt=0), name="refund_energy_positive")]

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
            models.CheckConstraint(condition=Q(energy_wh__gt=0) & Q(amount_minor__gte=0), name="refund_part_positive"),
        ]

    def __str__(self) -> str:
        return self.idempotency_key


class Dispute(models.Model):
    class Status(models.TextChoices):
        OPEN = "open"
        WON = "won"
        LOST = "lost"

    stripe_dispute_id = models.CharField(max_length=100, unique=True)
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="disputes")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=100, blank=True)
    stripe_status = models.CharField(max_length=50, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} ({self.status})"
