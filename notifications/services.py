"""Queue an email with what it reports, and send it later, outside every controller step and
webhook.

`notify` writes one row to the outbox in the caller's transaction — the email exists exactly when
the event it reports was committed — and enqueues its sending once that transaction commits.
`notification_send` renders and sends one row; a mail server that fails leaves the row pending
with a backoff, and `notifications_send_due` (every minute) tries again, also for a row whose
task was lost. Nothing here raises into the caller: a charge or a payment never depends on mail.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from notifications import kinds, registry
from notifications.models import EmailPreferences, Notification
from prepaid import timezones
from prepaid.selectors import language_for
from prepaid.taskqueue import enqueue

logger = logging.getLogger(__name__)

# How long one sender owns a row: above the SMTP timeout of a connection and a send.
CLAIM = timedelta(seconds=120)
# A row older than this and still pending lost its task (or its mail server): the sweeper sends it.
SWEEP_AFTER = timedelta(seconds=60)
RETRY_BASE_S = 60
RETRY_CAP_S = 3600
SWEEP_LIMIT = 200


def notify(*, kind: str, key: str, user_id: int | None = None, to_email: str = "", params: dict | None = None) -> None:
    """Queue one email of `kind` about `params`, once per `key` (a second call is a no-op).

    One INSERT in the caller's transaction; the send is enqueued after it commits, never before
    (a rolled-back step sends nothing) and never inside it (the broker is not the database)."""
    if kind not in kinds.KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    row = Notification(kind=kind, key=key[:200], user_id=user_id, to_email=to_email, params=params or {})
    Notification.objects.bulk_create([row], ignore_conflicts=True)
    transaction.on_commit(partial(_enqueue, row.key), robust=True)


def operator_addresses() -> list[str]:
    """Where operator alerts go: OPERATOR_ALERT_EMAILS, else every active staff user with an address."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    if settings.OPERATOR_ALERT_EMAILS:
        return list(settings.OPERATOR_ALERT_EMAILS)
    staff = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted(set(staff.values_list("email", flat=True)))


def _enqueue(key: str) -> None:
    enqueue("notifications.tasks.send_notification", key, task_name=f"email-{key}"[:100])


def preferences_for(user) -> EmailPreferences:
    """The driver's choices (the defaults, unsaved, when they never changed them)."""
    try:
        return EmailPreferences.objects.get(user=user)
    except EmailPreferences.DoesNotExist:
        return EmailPreferences(user=user)


def preferences_update(*, user, **choices: bool) -> EmailPreferences:
    """Set some of the optional emails on or off; unknown names are refused (ValueError)."""
    allowed = {kind.name for kind in kinds.OPTIONAL}
    unknown = set(choices) - allowed
    if unknown:
        raise ValueError(f"not an optional email: {', '.join(sorted(unknown))}")
    prefs, _ = EmailPreferences.objects.update_or_create(user=user, defaults={k: bool(v) for k, v in choices.items()})
    return prefs


def _claim(key: str, now) -> Notification | None:
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = Notification.objects.filter(free, due, key=key, status=Notification.Status.PENDING).update(
        claimed_until=now + CLAIM
    )
    return Notification.objects.select_related("user").get(key=key) if claimed else None


def _finish(row: Notification, status: str, **fields) -> None:
    Notification.objects.filter(pk=row.pk).update(status=status, claimed_until=None, **fields)


def _address(row: Notification) -> str:
    if row.to_email:
        return row.to_email
    return (row.user.email if row.user is not None and row.user.is_active else "") or ""


