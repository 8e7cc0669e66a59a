"""Services for vehicle connections and vehicles: connect, snapshot, capabilities, disconnect.

The vehicle API is Smartcar's v3 (docs/reference/vehicle-api-v3.md): the *application* holds one
token (`sessions.vehicles.app_token`, shared by every worker), and every vehicle call names the
driver's vehicle API user (`sc-user-id`) and the vehicle. A connection is what one Connect consent
gave: the user id and the vehicles it shared (each a (user, vehicle) connection at the API).
There is no per-driver token to store, refresh or encrypt.

Network calls to the vehicle API never run inside a database transaction (STYLE.md): a command may
take minutes, and holding row locks that long would stall every other worker. Each service reads
what it needs in a short transaction, calls the API, then records the outcome in another short
transaction guarded by compare-and-set.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from sessions import clock, notices
from sessions.models import Vehicle, VehicleConnection
from sessions.vehicle_api import errors
from sessions.vehicle_api.signals import Capability, SignalSet
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import subscriptions

logger = logging.getLogger(__name__)

# What Connect asks the driver for (docs/reference/vehicle-api-v3.md §2: v3 keeps v2's scopes).
DEFAULT_SCOPES = ("read_vehicle_info", "read_battery", "read_charge", "control_charge")
CONNECT_MODES = ("live", "simulated", "test")

Status = VehicleConnection.Status
T = TypeVar("T")


class ConsentRequired(Exception):
    """The driver must reconnect the vehicle through Connect (access refused or withdrawn).

    The connection has been marked `needs_consent` (or was already not active)."""

    def __init__(self, connection_id: int, reason: str = "") -> None:
        self.connection_id = connection_id
        self.reason = reason
        super().__init__(f"connection {connection_id} needs the driver's consent again: {reason}".rstrip(": "))


_client_override: VehicleApiV3Client | None = None


def use_client(client: VehicleApiV3Client | None) -> None:
    """Make `get_client()` return `client` (the benchmarks' and tests' in-process simulator); None undoes it."""
    global _client_override
    _client_override = client


_SETTINGS = (
    "VEHICLE_API_V3_ORIGIN",
    "VEHICLE_MANAGEMENT_ORIGIN",
    "VEHICLE_IAM_URL",
    "VEHICLE_M2M_CLIENT_ID",
    "VEHICLE_M2M_CLIENT_SECRET",
    "VEHICLE_API_TIMEOUT_S",
    "VEHICLE_API_CONNECT_TIMEOUT_S",
)


def get_client() -> VehicleApiV3Client:
    """The application's vehicle API client (settings VEHICLE_*), one per process and settings,
    with the application token shared through the database (one renewal across machines).

    httpx clients are thread-safe and pool connections, so they are shared, not built per call."""
    if _client_override is not None:
        return _client_override
    return _client_for(tuple(getattr(settings, name) for name in _SETTINGS))


@functools.lru_cache(maxsize=4)
def _client_for(key: tuple) -> VehicleApiV3Client:
    from sessions.vehicles.app_token import application_token_source

    # Token expiry follows the product's clock (virtual in the benchmarks, like the simulator's).
    return VehicleApiV3Client.from_settings(token_source=application_token_source(), clock=clock.now)


def authorize_url(*, state: str, make: str | None = None, scopes=DEFAULT_SCOPES, force_prompt: bool = False) -> str:
    """The Connect URL to send the driver's browser to (docs/reference/vehicle-api-v3.md §2: still
    the OAuth-style authorize page; its redirect brings the consenting user's `user_id`).

    Query order and encoding follow the official Python SDK (spaces as `+`)."""
    from urllib.parse import urlencode

    if not state:
        raise ValueError("state is required (CSRF protection of the callback)")
    mode = settings.VEHICLE_CONNECT_MODE
    if mode not in CONNECT_MODES:
        raise ValueError(f"VEHICLE_CONNECT_MODE must be one of {CONNECT_MODES}, got {mode!r}")
    query: list[tuple[str, str]] = [
        ("response_type", "code"),
        ("client_id", settings.VEHICLE_CLIENT_ID),
        ("approval_prompt", "force" if force_prompt else "auto"),
        ("mode", mode),
        ("redirect_uri", settings.VEHICLE_REDIRECT_URI),
        ("scope", " ".join(scopes)),
        ("state", state),
    ]
    if make:
        query.append(("make", make))
    return f"{settings.VEHICLE_CONNECT_ORIGIN.rstrip('/')}/oauth/authorize?{urlencode(query)}"


# --- vehicle calls --------------------------------------------------------------------------------


def call_vehicle(connection: VehicleConnection, call: Callable[[str], T]) -> T:
    """Run `call(user_id)` for a vehicle of `connection` (the vehicle API user it acts for).

    A 403 PERMISSION answer (consent withdrawn, or a scope the driver did not grant for a command)
    means only the driver can restore access: the connection is marked needs_consent and
    ConsentRequired raised. So is a connection that is not active or has no vehicle API user id.
    A 401 is about the application's token, never the driver's: the client renews it once and
    any further failure is an ordinary VehicleApiError."""
    if connection.status != Status.ACTIVE:
        raise ConsentRequired(connection.pk, connection.status_reason or connection.status)
    if not connection.external_user_id:
        # Made before the vehicle API's user ids were stored, and never backfilled: only a new
        # Connect can name the user.
        connection_mark_needs_consent(connection_id=connection.pk, reason="no vehicle API user id; reconnect")
        raise ConsentRequired(connection.pk, "no vehicle API user id")
    try:
        return call(connection.external_user_id)
    except errors.PermissionDenied as exc:
        if exc.retryable:
            raise
        connection_mark_needs_consent(connection_id=connection.pk, reason=str(exc))
        raise ConsentRequired(connection.pk, str(exc)) from exc


def _transition(connection_id: int, new: str, *, reason: str = "") -> bool:
    """Compare-and-set the connection's status along TRANSITIONS; False if it had moved on."""
    allowed_from = [old for old, targets in VehicleConnection.TRANSITIONS.items() if new in targets]
    with transaction.atomic():
        changed = VehicleConnection.objects.filter(pk=connection_id, status__in=allowed_from).update(
            status=new, status_reason=reason[:255], status_changed_at=timezone.now()
        )
        if changed and new == Status.NEEDS_CONSENT:
            user_id = VehicleConnection.objects.values_list("user_id", flat=True).get(pk=connection_id)
            notices.connection_needs_consent(connection_id=connection_id, user_id=user_id)
    if changed:
        logger.info("vehicle connection %s → %s (%s)", connection_id, new, reason)
    return bool(changed)


