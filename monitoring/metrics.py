"""Operator metrics counted by the code that does the work: controller steps, vehicle API calls,
overshoot, the controller's lag. Exposed by /metrics (web/metrics.py) with the gauges it reads
from the database when scraped.

Why counters live in the database: the product runs as several kinds of process (gunicorn
workers, django-q2 workers that are recycled every few hundred tasks, the controller loop) on
one or several machines. Prometheus' own multiprocess mode sums files of one machine's processes
and needs every machine to be scraped and cleaned up separately; here each process adds its
increments to one row per series (`value = value + delta`, an upsert), so any web process of
any machine answers with the fleet's totals, a restarted process keeps the counts it added,
and nothing has to be cleaned up. The cost is one small write per process every
METRICS_FLUSH_S seconds, by a daemon thread, outside every request and step transaction; what
a process counted in its last seconds before a hard kill is lost (a counter that lags a little,
never one that goes backwards).

Histograms are stored as their cumulative buckets, sum and count (counters like the others).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

logger = logging.getLogger(__name__)

STEP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LAG_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)
CALL_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 45, 90, 180, 310)


@dataclass(frozen=True)
class Metric:
    name: str  # without the _total suffix of a counter
    kind: str  # counter | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


METRICS = {
    m.name: m
    for m in (
        Metric(
            "prepaid_controller_steps",
            "counter",
            "Controller steps by the session state they ran in and their outcome "
            "(moved, stayed, lost_lease, skipped, error).",
            ("state", "outcome"),
        ),
        Metric(
            "prepaid_controller_step_seconds",
            "histogram",
            "Duration of one controller step (vehicle API calls included), seconds.",
            ("state",),
            STEP_BUCKETS,
        ),
        Metric(
            "prepaid_controller_claim_lag_seconds",
            "histogram",
            "How late the controller loop claimed a session after its next action was due, seconds.",
            (),
            LAG_BUCKETS,
        ),
        Metric(
            "prepaid_vehicle_api_calls",
            "counter",
            "Vehicle API calls made by the controller, by kind (read, start, stop, set_limit) and result.",
            ("kind", "result"),
        ),
        Metric(
            "prepaid_vehicle_api_errors",
            "counter",
            "Failed vehicle API calls by kind, error type and error code.",
            ("kind", "type", "code"),
        ),
        Metric(
            "prepaid_vehicle_api_call_seconds",
            "histogram",
            "Latency of one vehicle API call made by the controller, seconds.",
            ("kind",),
            CALL_BUCKETS,
        ),
        Metric(
            "prepaid_overshoot_absorbed_wh",
            "counter",
            "Energy delivered beyond what sessions had bought (never billed), Wh, by make.",
            ("make",),
        ),
        Metric(
            "prepaid_sessions_settled",
            "counter",
            "Sessions settled (completed or interrupted), by make.",
            ("make",),
        ),
    )
}


def _key(metric: Metric, labels: dict) -> str:
    if set(labels) != set(metric.labels):
        raise ValueError(f"{metric.name} takes labels {metric.labels}, got {tuple(labels)}")
    return json.dumps(sorted((k, str(v)) for k, v in labels.items()), separators=(",", ":"))


class _Pending:
    """This process's increments not yet written, and the thread that writes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deltas: dict[tuple[str, str], float] = defaultdict(float)
        self.pid = os.getpid()
        self.thread: threading.Thread | None = None

    def add(self, name: str, labels: str, value: float) -> None:
        with self.lock:
            if self.pid != os.getpid():
                # A forked child (gunicorn, django-q2 workers): the parent's increments are the
                # parent's to write, and its thread did not survive the fork.
                self.deltas.clear()
                self.pid, self.thread = os.getpid(), None
            self.deltas[(name, labels)] += value
            if self.thread is None:
                self._start_thread()

    def _start_thread(self) -> None:
        from django.conf import settings

        interval = settings.METRICS_FLUSH_S
        if interval <= 0:  # tests: the scrape (or the test) flushes
            return
        self.thread = threading.Thread(target=self._run, args=(interval,), name="metrics-flush", daemon=True)
        self.thread.start()

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            flush(close_connection=True)

    def take(self) -> dict[tuple[str, str], float]:
        with self.lock:
            if self.pid != os.getpid():
                self.deltas.clear()
                self.pid, self.thread = os.getpid(), None
            taken, self.deltas = dict(self.deltas), defaultdict(float)
            return taken

    def give_back(self, deltas: dict[tuple[str, str], float]) -> None:
        with self.lock:
            for key, value in deltas.items():
                self.deltas[key] += value


