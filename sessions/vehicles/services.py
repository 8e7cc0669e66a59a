"""Services for vehicle connections and vehicles: connect, token refresh, snapshot, disconnect.

Network calls to the vehicle API never run inside a database transaction (STYLE.md): a command may
take minutes, and holding row locks that long would stall every other worker. Each service reads
what it needs in a short transaction, calls the API, then records the outcome in another short
transaction guarded by compare-and-set.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from sessions import clock, notices
from sessions.models import Vehicle, VehicleConnection
from sessions.vehicle_api import TokenPair, VehicleApiClient, errors, waiting
from sessions.vehicles import crypto, subscriptions

logger = logging.getLogger(__name__)

#: Refresh the access token when less than this is left (tokens live 2 h).
REFRESH_MARGIN = timedelta(minutes=5)
# Refresh tokens live 60 days (docs/reference/vehicle-api.md §4.2); the SDKs count it from receipt, as we do.
REFRESH_TOKEN_LIFETIME = timedelta(days=60)
#: How often a caller waiting for someone else's refresh looks at the row again.
LEASE_POLL_S = 0.05

Status = VehicleConnection.Status
T = TypeVar("T")


class ConsentRequired(Exception):
    """The driver must reconnect the vehicle through Connect (tokens refused, revoked or expired).

    The connection has been marked `needs_consent` (or was already not active)."""

    def __init__(self, connection_id: int, reason: str = "") -> None:
        self.connection_id = connection_id
        self.reason = reason
        super().__init__(f"connection {connection_id} needs the driver's consent again: {reason}".rstrip(": "))


_client_override: VehicleApiClient | None = None


def use_client(client: VehicleApiClient | None) -> None:
    """Make `get_client()` return `client` (the fleet benchmark's in-process simulator); None undoes it."""
    global _client_override
    _client_override = client


def get_client() -> VehicleApiClient:
    """The application's vehicle API client (settings VEHICLE_*), one per process and settings.

    httpx clients are thread-safe and pool connections, so they are shared, not built per call."""
    if _client_override is not None:
        return _client_override
    key = tuple(
        getattr(settings, name)
        for name in (
            "VEHICLE_API_ORIGIN",
            "VEHICLE_AUTH_URL",
            "VEHICLE_CONNECT_ORIGIN",
            "VEHICLE_CLIENT_ID",
            "VEHICLE_CLIENT_SECRET",
            "VEHICLE_REDIRECT_URI",
            "VEHICLE_CONNECT_MODE",
            "VEHICLE_API_TIMEOUT_S",
            "VEHICLE_API_CONNECT_TIMEOUT_S",
        )
    )
    return _client_for(key)


@functools.lru_cache(maxsize=4)
def _client_for(key: tuple) -> VehicleApiClient:
    return VehicleApiClient.from_settings()


def _lease_duration() -> timedelta:
    # Longer than the slowest possible token request (the client's read timeout), so a lease only
    # expires when its holder has died; a live holder always finishes (or times out) before.
    return timedelta(seconds=float(settings.VEHICLE_API_TIMEOUT_S) + 30)


def _is_consent_error(exc: errors.VehicleApiError) -> bool:
    return isinstance(exc, errors.CONSENT_ERRORS) and not exc.retryable


# --- connect ----------------------------------------------------------------------------------------


def connection_create_from_code(*, user, code: str, client: VehicleApiClient | None = None) -> VehicleConnection:
    """Finish Connect: exchange `code`, list the vehicles, read their attributes, capacity and
    charge-limit capability, and store the connection (encrypted tokens) with its vehicles.

    All reads happen before anything is stored, so a failure leaves nothing half-made (the driver
    simply connects again). A vehicle this user already had on an older connection moves to the
    new one (its history and sessions stay attached); an older connection left without vehicles is
    marked disconnected and its tokens erased.
    Raises errors.VehicleApiError (OAuthError for a refused/expired code); nothing is stored then."""
    client = client or get_client()
    pair = client.exchange_code(code)
    fetched = _fetch_vehicles(client, pair.access_token)
    try:
        external_user_id = client.user_id(pair.access_token).id
    except errors.VehicleApiError as exc:
        external_user_id = ""  # nice to have (support, webhooks); never worth failing a connect
        logger.info("vehicle API user id unavailable: %r", exc)

    now = timezone.now()
    with transaction.atomic():
        connection = VehicleConnection(
            user=user, status=Status.ACTIVE, status_changed_at=now, external_user_id=external_user_id
        )
        _set_tokens(connection, pair)
        connection.save()
        _upsert_vehicles(connection, fetched)
        subscriptions.vehicles_subscribe_later(connection.vehicles.filter(is_active=True).values_list("pk", flat=True))
    logger.info("vehicle connection %s created with %d vehicle(s)", connection.pk, len(fetched))
    return connection


def connection_create_from_tokens(
    *, user, access_token: str, refresh_token: str, expires_in_s: int, external_user_id: str = ""
) -> VehicleConnection:
    """Store a token pair obtained without the code exchange (the simulator's admin API: demo data,
    benchmarks, tests), encrypted, with expiries counted as the official SDKs count them."""
    connection = connection_from_tokens(
        user=user,
        access_token=access_token,
        refresh_token=refresh_token,
        expires_in_s=expires_in_s,
        external_user_id=external_user_id,
    )
    connection.save()
    return connection


def connection_from_tokens(
    *, user, access_token: str, refresh_token: str, expires_in_s: int, external_user_id: str = ""
) -> VehicleConnection:
    """`connection_create_from_tokens`'s row, not yet saved (a benchmark creates thousands in bulk)."""
    now = clock.now()
    connection = VehicleConnection(
        user=user,
        access_expires_at=now + timedelta(seconds=expires_in_s),
        refresh_expires_at=now + REFRESH_TOKEN_LIFETIME,
        external_user_id=external_user_id,
    )
    connection.access_token = access_token
    connection.refresh_token = refresh_token
    return connection


def connection_sync_vehicles(*, connection_id: int, client: VehicleApiClient | None = None) -> list[Vehicle]:
    """Re-read the connection's vehicle list and details: new vehicles are added, known ones
    updated, vehicles no longer shared are deactivated. Returns the active vehicles.
    Raises ConsentRequired, errors.VehicleApiError (nothing changed then)."""
    client = client or get_client()
    fetched = call_with_token(connection_id, client, lambda token: _fetch_vehicles(client, token))
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


def _fetch_vehicles(client: VehicleApiClient, token: str) -> list[tuple[str, dict]]:
    vehicle_ids = client.list_vehicles(token)
    return [(vehicle_id, _read_vehicle_details(client, token, vehicle_id)) for vehicle_id in vehicle_ids]


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
            setattr(existing, name, value)
        existing.connection = connection
        existing.is_active = True
        existing.save()
    for old_id in superseded:
        if not Vehicle.objects.filter(connection_id=old_id).exists():
            _transition(old_id, Status.DISCONNECTED, reason="superseded by a new connection")
            # Erase, do not revoke: DELETE /application would cut the NEW connection's access to
            # the same vehicle too (access is per application and vehicle).
            VehicleConnection.objects.filter(pk=old_id).update(access_token_ciphertext="", refresh_token_ciphertext="")


def _read_vehicle_details(client: VehicleApiClient, token: str, vehicle_id: str) -> dict:
    """Attributes (required) plus the best-effort facts: capacity and charge-limit capability."""
    attributes = client.attributes(token, vehicle_id)
    fields: dict = {"make": attributes.make, "model": attributes.model, "year": attributes.year}
    try:
        fields["capacity_wh"] = client.battery_capacity_wh(token, vehicle_id).capacity_wh
    except errors.VehicleApiError as exc:
        # Capacity only improves estimates; a connect must not fail for it.
        logger.info("no battery capacity for vehicle %s: %r", vehicle_id, exc)
    try:
        fields["charge_limit_bp"] = client.charge_limit(token, vehicle_id).limit_bp
        fields["charge_limit_readable"] = True
    except errors.CompatibilityError:
        fields["charge_limit_readable"] = False
        fields["charge_limit_settable"] = False
    except errors.VehicleApiError as exc:
        # e.g. CHARGING_PLUG_NOT_CONNECTED on makes exposing the limit only while plugged: unknown.
        logger.info("charge limit of vehicle %s not known yet: %r", vehicle_id, exc)
    return fields


def _set_tokens(connection: VehicleConnection, pair: TokenPair) -> None:
    connection.access_token = pair.access_token
    connection.refresh_token = pair.refresh_token
    connection.access_expires_at = pair.expires_at
    connection.refresh_expires_at = pair.refresh_expires_at


# --- access token with refresh ------------------------------------------------------------------------


def connection_access_token(
    *,
    connection_id: int,
    client: VehicleApiClient | None = None,
    rejected_token: str | None = None,
    sleep: Callable[[float], None] = waiting.sleep,
) -> str:
    """A valid access token for the connection, refreshing it first when < 5 min are left, or when
    it is still `rejected_token` (the API answered 401 to it: refresh even if not yet expired; if
    another caller already replaced it, their fresh token is returned without a second refresh).

    Raises ConsentRequired (connection not active, refresh token expired or refused: the
    connection is marked needs_consent), errors.VehicleApiError for retryable refresh failures.

    Concurrency: refresh tokens are single-use, so two workers refreshing with the same one would
    lose a rotated pair. A refresh *lease* on the row serialises refreshes without holding a
    transaction during the HTTP call:
      1. short transaction, row locked (select_for_update): token fresh → return it; lease free or
         expired → take it (lease id + expiry) and read the refresh token; lease held → wait;
      2. no transaction: call the token endpoint;
      3. short transaction: write the new pair, bump token_version and clear the lease, only if we
         still hold the lease (compare-and-set on the lease id).
    A caller that found the lease held polls the row until the holder has written the new pair
    (token_version changes) and returns that token: exactly one refresh call, nobody loses it.
    """
    client_factory = (lambda: client) if client is not None else get_client
    lease_id = uuid.uuid4().hex
    while True:
        # Token expiry follows the controller's clock (virtual in the fleet benchmark, like the
        # simulator's); the refresh lease is about live processes, so it follows the wall clock.
        now = clock.now()
        wall = timezone.now()
        with transaction.atomic():
            connection = VehicleConnection.objects.select_for_update().get(pk=connection_id)
            if connection.status != Status.ACTIVE:
                raise ConsentRequired(connection_id, connection.status_reason or connection.status)
            current = connection.access_token
            if (
                connection.access_expires_at
                and connection.access_expires_at - now > REFRESH_MARGIN
                and (rejected_token is None or current != rejected_token)
            ):
                return current
            refresh_expired = connection.refresh_expires_at is not None and connection.refresh_expires_at <= now
            if refresh_expired:
                _transition(connection_id, Status.NEEDS_CONSENT, reason="refresh token expired")
            elif connection.refresh_lease_until is None or connection.refresh_lease_until <= wall:
                # Decrypt before taking the lease: a key problem must not leave a lease behind.
                refresh_token = connection.refresh_token
                VehicleConnection.objects.filter(pk=connection_id).update(
                    refresh_lease_id=lease_id, refresh_lease_until=wall + _lease_duration()
                )
                break
            seen_version = connection.token_version
        # Raised outside the atomic block, or the status change would be rolled back with it.
        if refresh_expired:
            raise ConsentRequired(connection_id, "refresh token expired")
        # Someone else is refreshing: wait for their result rather than spending the same
        # single-use refresh token a second time.
        _wait_for_refresh(connection_id, seen_version, sleep)

    try:
        pair = client_factory().refresh(refresh_token)
    except errors.VehicleApiError as exc:
        _release_lease(connection_id, lease_id, consent_lost=_is_consent_error(exc), reason=str(exc)[:255])
        if _is_consent_error(exc):
            raise ConsentRequired(connection_id, str(exc)) from exc
        raise
    except BaseException:
        _release_lease(connection_id, lease_id, consent_lost=False)
        raise

    with transaction.atomic():
        holder = VehicleConnection.objects.select_for_update().get(pk=connection_id)
        if holder.refresh_lease_id != lease_id:
            # Our lease expired and someone took over. Our pair is still valid for 2 h: use it,
            # but do not overwrite theirs (the newest write is the one the others now rely on).
            logger.warning("refresh lease of connection %s lost; not storing our pair", connection_id)
            return pair.access_token
        _set_tokens(holder, pair)
        holder.token_version += 1
        holder.refresh_lease_id = ""
        holder.refresh_lease_until = None
        holder.last_refreshed_at = timezone.now()
        holder.save(
            update_fields=[
                "access_token_ciphertext",
                "refresh_token_ciphertext",
                "access_expires_at",
                "refresh_expires_at",
                "token_version",
                "refresh_lease_id",
                "refresh_lease_until",
                "last_refreshed_at",
                "updated_at",
            ]
        )
    return pair.access_token


def call_with_token(
    connection_id: int,
    client: VehicleApiClient,
    call: Callable[[str], T],
    *,
    loaded: VehicleConnection | None = None,
) -> T:
    """Run `call(access_token)`; on a 401 refresh once (the token may have died early: clock skew,
    server-side rotation) and retry. A 401 after that, a 403 (scope withdrawn) or a refused refresh
    means only the driver can restore access: mark needs_consent and raise ConsentRequired.

    `loaded`: the connection row the caller already holds (the controller loads it with the
    session). Its access token is used without another query while it is well before expiry; an
    access token stays valid until its own expiry even after someone else refreshed."""
    token = _fresh_loaded_token(loaded) or connection_access_token(connection_id=connection_id, client=client)
    try:
        return call(token)
    except errors.AuthenticationError:
        if loaded is not None:
            loaded.access_expires_at = None  # never reuse the rejected token from memory
        token = connection_access_token(connection_id=connection_id, client=client, rejected_token=token)
    except errors.PermissionDenied as exc:
        connection_mark_needs_consent(connection_id=connection_id, reason=str(exc))
        raise ConsentRequired(connection_id, str(exc)) from exc
    try:
        return call(token)
    except (errors.AuthenticationError, errors.PermissionDenied) as exc:
        connection_mark_needs_consent(connection_id=connection_id, reason=str(exc))
        raise ConsentRequired(connection_id, str(exc)) from exc


def _fresh_loaded_token(connection: VehicleConnection | None) -> str | None:
    if connection is None or connection.status != Status.ACTIVE or connection.access_expires_at is None:
        return None
    if connection.access_expires_at - clock.now() <= REFRESH_MARGIN:
        return None
    return connection.access_token


def _wait_for_refresh(connection_id: int, seen_version: int, sleep: Callable[[float], None]) -> None:
    """Return once the token changed, the lease was released, or it expired (then the caller
    loops and re-evaluates, possibly taking the lease over)."""
    while True:
        sleep(LEASE_POLL_S)
        row = VehicleConnection.objects.filter(pk=connection_id).values(
            "token_version", "refresh_lease_until", "status"
        )[0]
        lease_until = row["refresh_lease_until"]
        if (
            row["token_version"] != seen_version
            or row["status"] != Status.ACTIVE
            or lease_until is None
            or lease_until <= timezone.now()
        ):
            return


def _release_lease(connection_id: int, lease_id: str, *, consent_lost: bool, reason: str = "") -> None:
    with transaction.atomic():
        released = VehicleConnection.objects.filter(pk=connection_id, refresh_lease_id=lease_id).update(
            refresh_lease_id="", refresh_lease_until=None
        )
        if released and consent_lost:
            _transition(connection_id, Status.NEEDS_CONSENT, reason=reason)


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


# --- vehicle snapshot ---------------------------------------------------------------------------------


def vehicle_refresh_snapshot(*, vehicle_id: int, client: VehicleApiClient | None = None) -> Vehicle:
    """Read /charge and /battery and store them as the vehicle's snapshot (2 billed calls).

    The snapshot's `data_age` is the older of the two readings' SC-Data-Age: the state is only as
    fresh as its stalest part. A reading older than the stored one never overwrites it.
    Raises ConsentRequired (token refused: connection marked needs_consent), errors.VehicleApiError."""
    client = client or get_client()
    vehicle = Vehicle.objects.select_related("connection").get(pk=vehicle_id)
    if not vehicle.is_active:
        raise ConsentRequired(vehicle.connection_id, "vehicle is no longer connected")
    charge, battery = call_with_token(
        vehicle.connection_id,
        client,
        lambda token: (client.charge_status(token, vehicle.external_id), client.battery(token, vehicle.external_id)),
    )

    data_age = _oldest(charge.meta.data_age, battery.meta.data_age)
    fetched_at = _oldest(charge.meta.fetched_at, battery.meta.fetched_at)
    fields = {
        "soc_bp": battery.soc_bp,
        "is_plugged_in": charge.is_plugged_in,
        "charge_state": charge.state.value,
        "data_age": data_age,
        "fetched_at": fetched_at,
        "snapshot_at": timezone.now(),
        "updated_at": timezone.now(),
    }
    rows = Vehicle.objects.filter(pk=vehicle_id)
    if data_age is not None:
        # Two refreshes racing: keep the newer reading, whatever order they finish in.
        rows = rows.filter(Q(data_age__isnull=True) | Q(data_age__lte=data_age))
    rows.update(**fields)
    vehicle.refresh_from_db()
    return vehicle


def _oldest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


# --- disconnect ------------------------------------------------------------------------------------------


def connection_disconnect(*, connection_id: int, client: VehicleApiClient | None = None) -> VehicleConnection:
    """Revoke access at the vehicle API for every vehicle of the connection, then mark it
    disconnected, deactivate its vehicles and erase its tokens. Idempotent.

    Revocation is best effort: a dead token (consent lost) or a permanent refusal (401/403/404,
    ...) does not stop the local disconnect. Raises errors.VehicleApiError only for retryable
    failures (nothing erased locally; try again: it is idempotent)."""
    client = client or get_client()
    connection = VehicleConnection.objects.get(pk=connection_id)
    if connection.status != Status.DISCONNECTED:
        try:
            token = connection_access_token(connection_id=connection_id, client=client)
        except ConsentRequired:
            token = ""
        if token:
            for external_id in connection.vehicles.filter(is_active=True).values_list("external_id", flat=True):
                try:
                    client.disconnect(token, external_id)
                except errors.VehicleApiError as exc:
                    if exc.retryable:
                        raise  # nothing erased yet: the driver (or a task) can simply retry
                    # Already revoked (401/403/404) or refused for good: the driver's wish to
                    # disconnect wins either way; we erase our tokens below.
                    logger.info("revoking vehicle %s at the API failed for good: %r", external_id, exc)
    with transaction.atomic():
        _transition(connection_id, Status.DISCONNECTED, reason="disconnected by the driver")
        VehicleConnection.objects.filter(pk=connection_id).update(
            access_token_ciphertext="",
            refresh_token_ciphertext="",
            refresh_lease_id="",
            refresh_lease_until=None,
        )
        subscriptions.vehicles_unsubscribe_later(
            Vehicle.objects.filter(connection_id=connection_id).values_list("pk", flat=True)
        )
        Vehicle.objects.filter(connection_id=connection_id).update(is_active=False, updated_at=timezone.now())
    connection.refresh_from_db()
    return connection


# --- reads (selector-style) ---------------------------------------------------------------------------


def vehicles_for_user(*, user) -> QuerySet[Vehicle]:
    """The driver's vehicles to show: active ones plus those waiting for a reconnect."""
    return (
        Vehicle.objects.filter(owner=user, connection__status__in=[Status.ACTIVE, Status.NEEDS_CONSENT])
        .filter(is_active=True)
        .select_related("connection")
    )


def connection_rotate_token_keys() -> tuple[int, int]:
    """Re-encrypt every stored token under the newest TOKEN_ENCRYPTION_KEYS key.

    Compare-and-set on the old ciphertext: a refresh writing a new pair meanwhile wins and is left
    alone (it is already under the newest key). Returns (rotated, skipped)."""
    rotated = skipped = 0
    for pk, access, refresh in VehicleConnection.objects.values_list(
        "pk", "access_token_ciphertext", "refresh_token_ciphertext"
    ).iterator():
        if all(crypto.is_current(value) for value in (access, refresh) if value):
            skipped += 1
            continue
        new_access = crypto.rotate(access) if access else access
        new_refresh = crypto.rotate(refresh) if refresh else refresh
        updated = VehicleConnection.objects.filter(
            pk=pk, access_token_ciphertext=access, refresh_token_ciphertext=refresh
        ).update(access_token_ciphertext=new_access, refresh_token_ciphertext=new_refresh)
        if updated:
            rotated += 1
        else:
            skipped += 1
    return rotated, skipped
