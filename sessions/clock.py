"""The time the charging controller reads.

Production reads the wall clock. The fleet benchmark runs the real controller code against the
simulator in virtual time (hours of charging in seconds), and `make run` with SIM_SPEED runs it
and the simulated cars on one sped-up clock (`install_shared`), so every decision in `sessions`
asks this module for "now" instead of calling `timezone.now()` directly.
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from datetime import timezone as dt_timezone

from django.utils import timezone

_local = threading.local()
_global_now: Callable[[], datetime] | None = None


def now() -> datetime:
    """Aware UTC now, from the active clock (thread-local override, then global, then wall)."""
    source = getattr(_local, "now", None) or _global_now
    return source() if source else timezone.now()


@contextlib.contextmanager
def use(source: Callable[[], datetime], *, all_threads: bool = False) -> Iterator[None]:
    """Make `now()` read `source` (e.g. a simulator's VirtualClock.now) inside the block."""
    global _global_now
    if all_threads:
        previous, _global_now = _global_now, source
        try:
            yield
        finally:
            _global_now = previous
    else:
        previous = getattr(_local, "now", None)
        _local.now = source
        try:
            yield
        finally:
            _local.now = previous


def shared_clock(*, speed: float, origin: str) -> Callable[[], datetime]:
    """The clock `make run` gives every process and the simulator: `origin` is "wall seconds,
    simulated seconds" of one instant (SIM_CLOCK_ORIGIN), from which time runs `speed`× faster."""
    if speed <= 0:
        raise ValueError("SIM_SPEED must be positive")
    wall, _, simulated = origin.partition(",")
    wall0, sim0 = float(wall), float(simulated)
    return lambda: datetime.fromtimestamp(sim0 + (time.time() - wall0) * speed, dt_timezone.utc)


def install_shared(*, speed: float, origin: str) -> None:
    """Make `now()` read the shared sped-up clock in this whole process (SessionsConfig.ready)."""
    global _global_now
    _global_now = shared_clock(speed=speed, origin=origin)
