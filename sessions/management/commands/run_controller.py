"""Run the charging controller loop: claim due sessions and enqueue one step each."""

import contextlib

from django.core.management.base import BaseCommand

from sessions.controller import runtime


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between ticks.")
        parser.add_argument("--limit", type=int, default=200, help="Most sessions claimed per tick.")

    def handle(self, *args, interval: float, limit: int, **options):
        self.stdout.write(f"controller loop: tick every {interval:g} s, up to {limit} sessions per tick")
        with contextlib.suppress(KeyboardInterrupt):
            runtime.run_forever(interval_s=interval, limit=limit)
