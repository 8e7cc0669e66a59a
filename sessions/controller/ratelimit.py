"""The vehicle API's rate limits, kept fleet-wide before a request leaves (issue 17).

Two token buckets gate every request: the application's (Smartcar: 120 requests refilling at
2 per minute by default, docs/reference/vehicle-api-v3.md §7; a plan may raise it) and the
vehicle's (a per-vehicle throttle whose value is undisclosed: configured). A 429 moves the
bucket's "blocked until": `RATE_LIMIT:VEHICLE` with `retry-after` blocks that vehicle only (the
worker goes on with every other car), `RATE_LIMIT:SMARTCAR_API` blocks the application.

`RedisLimiter` keeps the buckets in Redis (one Lua script takes both tokens atomically), so every
worker process and host shares them; `Limiter` keeps them in this process (one worker, tests,
SQLite development). Time is the product's clock (`sessions.clock`), so a sped-up benchmark's
buckets refill in its virtual time; `sleep` waits that many of its seconds.

Nothing here speaks a protocol version: the vehicle is the path segment after `/vehicles/`,
the 429 kind is read from the body's `SMARTCAR_API` code (v2 and v3 alike).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sessions import clock

_VEHICLE = re.compile(r"/vehicles/([^/]+)")
# A 429 without a usable retry-after: wait this long before the next try (exponential would
# need state per caller; the session's own backoff already spreads its retries).
DEFAULT_RETRY_AFTER_S = 30.0
# Connections to Redis per limiter (per worker process); more concurrent requests wait for one.
REDIS_CONNECTIONS = 32
# Buckets unused this long are forgotten (Redis keys expire).
IDLE_TTL_S = 24 * 3600


def vehicle_of(path: str) -> str | None:
    match = _VEHICLE.search(path)
    return match.group(1) if match else None


def parse_limit(text: str | None) -> tuple[int, float] | None:
    """Parse "BURST:PER_MINUTE" (e.g. "120:2") → (120, 2.0); empty → None (no limit)."""
    if not text:
        return None
    burst, _, per_minute = str(text).partition(":")
    limit = (int(burst), float(per_minute))
    if limit[0] < 1 or limit[1] <= 0:
        raise ValueError(f"rate limit {text!r}: burst ≥ 1 and a positive refill per minute")
    return limit


@dataclass(frozen=True)
class Limits:
    app: tuple[int, float] | None = None
    vehicle: tuple[int, float] | None = None


def retry_after_s(headers) -> float:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def _now() -> float:
    return clock.now().timestamp()


def _take(bucket: dict, limit: tuple[int, float] | None, now: float) -> float:
    """Seconds until `bucket` has a token (0: it has one now); takes nothing."""
    if limit is None:
        return 0.0
    capacity, per_minute = limit
    refill = (now - bucket.get("at", now)) * per_minute / 60
    tokens = min(float(capacity), bucket.get("tokens", float(capacity)) + refill)
    bucket["tokens"], bucket["at"] = tokens, now
    return 0.0 if tokens >= 1 else (1 - tokens) * 60 / per_minute


class Limiter:
    """Buckets in this process (one worker): the same rules as `RedisLimiter`."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        now: Callable[[], float] = _now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or Limits()
        self.now, self.sleep = now, sleep
        self._buckets: dict[str, dict] = {}
        self._blocked: dict[str, float] = {}
        self.waits = 0

    async def acquire(self, vehicle_id: str | None) -> None:
        """Return once a request for `vehicle_id` may leave; takes its tokens."""
        while True:
            wait = await self._try(vehicle_id)
            if wait <= 0:
                return
            self.waits += 1
            await self.sleep(wait)

    async def _try(self, vehicle_id: str | None) -> float:
        now = self.now()
        keys = ["app"] + ([f"vehicle:{vehicle_id}"] if vehicle_id else [])
        blocked = max(self._blocked.get(key, 0.0) - now for key in keys)
        if blocked > 0:
            return blocked
        app = self._buckets.setdefault("app", {})
        wait = _take(app, self.limits.app, now)
        vehicle = self._buckets.setdefault(keys[-1], {}) if vehicle_id else None
        if vehicle is not None:
            wait = max(wait, _take(vehicle, self.limits.vehicle, now))
        if wait > 0:
            return wait
        for bucket, limit in ((app, self.limits.app), (vehicle, self.limits.vehicle)):
            if bucket is not None and limit is not None:
                bucket["tokens"] -= 1
        return 0.0

    async def observe(self, vehicle_id: str | None, status: int, headers, body: bytes) -> None:
        """Learn from an answer: a 429 blocks the vehicle (or the application) until its retry-after."""
        if status != 429:
            return
        app_level = vehicle_id is None or b"SMARTCAR_API" in body
        await self.block("app" if app_level else f"vehicle:{vehicle_id}", retry_after_s(headers))

    async def block(self, key: str, seconds: float) -> None:
        until = self.now() + seconds
        self._blocked[key] = max(self._blocked.get(key, 0.0), until)

    async def aclose(self) -> None:
        return None


