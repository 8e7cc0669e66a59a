"""Recompute every wallet balance, hold and credit lot from the ledger; exit 1 on any drift."""

import sys

from django.core.management.base import BaseCommand

from payments.selectors import ledger_drift


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        problems = ledger_drift()
        for line in problems:
            self.stderr.write(line)
        if problems:
            self.stderr.write(self.style.ERROR(f"ledger drift: {len(problems)} problem(s)"))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS("ledger clean"))
