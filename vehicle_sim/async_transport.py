"""The simulator behind an asyncio httpx transport: realistic answer times, no thread per request.

The app runs at once for each request (under the simulator's lock, as when served), so the car
acts when the request arrives; the answer is then held for the time the app says (a read's answer
latency, a v3 command's completion or its 202 limit; `Response.delay_s`, wall seconds on a
sped-up clock) with `asyncio.sleep`, so thousands of answers can be awaited at once on one event
loop. A benchmark's controller sees the vehicle API as slow as it really is, while the
simulator's own CPU stays a few milliseconds per request.

`failure_rate`: that share of vehicle requests fails, in equal parts as a 429 RATE_LIMIT:VEHICLE
with retry-after, a 502 UPSTREAM error (both answered by the simulator itself, in the protocol the
request speaks) and a timeout (the request reaches the car, the answer never comes before the
client's read timeout, counted in simulated seconds).
"""

from __future__ import annotations

import asyncio
import random
import re

import httpx

from .app import make_app
from .engine import Simulator

_VEHICLE = re.compile(r"/vehicles/([^/]+)/")
FAILURE_KINDS = ("rate_limit", "upstream", "timeout")


class AsyncSimulatorTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        sim: Simulator,
        *,
        wrap=None,
        failure_rate: float = 0.0,
        retry_after_s: tuple[int, int] = (30, 120),
        speed: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.sim = sim
        self.failure_rate = failure_rate
        self.retry_after_s = retry_after_s
        self.speed = speed
        self.rng = random.Random(f"failures:{seed}")
        self.failures: dict[str, int] = dict.fromkeys(FAILURE_KINDS, 0)
        self._held = 0.0
        app = make_app(sim, sleep=self._hold)
        self._wsgi = httpx.WSGITransport(app=wrap(app) if wrap else app)

    def _hold(self, seconds: float) -> None:
        self._held += seconds

    def _failure(self, path: str) -> str | None:
        match = _VEHICLE.search(path)
        if not self.failure_rate or match is None or match.group(1) not in self.sim.vehicles:
            return None
        if self.rng.random() >= self.failure_rate:
            return None
        kind = self.rng.choice(FAILURE_KINDS)
        self.failures[kind] += 1
        faults = self.sim.vehicles[match.group(1)].faults
        with self.sim.lock:
            if kind == "rate_limit":
                retry = self.rng.randint(*self.retry_after_s)
                faults.inject.insert(0, {"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": retry})
            elif kind == "upstream":
                faults.inject.insert(0, {"type": "UPSTREAM", "code": "UNKNOWN_ISSUE"})
        return kind

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        sync = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        failure = self._failure(request.url.path)
        # The app never yields to the loop while it runs: `_held` is this request's alone.
        self._held = 0.0
        response = self._wsgi.handle_request(sync)
        content = response.read()
        delay = self._held
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        if failure == "timeout" and read_timeout is not None:
            await asyncio.sleep(read_timeout / self.speed)
            raise httpx.ReadTimeout("simulated: no answer before the read timeout", request=request)
        if delay > 0:
            await asyncio.sleep(delay)
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, stream=httpx.ByteStream(content), request=request)
