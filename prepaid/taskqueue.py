"""Enqueue django-q2 tasks through one broker per process.

`django_q.tasks.async_task` builds a new broker for every task unless one is passed in; with the
Redis broker that is a new Redis client, connection pool and TCP connection (plus redis-py's
handshake, which reads the package metadata from disk) for every single task: about 1 ms of CPU
and five round trips before the one RPUSH that matters. Reusing one broker per process keeps a
pooled connection. redis-py's pool notices a fork and reconnects in the child, so a broker made
before gunicorn forks is still safe; the ORM broker holds no connection of its own.
"""

from __future__ import annotations

import os
import threading

from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task

_lock = threading.Lock()
_broker: tuple[int, Broker] | None = None


def broker() -> Broker:
    """This process's broker (made on first use, and again in a forked child)."""
    global _broker
    current = _broker
    if current is None or current[0] != os.getpid():
        with _lock:
            current = _broker
            if current is None or current[0] != os.getpid():
                current = _broker = (os.getpid(), get_broker())
    return current[1]


def enqueue(func: str, *args, task_name: str, **kwargs) -> str:
    """`async_task` with this process's broker; returns the task id."""
    return async_task(func, *args, task_name=task_name, broker=broker(), **kwargs)
