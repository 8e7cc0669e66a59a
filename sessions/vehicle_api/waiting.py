"""Waiting that does not block the other steps of the same thread.

The in-flight controller worker (sessions/controller/inflight.py) runs many steps as greenlets of
one hub thread. A step that blocks its thread — `time.sleep`, or a lock held by another greenlet
of the same thread — stops every step of the hub, and waits forever when the holder can only
run once the thread is free. Code on a step's path that waits uses `sleep` and `Lock` from here:
in a greenlet that offers `cooperative_sleep(seconds)` (the worker's steps) the wait hands the
thread back to the hub; anywhere else it is the ordinary blocking wait.
"""

from __future__ import annotations

import threading
import time

import greenlet

#: How often a cooperative waiter tries a held lock again.
LOCK_POLL_S = 0.01


def _cooperative():
    return getattr(greenlet.getcurrent(), "cooperative_sleep", None)


def sleep(seconds: float) -> None:
    cooperative = _cooperative()
    if cooperative is None:
        time.sleep(seconds)
    else:
        cooperative(seconds)


class Lock:
    """A mutex that greenlets sharing a thread can wait for: a step's greenlet sleeps
    cooperatively until the lock is free; a plain thread blocks as on `threading.Lock`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if _cooperative() is None:
            self._lock.acquire()
            return
        while not self._lock.acquire(blocking=False):
            sleep(LOCK_POLL_S)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