def connection_mark_needs_consent(*, connection_id: int, reason: str) -> bool:
    """Mark an active connection as needing the driver's consent again. False if it was not active."""
    return _transition(connection_id, Status.NEEDS_CONSENT, reason=reason)


# --- connect ----------------------------------------------------------------------------------------


def connection_create(*, user, external_user_id: str, client: VehicleApiV3Client | None = None) -> VehicleConnection:
    """Finish Connect for the vehicle API user `external_user_id` (the `user_id` of Connect's
    redirect): list the user's vehicles at the API, read their attributes and signals (capacity,
    charge limit, what each car reports, its state), and store the connection with its vehicles.

    All reads happen before anything is stored, so a failure leaves nothing half-made (the driver
    simply connects again). A vehicle this user already had on an older connection moves to the
    new one (its history and sessions stay attached); an older connection left without vehicles is
    marked disconnected.
    Raises ValueError for an empty user id, errors.VehicleApiError (nothing is stored then)."""
    if not external_user_id or len(external_user_id) > 64:
        raise ValueError("a vehicle API user id (1..64 characters) is required")
    client = client or get_client()
    fetched = _fetch_vehicles(client, external_user_id)
    now = timezone.now()
    with transaction.atomic():
        connection = VehicleConnection.objects.create(
            user=user, status=Status.ACTIVE, status_changed_at=now, external_user_id=external_user_id
        )
        _upsert_vehicles(connection, fetched)
        subscriptions.vehicles_subscribe_later(connection.vehicles.filter(is_active=True).values_list("pk", flat=True))
    logger.info("vehicle connection %s created with %d vehicle(s)", connection.pk, len(fetched))
    return connection


