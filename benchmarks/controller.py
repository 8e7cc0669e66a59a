"""Controller throughput: many concurrent sessions run to their end in (sped-up) real time, with the
vehicle API as slow as it really is (issues 8 §2 and 17).

The simulator and the controller share a clock that runs `speed`× faster than the wall clock.
One in-flight worker (`sessions/controller/inflight.py`, what `run_controller --in-flight N`
runs) claims due sessions every `interval_s` real seconds and runs their steps in greenlets; the
steps' vehicle API calls go to one asyncio event loop, where the in-process simulator answers
them after realistic times (`vehicle_sim/async_transport.py`: a read after 1–20 s, a command
once the car acknowledged it, i.e. after its command latency; `--answer-latency ideal` answers
at once). The application's and each vehicle's rate limits are kept by the worker's limiter and
enforced by the simulator too (a request over them would be a 429).

Per step we measure:

- tick lag: how late the step started after its `next_action_at`, in real seconds (virtual
  lateness ÷ speed): whether the worker keeps up with the fleet;
- decision delay: from the step's due time to its first vehicle API request leaving the worker
  (after any rate-limit wait), real seconds; and to its command (a POST) for steps that send one;
- CPU ms of the step in the worker's thread (`time.thread_time` around each switch into the
  step's greenlet; the simulator and the HTTP event loop run in another thread);
- database queries issued by the step (one `execute_wrapper` on the worker's connection,
  attributed to the step whose greenlet runs), and which ones.

Every tick samples the calls in flight, the process's RSS (simulator included) and, on
PostgreSQL, the connections open to the benchmark's database (`pg_stat_activity`).
The run ends when every session is terminal (or at `max_duration_s`); then the books are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import greenlet
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum

from benchmarks import stats
from benchmarks.cars import save_connected
from benchmarks.fleet import ORIGIN, FleetConfig, FleetSimulator, _connect_many, _credit, fleet_specs
from benchmarks.stats import query_shape
from payments.selectors import ledger_drift
from prepaid.models import EnergyPackage
from sessions import clock, services
from sessions.controller import inflight, ratelimit, readings
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES, VehicleCommand
from sessions.vehicle_api.v3 import VehicleApiV3Client
from sessions.vehicles import services as vehicles
from vehicle_sim.async_transport import AsyncSimulatorTransport

START = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
# Realistic answer times (issue 17; docs/reference/vehicle-api.md §6, makes.md §1): a read's answer
# after 1–20 s; a command's (v3) a 202 at its sync limit or its answer if the car is quicker.
ANSWER_LATENCIES = {
    "realistic": {"answer_latency_s": (1.0, 20.0)},
    "ideal": {"answer_latency_s": (0.0, 0.0)},
}
# The setup: cars per transaction, and transactions at once on PostgreSQL.
SETUP_BATCH = 250
SETUP_THREADS = 4
# Smartcar's published price per billed request (pay-as-you-go, docs/reference/vehicle-api.md §6).
PRICE_PER_CALL_USD = 0.15


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

    def real(self, at: datetime) -> float:
        """The monotonic instant at which virtual time reaches `at`."""
        return (self._origin or 0.0) + (at - self.start).total_seconds() / self.speed


@dataclass
class StepRecord:
    session_id: int
    status: str = ""
    due: datetime | None = None
    started: float = 0.0
    first_sent: float | None = None
    command_sent: float | None = None
    queries: int = 0
    takeover: bool = False
    db_s: float = 0.0
    db_cpu_s: float = 0.0
    shapes: Counter = field(default_factory=Counter)


@dataclass
class StepSample:
    lag_s: float
    decision_s: float | None
    command_decision_s: float | None
    cpu_ms: float
    queries: int
    status: str
    kind: str
    # The step took over from one that outlived its lease: its lateness is the lease's, not the worker's.
    takeover: bool = False


@dataclass
class _Acc:
    samples: list[StepSample] = field(default_factory=list)
    shapes: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    in_flight: list[int] = field(default_factory=list)
    steps_running: list[int] = field(default_factory=list)
    db_connections: list[int] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    sim_cpu_s: float = 0.0
    db_wall_s: float = 0.0
    db_cpu_s: float = 0.0


def _timed_app(acc: _Acc):
    def wrap(app):
        def wsgi(environ, start_response):
            t0 = time.thread_time()
            try:
                return list(app(environ, start_response))
            finally:
                acc.sim_cpu_s += time.thread_time() - t0

        return wsgi

    return wrap


def run_controller_benchmark(
    *,
    sessions: int = 50,
    in_flight: int = 2000,
    hubs: int = 8,
    max_duration_s: float = 3600.0,
    speed: float = 2.0,
    interval_s: float = 1.0,
    seed: int = 1,
    policy_spec: str = "predictive",
    arrival_s: float = 60.0,
    cars_per_account: int = 1,
    purchase_kwh: tuple[float, float] = (1.0, 4.0),
    answer_latency: str = "realistic",
    failure_rate: float = 0.0,
    app_rate_limit: tuple[int, float] | None = (1000, 6000.0),
    vehicle_rate_limit: tuple[int, float] | None = (6, 3.0),
    switch_interval_ms: float | None = None,
) -> dict:
    """Set up `sessions` requested sessions, then run the worker until every one is terminal.

    The requests arrive evenly over the first `arrival_s` virtual seconds. `cars_per_account`
    cars share one driver account and wallet (fewer, larger credits make a 10,000-car setup fast).
    """
    sim_clock = SpeedClock(START, speed)
    # The interpreter's switch interval while the hubs run: the worker's unless told.
    switch_s = inflight.SWITCH_INTERVAL_S if switch_interval_ms is None else switch_interval_ms / 1000
    config = FleetConfig(sessions=sessions, seed=seed, purchase_kwh=purchase_kwh).resolved()
    world = replace(config.sim_world(), **ANSWER_LATENCIES[answer_latency], vehicle_throttle=vehicle_rate_limit)
    sim = FleetSimulator(sim_clock, seed=seed, world=world, app_rate_limit=app_rate_limit)
    acc = _Acc()
    transport = AsyncSimulatorTransport(sim, wrap=_timed_app(acc), failure_rate=failure_rate, speed=speed, seed=seed)
    limiter = _limiter(ratelimit.Limits(app=app_rate_limit, vehicle=vehicle_rate_limit), speed)
    bridge = inflight.CallBridge(transport, limiter=limiter, on_sent=_on_sent)
    client = VehicleApiV3Client(
        api_origin=ORIGIN,
        management_origin=ORIGIN,
        iam_url=f"{ORIGIN}/oauth2/token",
        client_id="sim-client-id",
        client_secret="sim-client-secret",  # noqa: S106 - the simulator's development secret
        transport=inflight.BridgeTransport(bridge),
        clock=sim_clock.now,
    )
    vehicles.use_client(client)
    readings._latency_models_cached.cache_clear()  # a per-minute cache keyed on virtual time
    try:
        with clock.use(sim_clock.now, all_threads=True):
            t_setup = time.monotonic()
            _setup_fleet(sim, config, policy_spec, arrival_s=arrival_s, cars_per_account=cars_per_account)
            setup_s = time.monotonic() - t_setup
            rss_after_setup = _rss_mib()
            sim_clock.run()
            loop = _loop(
                acc,
                bridge,
                sim_clock,
                in_flight=in_flight,
                hubs=hubs,
                max_s=max_duration_s,
                interval_s=interval_s,
                switch_interval_s=switch_s,
            )
            end = _fleet_state()
    finally:
        vehicles.use_client(None)
        client.close()
        bridge.close()
    config_doc = {
        "sessions": sessions,
        "in_flight": in_flight,
        "hubs": hubs,
        "max_duration_s": max_duration_s,
        "speed": speed,
        "interval_s": interval_s,
        "arrival_s": arrival_s,
        "cars_per_account": cars_per_account,
        "purchase_kwh": list(purchase_kwh),
        "answer_latency": answer_latency,
        "answer_latency_s": list(world.answer_latency_s),
        "command_latency_s": list(config.latency_s),
        "failure_rate": failure_rate,
        "app_rate_limit": list(app_rate_limit) if app_rate_limit else None,
        "vehicle_rate_limit": list(vehicle_rate_limit) if vehicle_rate_limit else None,
        "policy": policy_spec,
        "seed": seed,
        "switch_interval_ms": round((switch_s or sys.getswitchinterval()) * 1000, 3),
        "setup_s": round(setup_s, 1),
    }
    doc = _summary(acc, loop, end, **config_doc)
    doc["failures_injected"] = dict(transport.failures)
    doc["rate_limit_waits"] = limiter.waits
    doc["rss_after_setup_mib"] = round(rss_after_setup, 1)
    doc["machine"] = _machine(acc)
    return doc


def _limiter(limits: ratelimit.Limits, speed: float) -> ratelimit.Limiter:
    """The worker's limiter on the benchmark's virtual clock: in Redis when REDIS_URL is set (as
    a fleet of workers would share it), under a prefix of its own."""
    from django.conf import settings

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds / speed)

    if getattr(settings, "REDIS_URL", ""):
        prefix = f"bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        return ratelimit.RedisLimiter(settings.REDIS_URL, limits, prefix=prefix, sleep=sleep)
    return ratelimit.Limiter(limits, sleep=sleep)


def _on_sent(record: StepRecord | None, request) -> None:
    if record is None:
        return
    at = time.monotonic()
    if record.first_sent is None:
        record.first_sent = at
    if request.method == "POST" and record.command_sent is None and "/oauth" not in request.url.path:
        record.command_sent = at


def _setup_fleet(sim, config: FleetConfig, policy_spec: str, *, arrival_s: float, cars_per_account: int) -> None:
    """The fleet's cars, accounts, credit and session requests, through the product's own services
    (purchase, wallet credit, `session_request` with its hold). Users, vehicle connections and
    vehicles (rows that move no money) are written in bulk; the credits in transactions of a few
    hundred cars, then the cars' sessions in such transactions, several at once on PostgreSQL
    (the setup waits for round trips more than for CPU; each batch has its own accounts, so no two
    touch the same wallet). The simulator's cars and
    tokens are drawn first, in order, so a seed gives the same fleet however the batches interleave.
    Request i arrives at START + arrival_s × i / n (its `now`), which is when its first step falls due."""
    specs = fleet_specs(config)
    n = len(specs)
    per = max(1, cars_per_account)
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"bench-{i}-{uuid.uuid4().hex[:8]}") for i in range(-(-n // per))]
    )
    cars = _connect_many(sim, config, [(spec, users[spec.index // per]) for spec in specs], save=False)
    chunk = per * max(1, SETUP_BATCH // per)  # an account's cars stay in one batch

    # Credit first, in this thread: every purchase takes the invoice sequence's row lock, which a
    # batch holding it to its commit would make the other batches wait for.
    package = EnergyPackage.objects.create(name="bench credit", energy_wh=1000, price_minor=100)
    for lo in range(0, n, chunk):
        with transaction.atomic():
            for spec in specs[lo : lo + chunk : per]:
                group = specs[spec.index : spec.index + per]
                package.energy_wh = sum(s.purchase_wh for s in group)
                package.save(update_fields=["energy_wh"])
                _credit(users[spec.index // per], package.energy_wh, package)

    def setup(batch: list) -> None:
        try:
            with transaction.atomic():
                save_connected([car.vehicle for car in batch])
                for car in batch:
                    services.session_request(
                        user=car.vehicle.owner,
                        vehicle_id=car.vehicle.pk,
                        energy_wh=car.spec.purchase_wh,
                        policy_spec=policy_spec,
                        now=START + timedelta(seconds=arrival_s * car.spec.index / max(1, n)),
                    )
        finally:
            if threads > 1:
                connection.close()

    threads = SETUP_THREADS if connection.vendor == "postgresql" else 1
    batches = [cars[lo : lo + chunk] for lo in range(0, n, chunk)]
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="bench-setup") as pool:
            list(pool.map(setup, batches))
    else:
        for batch in batches:
            setup(batch)
    traits = _traits(config)
    if traits:
        ChargingSession.objects.update(**traits)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Statistics as autovacuum would keep them: the bulk setup has just written the table.
            cursor.execute(f"ANALYZE {ChargingSession._meta.db_table}")


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


def _open_sessions() -> int:
    return ChargingSession.objects.filter(status__in=OPEN_STATUSES).count()


def _db_connections() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _rss_mib() -> float:
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def _loop(
    acc: _Acc,
    bridge: inflight.CallBridge,
    sim_clock: SpeedClock,
    *,
    in_flight: int,
    hubs: int,
    max_s: float,
    interval_s: float,
    switch_interval_s: float | None = None,
) -> dict:
    speed = sim_clock.speed
    ticks = {"n": 0, "open": None}
    lock = threading.Lock()
    # When each session's last step ended: a step cannot be claimed before (its lease), so a
    # step's lateness counts from its due time or from then, whichever is later.
    ended: dict[int, float] = {}
    planned_late: list[float] = []
    backend_cpu: list[float] = []
    started = time.monotonic()

    def on_tick() -> None:
        ticks["n"] += 1
        acc.in_flight.append(bridge.in_flight)
        acc.steps_running.append(sum(len(w.active) for w in workers))
        acc.rss_mib.append(_rss_mib())
        acc.load.append(os.getloadavg()[0])
        if ticks["n"] % 5 == 1:
            acc.db_connections.append(_db_connections() or 0)
            ticks["open"] = _open_sessions()

    running: dict[int, int] = {}

    def on_step_start(g: inflight.StepGreenlet) -> None:
        g.record = StepRecord(session_id=g.session_id, started=time.monotonic())
        with lock:
            # Another step of this session still runs: it outlived its lease and this one took over.
            g.record.takeover = running.get(g.session_id, 0) > 0
            running[g.session_id] = running.get(g.session_id, 0) + 1

    def on_step_end(g: inflight.StepGreenlet, error: BaseException | None) -> None:
        record: StepRecord = g.record
        g.record = None
        # What the step loaded and committed (`machine.session_step`'s record): no query of ours
        # on the hub's connection, which the other steps of the hub wait for.
        done = g.result
        if done is not None:
            record.due, record.status = done.due, done.state
        after = (done.to_state if done is not None else "") or record.status
        now = time.monotonic()
        due_real = sim_clock.real(record.due) if record.due else record.started
        with lock:
            running[g.session_id] -= 1
            previous_end = ended.get(g.session_id)
            ended[g.session_id] = now
            if error is not None:
                acc.errors.append(f"{g.session_id}: {type(error).__name__}: {error}")
            if previous_end is not None:
                # The step before planned this one for a moment it had itself not yet reached.
                planned_late.append(max(0.0, previous_end - due_real))
            ready = max(due_real, previous_end or due_real)
            lag = max(0.0, record.started - ready)
            decision = None if record.first_sent is None else max(0.0, record.first_sent - ready)
            command = None if record.command_sent is None else max(0.0, record.command_sent - ready)
            acc.samples.append(
                StepSample(
                    lag,
                    decision,
                    command,
                    g.cpu_s * 1000,
                    record.queries,
                    record.status,
                    f"{record.status}→{after}",
                    record.takeover,
                )
            )
            acc.shapes.update(record.shapes)
            acc.db_wall_s += record.db_s
            acc.db_cpu_s += record.db_cpu_s

    def count(execute, sql, params, many, context):
        record = getattr(greenlet.getcurrent(), "record", None)
        if record is None:
            return execute(sql, params, many, context)
        record.queries += 1
        record.shapes[query_shape(sql)] += 1
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return execute(sql, params, many, context)
        finally:
            record.db_s += time.perf_counter() - t0
            record.db_cpu_s += time.thread_time() - c0

    @contextlib.contextmanager
    def hub_context():
        before = _backend_cpu_s()
        with connection.execute_wrapper(count):
            yield
        after = _backend_cpu_s()
        if before is not None and after is not None:
            with lock:
                backend_cpu.append(after - before)

    def stop() -> bool:
        return ticks["open"] == 0 or time.monotonic() - started > max_s

    hubs = max(1, hubs)
    workers = [
        inflight.InFlightWorker(
            max_in_flight=max(1, in_flight // hubs),
            interval_s=interval_s,
            on_step_start=on_step_start,
            on_step_end=on_step_end,
            on_tick=on_tick if i == 0 else None,
            context=hub_context,
        )
        for i in range(hubs)
    ]
    # Persistent connections for the run (a worker may keep them; DB_CONN_MAX_AGE would recycle
    # them every minute), so each backend's CPU measured by its hub is the whole run's.
    max_age = connection.settings_dict.get("CONN_MAX_AGE")
    connection.settings_dict["CONN_MAX_AGE"] = None
    process_cpu, loop_cpu = time.process_time(), _loop_thread_cpu(bridge)
    try:
        inflight.run_hubs(
            workers,
            stop=stop,
            drain_s=max(60.0, 700.0 / speed),
            switch_interval_s=switch_interval_s,
        )
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = max_age
    elapsed = time.monotonic() - started
    return {
        "hubs": hubs,
        "process_cpu_s": round(time.process_time() - process_cpu, 1),
        "io_loop_cpu_s": round(_loop_thread_cpu(bridge) - loop_cpu, 1),
        "db_backend_cpu_s": round(sum(backend_cpu), 1) if backend_cpu else None,
        "run_s": round(elapsed, 1),
        "virtual_s": round(elapsed * speed, 1),
        "ticks": ticks["n"],
        "claimed": sum(w.claimed for w in workers),
        "bridge_in_flight_max": bridge.in_flight_max,
        "planned_before_previous_step_ended_p50_s": _r(stats.percentile(planned_late, 50), 3),
        "planned_before_previous_step_ended_p99_s": _r(stats.percentile(planned_late, 99), 3),
    }


def _loop_thread_cpu(bridge: inflight.CallBridge) -> float:
    """CPU seconds the event loop's thread has used (HTTP, rate limiter, in-process simulator)."""

    async def cpu() -> float:
        return time.thread_time()

    return asyncio.run_coroutine_threadsafe(cpu(), bridge.loop).result(timeout=30)


