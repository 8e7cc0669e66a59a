"""A driver's connection to the vehicle API (its user id there) and the vehicles it reaches."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy


class VehicleConnection(models.Model):
    """One consent given through Connect: the vehicle API user who gave it and the vehicles it
    shared (at the API, each vehicle is a (user, vehicle) connection). No driver token exists in
    v3: the application's token and the user id reach the vehicles (sessions.vehicles.services)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        NEEDS_CONSENT = "needs_consent", "Needs consent"
        DISCONNECTED = "disconnected", "Disconnected"

    # Allowed status moves. needs_consent → active does not exist: a reconnect creates a new
    # connection that supersedes this one.
    TRANSITIONS = {
        Status.ACTIVE: {Status.NEEDS_CONSENT, Status.DISCONNECTED},
        Status.NEEDS_CONSENT: {Status.DISCONNECTED},
        Status.DISCONNECTED: set(),
    }

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vehicle_connections")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=255, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # The vehicle API's user id (Connect's `user_id`): every vehicle call names it (`sc-user-id`).
    external_user_id = models.CharField(max_length=64, blank=True)
    # A VEHICLE_ERROR webhook about the account or its permissions (or about a car with no open
    # session), until its RESOLVED: "TYPE:CODE" and the vehicle API's words.
    api_error = models.CharField(max_length=64, blank=True)
    api_error_message = models.CharField(max_length=255, blank=True)
    api_error_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"Connection {self.pk} of {self.user_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class SubscriptionStatus(models.TextChoices):
    SUBSCRIBING = "subscribing", "Subscribing"
    SUBSCRIBED = "subscribed", "Subscribed"
    FAILED = "failed", "Failed (retried)"
    UNSUBSCRIBING = "unsubscribing", "Unsubscribing"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"


class Vehicle(models.Model):
    """A vehicle reachable through a connection, with its last known state (snapshot)."""

    SubscriptionStatus = SubscriptionStatus

    class ChargeState(models.TextChoices):
        CHARGING = "CHARGING", gettext_lazy("Charging")
        FULLY_CHARGED = "FULLY_CHARGED", gettext_lazy("Fully charged")
        NOT_CHARGING = "NOT_CHARGING", gettext_lazy("Not charging")

    connection = models.ForeignKey(VehicleConnection, on_delete=models.CASCADE, related_name="vehicles")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vehicles")
    external_id = models.CharField(max_length=64)  # the vehicle API's vehicle id
    is_active = models.BooleanField(default=True)  # False once disconnected or no longer shared

    make = models.CharField(max_length=64)
    model = models.CharField(max_length=128)
    year = models.PositiveSmallIntegerField(null=True, blank=True)
    vin = models.CharField(max_length=17, blank=True)
    capacity_wh = models.PositiveIntegerField(null=True, blank=True)
    # Capabilities: None = not known yet; learned from the API's answers (a COMPATIBILITY error =
    # not capable). `signal_capabilities`: signal code → capable | not_capable | not_permitted, as
    # the car's signals answered (facts only; sessions.vehicles.services.vehicle_learn_capabilities).
    signal_capabilities = models.JSONField(default=dict, blank=True)
    charge_limit_readable = models.BooleanField(null=True, blank=True)
    charge_limit_settable = models.BooleanField(null=True, blank=True)
    charge_limit_bp = models.PositiveSmallIntegerField(null=True, blank=True)
    # Battery health: never charge past the maximum; below the minimum, charge first whatever the price.
    max_soc_bp = models.PositiveSmallIntegerField(default=8000)
    min_soc_bp = models.PositiveSmallIntegerField(default=0)

    # The car's subscription to our webhook (VEHICLE_WEBHOOK_ID) at the management API:
    # sessions/vehicles/subscriptions.py. Empty: never asked (no webhook configured).
    subscription_status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, blank=True)
    subscription_error = models.CharField(max_length=255, blank=True)
    subscription_attempts = models.PositiveSmallIntegerField(default=0)
    subscription_retry_at = models.DateTimeField(null=True, blank=True)
    subscription_changed_at = models.DateTimeField(null=True, blank=True)

    # Last known snapshot. `data_age` is when the VEHICLE recorded the data (the signals'
    # oemUpdatedAt), not when we asked; `fetched_at` when the API retrieved it; `snapshot_at` our clock.
    soc_bp = models.PositiveSmallIntegerField(null=True, blank=True)
    is_plugged_in = models.BooleanField(null=True, blank=True)
    charge_state = models.CharField(max_length=16, choices=ChargeState.choices, blank=True)
    data_age = models.DateTimeField(null=True, blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)
    snapshot_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["make", "model", "pk"]
        indexes = [
            models.Index(fields=["subscription_status", "subscription_retry_at"], name="vehicle_subscription_due_idx")
        ]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_id"], name="vehicle_external_id_per_connection"),
            models.CheckConstraint(
                condition=Q(soc_bp__isnull=True) | Q(soc_bp__gte=0, soc_bp__lte=10000), name="vehicle_soc_bp_range"
            ),
            models.CheckConstraint(
                condition=Q(charge_limit_bp__isnull=True) | Q(charge_limit_bp__gte=0, charge_limit_bp__lte=10000),
                name="vehicle_charge_limit_bp_range",
            ),
            models.CheckConstraint(
                condition=Q(min_soc_bp__lte=F("max_soc_bp")) & Q(max_soc_bp__lte=10000) & Q(max_soc_bp__gte=1000),
                name="vehicle_soc_window",
            ),
        ]

    def __str__(self) -> str:
        name = f"{self.make} {self.model}".strip()
        return f"{name} {self.year}" if self.year else name

    @property
    def soc_percent(self) -> int | None:
        """Rounded whole percent for display (half up)."""
        return None if self.soc_bp is None else (self.soc_bp + 50) // 100
