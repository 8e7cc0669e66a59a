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
        ACTIVE = "active", gettext_lazy("Active")
        NEEDS_CONSENT = "needs_consent", gettext_lazy("Needs consent")
        DISCONNECTED = "disconnected", gettext_lazy("Disconnected")

    # Allowed status moves. needs_consent → active does not exist: a reconnect creates a new
    # connection that supersedes this one.
    TRANSITIONS = {
        Status.ACTIVE: {Status.NEEDS_CONSENT, Status.DISCONNECTED},
        Status.NEEDS_CONSENT: {Status.DISCONNECTED},
        Status.DISCONNECTED: set(),
    }

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="vehicle_connections",
        verbose_name=gettext_lazy("driver"),
    )
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.ACTIVE, verbose_name=gettext_lazy("status")
    )
    status_reason = models.CharField(max_length=255, blank=True, verbose_name=gettext_lazy("status reason"))
    status_changed_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("status changed at"))
    # The vehicle API's user id (Connect's `user_id`): every vehicle call names it (`sc-user-id`).
    external_user_id = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("vehicle API user ID"))
    # A VEHICLE_ERROR webhook about the account or its permissions (or about a car with no open
    # session), until its RESOLVED: "TYPE:CODE" and the vehicle API's words.
    api_error = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("API error"))
    api_error_message = models.CharField(max_length=255, blank=True, verbose_name=gettext_lazy("API error message"))
    api_error_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("API error at"))

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    class Meta:
        verbose_name = gettext_lazy("vehicle connection")
        verbose_name_plural = gettext_lazy("vehicle connections")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "status"])]

    def __str__(self) -> str:
        return f"Connection {self.pk} of {self.user_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class SubscriptionStatus(models.TextChoices):
    SUBSCRIBING = "subscribing", gettext_lazy("Subscribing")
    SUBSCRIBED = "subscribed", gettext_lazy("Subscribed")
    FAILED = "failed", gettext_lazy("Failed (retried)")
    UNSUBSCRIBING = "unsubscribing", gettext_lazy("Unsubscribing")
    UNSUBSCRIBED = "unsubscribed", gettext_lazy("Unsubscribed")


class Vehicle(models.Model):
    """A vehicle reachable through a connection, with its last known state (snapshot)."""

    SubscriptionStatus = SubscriptionStatus

    class ChargeState(models.TextChoices):
        CHARGING = "CHARGING", gettext_lazy("Charging")
        FULLY_CHARGED = "FULLY_CHARGED", gettext_lazy("Fully charged")
        NOT_CHARGING = "NOT_CHARGING", gettext_lazy("Not charging")

    connection = models.ForeignKey(
        VehicleConnection, on_delete=models.CASCADE, related_name="vehicles", verbose_name=gettext_lazy("connection")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vehicles", verbose_name=gettext_lazy("driver")
    )
    external_id = models.CharField(
        max_length=64, verbose_name=gettext_lazy("external ID")
    )  # the vehicle API's vehicle id
    is_active = models.BooleanField(
        default=True, verbose_name=gettext_lazy("active")
    )  # False once disconnected or no longer shared

    make = models.CharField(max_length=64, verbose_name=gettext_lazy("make"))
    model = models.CharField(max_length=128, verbose_name=gettext_lazy("model"))
    year = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=gettext_lazy("year"))
    vin = models.CharField(max_length=17, blank=True, verbose_name=gettext_lazy("VIN"))
    capacity_wh = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("battery capacity"))
    # Capabilities: None = not known yet; learned from the API's answers (a COMPATIBILITY error =
    # not capable). `signal_capabilities`: signal code → capable | not_capable | not_permitted, as
    # the car's signals answered (facts only; sessions.vehicles.services.vehicle_learn_capabilities).
    signal_capabilities = models.JSONField(
        default=dict, blank=True, verbose_name=gettext_lazy("signals the car can send")
    )
    charge_limit_readable = models.BooleanField(
        null=True, blank=True, verbose_name=gettext_lazy("charge limit readable")
    )
    charge_limit_settable = models.BooleanField(
        null=True, blank=True, verbose_name=gettext_lazy("charge limit settable")
    )
    charge_limit_bp = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=gettext_lazy("charge limit"))
    # Battery health: never charge past the maximum; below the minimum, charge first whatever the price.
    max_soc_bp = models.PositiveSmallIntegerField(default=8000, verbose_name=gettext_lazy("maximum battery level"))
    min_soc_bp = models.PositiveSmallIntegerField(default=0, verbose_name=gettext_lazy("minimum battery level"))

    # The car's subscription to our webhook (VEHICLE_WEBHOOK_ID) at the management API:
    # sessions/vehicles/subscriptions.py. Empty: never asked (no webhook configured).
    subscription_status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, blank=True, verbose_name=gettext_lazy("webhook subscription")
    )
    subscription_error = models.CharField(max_length=255, blank=True, verbose_name=gettext_lazy("subscription error"))
    subscription_attempts = models.PositiveSmallIntegerField(
        default=0, verbose_name=gettext_lazy("subscription attempts")
    )
    subscription_retry_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("subscription retry at")
    )
    subscription_changed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("subscription changed at")
    )

    # Last known snapshot. `data_age` is when the VEHICLE recorded the data (the signals'
    # oemUpdatedAt), not when we asked; `fetched_at` when the API retrieved it; `snapshot_at` our clock.
    soc_bp = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=gettext_lazy("battery level"))
    is_plugged_in = models.BooleanField(null=True, blank=True, verbose_name=gettext_lazy("plugged in"))
    charge_state = models.CharField(
        max_length=16, choices=ChargeState.choices, blank=True, verbose_name=gettext_lazy("charge state")
    )
    data_age = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("data age"))
    fetched_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("fetched at"))
    snapshot_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("snapshot at"))

    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    class Meta:
        verbose_name = gettext_lazy("vehicle")
        verbose_name_plural = gettext_lazy("vehicles")
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
