"""Load test of the Stripe webhook endpoint: gunicorn on loopback, signed events, then the books.

1. Purchases awaiting payment are created in a throwaway database (on the configured server).
2. gunicorn serves the real app (`prepaid.wsgi`) on a free 127.0.0.1 port against that database.
3. N signed `payment_intent.succeeded` events (one per purchase, plus a share re-sent as Stripe
   does on retries) are posted concurrently (asyncio + httpx); events/s and latency are measured.
4. The inbox is processed (`payments.services.event_process`, what the django-q2 task runs) and
   the books are checked: every event stored exactly once, every purchase paid and credited
   exactly once, wallet balances equal to the purchases, `ledger_check` clean.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import runpy
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum
from django.urls import reverse

from benchmarks import stats
from payments.models import Purchase, StripeEvent
from payments.services import event_process, purchase_create, purchase_transition
from prepaid.models import CreditLot, EnergyPackage, Wallet


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's `Stripe-Signature` header: t=…,v1=HMAC-SHA256(secret, "t.payload")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def payment_succeeded_event(purchase: Purchase) -> dict:
    pi_id = f"pi_bench_{purchase.public_id.hex[:20]}"
    return {
        "id": f"evt_bench_{purchase.public_id.hex}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "livemode": False,
        "created": int(time.time()),
        "data": {
            "object": {
                "id": pi_id,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": purchase.amount_minor,
                "currency": purchase.currency,
                "metadata": {"purchase_id": str(purchase.public_id)},
                "latest_charge": f"ch_bench_{purchase.public_id.hex[:20]}",
            }
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    d = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{d['NAME']}"
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def _setup(events: int, users: int) -> list[Purchase]:
    package = EnergyPackage.objects.create(name="bench 10 kWh", energy_wh=10_000, price_minor=450)
    user_model = get_user_model()
    people = [user_model.objects.create(username=f"hook-{i}-{uuid.uuid4().hex[:6]}") for i in range(users)]
    purchases = []
    for i in range(events):
        purchase = purchase_create(user=people[i % users], package=package)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
        purchases.append(purchase)
    return purchases


def gunicorn_conf() -> Path:
    return Path(settings.BASE_DIR) / "gunicorn.conf.py"


def gunicorn_defaults() -> dict:
    """Workers, worker class and threads as gunicorn.conf.py sets them (from the environment)."""
    conf = runpy.run_path(str(gunicorn_conf()))
    return {"workers": conf["workers"], "worker_class": conf["worker_class"], "threads": conf["threads"]}


def _start_gunicorn(port: int, workers: int, threads: int, worker_class: str, log: Path) -> subprocess.Popen:
    """gunicorn with the project's own gunicorn.conf.py; the options given here override it."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    env.pop("Q_SYNC", None)  # the view must store and enqueue, not process inline
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "prepaid.wsgi:application",
        "--config",
        str(gunicorn_conf()),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        "--threads",
        str(threads),
        "--no-control-socket",  # one path per user: runs side by side would share it
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz/", timeout=2)
            if len(process_children(proc.pid)) >= workers:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not come up within 60 s")


# --- CPU accounting (Linux /proc; None elsewhere) ------------------------------------------------


def process_children(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers); [] where /proc cannot tell."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def process_cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of these processes that /proc can read."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15 of stat)
    return used


def cpu_used_between(before: dict[int, float], after: dict[int, float]) -> float | None:
    """CPU seconds the processes alive at the end used since `before` (all of it for one started
    since); None if nothing could be read or a process of `before` is gone (its share unknown)."""
    if not after or set(before) - set(after):
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def database_backends() -> list[int]:
    """PIDs of the PostgreSQL backends serving the benchmark database (other than ours)."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- The load generator ----------------------------------------------------------------------------


@dataclass
class Sent:
    """What the generator saw: per request latency and outcome, and when each answer arrived."""

    latencies: list[float] = field(default_factory=list)
    finished_at: list[float] = field(default_factory=list)
    codes: Counter = field(default_factory=Counter)
    duplicate_flags: Counter = field(default_factory=Counter)
    connections: int = 0


def request_bytes(host: str, path: str, body: bytes, signature: str, *, keepalive: bool = True) -> bytes:
    close = "" if keepalive else "Connection: close\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nStripe-Signature: {signature}\r\n{close}\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def _outcome(status: int, body: bytes) -> tuple[str, str | None]:
    """The status as counted, and the answer's `duplicate` flag for a 200 that says it was received."""
    if status != 200:
        return str(status), None
    try:
        answer = json.loads(body)
    except ValueError:
        return "200-not-json", None
    if answer.get("received") is not True:
        return "200-not-received", None
    return "200", "duplicate" if answer.get("duplicate") else "stored"