def _backend_cpu_s() -> float | None:
    """CPU seconds of the PostgreSQL backend serving the worker (Linux /proc; same machine)."""
    if connection.vendor != "postgresql":
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _fleet_state() -> dict:
    rows = ChargingSession.objects.aggregate(
        sessions=Count("pk"),
        started=Count("pk", filter=Q(start_sent_at__isnull=False)),
        charging_seen=Count("pk", filter=Q(charging_at__isnull=False)),
        billed_above_purchase=Count("pk", filter=Q(billed_wh__gt=F("purchased_wh"))),
        purchased_wh=Sum("purchased_wh"),
        billed_wh=Sum("billed_wh"),
        api_calls=Sum("api_calls"),
    )
    rows["by_status"] = dict(ChargingSession.objects.values_list("status").annotate(n=Count("pk")).order_by())
    rows["reasons"] = dict(
        ChargingSession.objects.exclude(status__in=OPEN_STATUSES)
        .values_list("reason")
        .annotate(n=Count("pk"))
        .order_by("-n")[:12]
    )
    rows["open"] = sum(n for status, n in rows["by_status"].items() if status in OPEN_STATUSES)
    rows["calls_429"] = VehicleCommand.objects.filter(http_status=429).count()
    rows["calls_failed"] = VehicleCommand.objects.filter(ok=False).count()
    rows["ledger_drift"] = ledger_drift()
    return rows


