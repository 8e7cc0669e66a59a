"""Operators hear of every new dashboard alert by email, at most once per alert kind per
OPERATOR_ALERT_INTERVAL_S: alerts that appear within the interval wait for the next email.

Run every minute (web.tasks.notify_operators). The alerts are the dashboard's own
(selectors.alerts); each item has a key, and the items already reported are remembered
(notifications.AlertNotice) until they stop alerting, so a recurrence is reported again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy

from notifications import kinds
from notifications.models import AlertDigest, AlertNotice
from notifications.services import notify, operator_addresses
from web.dashboard import selectors

# Items listed in one email; the rest are counted.
LISTED = 20
# Items of one kind looked at per run (the dashboard lists fewer).
SCAN_LIMIT = 500

# The subject of each kind's email: written into the outbox row in the operators' language
# (settings.LANGUAGE_CODE, the task queue's), like the item lines.
TITLES = {
    "stop_not_carried_out": gettext_lazy("Stops not carried out"),
    "stuck_stopping": gettext_lazy("Sessions stuck stopping"),
    "failed_webhooks": gettext_lazy("Stripe webhook events that failed"),
    "payment_discrepancies": gettext_lazy("Payment discrepancies (reconciliation)"),
    "old_holds": gettext_lazy("Holds older than the limit"),
    "needs_consent": gettext_lazy("Connections waiting for the driver to reconnect"),
}
ADMIN_PAGES = {
    "stop_not_carried_out": "admin:charging_chargingsession_changelist",
    "stuck_stopping": "admin:charging_chargingsession_changelist",
    "failed_webhooks": "admin:payments_stripeevent_changelist",
    "payment_discrepancies": "admin:payments_paymentdiscrepancy_changelist",
    "old_holds": "admin:prepaid_hold_changelist",
    "needs_consent": "admin:charging_vehicleconnection_changelist",
}


def _session_label(s) -> str:
    return f"session {s.pk}: {s.user.get_username()}, {s.vehicle}, {s.status} ({s.reason or 'no reason'})"


def _item(kind: str, obj) -> tuple[str, str]:
    """(key, one line for the operator) of one alert item."""
    if kind in ("stop_not_carried_out", "stuck_stopping"):
        return str(obj.pk), _session_label(obj)
    if kind == "failed_webhooks":
        return obj.event_id, f"{obj.event_id} {obj.type}, {obj.attempts} attempt(s): {obj.last_error[:120]}"
    if kind == "payment_discrepancies":
        return str(obj.pk), f"{obj.get_kind_display()} {obj.stripe_object_id}: {obj.detail[:160]}"
    if kind == "old_holds":
        owner, since = obj.wallet.user.get_username(), f"{obj.created_at:%Y-%m-%d %H:%M} UTC"
        return str(obj.pk), f"hold {obj.pk} of {owner}: {obj.energy_wh / 1000:g} kWh since {since}"
    if kind == "needs_consent":
        return str(obj.pk), f"connection {obj.pk} of {obj.user.get_username()}: {obj.status_reason or 'consent needed'}"
    return str(obj.pk), str(obj)


def recipients() -> list[str]:
    """OPERATOR_ALERT_EMAILS, else every active staff user with an address."""
    return operator_addresses()


def operator_alerts_notify(*, now: datetime | None = None) -> int:
    """Email the operators about alert items they have not heard of. Returns the emails queued."""
    now = now or timezone.now()
    found = selectors.alerts(now=now, limit=SCAN_LIMIT)
    interval = timedelta(seconds=settings.OPERATOR_ALERT_INTERVAL_S)
    to = recipients()
    if not to:
        return 0  # nobody to tell: the alerts stay news until someone is
    queued = 0
    for kind, title in TITLES.items():
        group = found.get(kind)
        if group is None:
            continue
        items = dict(_item(kind, obj) for obj in group["items"])
        with transaction.atomic():
            # One runner per kind at a time (two workers running the schedule at once).
            digest, _ = AlertDigest.objects.get_or_create(kind=kind)
            digest = AlertDigest.objects.select_for_update().get(pk=digest.pk)
            # Items that stopped alerting are forgotten: if they come back, that is news.
            AlertNotice.objects.filter(kind=kind).exclude(key__in=list(items)).delete()
            known = set(AlertNotice.objects.filter(kind=kind).values_list("key", flat=True))
            new = [key for key in items if key not in known]
            if not new or (digest.last_sent_at and now - digest.last_sent_at < interval):
                continue
            params = {
                "alert": kind,
                "title": str(title),
                "items": [items[key] for key in new[:LISTED]],
                "more": len(new) - min(len(new), LISTED),
                "open": group["count"],
                "admin_path": reverse(ADMIN_PAGES[kind]),
            }
            for address in to:
                notify(
                    kind=kinds.OPERATOR_ALERT,
                    key=f"alert:{kind}:{now.isoformat()}:{address}",
                    to_email=address,
                    params=params,
                )
                queued += 1
            AlertNotice.objects.bulk_create([AlertNotice(kind=kind, key=key, notified_at=now) for key in new])
            digest.last_sent_at = now
            digest.save(update_fields=["last_sent_at"])
    return queued
