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
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection, transaction
from django.db.models import Count, Q

from benchmarks import stats
from benchmarks.fleet import FleetConfig, FleetSimulator, _client, _connect, _credit, fleet_specs
from benchmarks.stats import query_shape
from prepaid.models import EnergyPackage
from sessions import clock, services
from sessions.controller import machine, runtime
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES
from sessions.vehicles import services as vehicles

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
    kind: str = ""  # "from→to": the status before and after the step


@dataclass
class _Acc:
    samples: list[StepSample] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)
    connections: list = field(default_factory=list)
    load: list[float] = field(default_factory=list)


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
    arrival_s: float = 60.0,
    cars_per_account: int = 1,
) -> dict:
    """Set up `sessions` open sessions, then run the loop for `duration_s` real seconds.

    The requests arrive evenly over the first `arrival_s` virtual seconds. `cars_per_account`
    cars share one driver account and wallet (fewer, larger credits make a 10,000-car setup fast).
    """
    sim_clock = SpeedClock(START, speed)
    sim = FleetSimulator(sim_clock, seed=seed)
    client = _client(sim, wrap=_timed_app)
    vehicles.use_client(client)
    acc = _Acc()
    config = FleetConfig(sessions=sessions, seed=seed).resolved()
    try:
        with clock.use(sim_clock.now, all_threads=True):
            t_setup = time.monotonic()
            _setup_fleet(sim, config, policy_spec, arrival_s=arrival_s, cars_per_account=cars_per_account)
            setup_s = time.monotonic() - t_setup
            claim_plan = _claim_plan()
            sim_clock.run()
            loop = _loop(acc, workers=workers, duration_s=duration_s, speed=speed, interval_s=interval_s)
            end = _fleet_state()
    finally:
        vehicles.use_client(None)
        client.close()
    config_doc = {
        "sessions": sessions,
        "workers": workers,
        "duration_s": duration_s,
        "speed": speed,
        "arrival_s": arrival_s,
        "cars_per_account": cars_per_account,
        "policy": policy_spec,
        "setup_s": round(setup_s, 1),
    }
    doc = _summary(acc, loop, **config_doc)
    doc["fleet_at_end"] = end
    doc["claim"]["plan_at_setup"] = claim_plan
    doc["machine"] = _machine(acc)
    return doc


def _traits(config: FleetConfig) -> dict | None:
    """On `generic` the command line defines the car: the sessions are told its traits (as the
    fleet benchmark does, `fleet._setup`)."""
    if not config.overrides_traits():
        return None
    return {
        "energy_step_wh": round(config.energy_step_kwh * 1000),
        "soc_step_bp": round(config.soc_step_pct * 100),
        "nominal_power_w": round(config.power_kw * 1000),
        "telemetry_refresh_s": round(config.telemetry_age_s),
    }


