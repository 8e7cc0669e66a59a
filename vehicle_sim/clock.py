"""Clocks the simulator reads. Physics advance lazily to `clock.now()`, so a virtual clock makes
hours of charging pass in one call and a real clock with `speed` makes them pass faster."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc  # datetime.UTC needs Python 3.11; the project supports 3.10


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime: the simulated present."""


class RealClock:
    """Wall time, optionally running `speed`× faster from the moment the clock is created.

    `start` lets a restarted simulator continue from a simulated time that ran ahead of the wall
    clock in a previous (sped-up) run, so persisted timestamps never lie in the future.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._wall_origin = time.time()
        self._sim_origin = (start or datetime.now(UTC)).timestamp()

    def now(self) -> datetime:
        elapsed = (time.time() - self._wall_origin) * self.speed
        return datetime.fromtimestamp(self._sim_origin + elapsed, UTC)

    def set_speed(self, speed: float) -> None:
        """Run `speed`× from now on, without a jump: simulated time goes on from where it is."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._sim_origin, self._wall_origin = self.now().timestamp(), time.time()
        self.speed = speed


class VirtualClock:
    """A clock that only moves when told to: tests and benchmarks drive it."""

    def __init__(self, start: datetime | None = None):
        start = start or datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, dt: datetime) -> datetime:
        if dt.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime")
        with self._lock:
            if dt < self._now:
                raise ValueError("a clock does not run backwards")
            self._now = dt.astimezone(UTC)
            return self._now


class SteppedClock(VirtualClock):
    """A virtual clock on which each actor (a controller step) also waits for its own calls.

    The shared time moves as a VirtualClock's; inside `actor()` the current thread's now is that
    time plus what this actor's HTTP answers took (`hold`, the simulator app's `sleep`), so a read
    that takes 12 s makes the next command of the same step go out 12 s later, while the other
    sessions, running concurrently in reality, do not wait for it.
    """

    def __init__(self, start: datetime | None = None):
        super().__init__(start)
        self._local = threading.local()

    def _offset(self) -> float:
        return getattr(self._local, "offset", 0.0)

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self._offset())

    def hold(self, seconds: float) -> None:
        """The current actor waits `seconds` (outside an actor nobody waits: nothing moves)."""
        if getattr(self._local, "active", False) and seconds > 0:
            self._local.offset = self._offset() + seconds

    @contextmanager
    def actor(self, *, ahead_s: float = 0.0) -> Iterator[None]:
        """Run as one actor that starts `ahead_s` after the shared now (it was still busy)."""
        self._local.active, self._local.offset = True, max(0.0, ahead_s)
        try:
            yield
        finally:
            self._local.active, self._local.offset = False, 0.0


def iso_ms(ts: float) -> str:
    """Epoch seconds → ISO-8601 with millisecond precision and a `Z`, as SC-Data-Age uses."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
