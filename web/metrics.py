"""GET /metrics: the operators' metrics in Prometheus' text format, for a bearer token
(METRICS_TOKEN; the endpoint answers 404 while it is empty).

Two sources, both right whichever process or machine answers: gauges read from the database at
scrape time (sessions by state, the Stripe inbox, the task queue, open payment discrepancies,
the emails waiting, how overdue the controller is), and the counters and histograms every
process adds to the database (monitoring.metrics: steps, vehicle API calls, overshoot). So
Prometheus scrapes any one web process (through the load balancer) and sees the whole fleet.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.db.models import Count, Min, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from monitoring import metrics
from notifications.models import Notification
from payments.models import PaymentDiscrepancy, StripeEvent
from prepaid import taskqueue
from sessions import clock
from sessions.models import ChargingSession, VehicleConnection
from sessions.models.charging import OPEN_STATUSES, SessionStatus

logger = logging.getLogger(__name__)


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _by_label(name: str, help_text: str, label: str, values: dict) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


class DatabaseCollector:
    """The gauges, read when Prometheus scrapes (a handful of aggregate queries)."""

    def collect(self):
        now = timezone.now()
        by_state = dict.fromkeys(SessionStatus.values, 0)
        by_state.update(ChargingSession.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield _by_label(
            "prepaid_sessions", "Charging sessions by state (open ones now; ended ones ever).", "state", by_state
        )
        yield _gauge(
            "prepaid_sessions_stop_not_carried_out",
            "Open sessions whose STOP the car did not carry out (the operator must act).",
            ChargingSession.objects.filter(status__in=OPEN_STATUSES, stop_not_carried_out=True).count(),
        )
        # The controller's own clock (sessions.clock): the simulator's in a sped-up demo.
        controller_now = clock.now()
        oldest_due = (
            ChargingSession.objects.filter(status__in=OPEN_STATUSES, next_action_at__lte=controller_now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=controller_now))
            .aggregate(at=Min("next_action_at"))["at"]
        )
        yield _gauge(
            "prepaid_controller_overdue_seconds",
            "How long the most overdue session has been waiting to be claimed by the controller loop, seconds.",
            (controller_now - oldest_due).total_seconds() if oldest_due else 0.0,
        )

        inbox = StripeEvent.objects.aggregate(
            pending=Count("id", filter=Q(status=StripeEvent.Status.PENDING)),
            failed=Count("id", filter=Q(status=StripeEvent.Status.FAILED)),
            oldest=Min("received_at", filter=Q(status=StripeEvent.Status.PENDING)),
        )
        yield _by_label(
            "prepaid_stripe_inbox_events",
            "Stripe webhook events waiting to be processed (pending) or given up on until replayed (failed).",
            "status",
            {"pending": inbox["pending"], "failed": inbox["failed"]},
        )
        yield _gauge(
            "prepaid_stripe_inbox_oldest_pending_seconds",
            "Age of the oldest Stripe webhook event still pending, seconds (0: none).",
            (now - inbox["oldest"]).total_seconds() if inbox["oldest"] else 0.0,
        )

        try:
            depth, up = float(taskqueue.broker().queue_size()), 1.0
        except Exception:  # an unreachable broker is itself what to report
            logger.warning("task broker unreachable while scraping metrics", exc_info=True)
            depth, up = float("nan"), 0.0
        yield _gauge("prepaid_task_queue_depth", "Tasks waiting at the django-q2 broker.", depth)
        yield _gauge("prepaid_task_broker_up", "1 if the django-q2 broker answered this scrape.", up)

        discrepancies = GaugeMetricFamily(
            "prepaid_payment_discrepancies",
            "Payment discrepancies found by reconciliation and not yet acknowledged, by kind and status "
            "(open: the operator must act; fixed: corrected automatically).",
            labels=["kind", "status"],
        )
        for kind, status, count in (
            PaymentDiscrepancy.objects.exclude(status=PaymentDiscrepancy.Status.RESOLVED)
            .order_by()
            .values_list("kind", "status")
            .annotate(n=Count("id"))
        ):
            discrepancies.add_metric([kind, status], count)
        yield discrepancies

        emails = dict.fromkeys(["pending", "failed"], 0)
        emails.update(
            Notification.objects.filter(status__in=list(emails))
            .order_by()
            .values_list("status")
            .annotate(n=Count("id"))
        )
        yield _by_label(
            "prepaid_emails", "Emails waiting to be sent (pending) or given up on (failed).", "status", emails
        )
        yield _gauge(
            "prepaid_vehicle_connections_needing_consent",
            "Drivers' vehicle connections that need the driver to reconnect.",
            VehicleConnection.objects.filter(status=VehicleConnection.Status.NEEDS_CONSENT).count(),
        )
        yield from metrics.stored_families()


def _authorized(request: HttpRequest) -> bool:
    expected = f"Bearer {settings.METRICS_TOKEN}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off (METRICS_TOKEN is empty)")
    if not _authorized(request):
        response = HttpResponse("a valid bearer token is needed\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    metrics.flush()  # this process's own latest counts too
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
