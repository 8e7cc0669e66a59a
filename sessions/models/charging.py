"""Charging sessions: the state machine, its transition log, meter readings and vehicle commands.

A session moves REQUESTED → STARTING → CHARGING → STOPPING → COMPLETED, or ends FAILED (never
started: the hold is released at once) or INTERRUPTED (unplugged, stopped by the driver, car full:
what was delivered is settled). Timing lives in this table (`next_action_at`, a lease), not in the
task queue: django-q2's scheduler ticks only every 30 s (docs/reference/task-queue.md).
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy


class SessionStatus(models.TextChoices):
    REQUESTED = "requested", gettext_lazy("Requested")
    STARTING = "starting", gettext_lazy("Starting")
    CHARGING = "charging", gettext_lazy("Charging")
    STOPPING = "stopping", gettext_lazy("Stopping")
    COMPLETED = "completed", gettext_lazy("Completed")
    FAILED = "failed", gettext_lazy("Failed")
    INTERRUPTED = "interrupted", gettext_lazy("Interrupted")


OPEN_STATUSES = (SessionStatus.REQUESTED, SessionStatus.STARTING, SessionStatus.CHARGING, SessionStatus.STOPPING)
TERMINAL_STATUSES = (SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.INTERRUPTED)

# The only moves a session may make. Anything else is a bug and is refused by `session_transition`.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    SessionStatus.REQUESTED: {SessionStatus.STARTING, SessionStatus.FAILED},
    SessionStatus.STARTING: {SessionStatus.CHARGING, SessionStatus.STOPPING, SessionStatus.FAILED},
    SessionStatus.CHARGING: {SessionStatus.STOPPING, SessionStatus.INTERRUPTED},
    SessionStatus.STOPPING: {SessionStatus.COMPLETED, SessionStatus.INTERRUPTED},
    SessionStatus.COMPLETED: set(),
    SessionStatus.FAILED: set(),
    SessionStatus.INTERRUPTED: set(),
}


class ChargingSession(models.Model):
    id = models.BigAutoField(primary_key=True, verbose_name=gettext_lazy("ID"))
    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, verbose_name=gettext_lazy("public ID")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="charging_sessions",
        verbose_name=gettext_lazy("driver"),
    )
    vehicle = models.ForeignKey(
        "charging.Vehicle", on_delete=models.PROTECT, related_name="sessions", verbose_name=gettext_lazy("vehicle")
    )
    # The physical car: the vehicle API's vehicle id, the same for every account that connected
    # it (each account has its own Vehicle row). One open session per car is held on this column.
    car_id = models.CharField(
        max_length=64, blank=True, db_index=True, verbose_name=gettext_lazy("car (vehicle API ID)")
    )
    hold = models.OneToOneField(
        "prepaid.Hold", null=True, blank=True, on_delete=models.PROTECT, verbose_name=gettext_lazy("hold")
    )
    purchased_wh = models.PositiveIntegerField(
        help_text="The energy this session may deliver and bill, Wh.", verbose_name=gettext_lazy("purchased energy")
    )
    policy = models.CharField(max_length=32, default="predictive", verbose_name=gettext_lazy("stop policy"))

    status = models.CharField(
        max_length=16,
        choices=SessionStatus.choices,
        default=SessionStatus.REQUESTED,
        verbose_name=gettext_lazy("status"),
    )
    # A machine code (unplugged, asleep, threshold, driver_stop…) and the words the driver sees.
    reason = models.CharField(max_length=48, blank=True, verbose_name=gettext_lazy("reason"))
    reason_message = models.CharField(
        max_length=255, blank=True, verbose_name=gettext_lazy("reason shown to the driver")
    )
    stop_reason = models.CharField(max_length=48, blank=True, verbose_name=gettext_lazy("stop reason"))
    version = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("version"))

    # Scheduling: the controller loop claims rows whose next action is due and not leased.
    next_action_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("next action at"))
    lease_until = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("leased until"))
    lease_token = models.UUIDField(null=True, blank=True, verbose_name=gettext_lazy("lease token"))
    state_deadline_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("state deadline"))
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Attempts of the current state's action.", verbose_name=gettext_lazy("attempts")
    )
    not_before = models.DateTimeField(
        null=True, blank=True, help_text="Retry-After from the vehicle API.", verbose_name=gettext_lazy("not before")
    )

    # Metering: the controller's estimate, with the uncertainty that SoC steps leave.
    start_soc_bp = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("battery level at start")
    )
    end_soc_bp = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("battery level at end"))
    baseline_energy_wh = models.IntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("energy counter at start")
    )
    delivered_wh = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("delivered energy"))
    delivered_low_wh = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("delivered energy, low"))
    delivered_high_wh = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("delivered energy, high"))
    power_w = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("charging power"))
    # The band of that power: the live page extends the estimate from the last reading with it.
    power_low_w = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("charging power, low"))
    power_high_w = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("charging power, high"))
    data_source = models.CharField(max_length=16, blank=True, verbose_name=gettext_lazy("data source"))
    last_reading_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("last reading at"))
    api_calls = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("vehicle API calls"))
    # Where the readings came from: billed reads of the car (polls, each also in `api_calls`) and
    # readings the car's webhooks delivered (free). Counted apart so the operator sees what
    # webhooks save.
    billed_reads = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("billed reads"))
    webhook_readings = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("webhook readings"))
    # The data time of the newest reading a webhook delivered (written by the receiver only), and
    # of the newest one a step used in place of a read (written by steps only): a webhook reading
    # answers one read, never two (sessions/controller/webhook_readings.py).
    webhook_reading_at = models.DateTimeField(
        null=True, blank=True, verbose_name=gettext_lazy("newest webhook reading at")
    )
    webhook_used_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("webhook reading used at"))
    # A VEHICLE_ERROR webhook about the car (e.g. VEHICLE_STATE:ASLEEP) while this session was
    # open, until its RESOLVED: a machine code and the vehicle API's words.
    vehicle_error = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("vehicle error"))
    vehicle_error_message = models.CharField(
        max_length=255, blank=True, verbose_name=gettext_lazy("vehicle error message")
    )
    call_budget = models.PositiveIntegerField(default=60, verbose_name=gettext_lazy("call budget"))
    # What the controller assumes about the car (sessions/vehicles/makes.py), fixed at the session's start.
    energy_step_wh = models.PositiveIntegerField(
        default=0, help_text="0: the car reports no energy counter.", verbose_name=gettext_lazy("energy counter step")
    )
    soc_step_bp = models.PositiveIntegerField(default=100, verbose_name=gettext_lazy("battery level step"))
    nominal_power_w = models.PositiveIntegerField(default=11_000, verbose_name=gettext_lazy("nominal power"))
    telemetry_refresh_s = models.PositiveIntegerField(default=300, verbose_name=gettext_lazy("data refresh interval"))
    # The next action the policy planned: "read" the car, or send "stop" without reading first;
    # "webhook": a read waits for the car's next webhook reading (polled if it does not come).
    planned_action = models.CharField(max_length=8, blank=True, verbose_name=gettext_lazy("planned action"))
    start_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("start sent at"))
    # Delivered energy the controller expected at the moment STOP went out (to learn latency).
    predicted_wh_at_stop = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("predicted energy at stop")
    )
    # The session's meter readings (all of them, in id order) in the controller's compact form, so
    # a step gets them with the session row instead of re-reading the readings table. A copy, not
    # the record: `readings_cached` counts the rows it holds, and a step whose count differs from
    # the table's (a crashed step, a lost lease) rebuilds it from the table.
    readings_cache = models.JSONField(default=list, blank=True, verbose_name=gettext_lazy("readings cache"))
    readings_cached = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("readings cached"))
    # Bumped by whoever asks for an immediate step without owning the lease (a grid event): a step
    # in flight then commits "act now" instead of its planned next action (see `_commit`).
    pokes = models.PositiveIntegerField(default=0, verbose_name=gettext_lazy("pokes"))

    # The charge limit: the driver's own (read from the car when no limit the product set could
    # be showing, else carried over from the session that set it), restored at the end, and the
    # limits the product set (the backstop, the escalation's).
    driver_limit_bp = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("driver's charge limit")
    )
    backstop_limit_bp = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("backstop charge limit")
    )
    escalation_limit_bp = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("escalation charge limit")
    )
    # The product changed the car's limit (or took over putting it back from an earlier session):
    # the driver's limit must be put back, however the session ends.
    limit_to_restore = models.BooleanField(default=False, verbose_name=gettext_lazy("limit to restore"))
    limit_restored = models.BooleanField(default=False, verbose_name=gettext_lazy("limit restored"))
    # After the end: when the next attempt to put the driver's limit back is due (None: nothing
    # left to do), and how many were made (sessions.controller.limits).
    limit_restore_due_at = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=gettext_lazy("limit restore due at")
    )
    limit_restore_attempts = models.PositiveSmallIntegerField(
        default=0, verbose_name=gettext_lazy("limit restore attempts")
    )

    # The stop is an action: sent, verified, retried, escalated, flagged.
    stop_attempts = models.PositiveSmallIntegerField(default=0, verbose_name=gettext_lazy("stop attempts"))
    stop_first_sent_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("stop first sent at"))
    stop_escalated = models.BooleanField(default=False, verbose_name=gettext_lazy("stop escalated"))
    stop_not_carried_out = models.BooleanField(default=False, verbose_name=gettext_lazy("stop not carried out"))
    stop_verified_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("stop verified at"))

    # Settlement.
    billed_wh = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("billed energy"))
    overshoot_wh = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("overshoot"))
    # Delivered up to the purchase but not proven by the readings (coarse levels, a capacity only
    # known to 85–100 %), so not billed: the operator's cost, like the overshoot.
    unbilled_wh = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("unbilled energy"))

    created_at = models.DateTimeField(verbose_name=gettext_lazy("created at"))
    charging_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("charging since"))
    stop_requested_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("stop requested at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("ended at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=gettext_lazy("updated at"))

    class Meta:
        verbose_name = gettext_lazy("charging session")
        verbose_name_plural = gettext_lazy("charging sessions")
        constraints = [
            # At most one open session per vehicle, held by the database, not by a check in Python.
            models.UniqueConstraint(
                fields=["vehicle"],
                condition=Q(status__in=["requested", "starting", "charging", "stopping"]),
                name="charging_one_open_session_per_vehicle",
            ),
            # And at most one per physical car, whichever account's row it was started from: two
            # sessions on one car would both meter its one counter and bill it twice.
            models.UniqueConstraint(
                fields=["car_id"],
                condition=Q(status__in=["requested", "starting", "charging", "stopping"]) & ~Q(car_id=""),
                name="charging_one_open_session_per_car",
            ),
            models.CheckConstraint(
                condition=Q(billed_wh__isnull=True) | Q(billed_wh__lte=F("purchased_wh")),
                name="charging_never_bill_above_purchase",
            ),
            models.CheckConstraint(condition=Q(purchased_wh__gt=0), name="charging_purchase_positive"),
        ]
        indexes = [
            models.Index(fields=["status", "next_action_at"], name="charging_due_idx"),
            # The controller loop's claim: open sessions by due time, one ordered range scan that
            # stops at the batch limit, however many sessions have ended.
            models.Index(
                fields=["next_action_at"],
                condition=Q(status__in=["requested", "starting", "charging", "stopping"]),
                name="charging_due_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} ({self.status})"

    def save(self, *args, **kwargs):
        if not self.car_id and self.vehicle_id:
            self.car_id = self.vehicle.external_id
        super().save(*args, **kwargs)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class SessionTransition(models.Model):
    """The log of every status change: who moved the session, from where, why."""

    session = models.ForeignKey(
        ChargingSession,
        on_delete=models.CASCADE,
        related_name="transitions",
        verbose_name=gettext_lazy("charging session"),
    )
    from_status = models.CharField(max_length=16, verbose_name=gettext_lazy("from status"))
    to_status = models.CharField(max_length=16, verbose_name=gettext_lazy("to status"))
    reason = models.CharField(max_length=48, blank=True, verbose_name=gettext_lazy("reason"))
    at = models.DateTimeField(verbose_name=gettext_lazy("at"))

    class Meta:
        verbose_name = gettext_lazy("session transition")
        verbose_name_plural = gettext_lazy("session transitions")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.from_status or '·'} → {self.to_status} ({self.reason})"


class MeterReading(models.Model):
    """One reading of the car. `taken_at` is the reading's data age (when the car measured it)."""

    session = models.ForeignKey(
        ChargingSession,
        on_delete=models.CASCADE,
        related_name="readings",
        verbose_name=gettext_lazy("charging session"),
    )
    taken_at = models.DateTimeField(verbose_name=gettext_lazy("taken at"))
    fetched_at = models.DateTimeField(verbose_name=gettext_lazy("fetched at"))
    source = models.CharField(max_length=16, verbose_name=gettext_lazy("measured by"))  # energy_added | soc | meter
    # How it reached us: a billed read of ours ("poll") or a VEHICLE_STATE webhook ("webhook").
    via = models.CharField(max_length=8, default="poll", verbose_name=gettext_lazy("received via"))
    energy_added_wh = models.IntegerField(null=True, blank=True, verbose_name=gettext_lazy("energy added"))
    soc_bp = models.IntegerField(null=True, blank=True, verbose_name=gettext_lazy("battery level"))
    power_w = models.IntegerField(null=True, blank=True, verbose_name=gettext_lazy("charging power"))
    charge_state = models.CharField(max_length=16, blank=True, verbose_name=gettext_lazy("charge state"))
    is_plugged_in = models.BooleanField(null=True, verbose_name=gettext_lazy("plugged in"))
    # `tractionbattery-isheateractive`; NULL where the car does not say (most makes).
    heater_active = models.BooleanField(null=True, blank=True, verbose_name=gettext_lazy("pack heater active"))
    accepted = models.BooleanField(default=True, verbose_name=gettext_lazy("accepted"))
    rejection = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("rejection"))

    class Meta:
        verbose_name = gettext_lazy("meter reading")
        verbose_name_plural = gettext_lazy("meter readings")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.source} at {self.taken_at:%H:%M:%S}"

    @classmethod
    def record(cls, session: ChargingSession, reading, **fields) -> "MeterReading":
        """Store a metering reading (`sessions.controller.metering.Reading`) of the session, polled or
        delivered by webhook, with the same fields either way; `fields` overrides (e.g. `via`)."""
        values = {
            "session": session,
            "taken_at": reading.taken_at,
            "fetched_at": reading.fetched_at,
            "source": reading.source,
            "energy_added_wh": reading.energy_added_wh,
            "soc_bp": reading.soc_bp,
            "power_w": reading.power_w,
            "charge_state": reading.charge_state or "",
            "is_plugged_in": reading.is_plugged_in,
            "heater_active": reading.heater_active,
        }
        return cls.objects.create(**(values | fields))


