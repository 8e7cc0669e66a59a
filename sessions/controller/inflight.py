"""Thousands of vehicle API calls in flight from one worker process (issue 17).

A real vehicle API answers a read after seconds and a command only once the car acknowledged it
(3–45 s, up to 300 s): a thread per step would need hundreds of threads, and a database
connection each, to keep a 10,000-session fleet on time. Here the step code stays synchronous and
unchanged (`machine.session_step`, whatever protocol version its client speaks); what changes is
where it waits:

- each step runs in a greenlet of the worker's one thread (the "hub");
- the vehicle API client's httpx transport is a `BridgeTransport`: inside a step it hands the
  request to an asyncio event loop running in a second thread (`CallBridge`, one pooled
  `httpx.AsyncHTTPTransport`) and switches back to the hub, which runs other steps meanwhile;
  when the answer is in, the hub switches back into the step, which carries on where it was;
- database work therefore happens in short synchronous sections between calls, all on the hub's
  one connection (Django keeps one per thread). A greenlet may only hand over a call with no
  transaction open (`VehicleCallInTransaction` otherwise): no transaction or row lock ever waits
  for a car, and the step's compare-and-set commit is the step's own, unchanged;
- the event loop also keeps the application's and each vehicle's rate limits fleet-wide
  (`sessions.controller.ratelimit`) before a request leaves, and turns a 429's `retry-after` into
  a wait for that vehicle only.

- nothing else in a step may block the hub's thread: waits go through `waiting`
  (sessions/vehicle_api/waiting.py: a step's `cooperative_sleep` parks it on the hub's heap);
- the hub renews the lease of its running steps (`renew_leases`), however long their cars take.

`InFlightWorker` is the loop of one worker process: it claims due sessions (the same
`runtime.sessions_claim_due`, SKIP LOCKED and a lease, so workers run side by side) up to its
free capacity, starts each step, and resumes steps as their answers arrive (`run_controller
--in-flight N`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import logging
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import greenlet
import httpx
from django.db import close_old_connections, connection

from sessions import clock
from sessions.controller import ratelimit, runtime
from sessions.models.charging import ChargingSession

logger = logging.getLogger(__name__)


class VehicleCallInTransaction(RuntimeError):
    """A step tried to wait for the vehicle API with a database transaction open."""


class StepGreenlet(greenlet.greenlet):
    """One step's greenlet; `record` is whatever the worker's hooks keep about it."""

    def __init__(
        self,
        run,
        parent,
        *,
        session_id: int,
        ready: queue.SimpleQueue,
        sleepers: list | None = None,
        lease_token: uuid.UUID | None = None,
    ) -> None:
        super().__init__(run, parent)
        self.session_id = session_id
        self.ready = ready
        self.sleepers = sleepers
        self.lease_token = lease_token
        # When the worker renews this step's lease next (product clock): half a lease after the claim.
        self.renew_at = clock.now() + runtime.LEASE / 2
        self.record: Any = None
        self.result: Any = None  # what the step function returned
        self.cpu_s = 0.0

    def cooperative_sleep(self, seconds: float) -> None:
        """Wait with the hub free to run the other steps (sessions/vehicle_api/waiting.py): the
        hub resumes us once `seconds` have passed."""
        if self.sleepers is None:
            time.sleep(seconds)
            return
        heapq.heappush(self.sleepers, (time.monotonic() + seconds, id(self), self))
        self.parent.switch()

    def park(self, future: Future) -> Any:
        """Wait for `future` by switching to the hub; the hub resumes us once it is done."""
        future.add_done_callback(lambda _f: self.ready.put(self))
        self.parent.switch()
        return future.result()


class CallBridge:
    """The event loop (own thread) that performs every step's HTTP, rate-limited fleet-wide.

    `on_sent(record, request)` is called in the loop's thread when a request leaves (after any
    rate-limit wait); `in_flight` counts the requests sent and not yet answered.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        limiter: ratelimit.Limiter | None = None,
        max_connections: int = 2000,
        on_sent: Callable[[Any, httpx.Request], None] | None = None,
    ) -> None:
        self.transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        )
        self.limiter = limiter or ratelimit.Limiter()
        self.on_sent = on_sent
        self.in_flight = 0
        self.in_flight_max = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="vehicle-api-io", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, request: httpx.Request, record: Any = None) -> Future:
        return asyncio.run_coroutine_threadsafe(self._send(request, record), self.loop)

    async def _send(self, request: httpx.Request, record: Any) -> httpx.Response:
        vehicle_id = ratelimit.vehicle_of(request.url.path)
        await self.limiter.acquire(vehicle_id)
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            if self.on_sent is not None:
                self.on_sent(record, request)
            response = await self.transport.handle_async_request(request)
            try:
                if response.is_stream_consumed:  # a transport that answered with its content loaded
                    raw = response.content
                else:
                    raw = b"".join([chunk async for chunk in response.aiter_raw()])
            finally:
                await response.aclose()
        finally:
            self.in_flight -= 1
        await self.limiter.observe(vehicle_id, response.status_code, response.headers, raw)
        # Raw (still encoded) bytes: the synchronous client decodes them as it would its own.
        return httpx.Response(
            response.status_code, headers=response.headers, stream=httpx.ByteStream(raw), request=request
        )

    def close(self) -> None:
        async def _close() -> None:
            await self.transport.aclose()
            await self.limiter.aclose()

        with _suppress():
            asyncio.run_coroutine_threadsafe(_close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            logger.warning("closing the vehicle API bridge: %r", exc)
        return True


class BridgeTransport(httpx.BaseTransport):
    """The synchronous client's transport: the request goes to the bridge's event loop.

    Inside a worker's step the step's greenlet parks until the answer is in (the hub runs other
    steps meanwhile); anywhere else (a web request, a shell) the calling thread simply waits.
    """

    def __init__(self, bridge: CallBridge) -> None:
        self.bridge = bridge

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        outgoing = httpx.Request(
            request.method, request.url, headers=request.headers, content=body, extensions=request.extensions
        )
        current = greenlet.getcurrent()
        if isinstance(current, StepGreenlet):
            if connection.in_atomic_block:
                raise VehicleCallInTransaction(
                    f"session {current.session_id}: a vehicle API call inside a database transaction"
                )
            return current.park(self.bridge.submit(outgoing, current.record))
        return self.bridge.submit(outgoing).result()


def bridged_client(bridge: CallBridge, like):
    """A client of the same class (protocol version) as `like`, built from settings, whose HTTP goes
    through the bridge."""
    return type(like).from_settings(transport=BridgeTransport(bridge))


class InFlightWorker:
    """Claim due sessions and run up to `max_in_flight` steps at once in greenlets of this thread.

    Hooks (all optional, run in this thread): `on_step_start(g)` before a step's first switch,
    `on_step_end(g, error)` after it finished; `g.cpu_s` is the thread CPU the step used.
    """

    def __init__(
        self,
        *,
        max_in_flight: int = 500,
        interval_s: float = 1.0,
        claim_limit: int = 1000,
        step: Callable[[int, uuid.UUID], Any] | None = None,
        on_step_start: Callable[[StepGreenlet], None] | None = None,
        on_step_end: Callable[[StepGreenlet, BaseException | None], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> None:
        self.max_in_flight = max(1, max_in_flight)
        self.interval_s = interval_s
        self.claim_limit = claim_limit
        self.step = step or _session_step
        self.on_step_start = on_step_start
        self.on_step_end = on_step_end
        self.on_tick = on_tick
        self.context = context
        self.ready: queue.SimpleQueue[StepGreenlet] = queue.SimpleQueue()
        # (wake at, tie-break, greenlet): steps in a cooperative sleep, earliest first.
        self.sleepers: list[tuple[float, int, StepGreenlet]] = []
        self.active: set[StepGreenlet] = set()
        self.claimed = 0
        self.errors = 0
        self.renewed = 0

    def run(self, *, stop: Callable[[], bool] = lambda: False, drain_s: float = 660.0) -> None:
        """Tick until `stop()`; then claim no more and let the running steps finish (≤ `drain_s`)."""
        with self.context():
            while not stop():
                started = time.monotonic()
                self.tick()
                self._resume_until(started + self.interval_s)
            deadline = time.monotonic() + drain_s
            while self.active and time.monotonic() < deadline:
                self.renew_leases()
                self._resume_until(min(deadline, time.monotonic() + self.interval_s))

    def tick(self) -> int:
        """Claim what is due, up to the free capacity, and start those steps. Returns how many."""
        if self.on_tick is not None:
            self.on_tick()
        self.renew_leases()
        free = self.max_in_flight - len(self.active)
        if free <= 0:
            return 0
        try:
            # A connection the server dropped stays broken until closed; no step holds a
            # transaction here (parked steps never do), so this is safe between steps.
            close_old_connections()
            claimed = runtime.sessions_claim_due(limit=min(free, self.claim_limit))
        except Exception:
            logger.exception("controller tick failed")
            close_old_connections()
            return 0
        self.claimed += len(claimed)
        for session_id, token in claimed:
            self.start(session_id, token)
        return len(claimed)

    def start(self, session_id: int, token: uuid.UUID) -> StepGreenlet:
        hub = greenlet.getcurrent()
        g = StepGreenlet(
            lambda: self._run_step(g, session_id, token),
            hub,
            session_id=session_id,
            ready=self.ready,
            sleepers=self.sleepers,
            lease_token=token,
        )
        # Each step gets its own context (log ids), starting from the hub's.
        g.gr_context = contextvars.copy_context()
        self.active.add(g)
        if self.on_step_start is not None:
            self.on_step_start(g)
        self._switch(g)
        return g

    def _run_step(self, g: StepGreenlet, session_id: int, token: uuid.UUID) -> None:
        error: BaseException | None = None
        try:
            g.result = self.step(session_id, token)
        except Exception as exc:  # a failing step is logged; its lease lets a later tick retry it
            error = exc
            self.errors += 1
            logger.exception("session %s: step failed", session_id)
        finally:
            self.active.discard(g)
            if self.on_step_end is not None:
                self.on_step_end(g, error)

    def _switch(self, g: StepGreenlet) -> None:
        t0 = time.thread_time()
        try:
            g.switch()
        finally:
            g.cpu_s += time.thread_time() - t0

    def renew_leases(self) -> int:
        """Extend the lease of every running step whose lease is half spent, in one UPDATE.

        A step is a sequence of calls, each bounded by the client's timeouts, but a step of several
        slow calls (three 310-s timeouts) outlives any fixed lease; while this worker is alive its
        steps keep their sessions, and a dead worker's sessions are free one lease after its last
        renewal. A lease already taken over (its token changed) is not renewed: that step's commit
        is discarded by the compare-and-set, as before."""
        now = clock.now()
        due = [g for g in self.active if g.lease_token is not None and g.renew_at <= now]
        if not due:
            return 0
        try:
            # By primary key (the token has no index); a token is its own claim's, never another row's.
            renewed = ChargingSession.objects.filter(
                pk__in=[g.session_id for g in due], lease_token__in=[g.lease_token for g in due]
            ).update(lease_until=now + runtime.LEASE)
        except Exception:
            logger.exception("controller lease renewal failed")
            close_old_connections()
            return 0
        for g in due:
            g.renew_at = now + runtime.LEASE / 2
        self.renewed += renewed
        return renewed

    def _resume_until(self, deadline: float) -> None:
        """Resume steps whose answers arrived or whose sleep is over, until `deadline` (monotonic)."""
        while True:
            now = time.monotonic()
            if self.sleepers and self.sleepers[0][0] <= now:
                g = heapq.heappop(self.sleepers)[2]
                if not g.dead:
                    self._switch(g)
                continue
            timeout = min(deadline, self.sleepers[0][0] if self.sleepers else deadline) - now
            if deadline <= now and not self._has_ready():
                return
            try:
                g = self.ready.get(timeout=max(0.0, timeout)) if timeout > 0 else self.ready.get_nowait()
            except queue.Empty:
                if deadline <= time.monotonic():
                    return
                continue
            if not g.dead:
                self._switch(g)

    def _has_ready(self) -> bool:
        return not self.ready.empty()

    @property
    def in_flight_steps(self) -> int:
        return len(self.active)


# How long a thread may hold the interpreter lock while another waits for it (CPython: 5 ms).
# A hub whose query's answer is in must take the lock back before it goes on; with the other
# hubs and the event loop busy, that wait was a switch interval or more per query, much of a
# step's database time (docs/scale.md). Shorter, the hubs get back to their steps sooner.
SWITCH_INTERVAL_S: float | None = 0.0005


@contextlib.contextmanager
def switch_interval(seconds: float | None):
    """`sys.setswitchinterval(seconds)` for the duration (None: leave it as it is)."""
    if seconds is None:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_hubs(
    workers: list[InFlightWorker],
    *,
    stop: Callable[[], bool],
    drain_s: float = 660.0,
    switch_interval_s: float | None = SWITCH_INTERVAL_S,
) -> None:
    """Run each worker in a thread of its own (a "hub": its greenlets and one database connection)
    and return once all have stopped. Several hubs overlap their database round trips, which one
    hub must wait for in turn; they share one bridge (one event loop) for the HTTP."""

    def hub(worker: InFlightWorker) -> None:
        try:
            worker.run(stop=stop, drain_s=drain_s)
        except Exception:
            logger.exception("controller hub failed")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=hub, args=(worker,), name=f"controller-hub-{i}", daemon=True)
        for i, worker in enumerate(workers)
    ]
    with switch_interval(switch_interval_s):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def run_worker_until_signalled(run: Callable[[Callable[[], bool]], None]) -> None:
    """Run `run(stop)`; Ctrl-C or SIGTERM makes `stop()` true, so the hubs claim no more and let
    their running steps finish (a step cut off mid-call would wait out its lease)."""
    import signal

    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    runner = threading.Thread(target=run, args=(stopping.is_set,), name="controller-worker", daemon=True)
    runner.start()
    try:
        while runner.is_alive():
            try:
                runner.join(timeout=1.0)
            except KeyboardInterrupt:
                stopping.set()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _session_step(session_id: int, token: uuid.UUID):
    from sessions.controller import machine

    return machine.session_step(session_id=session_id, lease_token=token)


def run_worker(
    *,
    max_in_flight: int,
    hubs: int = 1,
    interval_s: float = 1.0,
    limiter: ratelimit.Limiter | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """`run_controller --in-flight N --hubs H`: one process claims and steps, up to N steps at
    once across H hub threads (H database connections), its HTTP on one bridge."""
    from sessions.vehicles import services as vehicles

    bridge = CallBridge(transport, limiter=limiter or ratelimit.from_settings(), max_connections=max_in_flight)
    client = bridged_client(bridge, vehicles.get_client())
    vehicles.use_client(client)
    per_hub = max(1, max_in_flight // max(1, hubs))

    def run(stopped: Callable[[], bool]) -> None:
        workers = [InFlightWorker(max_in_flight=per_hub, interval_s=interval_s) for _ in range(max(1, hubs))]
        run_hubs(workers, stop=lambda: stopped() or stop())

    try:
        run_worker_until_signalled(run)
    finally:
        vehicles.use_client(None)
        client.close()
        bridge.close()