def connection_sync_vehicles(*, connection_id: int, client: VehicleApiV3Client | None = None) -> list[Vehicle]:
    """Re-read the connection's vehicle list and details: new vehicles are added, known ones
    updated, vehicles no longer shared are deactivated. Returns the active vehicles.
    Raises ConsentRequired, errors.VehicleApiError (nothing changed then)."""
    client = client or get_client()
    connection = VehicleConnection.objects.get(pk=connection_id)
    fetched = call_vehicle(connection, lambda user_id: _fetch_vehicles(client, user_id))
    with transaction.atomic():
        connection = VehicleConnection.objects.select_for_update().get(pk=connection_id)
        if connection.status != Status.ACTIVE:
            raise ConsentRequired(connection_id, connection.status_reason or connection.status)
        _upsert_vehicles(connection, fetched)
        shared = [vehicle_id for vehicle_id, _fields in fetched]
        gone = connection.vehicles.exclude(external_id__in=shared)
        subscriptions.vehicles_unsubscribe_later(gone.filter(is_active=True).values_list("pk", flat=True))
        gone.update(is_active=False, updated_at=timezone.now())
        subscriptions.vehicles_subscribe_later(
            connection.vehicles.filter(is_active=True)
            .exclude(subscription_status="subscribed")
            .values_list("pk", flat=True)
        )
    return list(connection.vehicles.filter(is_active=True))


def _fetch_vehicles(client: VehicleApiV3Client, user_id: str) -> list[tuple[str, dict]]:
    """The user's vehicles (connections at the API are (user, vehicle) pairs) with their details."""
    vehicle_ids: list[str] = []
    for link in client.list_connections(user_id=user_id):
        if link.vehicle_id and link.vehicle_id not in vehicle_ids and link.user_id in (None, user_id):
            vehicle_ids.append(link.vehicle_id)
    return [(vehicle_id, _read_vehicle_details(client, user_id, vehicle_id)) for vehicle_id in vehicle_ids]


def _upsert_vehicles(connection: VehicleConnection, fetched: list[tuple[str, dict]]) -> None:
    """Inside the caller's transaction: create or update the connection's vehicles."""
    user = connection.user
    superseded: set[int] = set()
    for vehicle_id, fields in fetched:
        # The same car on an older connection of this user (a reconnect): move that row here.
        existing = (
            Vehicle.objects.select_for_update()
            .filter(owner=user, external_id=vehicle_id)
            .order_by(models.Case(models.When(connection=connection, then=0), default=1), "-pk")
            .first()
        )
        if existing is None:
            Vehicle.objects.create(connection=connection, owner=user, external_id=vehicle_id, **fields)
            continue
        if existing.connection_id != connection.pk:
            superseded.add(existing.connection_id)
        for name, value in fields.items():
            if name == "signal_capabilities":
                value = {**existing.signal_capabilities, **value}
            setattr(existing, name, value)
        existing.connection = connection
        existing.is_active = True
        existing.save()
    for old_id in superseded:
        if not Vehicle.objects.filter(connection_id=old_id).exists():
            # Nothing to revoke at the API: the new connection is the same (user, vehicle) there.
            _transition(old_id, Status.DISCONNECTED, reason="superseded by a new connection")


def _read_vehicle_details(client: VehicleApiV3Client, user_id: str, vehicle_id: str) -> dict:
    """Attributes (required) plus what one signals read tells: capacity, the charge limit, what the
    car reports (capabilities) and its state. The signals are best effort: a car whose store is
    still empty (not subscribed yet) or asleep is connected all the same."""
    info = client.get_vehicle(vehicle_id)
    fields: dict = {"make": info.make or "", "model": info.model or "", "year": info.year}
    try:
        signals = client.get_signals(user_id, vehicle_id).signals
    except errors.VehicleApiError as exc:
        logger.info("no signals for vehicle %s at connect: %r", vehicle_id, exc)
        return fields
    fields.update(_capability_fields(signals, {}))
    if signals.capacity_wh:
        fields["capacity_wh"] = signals.capacity_wh
    fields.update(_snapshot_fields(signals))
    return fields


# --- what signals tell about a vehicle ------------------------------------------------------------------

#: Capabilities are facts (docs/reference/vehicle-api-v3.md §3): the car answered the signal, or
#: COMPATIBILITY/PERMISSION said it never will. UNKNOWN (a transient error) teaches nothing.
FACTS = (Capability.CAPABLE, Capability.NOT_CAPABLE, Capability.NOT_PERMITTED)