class CommandKind(models.TextChoices):
    START = "start", gettext_lazy("Start charge")
    STOP = "stop", gettext_lazy("Stop charge")
    SET_LIMIT = "set_limit", gettext_lazy("Set charge limit")
    READ = "read", gettext_lazy("Read")


class VehicleCommand(models.Model):
    """Every call the controller makes to the vehicle API: what, when, request id, latency, result."""

    session = models.ForeignKey(
        ChargingSession,
        null=True,
        on_delete=models.CASCADE,
        related_name="commands",
        verbose_name=gettext_lazy("charging session"),
    )
    vehicle = models.ForeignKey(
        "charging.Vehicle", on_delete=models.CASCADE, related_name="commands", verbose_name=gettext_lazy("vehicle")
    )
    kind = models.CharField(max_length=16, choices=CommandKind.choices, verbose_name=gettext_lazy("kind"))
    detail = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("detail"))
    sent_at = models.DateTimeField(verbose_name=gettext_lazy("sent at"))
    latency_ms = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("latency"))
    ok = models.BooleanField(verbose_name=gettext_lazy("OK"))
    request_id = models.CharField(max_length=64, blank=True, verbose_name=gettext_lazy("request ID"))
    error_type = models.CharField(max_length=48, blank=True, verbose_name=gettext_lazy("error type"))
    error_code = models.CharField(max_length=48, blank=True, verbose_name=gettext_lazy("error code"))
    http_status = models.PositiveSmallIntegerField(null=True, blank=True, verbose_name=gettext_lazy("HTTP status"))
    # For START and STOP: the time the car took to act. Exact when inferred from the energy that
    # still went in (effect_latency_max_ms empty); else within [effect_latency_ms,
    # effect_latency_max_ms], from when the car's data showed its charge state flip.
    effect_latency_ms = models.PositiveIntegerField(null=True, blank=True, verbose_name=gettext_lazy("effect latency"))
    effect_latency_max_ms = models.PositiveIntegerField(
        null=True, blank=True, verbose_name=gettext_lazy("effect latency, at most")
    )
    make = models.CharField(max_length=64, blank=True, db_index=True, verbose_name=gettext_lazy("make"))

    class Meta:
        verbose_name = gettext_lazy("vehicle command")
        verbose_name_plural = gettext_lazy("vehicle commands")
        ordering = ["id"]
        indexes = [models.Index(fields=["kind", "ok", "sent_at"], name="charging_cmd_kind_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.detail} ({'ok' if self.ok else self.error_code or self.error_type})"


class VehicleEvent(models.Model):
    """A vehicle webhook delivery (VEHICLE_STATE / VEHICLE_ERROR), stored once per eventId."""

    event_id = models.CharField(max_length=64, unique=True, verbose_name=gettext_lazy("event ID"))
    event_type = models.CharField(max_length=32, verbose_name=gettext_lazy("event type"))
    vehicle_external_id = models.CharField(
        max_length=64, blank=True, db_index=True, verbose_name=gettext_lazy("vehicle API vehicle ID")
    )
    payload = models.JSONField(verbose_name=gettext_lazy("payload"))
    received_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("received at"))

    class Meta:
        verbose_name = gettext_lazy("vehicle webhook event")
        verbose_name_plural = gettext_lazy("vehicle webhook events")

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
