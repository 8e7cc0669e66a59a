"""Match every succeeded charge, refund and dispute at Stripe over a window to our books.

payments_reconcile                     the last STRIPE_RECONCILE_WINDOW_H hours
payments_reconcile --hours 720         another window, ending now

Fixes what is safe (a surplus charge is refunded, a refund made at Stripe takes its energy out of
the wallet, a payment or dispute whose webhook never came is applied) and records every finding
for the operator (dashboard, admin: payment discrepancies). Exits 1 if a finding still needs the
operator.
"""

import sys
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from payments import reconcile
from payments.models import PaymentDiscrepancy


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=settings.STRIPE_RECONCILE_WINDOW_H)

    def handle(self, *args, hours, **options):
        now = timezone.now()
        report = reconcile.reconcile(since=now - timedelta(hours=hours), until=now)
        disputes = report.disputes if report.disputes is not None else f"not listed ({report.disputes_error})"
        self.stdout.write(
            f"window {hours} h: {report.charges} charges, {report.refunds} refunds, {disputes} disputes checked"
        )
        for line in report.findings:
            self.stdout.write(f"  {line}")
        still_open = PaymentDiscrepancy.objects.filter(status=PaymentDiscrepancy.Status.OPEN).count()
        if still_open:
            self.stderr.write(self.style.ERROR(f"{still_open} discrepancy(ies) need an operator (admin or dashboard)"))
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS("books match Stripe"))