async def _post_all(
    port: int, path: str, bodies: list[bytes], secret: str, concurrency: int, *, keepalive: bool = True
) -> Sent:
    """`concurrency` connections, each posting the next body as soon as its previous answer is in.

    Lean on purpose (pre-serialised bodies, one HMAC and one write per request, a minimal HTTP/1.1
    reader): the generator shares the machine's CPUs with the server it measures. A connection the
    server keeps alive is reused; one it closes (gunicorn's sync workers close each) is reopened.
    `keepalive=False` asks for a new connection per request (`Connection: close`), as a proxy
    talking HTTP/1.0 to gunicorn would.
    """
    sent = Sent()
    pending = iter(bodies)
    host = f"127.0.0.1:{port}"

    async def connection_loop() -> None:
        reader = writer = None
        for body in pending:
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    sent.connections += 1
                signature = sign(body, secret, int(time.time()))
                writer.write(request_bytes(host, path, body, signature, keepalive=keepalive))
                status, headers, answer = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                sent.codes[type(exc).__name__] += 1
                status, headers = None, {"connection": "close"}
            else:
                code, flag = _outcome(status, answer)
                sent.codes[code] += 1
                if flag:
                    sent.duplicate_flags[flag] += 1
            now = time.perf_counter()
            sent.latencies.append(now - t0)
            sent.finished_at.append(now)
            if (not keepalive or headers.get("connection", "").lower() == "close") and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection_loop() for _ in range(concurrency)))
    return sent


