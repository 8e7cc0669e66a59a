"""How long a thread waits for the interpreter lock after a query's answer is in.

`SELECT 1` round trips from the main thread of a process whose other `--busy` threads keep the
interpreter busy, at a given switch interval: the in-flight worker's situation (a hub back from
its query while the other hubs and the event loop run Python), without the worker around it
(docs/scale.md). PostgreSQL at DATABASE_URL; JSON on stdout:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \\
      python -m benchmarks.gil_probe --switch-interval-ms 5 --busy 3 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time


def probe(url: str, *, switch_interval_ms: float, busy: int, seconds: float) -> dict:
    import psycopg

    before = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_ms / 1000)
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    threads = [threading.Thread(target=spin, daemon=True) for _ in range(busy)]
    for thread in threads:
        thread.start()
    latencies: list[float] = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.perf_counter()
                conn.execute("SELECT 1").fetchone()
                latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(before)
    latencies.sort()
    return {
        "switch_interval_ms": switch_interval_ms,
        "busy_threads": busy,
        "queries": len(latencies),
        "mean_ms": round(statistics.mean(latencies), 2),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2),
        "load": [round(x, 1) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--switch-interval-ms", type=float, default=5.0)
    parser.add_argument("--busy", type=int, default=3, help="threads running Python meanwhile")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    doc = probe(url, switch_interval_ms=args.switch_interval_ms, busy=args.busy, seconds=args.seconds)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
