"""The outbox of emails, each driver's choice of the optional ones, and what operators were told."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy


class EmailPreferences(models.Model):
    """Which optional emails a driver gets (notifications.kinds.OPTIONAL). No row: all of them."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="email_preferences"
    )
    charge_started = models.BooleanField(default=True)
    charge_ended = models.BooleanField(default=True)
    refund_made = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "email preferences"

    def __str__(self) -> str:
        return f"email preferences of {self.user_id}"


class Notification(models.Model):
    """One email to send: written in the transaction of the event it reports (a session that
    started, a refund made), sent afterwards by the task queue. `key` makes it once per event."""

    class Status(models.TextChoices):
        PENDING = "pending", gettext_lazy("Pending")
        SENT = "sent", gettext_lazy("Sent")
        SKIPPED = "skipped", gettext_lazy("Skipped")
        FAILED = "failed", gettext_lazy("Failed")

    key = models.CharField(max_length=200, unique=True, verbose_name=gettext_lazy("key"))
    kind = models.CharField(max_length=32, verbose_name=gettext_lazy("email kind"))
    # A driver's email goes to the user's address as it is when sent; an operator's to `to_email`.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, verbose_name=gettext_lazy("driver")
    )
    to_email = models.EmailField(blank=True, verbose_name=gettext_lazy("to (email)"))
    # What the renderer needs to find its subject (ids), or the content itself (operator alerts).
    params = models.JSONField(default=dict, blank=True, verbose_name=gettext_lazy("parameters"))
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, verbose_name=gettext_lazy("status")
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=gettext_lazy("attempts"))
    last_error = models.CharField(max_length=300, blank=True, verbose_name=gettext_lazy("last error"))
    subject = models.CharField(max_length=200, blank=True, verbose_name=gettext_lazy("subject"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=gettext_lazy("created at"))
    # A sender owns the row until then (the task and the sweeper never send it twice at once).
    claimed_until = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("claimed until"))
    next_attempt_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("next attempt at"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=gettext_lazy("sent at"))

    class Meta:
        verbose_name = gettext_lazy("email")
        verbose_name_plural = gettext_lazy("emails")
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx")]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status})"


class AlertNotice(models.Model):
    """A dashboard alert item the operators were emailed about (kind and the item's key); removed
    once the item no longer alerts, so a recurrence is news again."""

    kind = models.CharField(max_length=48)
    key = models.CharField(max_length=100)
    notified_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="alert_notice_once")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class AlertDigest(models.Model):
    """When the operators were last emailed about an alert kind (one email per kind per interval)."""

    kind = models.CharField(max_length=48, primary_key=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} last sent {self.last_sent_at}"
