"""Controller throughput (issues 8 §2 and 17): sessions run to their end against a vehicle API
as slow as it really is, stepped by one in-flight worker; tick lag, decision delay, calls in
flight, CPU ms and database queries per step, connections, memory, terminal states, the books.

Meant for PostgreSQL (DATABASE_URL) and Redis (REDIS_URL: the rate limits are kept there, as a
fleet of workers shares them): runs in a throwaway database created on the configured server
(`--db-name`, default `bench_<pid>_default`), never in the developer's own. `--sessions 10000` is
the issue's figure; the default is a quick run.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from benchmarks.controller import ANSWER_LATENCIES, run_controller_benchmark
from benchmarks.db import throwaway_database
from sessions.controller.ratelimit import parse_limit


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    return float(low), float(high or low)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=50)
        parser.add_argument("--in-flight", type=int, default=2000, help="most steps the worker runs at once")
        parser.add_argument(
            "--hubs", type=int, default=None, help="worker threads stepping, a DB connection each (SQLite: 1)"
        )
        parser.add_argument(
            "--max-duration-s",
            type=float,
            default=3600.0,
            help="real seconds at most; the run ends when all are terminal",
        )
        parser.add_argument("--speed", type=float, default=2.0, help="virtual seconds per real second")
        parser.add_argument("--interval-s", type=float, default=0.5, help="worker tick interval, real seconds")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--policy", default="predictive")
        parser.add_argument(
            "--arrival-s", type=float, default=60.0, help="virtual seconds over which the requests arrive"
        )
        parser.add_argument("--cars-per-account", type=int, default=1, help="cars sharing one driver account")
        parser.add_argument("--purchase-kwh", default="1:4", help="MIN:MAX kWh bought per session")
        parser.add_argument(
            "--answer-latency",
            default="realistic",
            choices=sorted(ANSWER_LATENCIES),
            help="realistic: reads answer after 1–20 s, commands after their latency; ideal: at once",
        )
        parser.add_argument(
            "--failure-rate", type=float, default=0.0, help="share of calls failing (429, 502, timeout)"
        )
        parser.add_argument("--app-rate-limit", default="1000:6000", help="BURST:PER_MINUTE of the application")
        parser.add_argument("--vehicle-rate-limit", default="6:3", help="BURST:PER_MINUTE of each vehicle")
        parser.add_argument(
            "--switch-interval-ms",
            type=float,
            default=None,
            help="the interpreter's thread switch interval while the hubs run (default: the worker's)",
        )
        parser.add_argument("--db-name", default=None, help="name of the throwaway database")
        parser.add_argument("--json", dest="json_out", default=None)
        parser.add_argument("--current-db", action="store_true", help="use the current database (tests)")

    def handle(self, *args, **opts):
        import logging

        if opts["verbosity"] < 2:
            logging.getLogger("sessions").setLevel(logging.CRITICAL)
            logging.getLogger("django-q").setLevel(logging.WARNING)
        try:
            app_limit = parse_limit(opts["app_rate_limit"])
            vehicle_limit = parse_limit(opts["vehicle_rate_limit"])
            purchase = _range(opts["purchase_kwh"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        kwargs = {
            "sessions": opts["sessions"],
            "in_flight": opts["in_flight"],
            # SQLite serialises writers: concurrent hubs would only measure its lock waits.
            "hubs": opts["hubs"] or (1 if connection.vendor == "sqlite" else 8),
            "max_duration_s": opts["max_duration_s"],
            "speed": opts["speed"],
            "interval_s": opts["interval_s"],
            "seed": opts["seed"],
            "policy_spec": opts["policy"],
            "arrival_s": opts["arrival_s"],
            "cars_per_account": opts["cars_per_account"],
            "purchase_kwh": purchase,
            "answer_latency": opts["answer_latency"],
            "failure_rate": opts["failure_rate"],
            "app_rate_limit": app_limit,
            "vehicle_rate_limit": vehicle_limit,
            "switch_interval_ms": opts["switch_interval_ms"],
        }
        if opts["current_db"]:
            doc = run_controller_benchmark(**kwargs)
        else:
            with throwaway_database(name=opts["db_name"]):
                doc = run_controller_benchmark(**kwargs)
        text = json.dumps(doc, indent=2, default=str)
        self.stdout.write(text)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(text + "\n")