def _machine(acc: _Acc) -> dict:
    load = acc.load or [os.getloadavg()[0]]
    return {
        "cpus": os.cpu_count(),
        "load_1m_mean": round(sum(load) / len(load), 2),
        "load_1m_max": round(max(load), 2),
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _r(value, digits=2):
    return None if value is None else round(value, digits)


def _summary(acc: _Acc, loop: dict, end: dict, **config) -> dict:
    samples = acc.samples
    n = len(samples) or 1
    own = [s for s in samples if not s.takeover]
    lags = [s.lag_s for s in own]
    decisions = [s.decision_s for s in own if s.decision_s is not None]
    commands = [s.command_decision_s for s in own if s.command_decision_s is not None]
    cpu = [s.cpu_ms for s in samples]
    queries = [s.queries for s in samples]
    unsettled = [s.queries for s in samples if not s.kind.endswith(("→completed", "→failed", "→cancelled"))]
    terminal = {k: v for k, v in end["by_status"].items() if k not in OPEN_STATUSES}
    sessions = end["sessions"] or 1
    return {
        "config": {**config, "database": connection.vendor},
        "sessions": end["sessions"],
        "terminal": terminal,
        "terminal_count": sum(terminal.values()),
        "open_at_end": end["open"],
        "billed_above_purchase": end["billed_above_purchase"],
        "ledger_drift": len(end["ledger_drift"]),
        "ledger_drift_lines": end["ledger_drift"][:10],
        "step_errors": len(acc.errors),
        "step_error_samples": acc.errors[:20],
        "steps": len(samples),
        "steps_per_session": _r(len(samples) / sessions),
        "steps_per_s": _r(len(samples) / max(1e-9, loop["run_s"])),
        "steps_by_state": dict(Counter(s.status for s in samples)),
        "lease_takeovers": len(samples) - len(own),
        "tick_lag_p50_s": _r(stats.percentile(lags, 50), 3),
        "tick_lag_p99_s": _r(stats.percentile(lags, 99), 3),
        "tick_lag_max_s": _r(max(lags, default=None), 3),
        "decision_delay_p50_s": _r(stats.percentile(decisions, 50), 3),
        "decision_delay_p99_s": _r(stats.percentile(decisions, 99), 3),
        "decision_delay_max_s": _r(max(decisions, default=None), 3),
        "command_decision_delay_p50_s": _r(stats.percentile(commands, 50), 3),
        "command_decision_delay_p99_s": _r(stats.percentile(commands, 99), 3),
        "in_flight_p50": stats.percentile(acc.in_flight, 50),
        "in_flight_max": max(loop["bridge_in_flight_max"], max(acc.in_flight, default=0)),
        "steps_running_p50": stats.percentile(acc.steps_running, 50),
        "steps_running_max": max(acc.steps_running, default=0),
        "db_connections_max": max(acc.db_connections, default=None),
        "rss_max_mib": _r(max(acc.rss_mib, default=0.0), 1),
        "cpu_ms_per_step_p50": _r(stats.percentile(cpu, 50)),
        "cpu_ms_per_step_p99": _r(stats.percentile(cpu, 99)),
        "cpu_ms_per_step_mean": _r(sum(cpu) / n),
        "sim_cpu_ms_per_step_mean": _r(acc.sim_cpu_s * 1000 / n),
        # Wall time a step waited for its queries' answers (round trips, the server's work).
        "db_wall_ms_per_step_mean": _r(acc.db_wall_s * 1000 / n),
        # Of it, the hub thread's own CPU (driver, adaptation); the rest is the server's answer,
        # the round trip and the wait for the interpreter lock once the answer is in.
        "db_client_cpu_ms_per_step_mean": _r(acc.db_cpu_s * 1000 / n),
        # The event loop's thread without the in-process simulator: HTTP and rate limiting.
        "io_cpu_ms_per_step_mean": _r((loop["io_loop_cpu_s"] - acc.sim_cpu_s) * 1000 / n),
        "process_cpu_ms_per_step_mean": _r((loop["process_cpu_s"] - acc.sim_cpu_s) * 1000 / n),
        "db_backend_cpu_ms_per_step_mean": None
        if loop["db_backend_cpu_s"] is None
        else _r(loop["db_backend_cpu_s"] * 1000 / n),
        "queries_per_step_p50": stats.percentile(queries, 50),
        "queries_per_step_p99": stats.percentile(queries, 99),
        "queries_per_step_mean": _r(sum(queries) / n),
        "queries_per_step_p99_settlement_excepted": stats.percentile(unsettled, 99),
        "api_calls_per_session": _r((end["api_calls"] or 0) / sessions),
        "api_cost_per_session_usd": _r((end["api_calls"] or 0) / sessions * PRICE_PER_CALL_USD),
        "calls_429": end["calls_429"],
        "calls_failed": end["calls_failed"],
        "by_kind": _by_kind(samples),
        "queries_by_shape_per_step": {q: _r(c / n) for q, c in acc.shapes.most_common(25)},
        "fleet_at_end": {k: v for k, v in end.items() if k not in ("ledger_drift",)},
        "run": loop,
    }


def _by_kind(samples: list[StepSample]) -> dict:
    """Per kind of step ("from→to"): how many, queries p50/mean/max, CPU ms p50, lag and decision p99."""
    kinds: dict[str, list[StepSample]] = {}
    for sample in samples:
        kinds.setdefault(sample.kind, []).append(sample)
    out = {}
    for kind, group in sorted(kinds.items(), key=lambda item: -len(item[1])):
        queries = [s.queries for s in group]
        decisions = [s.decision_s for s in group if s.decision_s is not None]
        out[kind] = {
            "steps": len(group),
            "queries_p50": stats.percentile(queries, 50),
            "queries_mean": _r(sum(queries) / len(queries)),
            "queries_max": max(queries),
            "cpu_ms_p50": _r(stats.percentile([s.cpu_ms for s in group], 50)),
            "tick_lag_s_p99": _r(stats.percentile([s.lag_s for s in group], 99), 3),
            "decision_delay_s_p99": _r(stats.percentile(decisions, 99), 3),
        }
    return out
