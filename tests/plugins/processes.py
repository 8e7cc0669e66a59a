"""A fleet on a threaded simulator server, sessions requested, and process groups to run them.

Needs PostgreSQL (several processes writing one database) and Redis (the django-q2 broker):
skipped with a reason otherwise. In CI both run (`.ci/run`, second pass)."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum

from prepaid.models import Hold, Wallet
from sessions import clock, services
from sessions.controller import readings
from sessions.models import ChargingSession, Vehicle, VehicleCommand, VehicleConnection
from sessions.models.charging import OPEN_STATUSES, TERMINAL_STATUSES, CommandKind
from tests.plugins.wallet import credit_wallet
from tests.system.scaleout.harness import Group, SharedClock, group_env
from vehicle_sim import v3
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# Simulated seconds per wall second. 20 keeps 500 sessions inside the lease on a busy 2-CPU machine (the lease,
# 11 simulated minutes, must outlast the queue's backlog in wall time).
SPEED = float(os.environ.get("SCALEOUT_SPEED", "20"))


def _redis_ok(url: str) -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.fixture
def infra():
    """(database URL of the test database, Redis URL), or skip with the reason."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: several processes share the database (set DATABASE_URL=postgres://...)")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url or not _redis_ok(redis_url):
        pytest.skip("needs Redis as the django-q2 broker (set REDIS_URL=redis://...)")
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    database_url = f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    return database_url, redis_url