def build_message(row: Notification, context: dict, to: str) -> EmailMultiAlternatives:
    """The email of `row`: a subject, a plain-text body and the same in HTML, with a link back."""
    kind = kinds.KINDS[row.kind]
    context = {
        "site_url": settings.SITE_URL,
        "site_name": "Prepaid Charge",
        "kind": kind,
        "preferences_url": settings.SITE_URL + reverse("driver:email-settings") if kind.optional else "",
        **context,
    }
    # Times in the driver's time zone, as on their pages (prepaid.timezones).
    with timezone.override(zoneinfo.ZoneInfo(timezones.time_zone_for(row.user))):
        subject = " ".join(render_to_string(f"notifications/{row.kind}.subject.txt", context).split())
        text = render_to_string(f"notifications/{row.kind}.txt", context)
        html = render_to_string(f"notifications/{row.kind}.html", context)
    # Auto-Submitted keeps out-of-office replies away (RFC 3834).
    message = EmailMultiAlternatives(
        subject, text, settings.DEFAULT_FROM_EMAIL, [to], headers={"Auto-Submitted": "auto-generated"}
    )
    message.attach_alternative(html, "text/html")
    return message


def notification_send(*, key: str) -> str:
    """Render and send one queued email. Returns its status afterwards ("pending" while a failing
    mail server has it waiting for its next attempt). Safe to run twice."""
    now = timezone.now()
    row = _claim(key, now)
    if row is None:
        return Notification.objects.filter(key=key).values_list("status", flat=True).first() or "missing"
    kind = kinds.KINDS.get(row.kind)
    to = _address(row)
    if kind is None or not to:
        _finish(row, Notification.Status.SKIPPED, last_error="no recipient address" if kind else "unknown kind")
        return Notification.Status.SKIPPED
    if kind.optional and row.user is not None and not getattr(preferences_for(row.user), kind.name):
        _finish(row, Notification.Status.SKIPPED, last_error="turned off by the driver")
        return Notification.Status.SKIPPED
    renderer = registry.renderer_for(row.kind)
    try:
        # In the driver's language (their account's choice); operators' in the site's.
        with translation.override(language_for(user=row.user) or settings.LANGUAGE_CODE):
            context = renderer(row) if renderer else None
            if context is None:
                _finish(row, Notification.Status.SKIPPED, last_error="nothing to report")
                return Notification.Status.SKIPPED
            message = build_message(row, context, to)
        message.send()
    except Exception as exc:  # the mail server, the network, or a template: try again later, counted
        return _failed(row, exc, now)
    _finish(row, Notification.Status.SENT, sent_at=timezone.now(), subject=message.subject[:200], last_error="")
    return Notification.Status.SENT


def _failed(row: Notification, exc: Exception, now) -> str:
    attempts = row.attempts + 1
    error = f"{type(exc).__name__}: {exc}"[:300]
    if attempts >= settings.EMAIL_MAX_ATTEMPTS:
        logger.error("email %s not sent after %s attempts: %s", row.key, attempts, error, exc_info=exc)
        _finish(row, Notification.Status.FAILED, attempts=attempts, last_error=error)
        return Notification.Status.FAILED
    delay = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (attempts - 1))
    logger.warning("email %s not sent (attempt %s, next in %s s): %s", row.key, attempts, delay, error)
    _finish(
        row,
        Notification.Status.PENDING,
        attempts=attempts,
        last_error=error,
        next_attempt_at=now + timedelta(seconds=delay),
    )
    return Notification.Status.PENDING


def notifications_send_due(*, now=None) -> int:
    """Every minute: enqueue the sending of emails still pending (a lost task, a mail server that
    failed and whose backoff is over). Returns how many were enqueued."""
    now = now or timezone.now()
    due = (
        Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=now - SWEEP_AFTER)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("id")
        .values_list("key", flat=True)[:SWEEP_LIMIT]
    )
    keys = list(due)
    for key in keys:
        _enqueue(key)
    return len(keys)


def notifications_resend(*, keys: list[str]) -> int:
    """Operator action: send these pending or failed emails again now, with a fresh count of
    attempts (the mail server is back). Returns how many were queued."""
    resend = Notification.objects.filter(
        key__in=keys, status__in=[Notification.Status.PENDING, Notification.Status.FAILED]
    ).update(status=Notification.Status.PENDING, attempts=0, next_attempt_at=None, claimed_until=None)
    for key in keys:
        _enqueue(key)
    return resend


__all__ = [
    "build_message",
    "notification_send",
    "notifications_resend",
    "notifications_send_due",
    "notify",
    "preferences_for",
    "preferences_update",
]
