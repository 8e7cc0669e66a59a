"""The application token's cache: one token per application, renewed before it expires.

v3 authenticates the *application* (client credentials, ~1 h, no refresh token; §2 of
docs/reference/vehicle-api-v3.md), so every request of every worker can share one token. A token
source answers `get(fetch)` / `aget(afetch)`: the cached token while it has more than `margin`
left, else the result of ONE call to `fetch` — concurrent callers wait for it instead of each
asking the IAM endpoint (no stampede). `rejected` is the token the API just answered 401 to: it
is renewed even if not yet expired, unless someone already replaced it.

`MemoryTokenCache` shares within a process; `sessions.vehicles.app_token.DatabaseTokenSource` shares
across processes and machines through a database row with a lease.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from . import waiting
from .v3_types import AppToken

#: Renew when less than this is left (tokens live about an hour).
RENEW_MARGIN = timedelta(minutes=5)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class TokenSource(Protocol):
    def get(self, fetch: Callable[[], AppToken], *, rejected: str | None = None) -> str: ...

    async def aget(self, afetch: Callable[[], Awaitable[AppToken]], *, rejected: str | None = None) -> str: ...


class MemoryTokenCache:
    """A process-local token cache, safe for threads and for coroutines (one renewal at a time
    for each: a thread lock for sync callers, one asyncio lock per event loop for async ones)."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow, margin: timedelta = RENEW_MARGIN) -> None:
        self.clock = clock
        self.margin = margin
        self.token: AppToken | None = None
        self.renewals = 0
        # Greenlet-aware: renewals happen inside the controller's steps, greenlets of one thread
        # (sessions/vehicle_api/waiting.py); a thread lock would deadlock the second one to wait.
        self._lock = waiting.Lock()
        # A separate lock for the table below: taking `_lock` there would block an event loop
        # while a thread renews.
        self._table_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:  # never the token itself
        return f"MemoryTokenCache(expires_at={self.token.expires_at if self.token else None})"

    def usable(self, rejected: str | None = None) -> str | None:
        """The cached token if it is neither near expiry nor the rejected one."""
        token = self.token
        if token is None or token.access_token == rejected:
            return None
        if token.expires_at - self.clock() <= self.margin:
            return None
        return token.access_token

    def store(self, token: AppToken) -> str:
        self.token = token
        self.renewals += 1
        return token.access_token

    def clear(self) -> None:
        self.token = None

    def get(self, fetch: Callable[[], AppToken], *, rejected: str | None = None) -> str:
        cached = self.usable(rejected)
        if cached:
            return cached
        with self._lock:
            # Whoever held the lock before us may have renewed already.
            cached = self.usable(rejected)
            if cached:
                return cached
            return self.store(fetch())

    async def aget(self, afetch: Callable[[], Awaitable[AppToken]], *, rejected: str | None = None) -> str:
        cached = self.usable(rejected)
        if cached:
            return cached
        async with self._async_lock():
            cached = self.usable(rejected)
            if cached:
                return cached
            return self.store(await afetch())

    def _async_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        with self._table_lock:
            lock = self._async_locks.get(loop)
            if lock is None:
                lock = self._async_locks[loop] = asyncio.Lock()
            return lock
