"""Nothing a step waits for stops the other steps of its hub (issue 17).

The in-flight worker runs many steps as greenlets of one thread. A step that waits by blocking
the thread — `time.sleep` while another worker refreshes a token, a lock another step of the same
hub holds while its own request is in flight — would stop every step of the hub, and in the lock's
case for good (the holder can only go on once the hub runs it). These tests run the waits inside
steps of one hub and check that the hub goes on with the other steps meanwhile.
"""

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sessions.controller import inflight, ratelimit
from sessions.models import ApplicationToken
from sessions.vehicle_api import waiting
from sessions.vehicle_api.app_token import MemoryTokenCache
from sessions.vehicle_api.v3_types import AppToken
from sessions.vehicles.app_token import DatabaseTokenSource

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Held(httpx.AsyncBaseTransport):
    """Answers 200 to every request once opened; counts those waiting."""

    def __init__(self) -> None:
        self.waiting = 0
        self._open: asyncio.Event | None = None

    async def handle_async_request(self, request):
        self._open = self._open or asyncio.Event()
        self.waiting += 1
        try:
            await self._open.wait()
        finally:
            self.waiting -= 1
        return httpx.Response(200, json={})

    def open(self) -> None:
        self._open = self._open or asyncio.Event()
        self._open.set()


def wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_step_waiting_for_another_steps_token_renewal_leaves_the_hub_running():
    held = Held()
    bridge = inflight.CallBridge(held, limiter=ratelimit.Limiter())
    http = httpx.Client(transport=inflight.BridgeTransport(bridge))
    cache = MemoryTokenCache(clock=lambda: NOW)
    done: list = []

    def renew() -> AppToken:
        http.post("http://iam.test/oauth2/token")  # the renewal's request: parks its step
        return AppToken(access_token="fresh", expires_at=NOW + timedelta(hours=1), expires_in_s=3600)

    def renewed_twice() -> AppToken:
        raise AssertionError("a second renewal while the first is in flight")

    def step(session_id: int, _token) -> None:
        if session_id == 3:
            waiting.sleep(0.01)
            done.append("other step")
            return
        done.append((session_id, cache.get(renew if session_id == 1 else renewed_twice)))

    worker = inflight.InFlightWorker(step=step)

    def hub() -> None:
        for session_id in (1, 2, 3):  # 1 renews, 2 needs the token meanwhile, 3 is another car's
            worker.start(session_id, uuid.uuid4())
        deadline = time.monotonic() + 10
        while worker.active and time.monotonic() < deadline:
            worker._resume_until(time.monotonic() + 0.05)

    thread = threading.Thread(target=hub, daemon=True)
    thread.start()
    try:
        # While step 1's renewal is in flight and step 2 waits for it, the hub ran step 3.
        wait_for(lambda: "other step" in done)
        assert held.waiting == 1
        bridge.loop.call_soon_threadsafe(held.open)
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert sorted(d for d in done if d != "other step") == [(1, "fresh"), (2, "fresh")]
        assert cache.renewals == 1
    finally:
        bridge.loop.call_soon_threadsafe(held.open)
        http.close()
        bridge.close()


@pytest.mark.django_db(transaction=True)
def test_a_step_waiting_for_another_processs_token_renewal_leaves_the_hub_running():
    # Another process holds the renewal lease of the application token's row (for 20 s).
    ApplicationToken.objects.create(
        client_id="client_hub", lease_id="other-process", lease_until=datetime.now(UTC) + timedelta(seconds=20)
    )
    source = DatabaseTokenSource("client_hub", now=lambda: NOW)
    done: list = []

    def renewed_here() -> AppToken:
        raise AssertionError("a renewal of our own while the other process's is in flight")

    def step(session_id: int, _token) -> None:
        if session_id == 2:
            waiting.sleep(0.01)
            done.append("other step")
            return
        done.append(source.get(renewed_here))

    worker = inflight.InFlightWorker(step=step)
    started = time.monotonic()
    worker.start(1, uuid.uuid4())  # waits for the other process's renewal
    worker.start(2, uuid.uuid4())
    worker._resume_until(time.monotonic() + 0.3)

    assert done == ["other step"]
    assert time.monotonic() - started < 5

    # The other process stores its token; the waiting step takes it, without a renewal of its own.
    row = ApplicationToken.objects.get(client_id="client_hub")
    row.token = "from-the-other-process"
    row.expires_at = NOW + timedelta(hours=1)
    row.version += 1
    row.lease_id, row.lease_until = "", None
    row.save()
    deadline = time.monotonic() + 5
    while worker.active and time.monotonic() < deadline:
        worker._resume_until(time.monotonic() + 0.1)

    assert done == ["other step", "from-the-other-process"]
