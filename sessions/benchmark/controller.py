"""Controller throughput: many concurrent sessions stepped in (sped-up) real time (issue 8 §2).

Unlike the fleet benchmark, time here really passes: the simulator and the controller share a
clock that runs `speed`× faster than the wall clock, the loop ticks every `interval_s` real
seconds like `run_controller`, and a pool of worker threads runs the steps the loop claims (the
same `sessions.tasks.session_step` a django-q2 worker runs; the broker hop itself is not measured).
Per step we measure:

- tick lag: how late the step started after its `next_action_at`, in real seconds (virtual
  lateness ÷ speed) — whether the loop and the workers keep up with the fleet;
- CPU ms of the step in the worker thread (`time.thread_time`), with the in-process simulator's
  own CPU subtracted (in production the vehicle API is someone else's computer);
- database queries issued by the step (`connection.execute_wrapper` in the worker thread), and
  which ones, so the heaviest can be optimised.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import close_old_connections, connection

from sessions import clock, runtime, services, vehicles
from sessions.benchmark import stats
from sessions.benchmark.fleet import FleetConfig, FleetSimulator, _client, _setup
from sessions.benchmark.stats import query_shape
from sessions.models import ChargingSession

START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


class SpeedClock:
    """Virtual time that stands still at `start` until `run()`, then runs `speed`× the wall clock."""

    def __init__(self, start: datetime, speed: float) -> None:
        self.start, self.speed = start, speed
        self._origin: float | None = None

    def run(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> datetime:
        if self._origin is None:
            return self.start
        return self.start + timedelta(seconds=(time.monotonic() - self._origin) * self.speed)


@dataclass
class StepSample:
    lag_s: float
    cpu_ms: float
    sim_cpu_ms: float
    queries: int
    status: str


@dataclass
class _Acc:
    samples: list[StepSample] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    connections: list = field(default_factory=list)


_sim_cpu = threading.local()


def _timed_app(app):
    def wsgi(environ, start_response):
        t0 = time.thread_time()
        try:
            return list(app(environ, start_response))
        finally:
            _sim_cpu.ms = getattr(_sim_cpu, "ms", 0.0) + (time.thread_time() - t0) * 1000

    return wsgi


def run_controller_benchmark(
    *,
    sessions: int = 50,
    workers: int = 4,
    duration_s: float = 30.0,
    speed: float = 30.0,
    interval_s: float = 1.0,
    seed: int = 1,
    policy_spec: str = "predictive",
) -> dict:
    """Set up `sessions` open sessions, then run the loop for `duration_s` real seconds."""
    sim_clock = SpeedClock(START, speed)
    sim = FleetSimulator(sim_clock, seed=seed)
    client = _client(sim, wrap=_timed_app)
    vehicles.use_client(client)
    acc = _Acc()
    config = FleetConfig(sessions=sessions, seed=seed).resolved()
    try:
        with clock.use(sim_clock.now, all_threads=True):
            t_setup = time.monotonic()
            cars = _setup(sim, config, policy_spec)
            setup_s = time.monotonic() - t_setup
            # Spread the first steps over the first minute of virtual time, as requests arrive.
            for i, car in enumerate(cars):
                ChargingSession.objects.filter(pk=car.session_id).update(
                    next_action_at=START + timedelta(seconds=60 * i / max(1, len(cars)))
                )
            sim_clock.run()
            loop = _loop(acc, workers=workers, duration_s=duration_s, speed=speed, interval_s=interval_s)
    finally:
        vehicles.use_client(None)
        client.close()
    return _summary(acc, loop, sessions=sessions, workers=workers, duration_s=duration_s, speed=speed, setup_s=setup_s)


def _step(acc: _Acc, session_id: int, token: uuid.UUID, speed: float) -> None:
    due = ChargingSession.objects.filter(pk=session_id).values_list("next_action_at", "status").first()
    lag = max(0.0, (clock.now() - due[0]).total_seconds() / speed) if due and due[0] else 0.0
    queries: list[str] = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    _sim_cpu.ms = 0.0
    t0 = time.thread_time()
    try:
        with connection.execute_wrapper(count):
            services.session_step(session_id=session_id, lease_token=token)
    except Exception as exc:  # a failing step is a finding; the lease lets the loop retry it
        with acc.lock:
            acc.errors.append(f"{session_id}: {type(exc).__name__}: {exc}")
    finally:
        cpu_ms = (time.thread_time() - t0) * 1000
        sample = StepSample(lag, cpu_ms - _sim_cpu.ms, _sim_cpu.ms, len(queries), due[1] if due else "")
        with acc.lock:
            acc.samples.append(sample)
            acc.shapes.update(query_shape(q) for q in queries)
        if threading.current_thread() is not threading.main_thread():
            close_old_connections()
            with acc.lock:
                raw = connection.connection
                if raw is not None and all(c is not raw for c in acc.connections):
                    acc.connections.append(raw)


def _loop(acc: _Acc, *, workers: int, duration_s: float, speed: float, interval_s: float) -> dict:
    tick_ms: list[float] = []
    claimed = 0
    end = time.monotonic() + duration_s
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        while time.monotonic() < end:
            started = time.monotonic()
            batch = runtime.sessions_claim_due(limit=1000)
            tick_ms.append((time.monotonic() - started) * 1000)
            claimed += len(batch)
            if workers:
                pending += [pool.submit(_step, acc, sid, token, speed) for sid, token in batch]
            else:
                for sid, token in batch:  # inline in the loop's thread (SQLite: one writer at a time)
                    _step(acc, sid, token, speed)
            pending = [f for f in pending if not f.done()]
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
        for f in pending:
            f.result()
    # Worker threads keep their database connections (as django-q2 workers do); close them so the
    # throwaway database can be dropped.
    for raw in acc.connections:
        with contextlib.suppress(Exception):
            raw.close()
    return {"ticks": len(tick_ms), "claim_ms_p99": stats.percentile(tick_ms, 99), "claimed": claimed}


def _r(value, digits=2):
    return None if value is None else round(value, digits)


def _summary(acc: _Acc, loop: dict, **config) -> dict:
    samples = acc.samples
    n = len(samples) or 1
    lags = [s.lag_s for s in samples]
    cpu = [s.cpu_ms for s in samples]
    queries = [s.queries for s in samples]
    return {
        "config": {**config, "database": connection.vendor},
        "steps": len(samples),
        "steps_per_s": _r(len(samples) / config["duration_s"]),
        "steps_by_state": dict(Counter(s.status for s in samples)),
        "tick_lag_s_p50": _r(stats.percentile(lags, 50), 3),
        "tick_lag_s_p99": _r(stats.percentile(lags, 99), 3),
        "tick_lag_s_max": _r(max(lags, default=None), 3),
        "cpu_ms_per_step_p50": _r(stats.percentile(cpu, 50)),
        "cpu_ms_per_step_p99": _r(stats.percentile(cpu, 99)),
        "cpu_ms_per_step_mean": _r(sum(cpu) / n),
        "sim_cpu_ms_per_step_mean": _r(sum(s.sim_cpu_ms for s in samples) / n),
        "queries_per_step_p50": stats.percentile(queries, 50),
        "queries_per_step_p99": stats.percentile(queries, 99),
        "queries_per_step_mean": _r(sum(queries) / n),
        "queries_by_shape_per_step": {q: _r(c / n) for q, c in acc.shapes.most_common(25)},
        "claim": loop,
        "step_errors": acc.errors[:20],
        "step_error_count": len(acc.errors),
    }
