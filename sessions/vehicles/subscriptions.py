"""Webhook subscriptions: a connected car is subscribed to our webhook (VEHICLE_WEBHOOK_ID) through
the management API, and unsubscribed when it is disconnected (docs/vehicle-api-v3-switch.md step 3).

Without a subscription the car sends no VEHICLE_STATE and `/signals` may be empty
(docs/reference/vehicle-api-v3.md §3, "Freshness model"), so it matters: the state is kept per
vehicle (`Vehicle.subscription_*`, shown in the admin and on the dashboard), and a failed attempt is
retried with a growing delay by the `vehicle-subscriptions-retry` schedule until it succeeds.
`POST /subscriptions` answering 202 ("creation in progress") or 409 (it exists) both mean
subscribed. Calls to the management API run in a task, never in the driver's request, and never
inside a transaction (STYLE.md).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from prepaid import taskqueue
from sessions import clock
from sessions.models import Vehicle, VehicleConnection
from sessions.vehicle_api import errors
from sessions.vehicle_api.v3 import VehicleApiV3Client

logger = logging.getLogger(__name__)

SubscriptionStatus = Vehicle.SubscriptionStatus
RETRY_BASE = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
# Rows the schedule takes per run: a long outage leaves many; the next run takes the rest.
RETRY_BATCH = 200

_client_override: VehicleApiV3Client | None = None


def use_management_client(client: VehicleApiV3Client | None) -> None:
    """Make `management_client()` return `client` (the simulator in process); None undoes it."""
    global _client_override
    _client_override = client


def management_client() -> VehicleApiV3Client:
    """The v3 client the management API is called with (the application's token, shared)."""
    if _client_override is not None:
        return _client_override
    return _client_from_settings(settings.VEHICLE_MANAGEMENT_ORIGIN, settings.VEHICLE_M2M_CLIENT_ID)


@functools.lru_cache(maxsize=2)
def _client_from_settings(_origin: str, _client_id: str) -> VehicleApiV3Client:
    from sessions.vehicles.app_token import application_token_source

    return VehicleApiV3Client.from_settings(token_source=application_token_source(), clock=clock.now)


def webhook_id() -> str:
    """Our webhook's id; empty = no webhook configured (nothing is subscribed, readings are polled)."""
    return settings.VEHICLE_WEBHOOK_ID


def _retry_delay(attempts: int) -> timedelta:
    return min(RETRY_CAP, RETRY_BASE * 2 ** max(0, attempts - 1))


def _set(vehicle_id: int, **fields) -> None:
    Vehicle.objects.filter(pk=vehicle_id).update(subscription_changed_at=clock.now(), **fields)


# --- asking for it (from connect / disconnect, inside their transactions) -------------------------------------


def vehicles_subscribe_later(vehicle_ids: Iterable[int]) -> None:
    """Mark the cars `subscribing` and subscribe each in a task once the caller's transaction
    commits. Without a configured webhook, nothing."""
    ids = list(vehicle_ids)
    if not webhook_id() or not ids:
        return
    now = clock.now()
    Vehicle.objects.filter(pk__in=ids).exclude(subscription_status=SubscriptionStatus.SUBSCRIBED).update(
        subscription_status=SubscriptionStatus.SUBSCRIBING,
        subscription_error="",
        subscription_attempts=0,
        subscription_retry_at=now + RETRY_BASE,  # the schedule's fallback if the task is lost
        subscription_changed_at=now,
    )
    for pk in ids:
        transaction.on_commit(
            lambda pk=pk: taskqueue.enqueue("sessions.tasks.vehicle_subscribe", pk, task_name=f"subscribe-{pk}")
        )


def vehicles_unsubscribe_later(vehicle_ids: Iterable[int]) -> None:
    """Mark the (subscribed, or being subscribed) cars `unsubscribing`; a task unsubscribes each."""
    if not webhook_id():
        return
    vehicles = Vehicle.objects.filter(pk__in=list(vehicle_ids)).exclude(
        subscription_status__in=("", SubscriptionStatus.UNSUBSCRIBED)
    )
    ids = list(vehicles.values_list("pk", flat=True))
    now = clock.now()
    Vehicle.objects.filter(pk__in=ids).update(
        subscription_status=SubscriptionStatus.UNSUBSCRIBING,
        subscription_error="",
        subscription_attempts=0,
        subscription_retry_at=now + RETRY_BASE,
        subscription_changed_at=now,
    )
    for pk in ids:
        transaction.on_commit(
            lambda pk=pk: taskqueue.enqueue("sessions.tasks.vehicle_unsubscribe", pk, task_name=f"unsubscribe-{pk}")
        )


# --- doing it (tasks) -------------------------------------------------------------------------------------------


def _failed(vehicle: Vehicle, status: str, reason: str) -> str:
    attempts = vehicle.subscription_attempts + 1
    _set(
        vehicle.pk,
        subscription_status=status,
        subscription_error=reason[:255],
        subscription_attempts=attempts,
        subscription_retry_at=clock.now() + _retry_delay(attempts),
    )
    logger.warning("vehicle %s: webhook %s failed (attempt %d): %s", vehicle.pk, status, attempts, reason)
    return status


def vehicle_subscribe(*, vehicle_id: int, client: VehicleApiV3Client | None = None) -> str:
    """Subscribe the car to our webhook; returns its subscription status afterwards."""
    vehicle = Vehicle.objects.select_related("connection").filter(pk=vehicle_id).first()
    if vehicle is None:
        return ""
    if vehicle.subscription_status not in (SubscriptionStatus.SUBSCRIBING, SubscriptionStatus.FAILED):
        return vehicle.subscription_status  # subscribed already, or disconnected meanwhile
    if not vehicle.is_active or vehicle.connection.status != VehicleConnection.Status.ACTIVE:
        _set(vehicle.pk, subscription_status="", subscription_retry_at=None)
        return ""
    user_id = vehicle.connection.external_user_id
    if not user_id:
        return _failed(vehicle, SubscriptionStatus.FAILED, "the connection has no vehicle API user id yet")
    try:
        result = (client or management_client()).subscribe(webhook_id(), user_id, vehicle.external_id)
    except errors.VehicleApiError as exc:
        return _failed(vehicle, SubscriptionStatus.FAILED, f"{type(exc).__name__}: {exc}")
    # 202 (created) and 409 (it exists) both leave the car subscribed. Compare-and-set: a
    # disconnect meanwhile (unsubscribing) wins.
    Vehicle.objects.filter(
        pk=vehicle.pk, subscription_status__in=(SubscriptionStatus.SUBSCRIBING, SubscriptionStatus.FAILED)
    ).update(
        subscription_status=SubscriptionStatus.SUBSCRIBED,
        subscription_error="" if result.created else "already subscribed",
        subscription_retry_at=None,
        subscription_changed_at=clock.now(),
    )
    vehicle.refresh_from_db(fields=["subscription_status"])
    return vehicle.subscription_status


def vehicle_unsubscribe(*, vehicle_id: int, client: VehicleApiV3Client | None = None) -> str:
    """Remove every subscription of the car to our webhook (none left is success)."""
    vehicle = Vehicle.objects.select_related("connection").filter(pk=vehicle_id).first()
    if vehicle is None or vehicle.subscription_status != SubscriptionStatus.UNSUBSCRIBING:
        return vehicle.subscription_status if vehicle else ""
    client = client or management_client()
    hook = webhook_id()
    try:
        found = client.list_subscriptions(
            hook, vehicle_id=vehicle.external_id, user_id=vehicle.connection.external_user_id or None
        )
        for subscription in found:
            if subscription.id and subscription.vehicle_id in (None, vehicle.external_id):
                client.unsubscribe(hook, subscription.id)  # False (404): already gone, also fine
    except errors.VehicleApiError as exc:
        return _failed(vehicle, SubscriptionStatus.UNSUBSCRIBING, f"{type(exc).__name__}: {exc}")
    Vehicle.objects.filter(pk=vehicle.pk, subscription_status=SubscriptionStatus.UNSUBSCRIBING).update(
        subscription_status=SubscriptionStatus.UNSUBSCRIBED,
        subscription_error="",
        subscription_retry_at=None,
        subscription_changed_at=clock.now(),
    )
    return SubscriptionStatus.UNSUBSCRIBED


def subscriptions_retry_due(*, client: VehicleApiV3Client | None = None) -> int:
    """The schedule's sweep: retry every subscribe or unsubscribe whose retry time has come (a
    failure, or a task that never ran). Returns how many were tried."""
    if not webhook_id():
        return 0
    due = (
        Vehicle.objects.filter(
            Q(subscription_status__in=(SubscriptionStatus.SUBSCRIBING, SubscriptionStatus.FAILED))
            | Q(subscription_status=SubscriptionStatus.UNSUBSCRIBING),
            subscription_retry_at__lte=clock.now(),
        )
        .order_by("subscription_retry_at")
        .values_list("pk", "subscription_status")[:RETRY_BATCH]
    )
    tried = 0
    for pk, status in list(due):
        if status == SubscriptionStatus.UNSUBSCRIBING:
            vehicle_unsubscribe(vehicle_id=pk, client=client)
        else:
            vehicle_subscribe(vehicle_id=pk, client=client)
        tried += 1
    return tried
