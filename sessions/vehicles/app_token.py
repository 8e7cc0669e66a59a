"""The vehicle API's application token, shared across workers and machines (one renewal at a time).

v3 authenticates the application, not the driver (docs/reference/vehicle-api-v3.md §2): one
token per client id, about an hour long, renewed by asking the IAM endpoint again. Every process
keeps a copy in memory (`MemoryTokenCache`: one renewal per process); behind it, one
`ApplicationToken` row per client id holds the current token and a renewal *lease*, so only one
process in the fleet asks the IAM endpoint when the token nears expiry:

  1. short transaction, row locked (select_for_update): the row's token is fresh → use it; lease
     free or expired → take it; lease held → wait for the holder's token;
  2. no transaction: call the IAM endpoint (a network call never runs inside a transaction);
  3. short transaction: store the token and clear the lease only if we still hold it
     (compare-and-set on the lease id).
Token expiry follows the product's clock (`sessions.clock`, virtual in the fleet benchmark, like
the simulator's); the lease is about live processes, so it follows the wall clock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from monitoring.logs import remember_secret
from sessions import clock
from sessions.models import ApplicationToken
from sessions.vehicle_api import waiting
from sessions.vehicle_api.app_token import RENEW_MARGIN, MemoryTokenCache
from sessions.vehicle_api.v3_types import AppToken
from sessions.vehicles import crypto

logger = logging.getLogger(__name__)

#: How often a process waiting for another one's renewal looks at the row again.
LEASE_POLL_S = 0.05


def _lease_duration() -> timedelta:
    # Longer than the slowest token request (the client's read timeout): a lease only expires
    # when its holder died; a live holder always finishes (or times out) first.
    return timedelta(seconds=float(settings.VEHICLE_API_TIMEOUT_S) + 30)


@dataclass(frozen=True)
class _Claim:
    token: AppToken | None = None  # a fresh token to use
    renew: bool = False  # we hold the lease: ask the IAM endpoint
    version: int = 0  # else: wait until the row's version moves past this


class DatabaseTokenSource:
    """A `TokenSource` (sessions.vehicle_api.app_token) shared through the database."""

    def __init__(
        self,
        client_id: str,
        *,
        now: Callable[[], datetime] = clock.now,
        margin: timedelta = RENEW_MARGIN,
        sleep: Callable[[float], None] = waiting.sleep,
    ) -> None:
        self.client_id = client_id
        self.now = now
        self.margin = margin
        self.sleep = sleep
        self.memory = MemoryTokenCache(clock=now, margin=margin)
        self.renewals = 0  # IAM calls made by this process (tests, diagnostics)

    def __repr__(self) -> str:
        return f"DatabaseTokenSource(client_id={self.client_id!r})"

    # --- the TokenSource interface ---------------------------------------------------------------------
    def get(self, fetch: Callable[[], AppToken], *, rejected: str | None = None) -> str:
        """The app token; renews through `fetch` only if no process has a fresh one."""
        return self.memory.get(lambda: self._from_database(fetch, rejected), rejected=rejected)

    async def aget(self, afetch: Callable[[], Awaitable[AppToken]], *, rejected: str | None = None) -> str:
        async def from_database() -> AppToken:
            lease_id = uuid.uuid4().hex
            while True:
                claim = await _in_thread(self._claim, rejected, lease_id)
                if claim.token is not None:
                    return claim.token
                if claim.renew:
                    break
                await self._await_change(claim.version)
            try:
                token = await afetch()
            except BaseException:
                await _in_thread(self._release, lease_id)
                raise
            return await _in_thread(self._store, lease_id, token)

        return await self.memory.aget(from_database, rejected=rejected)

    # --- the three steps -------------------------------------------------------------------------------
    def _from_database(self, fetch: Callable[[], AppToken], rejected: str | None) -> AppToken:
        lease_id = uuid.uuid4().hex
        while True:
            claim = self._claim(rejected, lease_id)
            if claim.token is not None:
                return claim.token
            if claim.renew:
                break
            self._wait_for_change(claim.version)
        try:
            token = fetch()
        except BaseException:
            self._release(lease_id)
            raise
        return self._store(lease_id, token)

    def _claim(self, rejected: str | None, lease_id: str) -> _Claim:
        ApplicationToken.objects.get_or_create(client_id=self.client_id)
        now, wall = self.now(), timezone.now()
        with transaction.atomic():
            row = ApplicationToken.objects.select_for_update().get(client_id=self.client_id)
            try:
                current = row.token
            except crypto.TokenDecryptionError:
                current = ""  # encrypted under a retired key: simply renew
            remember_secret(current)  # renewed by another process: never in this one's logs either
            if current and current != rejected and row.expires_at and row.expires_at - now > self.margin:
                expires_in = int((row.expires_at - now).total_seconds())
                return _Claim(token=AppToken(access_token=current, expires_at=row.expires_at, expires_in_s=expires_in))
            if row.lease_until is None or row.lease_until <= wall:
                row.lease_id, row.lease_until = lease_id, wall + _lease_duration()
                row.save(update_fields=["lease_id", "lease_until", "updated_at"])
                return _Claim(renew=True)
            return _Claim(version=row.version)

    def _store(self, lease_id: str, token: AppToken) -> AppToken:
        self.renewals += 1
        with transaction.atomic():
            row = ApplicationToken.objects.select_for_update().get(client_id=self.client_id)
            if row.lease_id != lease_id:
                # Our lease expired and another process took over: our token is valid too, but
                # theirs is the one the others now rely on, so do not overwrite it.
                logger.warning("app token lease of %s lost; not storing this renewal", self.client_id)
                return token
            row.token = token.access_token
            row.expires_at = token.expires_at
            row.version += 1
            row.lease_id, row.lease_until = "", None
            row.renewed_at = timezone.now()
            row.save()
        logger.info("vehicle API app token of %s renewed (expires %s)", self.client_id, token.expires_at)
        return token

    def _release(self, lease_id: str) -> None:
        ApplicationToken.objects.filter(client_id=self.client_id, lease_id=lease_id).update(
            lease_id="", lease_until=None
        )

    def _changed(self, version: int) -> bool:
        row = ApplicationToken.objects.filter(client_id=self.client_id).values("version", "lease_until")[0]
        lease_until = row["lease_until"]
        return row["version"] != version or lease_until is None or lease_until <= timezone.now()

    def _wait_for_change(self, version: int) -> None:
        """Until the holder stored its token, released the lease, or the lease expired."""
        while True:
            self.sleep(LEASE_POLL_S)
            if self._changed(version):
                return

    async def _await_change(self, version: int) -> None:
        while True:
            await asyncio.sleep(LEASE_POLL_S)
            if await _in_thread(self._changed, version):
                return


async def _in_thread(function, *args):
    """Run an ORM step off the event loop; the thread's database connection is closed after it,
    so pool threads never keep connections open."""

    def run():
        try:
            return function(*args)
        finally:
            db_connection.close()

    return await asyncio.to_thread(run)


def application_token_source() -> DatabaseTokenSource:
    """The shared token source for the configured application (VEHICLE_M2M_CLIENT_ID)."""
    return DatabaseTokenSource(settings.VEHICLE_M2M_CLIENT_ID)