def _capability_fields(signals: SignalSet, known: Mapping[str, str]) -> dict:
    """The vehicle fields that change with what `signals` answered (empty when nothing new)."""
    learned = {code: cap.value for code, cap in signals.capabilities().items() if cap in FACTS}
    merged = {**known, **learned}
    if merged == dict(known):
        return {}
    fields: dict = {"signal_capabilities": merged}
    from sessions.vehicle_api.signals import CHARGE_LIMITS

    limits = merged.get(CHARGE_LIMITS)
    if limits == Capability.CAPABLE.value:
        fields["charge_limit_readable"] = True
    elif limits is not None:
        # A limit we cannot read we cannot put back after a session: never set one.
        fields["charge_limit_readable"] = False
        fields["charge_limit_settable"] = False
    return fields


def _charge_state(signals: SignalSet) -> str | None:
    """CHARGING | FULLY_CHARGED | NOT_CHARGING from the detailed status, else from IsCharging."""
    status = signals.charging_status
    if status in (Vehicle.ChargeState.CHARGING, Vehicle.ChargeState.FULLY_CHARGED, Vehicle.ChargeState.NOT_CHARGING):
        return status
    charging = signals.is_charging
    if charging is None:
        return None
    return Vehicle.ChargeState.CHARGING if charging else Vehicle.ChargeState.NOT_CHARGING


def charge_state(signals: SignalSet) -> str | None:
    return _charge_state(signals)


def _snapshot_fields(signals: SignalSet) -> dict:
    """The vehicle's snapshot from one signals read. Its `data_age` is the oldest time of the
    signals it uses: the state is only as fresh as its stalest part."""
    from sessions.vehicle_api import signals as codes

    used = [signals.get(code) for code in (codes.SOC, codes.IS_PLUGGED_IN, codes.CHARGING_STATUS, codes.IS_CHARGING)]
    used = [s for s in used if s is not None and s.ok]
    if not used:
        return {}
    fields: dict = {"snapshot_at": timezone.now()}
    if signals.soc_bp is not None:
        fields["soc_bp"] = signals.soc_bp
    if signals.is_plugged_in is not None:
        fields["is_plugged_in"] = signals.is_plugged_in
    state = _charge_state(signals)
    if state is not None:
        fields["charge_state"] = state
    if signals.charge_limit_bp is not None:
        fields["charge_limit_bp"] = signals.charge_limit_bp
    fields["data_age"] = _oldest(*(s.data_time for s in used))
    fields["fetched_at"] = _oldest(*(s.retrieved_at for s in used))
    return fields


def vehicle_learn_capabilities(vehicle: Vehicle, signals: SignalSet) -> None:
    """Store what `signals` taught about the vehicle's capabilities, if anything (one UPDATE)."""
    fields = _capability_fields(signals, vehicle.signal_capabilities or {})
    if not fields:
        return
    for name, value in fields.items():
        setattr(vehicle, name, value)
    Vehicle.objects.filter(pk=vehicle.pk).update(**fields, updated_at=timezone.now())


# --- vehicle snapshot ---------------------------------------------------------------------------------


def vehicle_refresh_snapshot(*, vehicle_id: int, client: VehicleApiV3Client | None = None) -> Vehicle:
    """Read the vehicle's signals (one billed call) and store them as its snapshot, with what
    they teach about its capabilities. A reading older than the stored one never overwrites it.
    Raises ConsentRequired (access refused: connection marked needs_consent), errors.VehicleApiError."""
    client = client or get_client()
    vehicle = Vehicle.objects.select_related("connection").get(pk=vehicle_id)
    if not vehicle.is_active:
        raise ConsentRequired(vehicle.connection_id, "vehicle is no longer connected")
    signals = call_vehicle(vehicle.connection, lambda user_id: client.get_signals(user_id, vehicle.external_id)).signals
    vehicle_learn_capabilities(vehicle, signals)
    fields = _snapshot_fields(signals)
    if fields:
        rows = Vehicle.objects.filter(pk=vehicle_id)
        if fields.get("data_age") is not None:
            # Two refreshes racing: keep the newer reading, whatever order they finish in.
            rows = rows.filter(Q(data_age__isnull=True) | Q(data_age__lte=fields["data_age"]))
        rows.update(**fields, updated_at=timezone.now())
    vehicle.refresh_from_db()
    return vehicle


def _oldest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --- disconnect ------------------------------------------------------------------------------------------