def _setup_fleet(sim, config: FleetConfig, policy_spec: str, *, arrival_s: float, cars_per_account: int) -> None:
    """The fleet's cars, accounts, credit and session requests, through the product's own services
    (purchase, wallet credit, `session_request` with its hold), in transactions of a few hundred
    cars instead of one per write; users are created in bulk. Request i arrives at
    START + arrival_s × i / n (its `now`), which is when its first step falls due."""
    specs = fleet_specs(config)
    n = len(specs)
    per = max(1, cars_per_account)
    package = EnergyPackage.objects.create(name="bench credit", energy_wh=1000, price_minor=100)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-{i}-{uuid.uuid4().hex[:8]}") for i in range(-(-n // per))]
    )
    chunk = 500
    for lo in range(0, n, chunk):
        with transaction.atomic():
            cars = []
            for spec in specs[lo : lo + chunk]:
                user = users[spec.index // per]
                if spec.index % per == 0:
                    group = specs[spec.index : spec.index + per]
                    package.energy_wh = sum(s.purchase_wh for s in group)
                    package.save(update_fields=["energy_wh"])
                    _credit(user, package.energy_wh, package)
                cars.append(_connect(sim, config, spec, user))
            for car in cars:
                at = START + timedelta(seconds=arrival_s * car.spec.index / max(1, n))
                services.session_request(
                    user=car.vehicle.owner,
                    vehicle_id=car.vehicle.pk,
                    energy_wh=car.spec.purchase_wh,
                    policy_spec=policy_spec,
                    now=at,
                )
    traits = _traits(config)
    if traits:
        ChargingSession.objects.update(**traits)


def _claim_plan() -> list[str]:
    """The claim query's plan with every session open (PostgreSQL: EXPLAIN ANALYZE)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        # Statistics as autovacuum would keep them: the bulk setup has just written the table.
        cursor.execute(f"ANALYZE {ChargingSession._meta.db_table}")
    later = START + timedelta(days=1)
    due = (
        ChargingSession.objects.filter(status__in=OPEN_STATUSES, next_action_at__lte=later)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=later))
        .order_by("next_action_at")
        .values_list("id", flat=True)[:1000]
    )
    return due.explain(analyze=True).splitlines()


def _fleet_state() -> dict:
    rows = ChargingSession.objects.aggregate(
        sessions=Count("pk"),
        started=Count("pk", filter=Q(start_sent_at__isnull=False)),
        charging_seen=Count("pk", filter=Q(charging_at__isnull=False)),
        metered=Count("pk", filter=Q(charging_at__isnull=False, delivered_wh__gt=0)),
    )
    rows["by_status"] = dict(ChargingSession.objects.values_list("status").annotate(n=Count("pk")).order_by())
    return rows


def _machine(acc: _Acc) -> dict:
    load = acc.load or [os.getloadavg()[0]]
    return {
        "cpus": os.cpu_count(),
        "load_1m_mean": round(sum(load) / len(load), 2),
        "load_1m_max": round(max(load), 2),
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
    }


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
            machine.session_step(session_id=session_id, lease_token=token)
    except Exception as exc:  # a failing step is a finding; the lease lets the loop retry it
        with acc.lock:
            acc.errors.append(f"{session_id}: {type(exc).__name__}: {exc}")
    finally:
        cpu_ms = (time.thread_time() - t0) * 1000
        before = due[1] if due else ""
        after = ChargingSession.objects.filter(pk=session_id).values_list("status", flat=True).first()
        sample = StepSample(lag, cpu_ms - _sim_cpu.ms, _sim_cpu.ms, len(queries), before, f"{before}→{after}")
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
            acc.load.append(os.getloadavg()[0])
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
    return {
        "ticks": len(tick_ms),
        "claim_ms_p50": _r(stats.percentile(tick_ms, 50)),
        "claim_ms_p99": _r(stats.percentile(tick_ms, 99)),
        "claimed": claimed,
    }


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
        "by_kind": _by_kind(samples),
        "queries_by_shape_per_step": {q: _r(c / n) for q, c in acc.shapes.most_common(25)},
        "claim": loop,
        "step_errors": acc.errors[:20],
        "step_error_count": len(acc.errors),
    }


def _by_kind(samples: list[StepSample]) -> dict:
    """Per kind of step ("from→to"): how many, queries p50/mean/max, CPU ms p50, lag p99."""
    kinds: dict[str, list[StepSample]] = {}
    for sample in samples:
        kinds.setdefault(sample.kind, []).append(sample)
    out = {}
    for kind, group in sorted(kinds.items(), key=lambda item: -len(item[1])):
        queries = [s.queries for s in group]
        out[kind] = {
            "steps": len(group),
            "queries_p50": stats.percentile(queries, 50),
            "queries_mean": _r(sum(queries) / len(queries)),
            "queries_max": max(queries),
            "cpu_ms_p50": _r(stats.percentile([s.cpu_ms for s in group], 50)),
            "tick_lag_s_p99": _r(stats.percentile([s.lag_s for s in group], 99), 3),
        }
    return out