# KEYS: app bucket, vehicle bucket, app block, vehicle block. ARGV: now, app capacity, app rate/s,
# vehicle capacity, vehicle rate/s (0 capacity = no limit), ttl. Returns the wait in seconds
# (a string: Lua numbers reach Redis as integers), "0" once both tokens were taken.
_SCRIPT = """
local now = tonumber(ARGV[1])
local blocked = 0
for i = 3, 4 do
  local until_ = tonumber(redis.call('GET', KEYS[i]) or '0')
  if until_ - now > blocked then blocked = until_ - now end
end
if blocked > 0 then return tostring(blocked) end
local function level(key, cap, rate)
  if cap <= 0 then return nil end
  local b = redis.call('HMGET', key, 't', 'at')
  local t = tonumber(b[1]) or cap
  local at = tonumber(b[2]) or now
  if now > at then t = math.min(cap, t + (now - at) * rate) end
  return t
end
local caps = {tonumber(ARGV[2]), tonumber(ARGV[4])}
local rates = {tonumber(ARGV[3]), tonumber(ARGV[5])}
local levels = {}
local wait = 0
for i = 1, 2 do
  local t = level(KEYS[i], caps[i], rates[i])
  levels[i] = t
  if t ~= nil and t < 1 then
    local w = (1 - t) / rates[i]
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, 2 do
  if levels[i] ~= nil then
    redis.call('HSET', KEYS[i], 't', tostring(levels[i] - 1), 'at', tostring(now))
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6]))
  end
end
return '0'
"""


class RedisLimiter(Limiter):
    """Buckets in Redis: every worker process and host takes from the same ones."""

    def __init__(self, url: str, limits: Limits | None = None, *, prefix: str = "vehicle-api", **kwargs) -> None:
        super().__init__(limits, **kwargs)
        import redis.asyncio

        self.url, self.prefix = url, prefix
        self._redis: redis.asyncio.Redis | None = None
        self._script = None

    def _client(self):
        if self._redis is None:
            import redis.asyncio

            # A blocking pool: with hundreds of requests leaving at once the default pool (100
            # connections) raises MaxConnectionsError instead of waiting, which failed the steps;
            # a token script takes well under a millisecond, so a few dozen connections suffice.
            pool = redis.asyncio.BlockingConnectionPool.from_url(
                self.url, max_connections=REDIS_CONNECTIONS, timeout=None
            )
            self._redis = redis.asyncio.Redis(connection_pool=pool)
            self._script = self._redis.register_script(_SCRIPT)
        return self._redis

    def _keys(self, vehicle_id: str | None) -> list[str]:
        vehicle = vehicle_id or "-"
        p = self.prefix
        return [f"{p}:bucket:app", f"{p}:bucket:vehicle:{vehicle}", f"{p}:block:app", f"{p}:block:vehicle:{vehicle}"]

    async def _try(self, vehicle_id: str | None) -> float:
        self._client()
        app = self.limits.app or (0, 0.0)
        vehicle = (self.limits.vehicle or (0, 0.0)) if vehicle_id else (0, 0.0)
        wait = await self._script(
            keys=self._keys(vehicle_id),
            args=[repr(self.now()), app[0], app[1] / 60, vehicle[0], vehicle[1] / 60, IDLE_TTL_S],
        )
        return float(wait)

    async def block(self, key: str, seconds: float) -> None:
        redis = self._client()
        name = f"{self.prefix}:block:{key}"
        until = self.now() + seconds
        # Keep the later of two blocks (two workers may see 429s for the same car).
        current = await redis.get(name)
        if current is None or float(current) < until:
            await redis.set(name, repr(until), ex=int(seconds) + IDLE_TTL_S // 24)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


def from_settings(**kwargs) -> Limiter:
    """The limiter the settings describe: in Redis when REDIS_URL is set (fleet-wide), else here."""
    from django.conf import settings

    limits = Limits(
        app=parse_limit(getattr(settings, "VEHICLE_API_APP_RATE_LIMIT", "")),
        vehicle=parse_limit(getattr(settings, "VEHICLE_API_VEHICLE_RATE_LIMIT", "")),
    )
    url = getattr(settings, "REDIS_URL", "")
    return RedisLimiter(url, limits, **kwargs) if url else Limiter(limits, **kwargs)
