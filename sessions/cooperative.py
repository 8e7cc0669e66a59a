"""Waiting without stopping the other steps of a controller hub (issue 17).

The in-flight worker (`sessions.controller.inflight`) runs many steps as greenlets of one thread,
a hub. A step that blocks that thread — `time.sleep`, or a `threading.Lock` that another step of
the same hub holds while it waits for the vehicle API — stops every step of the hub, and when the
step it waits for is one of them, for good: the holder can only go on once the hub runs it.

Code that may run inside a step waits through these instead: inside a step they hand the thread
back to the hub, which runs the other steps and resumes this one when its time has come; anywhere
else (a web request, a django-q2 task, a shell) they block as usual. A step's greenlet says it
can yield by having a `cooperative_sleep(seconds)` method.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import greenlet

#: How often a step waiting for a lock held by another step looks again.
LOCK_POLL_S = 0.05


def _yielding_sleep():
    return getattr(greenlet.getcurrent(), "cooperative_sleep", None)


def sleep(seconds: float) -> None:
    """`time.sleep`, but inside a step the hub runs the other steps meanwhile."""
    yielding = _yielding_sleep()
    if yielding is None:
        time.sleep(seconds)
    else:
        yielding(seconds)


@contextlib.contextmanager
def locked(lock: threading.Lock) -> Iterator[None]:
    """`with lock:`, but a step whose lock another step holds yields to the hub while it waits."""
    if _yielding_sleep() is None:
        with lock:
            yield
        return
    while not lock.acquire(blocking=False):
        sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        lock.release()