_pending = _Pending()


def inc(name: str, value: float = 1.0, **labels) -> None:
    """Add `value` to a counter series. Never raises into the caller's work for a bad value."""
    metric = METRICS[name]
    if value <= 0 or not math.isfinite(value):
        return
    _pending.add(name, _key(metric, labels), value)


def observe(name: str, value: float, **labels) -> None:
    """Record one observation of a histogram."""
    metric = METRICS[name]
    if not math.isfinite(value):
        return
    key = _key(metric, labels)
    for bound in metric.buckets:
        if value <= bound:
            _pending.add(f"{name}_bucket", _bucket_key(key, bound), 1)
    _pending.add(f"{name}_bucket", _bucket_key(key, math.inf), 1)
    _pending.add(f"{name}_sum", key, value)
    _pending.add(f"{name}_count", key, 1)


def _bucket_key(key: str, bound: float) -> str:
    pairs = json.loads(key)
    pairs.append(["le", "+Inf" if bound == math.inf else repr(float(bound))])
    return json.dumps(sorted(pairs), separators=(",", ":"))


_UPSERT = (
    "INSERT INTO monitoring_metriccounter (name, labels, value, updated_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (name, labels) DO UPDATE SET value = monitoring_metriccounter.value + excluded.value, "
    "updated_at = excluded.updated_at"
)


def flush(*, close_connection: bool = False) -> int:
    """Write this process's increments (one upsert per series). Returns the series written.
    Called by the flush thread, at exit, and by a scrape before it reads the totals."""
    from django.db import connection
    from django.utils import timezone

    deltas = _pending.take()
    if not deltas:
        return 0
    now = timezone.now()
    # Sorted: two processes upserting the same rows lock them in the same order (no deadlock).
    rows = [(name, labels, value, now) for (name, labels), value in sorted(deltas.items())]
    try:
        with connection.cursor() as cursor:
            cursor.executemany(_UPSERT, rows)
    except Exception:
        _pending.give_back(deltas)
        logger.warning("metrics not written (kept for the next flush)", exc_info=True)
        return 0
    finally:
        if close_connection:
            connection.close()
    return len(rows)


@atexit.register
def _flush_at_exit() -> None:
    try:
        flush(close_connection=True)
    except Exception:  # interpreter shutdown: nothing left to report to
        logger.debug("metrics not flushed at exit", exc_info=True)


# --- reading --------------------------------------------------------------------------------------


def stored_families():
    """The stored counters and histograms as prometheus_client metric families."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    from monitoring.models import MetricCounter

    rows: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for name, labels, value in MetricCounter.objects.values_list("name", "labels", "value"):
        rows[name].append((dict(json.loads(labels)) if labels else {}, value))

    families = []
    for metric in METRICS.values():
        if metric.kind == "counter":
            family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
            for labels, value in rows.get(metric.name, []):
                family.add_metric([labels.get(n, "") for n in metric.labels], value)
            families.append(family)
            continue
        family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
        sums = {_series(labels, metric): value for labels, value in rows.get(f"{metric.name}_sum", [])}
        buckets: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
        for labels, value in rows.get(f"{metric.name}_bucket", []):
            le = labels.pop("le")
            buckets[_series(labels, metric)].append((le, value))
        for series, points in sorted(buckets.items()):
            points.sort(key=lambda p: math.inf if p[0] == "+Inf" else float(p[0]))
            # A bucket is written by the first observation at or below its bound: one never written
            # lies below every observation and counts none.
            filled, running = [], 0.0
            by_bound = dict(points)
            for bound in (*metric.buckets, math.inf):
                label = "+Inf" if bound == math.inf else repr(float(bound))
                running = by_bound.get(label, running)
                filled.append((label, running))
            family.add_metric(list(series), filled, sum_value=sums.get(series, 0.0))
        families.append(family)
    return families


def _series(labels: dict, metric: Metric) -> tuple:
    return tuple(labels.get(n, "") for n in metric.labels)