def throughput_windows(started: float, finished_at: list[float], window_s: float = 1.0) -> dict:
    """Answers per second in whole windows of the run (the partial last window left out)."""
    if not finished_at:
        return {"windows": 0}
    whole = int((max(finished_at) - started) // window_s)
    counts = [0] * whole
    for t in finished_at:
        i = int((t - started) // window_s)
        if i < whole:
            counts[i] += 1
    if not counts:
        return {"windows": 0}
    rates = [c / window_s for c in counts]
    return {
        "windows": len(rates),
        "window_s": window_s,
        "min": round(min(rates), 1),
        "p10": round(stats.percentile(rates, 10), 1),
        "p50": round(stats.percentile(rates, 50), 1),
        "max": round(max(rates), 1),
    }


def run_webhook_loadtest(
    *,
    events: int = 300,
    users: int = 50,
    duplicates: float = 0.1,
    concurrency: int = 32,
    workers: int | None = None,
    threads: int | None = None,
    worker_class: str | None = None,
    keepalive: bool = True,
    seed: int = 1,
    log_dir: Path | None = None,
) -> dict:
    """gunicorn runs as gunicorn.conf.py says, but for the workers, threads or class given here."""
    defaults = gunicorn_defaults()
    workers = workers or defaults["workers"]
    threads = threads or defaults["threads"]
    worker_class = worker_class or defaults["worker_class"]
    purchases = _setup(events, users)
    rng = random.Random(seed)  # noqa: S311 - which events are re-sent
    bodies = [json.dumps(payment_succeeded_event(p)).encode() for p in purchases]
    resent = [bodies[i] for i in rng.sample(range(len(bodies)), int(len(bodies) * duplicates))]
    sends = bodies + resent
    rng.shuffle(sends)
    secret = settings.STRIPE_WEBHOOK_SECRETS[0]
    port = free_port()
    log = (log_dir or Path(settings.BASE_DIR)) / f"webhook_loadtest_gunicorn_{os.getpid()}.log"
    proc = _start_gunicorn(port, workers, threads, worker_class, log)
    try:
        load_before = load_average()
        server_cpu0 = process_cpu_s([proc.pid, *process_children(proc.pid)])
        db_cpu0 = process_cpu_s(database_backends())
        client_cpu0 = time.process_time()
        t0 = time.perf_counter()
        path = reverse("payments:stripe-webhook")
        sent = asyncio.run(_post_all(port, path, sends, secret, concurrency, keepalive=keepalive))
        wall = time.perf_counter() - t0
        client_cpu = time.process_time() - client_cpu0
        server_cpu = cpu_used_between(server_cpu0, process_cpu_s([proc.pid, *process_children(proc.pid)]))
        # Backends that came and went (DB_CONN_MAX_AGE=0) cannot be counted: no figure then.
        db_cpu = cpu_used_between(db_cpu0, process_cpu_s(database_backends()))
        if settings.DATABASES["default"].get("CONN_MAX_AGE") == 0:
            db_cpu = None
        load_after = load_average()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = log.read_text(errors="replace")[-3000:] if set(sent.codes) != {"200"} else ""
    log.unlink(missing_ok=True)
    stored = StripeEvent.objects.count()
    t1 = time.perf_counter()
    statuses = {pk: event_process(event_pk=pk) for pk in StripeEvent.objects.values_list("pk", flat=True)}
    process_s = time.perf_counter() - t1
    paid = Purchase.objects.filter(status=Purchase.Status.PAID).count()
    lots = CreditLot.objects.values("purchase_id").annotate(n=Count("id"))
    double = sum(1 for row in lots if row["n"] > 1)
    expected_wh = sum(p.energy_wh for p in purchases)
    balance_wh = Wallet.objects.aggregate(total=Sum("balance_wh"))["total"] or 0
    try:
        call_command("ledger_check", verbosity=0)
        ledger_clean = True
    except SystemExit:
        ledger_clean = False
    n = len(sends)
    return {
        "config": {
            "events": events,
            "resent_duplicates": len(resent),
            "concurrency": concurrency,
            "gunicorn_workers": workers,
            "gunicorn_worker_class": worker_class,
            "gunicorn_threads": threads,
            "database": connection.vendor,
            "db_conn_max_age": settings.DATABASES["default"].get("CONN_MAX_AGE"),
            "db_conn_health_checks": settings.DATABASES["default"].get("CONN_HEALTH_CHECKS"),
            "broker": "redis" if getattr(settings, "REDIS_URL", None) else "orm",
            "cpus": os.cpu_count(),
            "client_keepalive": keepalive,
            "load_generator": "asyncio streams, one HMAC per request",
        },
        "load_average_before": load_before,
        "load_average_after": load_after,
        "requests": n,
        "http_status": dict(sent.codes),
        "answers": dict(sent.duplicate_flags),
        "client_connections": sent.connections,
        "wall_s": round(wall, 2),
        "events_per_s": round(n / wall, 1),
        "events_per_s_per_window": throughput_windows(t0, sent.finished_at),
        "latency_ms_p50": _ms(stats.percentile(sent.latencies, 50)),
        "latency_ms_p99": _ms(stats.percentile(sent.latencies, 99)),
        "latency_ms_max": _ms(max(sent.latencies, default=None)),
        # CPU per request, load-independent: what 2 cores must supply for each event.
        "server_cpu_ms_per_event": _per(server_cpu, n),
        "db_backend_cpu_ms_per_event": _per(db_cpu, n),
        "load_generator_cpu_ms_per_event": _per(client_cpu, n),
        "stored_events": stored,
        "lost_events": events - stored,
        # Every answer "stored" must be a row, every "duplicate" a re-send: the view told the truth.
        "answers_match_database": sent.duplicate_flags["stored"] == stored
        and sent.duplicate_flags["duplicate"] == n - stored,
        "processed": dict(Counter(statuses.values())),
        "process_events_per_s": round(len(statuses) / process_s, 1) if process_s else None,
        "purchases_paid": paid,
        "double_credited": double,
        "balance_matches_purchases": balance_wh == expected_wh,
        "ledger_clean": ledger_clean,
        "server_log_tail": server_log,
    }


def _per(cpu_s: float | None, n: int) -> float | None:
    return round(cpu_s * 1000 / n, 3) if cpu_s is not None and n else None


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None
