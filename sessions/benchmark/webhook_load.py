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
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum
from django.urls import reverse

from payments.models import Purchase, StripeEvent
from payments.services import event_process, purchase_create, purchase_transition
from prepaid.models import CreditLot, EnergyPackage, Wallet
from sessions.benchmark import stats


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


def _start_gunicorn(port: int, workers: int, threads: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url()}
    env.pop("Q_SYNC", None)  # the view must store and enqueue, not process inline
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "prepaid.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
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
            return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError("gunicorn did not come up within 60 s")


async def _post_all(url: str, bodies: list[bytes], secret: str, concurrency: int) -> tuple[list[float], Counter]:
    latencies: list[float] = []
    codes: Counter = Counter()
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(body: bytes) -> None:
            async with sem:
                headers = {"Stripe-Signature": sign(body, secret, int(time.time())), "Content-Type": "application/json"}
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    codes[response.status_code] += 1
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(one(b) for b in bodies))
    return latencies, codes


def run_webhook_loadtest(
    *,
    events: int = 300,
    users: int = 50,
    duplicates: float = 0.1,
    concurrency: int = 32,
    workers: int = 4,
    threads: int = 1,
    seed: int = 1,
    log_dir: Path | None = None,
) -> dict:
    purchases = _setup(events, users)
    rng = random.Random(seed)  # noqa: S311 - which events are re-sent
    bodies = [json.dumps(payment_succeeded_event(p)).encode() for p in purchases]
    resent = [bodies[i] for i in rng.sample(range(len(bodies)), int(len(bodies) * duplicates))]
    sends = bodies + resent
    rng.shuffle(sends)
    secret = settings.STRIPE_WEBHOOK_SECRETS[0]
    port = free_port()
    log = (log_dir or Path(settings.BASE_DIR)) / f"webhook_loadtest_gunicorn_{os.getpid()}.log"
    proc = _start_gunicorn(port, workers, threads, log)
    try:
        t0 = time.perf_counter()
        url = f"http://127.0.0.1:{port}{reverse('payments:stripe-webhook')}"
        latencies, codes = asyncio.run(_post_all(url, sends, secret, concurrency))
        wall = time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    server_log = log.read_text(errors="replace")[-3000:] if any(str(k) != "200" for k in codes) else ""
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
    return {
        "config": {
            "events": events,
            "resent_duplicates": len(resent),
            "concurrency": concurrency,
            "gunicorn_workers": workers,
            "gunicorn_threads": threads,
            "database": connection.vendor,
            "broker": "redis" if getattr(settings, "REDIS_URL", None) else "orm",
            "cpus": os.cpu_count(),
        },
        "requests": len(sends),
        "http_status": {str(k): v for k, v in codes.items()},
        "events_per_s": round(len(sends) / wall, 1),
        "latency_ms_p50": round(stats.percentile(latencies, 50) * 1000, 1),
        "latency_ms_p99": round(stats.percentile(latencies, 99) * 1000, 1),
        "latency_ms_max": round(max(latencies) * 1000, 1),
        "stored_events": stored,
        "lost_events": events - stored,
        "processed": dict(Counter(statuses.values())),
        "process_events_per_s": round(len(statuses) / process_s, 1) if process_s else None,
        "purchases_paid": paid,
        "double_credited": double,
        "balance_matches_purchases": balance_wh == expected_wh,
        "ledger_clean": ledger_clean,
        "server_log_tail": server_log,
    }
