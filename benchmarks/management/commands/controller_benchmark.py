"""Controller throughput (issue 8 §2): tick lag, CPU ms and database queries per session step.

Meant for PostgreSQL (DATABASE_URL): runs in a throwaway database created on the configured
server (`bench_<pid>_default`), never in the developer's own. `--sessions 10000` is the issue's
figure; the default is a quick run.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection

from benchmarks.controller import run_controller_benchmark
from benchmarks.db import throwaway_database


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=50)
        parser.add_argument("--workers", type=int, default=None, help="step threads; 0 = inline (SQLite default)")
        parser.add_argument("--duration-s", type=float, default=30.0, help="real seconds the loop runs")
        parser.add_argument("--speed", type=float, default=30.0, help="virtual seconds per real second")
        parser.add_argument("--interval-s", type=float, default=1.0, help="loop tick interval, real seconds")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--policy", default="predictive")
        parser.add_argument(
            "--arrival-s", type=float, default=60.0, help="virtual seconds over which the requests arrive"
        )
        parser.add_argument("--cars-per-account", type=int, default=1, help="cars sharing one driver account")
        parser.add_argument("--json", dest="json_out", default=None)
        parser.add_argument("--current-db", action="store_true", help="use the current database (tests)")

    def handle(self, *args, **opts):
        import logging

        if opts["verbosity"] < 2:
            logging.getLogger("sessions").setLevel(logging.WARNING)
        # SQLite serialises writers: concurrent step threads would only measure its lock waits.
        workers = opts["workers"] if opts["workers"] is not None else (0 if connection.vendor == "sqlite" else 4)
        kwargs = {
            "sessions": opts["sessions"],
            "workers": workers,
            "duration_s": opts["duration_s"],
            "speed": opts["speed"],
            "interval_s": opts["interval_s"],
            "seed": opts["seed"],
            "policy_spec": opts["policy"],
            "arrival_s": opts["arrival_s"],
            "cars_per_account": opts["cars_per_account"],
        }
        if opts["current_db"]:
            doc = run_controller_benchmark(**kwargs)
        else:
            with throwaway_database():
                doc = run_controller_benchmark(**kwargs)
        text = json.dumps(doc, indent=2, default=str)
        self.stdout.write(text)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(text + "\n")