def connection_disconnect(*, connection_id: int, client: VehicleApiV3Client | None = None) -> VehicleConnection:
    """Remove the (user, vehicle) connections of every vehicle of the connection at the vehicle
    API, then mark it disconnected and deactivate its vehicles. Idempotent.

    Removal at the API is best effort: an answer that it is already gone (404) or a permanent
    refusal does not stop the local disconnect. Raises errors.VehicleApiError only for retryable
    failures (nothing changed locally; try again: it is idempotent)."""
    client = client or get_client()
    connection = VehicleConnection.objects.get(pk=connection_id)
    if connection.status != Status.DISCONNECTED and connection.external_user_id:
        ours = set(connection.vehicles.filter(is_active=True).values_list("external_id", flat=True))
        try:
            # Connection ids only ever come from the API's own list (never built from ids).
            links = client.list_connections(user_id=connection.external_user_id)
        except errors.VehicleApiError as exc:
            if exc.retryable:
                raise
            logger.info("listing connections of connection %s failed for good: %r", connection_id, exc)
            links = []
        for link in links:
            if link.vehicle_id not in ours:
                continue
            try:
                client.delete_connection(link.id)
            except errors.VehicleApiError as exc:
                if exc.retryable:
                    raise  # nothing changed locally yet: the driver (or a task) can simply retry
                # Refused for good: the driver's wish to disconnect wins either way.
                logger.info("removing vehicle %s at the API failed for good: %r", link.vehicle_id, exc)
    with transaction.atomic():
        _transition(connection_id, Status.DISCONNECTED, reason="disconnected by the driver")
        subscriptions.vehicles_unsubscribe_later(
            Vehicle.objects.filter(connection_id=connection_id).values_list("pk", flat=True)
        )
        Vehicle.objects.filter(connection_id=connection_id).update(is_active=False, updated_at=timezone.now())
    connection.refresh_from_db()
    return connection


# --- connections made before v3 ------------------------------------------------------------------------


def connections_backfill_user_ids(*, client: VehicleApiV3Client | None = None) -> tuple[int, int]:
    """Fill the vehicle API user id of active connections made before v3 stored one: the API's
    connections of each of their vehicles name the user (`list_connections(vehicle_id=…)`). Only an
    answer naming exactly one user for all of a connection's vehicles is taken; anything else is
    left for the driver's reconnect (such a connection asks for consent on first use).
    Returns (filled, left). Raises errors.VehicleApiError for a retryable failure (rerun it)."""
    client = client or get_client()
    filled = left = 0
    pending = VehicleConnection.objects.filter(status=Status.ACTIVE, external_user_id="")
    for connection in pending.iterator():
        vehicle_ids = list(connection.vehicles.filter(is_active=True).values_list("external_id", flat=True))
        users: set[str] = set()
        for vehicle_id in vehicle_ids:
            try:
                links = client.list_connections(vehicle_id=vehicle_id)
            except errors.VehicleApiError as exc:
                if exc.retryable:
                    raise
                links = []
            users |= {link.user_id for link in links if link.user_id and link.vehicle_id in (None, vehicle_id)}
        if len(users) == 1 and vehicle_ids:
            # Compare-and-set: a reconnect meanwhile made its own connection; this one stays as is.
            filled += VehicleConnection.objects.filter(pk=connection.pk, external_user_id="").update(
                external_user_id=users.pop()
            )
        else:
            left += 1
    return filled, left


# --- reads (selector-style) ---------------------------------------------------------------------------


def vehicles_for_user(*, user) -> QuerySet[Vehicle]:
    """The driver's vehicles to show: active ones plus those waiting for a reconnect."""
    return (
        Vehicle.objects.filter(owner=user, connection__status__in=[Status.ACTIVE, Status.NEEDS_CONSENT])
        .filter(is_active=True)
        .select_related("connection")
    )


def token_keys_rotate() -> tuple[int, int]:
    """Re-encrypt the stored application tokens under the newest TOKEN_ENCRYPTION_KEYS key.

    Compare-and-set on the old ciphertext: a renewal writing a new token meanwhile wins and is
    left alone (it is already under the newest key). Returns (rotated, skipped)."""
    from sessions.models import ApplicationToken
    from sessions.vehicles import crypto

    rotated = skipped = 0
    for pk, ciphertext in ApplicationToken.objects.values_list("pk", "token_ciphertext").iterator():
        if not ciphertext or crypto.is_current(ciphertext):
            skipped += 1
            continue
        updated = ApplicationToken.objects.filter(pk=pk, token_ciphertext=ciphertext).update(
            token_ciphertext=crypto.rotate(ciphertext)
        )
        if updated:
            rotated += 1
        else:
            skipped += 1
    return rotated, skipped
