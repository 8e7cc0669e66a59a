"""Run the charging controller loop: claim due sessions and enqueue one step each.

With `--in-flight N` the process is a worker too: it claims up to N due sessions and runs their
steps itself, N at once, their vehicle API calls in flight on one event loop
(`sessions/controller/inflight.py`) instead of a django-q2 worker thread each.
"""

import contextlib

from django.core.management.base import BaseCommand

from sessions.controller import inflight, runtime


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between ticks.")
        parser.add_argument("--limit", type=int, default=200, help="Most sessions claimed per tick.")
        parser.add_argument(
            "--in-flight",
            type=int,
            default=0,
            help="Run the steps in this process, up to N at once (0: enqueue each to django-q2).",
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
