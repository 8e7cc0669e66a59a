"""Real processes for scale-out and crash tests: controller loops and django-q2 clusters as
subprocesses over Redis on one PostgreSQL, against the simulator as a threaded HTTP server.

Time: every process (the test, the simulator, each controller and worker) reads one
`SharedClock` — wall time since a common origin, `speed` times faster — so an hour of charging
takes a minute and all of them agree on "now" without talking to each other. A controller's
lease (11 min) is then about 11 s of wall time at speed 60: long next to a step (tens of ms),
short enough that a killed worker's sessions are re-claimed within the test.

Run as `python -m tests.system.scaleout.harness controller|qcluster`; the environment carries the
database, Redis, the simulator URL and the clock (see `group_env`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


class SharedClock:
    """now = sim_origin + (wall - wall_origin) × speed; the same in every process given the same env."""

    def __init__(self, *, speed: float, wall_origin: float, sim_origin: float) -> None:
        self.speed, self.wall_origin, self.sim_origin = speed, wall_origin, sim_origin

    @classmethod
    def fresh(cls, speed: float, start: datetime) -> SharedClock:
        return cls(speed=speed, wall_origin=time.time(), sim_origin=start.timestamp())

    @classmethod
    def from_env(cls) -> SharedClock:
        return cls(
            speed=float(os.environ["SCALEOUT_SPEED"]),
            wall_origin=float(os.environ["SCALEOUT_WALL_ORIGIN"]),
            sim_origin=float(os.environ["SCALEOUT_SIM_ORIGIN"]),
        )

    def env(self) -> dict[str, str]:
        return {
            "SCALEOUT_SPEED": repr(self.speed),
            "SCALEOUT_WALL_ORIGIN": repr(self.wall_origin),
            "SCALEOUT_SIM_ORIGIN": repr(self.sim_origin),
        }

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.sim_origin + (time.time() - self.wall_origin) * self.speed, UTC)

    def wall_seconds(self, sim: timedelta) -> float:
        return sim.total_seconds() / self.speed


WORKER_APPLICATION_NAME = "prepaid-fleet-worker"


def group_env(
    *, database_url: str, redis_url: str, sim_url: str, clock: SharedClock, queue: str, in_flight: int = 0
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "Q_", "VEHICLE_", "PYTEST", "DATABASE_"))
    }
    env.update(
        clock.env(),
        DJANGO_SETTINGS_MODULE="prepaid.settings",
        # Named, so a test can cut exactly these processes' connections (never the test's own,
        # nor the live server's that later tests share).
        DATABASE_URL=f"{database_url}?application_name={WORKER_APPLICATION_NAME}",
        REDIS_URL=redis_url,
        Q_SYNC="0",
        # v3 commands are synchronous: a START or STOP holds its worker for the command's latency
        # (tens of simulated seconds; vehicle_sim/v3.py). Workers busy at once ≈ commands per
        # second × latency (Little's law): 500 arrivals in 15 minutes with 3–45 s commands need
        # about 14, and either group must carry the fleet alone once the other is killed. Fewer,
        # and steps wait in the queue past their lease (the loop then hands the session out again).
        Q_WORKERS=os.environ.get("SCALEOUT_WORKERS", "16"),
        Q_CLUSTER_NAME=queue,
        VEHICLE_API_V3_ORIGIN=sim_url,
        VEHICLE_MANAGEMENT_ORIGIN=sim_url,
        VEHICLE_IAM_URL=f"{sim_url}/oauth2/token",
        VEHICLE_CONNECT_ORIGIN=sim_url,
        VEHICLE_API_TIMEOUT_S="20",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        SCALEOUT_IN_FLIGHT=str(in_flight),
    )
    return env


@dataclass
class Group:
    """One machine's worth of processes: a controller loop and a django-q2 cluster."""

    env: dict[str, str]
    name: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, log_dir: Path) -> Group:
        for role in ("qcluster", "controller"):
            log = log_dir / f"{self.name}-{role}-{uuid.uuid4().hex[:6]}.log"
            self.logs.append(log)
            handle = log.open("w")
            # A session of its own: the whole group (qcluster forks workers) dies with one killpg.
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tests.system.scaleout.harness", role],
                    cwd=ROOT,
                    env=self.env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return self

    def kill(self) -> None:
        """SIGKILL every process of the group, mid-whatever it is doing."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self.procs)

    def tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-chars:]}" for log in self.logs if log.exists())


def _main(role: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from sessions import clock

    shared = SharedClock.from_env()
    with clock.use(shared.now, all_threads=True):
        # qcluster forks its workers after this point: they inherit the shared clock.
        if role == "controller":
            call_command("run_controller", interval=0.1, limit=200, in_flight=int(os.environ["SCALEOUT_IN_FLIGHT"]))
        else:
            call_command("qcluster")


if __name__ == "__main__":
    _main(sys.argv[1])
