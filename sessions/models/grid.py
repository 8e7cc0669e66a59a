"""Smart charging, demand response and battery health: prices, plans, grid events, bonus grants.

A session follows a `SmartPlan` when it has one: charging windows chosen by `sessions.grid.smart`, and
a pause flag with its own deadline (`resume_at`). The session's status stays CHARGING while it is
paused; the plan row says why it is not charging and until when, so no session ever waits without
a deadline and the STOP at the purchase keeps working unchanged.
"""

import uuid
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy

from prepaid.pricing import minor_per_major


class PricePoint(models.Model):
    """One time-of-use price of a region on [starts_at, ends_at) (hourly or 15-minute)."""

    region = models.CharField(max_length=32, verbose_name=gettext_lazy("region"))
    starts_at = models.DateTimeField(verbose_name=gettext_lazy("starts at"))
    ends_at = models.DateTimeField(verbose_name=gettext_lazy("ends at"))
    # Milli-minor units per kWh: 25.37 ct/kWh is 25370 (see sessions.grid.smart).
    price_millis = models.IntegerField(verbose_name=gettext_lazy("price (thousandths of a cent per kWh)"))
    currency = models.CharField(max_length=3, default="eur", verbose_name=gettext_lazy("currency"))
    source = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("source file"))
    imported_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("imported at"))

    class Meta:
        verbose_name = gettext_lazy("price")
        verbose_name_plural = gettext_lazy("prices")
        ordering = ["region", "starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["region", "starts_at"], name="grid_price_unique_start"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="grid_price_interval"),
        ]

    def __str__(self) -> str:
        return f"{self.region} {self.starts_at:%Y-%m-%d %H:%M} {self.price_millis}"


class SmartPlan(models.Model):
    """The plan a session follows, and its pause state (a flag with its own deadline)."""

    class PauseReason(models.TextChoices):
        PLAN = "plan", gettext_lazy("Outside a planned window")
        GRID = "grid", gettext_lazy("Grid event")

    session = models.OneToOneField("charging.ChargingSession", on_delete=models.CASCADE, related_name="smart_plan")
    region = models.CharField(max_length=32, blank=True)
    deadline = models.DateTimeField(null=True, blank=True, help_text="Empty: charge at once (around grid events).")
    windows = models.JSONField(default=list)
    planned_at = models.DateTimeField(null=True, blank=True)
    planned_power_w = models.PositiveIntegerField(null=True, blank=True)
    planned_energy_wh = models.PositiveIntegerField(default=0)
    # Delivered energy when the plan was made: drift = plan's expectation minus the estimate.
    delivered_at_plan_wh = models.PositiveIntegerField(default=0)
    cost_millis = models.BigIntegerField(default=0)
    immediate_cost_millis = models.BigIntegerField(default=0)
    meets_deadline = models.BooleanField(default=True)
    replans = models.PositiveIntegerField(default=0)

    paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=8, choices=PauseReason.choices, blank=True)
    pause_sent_at = models.DateTimeField(null=True, blank=True)
    pause_attempts = models.PositiveSmallIntegerField(default=0)
    pause_verified_at = models.DateTimeField(null=True, blank=True)
    # The pause's deadline: the step that resumes (or re-plans) is due then at the latest.
    resume_at = models.DateTimeField(null=True, blank=True)
    resume_sent_at = models.DateTimeField(null=True, blank=True)
    pauses = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(paused=False) | Q(resume_at__isnull=False), name="grid_pause_has_deadline"
            ),
        ]

    def __str__(self) -> str:
        return f"plan of session {self.session_id} ({len(self.windows)} windows)"

    @property
    def saving_millis(self) -> int:
        return self.immediate_cost_millis - self.cost_millis


class DemandResponseEnrollment(models.Model):
    """A driver's consent that a vehicle's sessions pause for grid events in a region."""

    vehicle = models.OneToOneField(
        "charging.Vehicle", on_delete=models.CASCADE, related_name="dr_enrollment", verbose_name=gettext_lazy("vehicle")
    )
    region = models.CharField(max_length=32, verbose_name=gettext_lazy("region"))
    active = models.BooleanField(default=True, verbose_name=gettext_lazy("active"))
    enrolled_at = models.DateTimeField(verbose_name=gettext_lazy("enrolled at"))

    class Meta:
        verbose_name = gettext_lazy("demand response enrollment")
        verbose_name_plural = gettext_lazy("demand response enrollments")

    def __str__(self) -> str:
        return f"{self.vehicle_id} in {self.region}"


