"""The time the charging controller reads.

Production reads the wall clock. The fleet benchmark runs the real controller code against the
simulator in virtual time (hours of charging in seconds), so every decision in `sessions` asks
this module for "now" instead of calling `timezone.now()` directly.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime

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
