"""Load test of the Stripe webhook endpoint on loopback (issue 8 §2): events/s, p99, no loss or double credit.

Runs gunicorn against a throwaway database on the configured server (PostgreSQL for the real
figure: DATABASE_URL); SQLite gets a temporary file so the gunicorn workers can share it.
"""

import json
import logging
from pathlib import Path

from django.core.management.base import BaseCommand

from benchmarks.db import throwaway_database
from benchmarks.webhook_load import run_webhook_loadtest


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--events", type=int, default=300)
        parser.add_argument("--users", type=int, default=50)
        parser.add_argument("--duplicates", type=float, default=0.1, help="share of events re-sent (Stripe retries)")
        parser.add_argument("--concurrency", type=int, default=32)
        parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: gunicorn.conf.py)")
        parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: gunicorn.conf.py)")
        parser.add_argument("--worker-class", default=None, help="sync | gthread (default: gunicorn.conf.py)")
        parser.add_argument(
            "--no-keepalive",
            dest="keepalive",
            action="store_false",
            help="a new connection per request (Connection: close), as a proxy speaking HTTP/1.0 would",
        )
        parser.add_argument("--json", dest="json_out", default=None)

    def handle(self, *args, **opts):
        if opts["verbosity"] < 2:
            logging.getLogger("payments").setLevel(logging.WARNING)
        kwargs = {
            k: opts[k]
            for k in ("events", "users", "duplicates", "concurrency", "workers", "threads", "worker_class", "keepalive")
        }
        with throwaway_database(shared=True):
            doc = run_webhook_loadtest(**kwargs)
        text = json.dumps(doc, indent=2)
        self.stdout.write(text)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(text + "\n")
        unanswered = set(doc["http_status"]) - {"200"}
        if doc["lost_events"] or doc["double_credited"] or not doc["ledger_clean"] or unanswered:
            raise SystemExit(1)
