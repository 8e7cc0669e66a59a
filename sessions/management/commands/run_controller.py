"""Run the charging controller: claim due sessions and run their steps.

By default the process is the worker too: it claims up to `--in-flight` due sessions and runs
their steps itself, their vehicle API calls in flight on one event loop
(`sessions/controller/inflight.py`). That is the only path for real cars: a v3 command answers
once the car acted, seconds to minutes (docs/reference/vehicle-api-v3.md §4), longer than a
django-q2 task may run (`Q_CLUSTER["timeout"]`). `--in-flight 0` enqueues one django-q2 task per
step instead, for a vehicle API that answers at once (the ideal simulator).
"""

import contextlib

from django.core.management.base import BaseCommand

from sessions.controller import inflight, runtime

# Calls in flight at once per process; a car's call holds a slot for seconds to minutes, so this is
# about the steps per second the process can start times their answer time (docs/scale.md).
DEFAULT_IN_FLIGHT = 500


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between ticks.")
        parser.add_argument("--limit", type=int, default=200, help="Most sessions claimed per tick.")
        parser.add_argument(
            "--in-flight",
            type=int,
            default=DEFAULT_IN_FLIGHT,
            help=f"Run the steps here, up to N at once (default {DEFAULT_IN_FLIGHT}; 0: one django-q2 task each).",
        )
        parser.add_argument(
            "--hubs", type=int, default=8, help="With --in-flight: threads stepping, one database connection each."
        )

    def handle(self, *args, interval: float, limit: int, in_flight: int, hubs: int, **options):
        if in_flight > 0:
            self.stdout.write(
                f"controller worker: tick every {interval:g} s, up to {in_flight} steps in flight on {hubs} hubs"
            )
            # Ctrl-C or SIGTERM: no more claims, the running steps finish (run_worker_until_signalled).
            inflight.run_worker(max_in_flight=in_flight, hubs=hubs, interval_s=interval)
            return
        self.stdout.write(f"controller loop: tick every {interval:g} s, up to {limit} sessions per tick")
        with contextlib.suppress(KeyboardInterrupt):
            runtime.run_forever(interval_s=interval, limit=limit)