class DemandResponseEvent(models.Model):
    """A window in which enrolled vehicles (of a region, or listed) must not charge."""

    class Source(models.TextChoices):
        OPERATOR = "operator", gettext_lazy("Operator")
        UTILITY = "utility", gettext_lazy("Utility")

    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name=gettext_lazy("public ID")
    )
    source = models.CharField(max_length=16, choices=Source.choices, verbose_name=gettext_lazy("declared by (source)"))
    # The utility's own id: a repeated POST of the same event creates nothing new.
    external_id = models.CharField(max_length=100, verbose_name=gettext_lazy("external ID"))
    region = models.CharField(max_length=32, blank=True, verbose_name=gettext_lazy("region"))
    vehicles = models.ManyToManyField(
        "charging.Vehicle", blank=True, related_name="dr_events", verbose_name=gettext_lazy("vehicles")
    )
    starts_at = models.DateTimeField(verbose_name=gettext_lazy("starts at"))
    ends_at = models.DateTimeField(verbose_name=gettext_lazy("ends at"))
    bonus_minor_per_kwh = models.PositiveIntegerField(default=10, verbose_name=gettext_lazy("bonus (cents per kWh)"))
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=gettext_lazy("declared by"),
    )
    created_at = models.DateTimeField(verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("grid event")
        verbose_name_plural = gettext_lazy("grid events")
        ordering = ["-starts_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="grid_event_unique_external"),
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="grid_event_interval"),
        ]

    def __str__(self) -> str:
        return f"grid event {self.external_id} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M}"


class DemandResponseParticipation(models.Model):
    """One session's part in one event: paused when, verified stopped by a reading, energy shifted."""

    event = models.ForeignKey(
        DemandResponseEvent,
        on_delete=models.PROTECT,
        related_name="participations",
        verbose_name=gettext_lazy("grid event"),
    )
    session = models.ForeignKey(
        "charging.ChargingSession",
        on_delete=models.PROTECT,
        related_name="dr_participations",
        verbose_name=gettext_lazy("charging session"),
    )
    vehicle = models.ForeignKey(
        "charging.Vehicle", on_delete=models.PROTECT, related_name="+", verbose_name=gettext_lazy("vehicle")
    )
    # The energy the session's plan had inside the event window when the event arrived.
    planned_in_window_wh = models.PositiveIntegerField(
        default=0, verbose_name=gettext_lazy("planned energy in the window")
    )
    pause_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("pause sent at"))
    # Set only from a reading that showed the car not charging during the event.
    verified_stopped_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("stop verified at"))
    charging_seen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A reading in the window showed charging.",
        verbose_name=gettext_lazy("charging seen at"),
    )
    energy_shifted_wh = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("energy shifted"))
    resumed_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("resumed at"))
    created_at = models.DateTimeField(verbose_name=gettext_lazy("created at"))

    class Meta:
        verbose_name = gettext_lazy("grid event participation")
        verbose_name_plural = gettext_lazy("grid event participations")
        constraints = [models.UniqueConstraint(fields=["event", "session"], name="grid_participation_once")]

    def __str__(self) -> str:
        return f"session {self.session_id} in {self.event_id}"


def bonus_credit_price_minor_per_kwh() -> Decimal:
    """The price bonus money buys wallet energy at now: GRID_BONUS_PRICE_PER_KWH in minor units."""
    return settings.GRID_BONUS_PRICE_PER_KWH * minor_per_major(settings.CURRENCY)


def bonus_energy_wh(*, shifted_wh: int, bonus_minor_per_kwh: int, credit_price_minor_per_kwh: Decimal) -> int:
    """The energy credit a participation earns: its bonus money (`bonus_minor_per_kwh` for each
    kWh shifted) bought at `credit_price_minor_per_kwh`, in Wh, rounded half up once. Pure."""
    if credit_price_minor_per_kwh <= 0:
        raise ValueError("the bonus credit price must be positive")
    exact = Decimal(shifted_wh) * Decimal(bonus_minor_per_kwh) / credit_price_minor_per_kwh
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class GridBonusEntry(models.Model):
    """The grant of one verified participation's bonus: why a bonus lot exists.

    The amount lives in the wallet only, as a bonus credit lot (`prepaid.CreditLot`, kind bonus)
    and its `bonus` ledger line; this row ties that lot to its event and participation (one
    grant per participation, one lot per grant) and keeps the credit price the bonus money was
    turned into energy at, so `ledger_check` can recompute every bonus lot from its grant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grid_bonuses")
    event = models.ForeignKey(DemandResponseEvent, on_delete=models.PROTECT, related_name="bonuses")
    participation = models.OneToOneField(DemandResponseParticipation, on_delete=models.PROTECT, related_name="bonus")
    lot = models.OneToOneField("prepaid.CreditLot", on_delete=models.PROTECT, related_name="grid_bonus")
    # Minor units per kWh of credit (GRID_BONUS_PRICE_PER_KWH when the bonus was credited).
    credit_price_minor_per_kwh = models.DecimalField(max_digits=12, decimal_places=4)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(credit_price_minor_per_kwh__gt=0), name="grid_bonus_price_positive"),
        ]

    def __str__(self) -> str:
        return f"bonus lot {self.lot_id} for participation {self.participation_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("bonus grants are append-only")
        super().save(*args, **kwargs)

    @property
    def expected_energy_wh(self) -> int:
        """The lot's energy recomputed from the participation, the event's rate and the price."""
        return bonus_energy_wh(
            shifted_wh=self.participation.energy_shifted_wh,
            bonus_minor_per_kwh=self.event.bonus_minor_per_kwh,
            credit_price_minor_per_kwh=self.credit_price_minor_per_kwh,
        )