@dataclass
class Fleet:
    sim: Simulator
    server: SimulatorServer
    clock: SharedClock
    database_url: str
    redis_url: str
    log_dir: object
    credited: dict[int, int] = field(default_factory=dict)
    groups: list[Group] = field(default_factory=list)
    queue: str = ""

    def group(self, name: str, *, in_flight: int = 0) -> Group:
        """`in_flight`: the group's controller runs the steps itself, up to that many at once (the
        default `run_controller`); 0 enqueues each step to the group's django-q2 cluster."""
        env = group_env(
            database_url=self.database_url,
            redis_url=self.redis_url,
            sim_url=self.server.url,
            clock=self.clock,
            queue=self.queue,
            in_flight=in_flight,
        )
        started = Group(env=env, name=name).start(self.log_dir)
        self.groups.append(started)
        return started

    def request(
        self,
        sessions: int,
        *,
        per_user: int = 10,
        energy_wh: int = 3_000,
        profile: str = "generic",
        arrivals: timedelta = timedelta(0),
    ):
        """Connect `sessions` simulated cars (`per_user` per driver) and open one session on each;
        drivers arrive evenly over `arrivals` (simulated time) rather than all at once."""
        from django.contrib.auth import get_user_model

        users = get_user_model().objects
        opened = []
        for u in range((sessions + per_user - 1) // per_user):
            user = users.create_user(f"fleet{u}", f"fleet{u}@example.com", "fleet-pass-42")
            cars = min(per_user, sessions - u * per_user)
            credit_wallet(user, energy_wh=cars * energy_wh + 5_000)
            self.credited[user.pk] = cars * energy_wh + 5_000
            for _ in range(cars):
                parked = self.sim.create_vehicle(profile, plugged=True, soc=0.3)
                platform = v3.platform(self.sim)
                with self.sim.lock:
                    platform.config.update({"unsubscribed_signals": "live"})
                    linked = platform.connect(parked.id)
                conn = VehicleConnection.objects.create(user=user, external_user_id=linked["user_id"])
                truth = self.sim.true_state(parked.id)
                vehicle = Vehicle.objects.create(
                    connection=conn,
                    owner=user,
                    external_id=parked.id,
                    make=truth["make"],
                    model=truth["model"],
                    year=truth["year"],
                    capacity_wh=truth["capacity_wh"],
                )
                with clock.use(self.clock.now):
                    opened.append(services.session_request(user=user, vehicle_id=vehicle.pk, energy_wh=energy_wh))
        if arrivals:
            step = arrivals / max(1, len(opened))
            base = self.clock.now()
            for i, session in enumerate(opened):
                ChargingSession.objects.filter(pk=session.pk).update(
                    next_action_at=base + i * step, state_deadline_at=base + i * step + services.REQUESTED_DEADLINE
                )
        return opened

    def wait(self, *, timeout_s: float, until=None, on_poll=None) -> None:
        """Poll the database until every session is terminal (or `until()`); fail with the logs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if on_poll:
                on_poll()
            if until and until():
                return
            if not ChargingSession.objects.filter(status__in=OPEN_STATUSES).exists():
                return
            time.sleep(0.5)
        counts = Counter(ChargingSession.objects.values_list("status", flat=True))
        logs = "\n".join(group.tail() for group in self.groups)
        raise AssertionError(f"sessions still open after {timeout_s} s: {dict(counts)}\n{logs}")


@pytest.fixture
def fleet(infra, tmp_path):
    database_url, redis_url = infra
    shared = SharedClock.fresh(SPEED, START)
    sim = Simulator(shared, seed=11)
    server = SimulatorServer(sim).start()
    made = Fleet(
        sim=sim,
        server=server,
        clock=shared,
        database_url=database_url,
        redis_url=redis_url,
        log_dir=tmp_path,
        queue=f"scaleout-{os.getpid()}-{int(time.time() * 1000)}",
    )
    readings._latency_models_cached.cache_clear()
    try:
        yield made
    finally:
        for group in made.groups:
            group.stop()
        server.httpd.shutdown()
        server.httpd.server_close()
        # Tasks a killed group left in its queue: this run's queue only, nobody else's keys.
        import redis

        broker = redis.Redis.from_url(redis_url)
        for key in broker.scan_iter(match=f"*{made.queue}*"):
            broker.delete(key)
        readings._latency_models_cached.cache_clear()


def assert_fleet_invariants(fleet: Fleet, *, crash_at: datetime | None = None) -> None:
    """Every session terminal, billed at most its purchase, each STOP attempt sent by one worker,
    no credit lost, the ledger clean; the simulator's own counters agree with our records.

    `crash_at` (simulated time): when workers died (SIGKILL, connections dropped). A worker that
    dies after sending a command and before committing its step leaves the attempt uncounted; the
    worker that takes the session over once the lease expires repeats it. That repeat is the only
    duplicate allowed: the first copy before the crash, the second after it, never two at once."""
    commands = VehicleCommand.objects
    for session in ChargingSession.objects.select_related("vehicle"):
        assert session.status in TERMINAL_STATUSES, (session.pk, session.status)
        assert 0 <= session.billed_wh <= session.purchased_wh, (session.pk, session.billed_wh)
        assert Hold.objects.get(pk=session.hold_id).status != Hold.Status.ACTIVE, session.pk
        sent = commands.filter(session=session, kind__in=[CommandKind.START, CommandKind.STOP]).order_by("id")
        by_attempt: dict[tuple[str, str], list] = {}
        for command in sent:
            by_attempt.setdefault((command.kind, command.detail), []).append(command.sent_at)
        for (kind, detail), times in by_attempt.items():
            if len(times) == 1:
                continue
            assert crash_at is not None and len(times) == 2, (session.pk, kind, detail, times)
            assert times[0] <= crash_at <= times[1] + timedelta(seconds=1), (session.pk, kind, detail, times)
        # What the car's cloud saw: every START/STOP it received is one of our records (a worker
        # killed between the call and its record may leave one unrecorded, never more).
        seen = fleet.sim.true_state(session.vehicle.external_id)["calls"].get("POST /charge", 0)
        recorded = sent.count()
        assert recorded <= seen <= recorded + (1 if crash_at else 0), (session.pk, recorded, seen)
    for user_id, credited in fleet.credited.items():
        billed = ChargingSession.objects.filter(user_id=user_id).aggregate(t=Sum("billed_wh"))["t"] or 0
        assert Wallet.objects.get(user_id=user_id).balance_wh == credited - billed, user_id
    call_command("ledger_check")
