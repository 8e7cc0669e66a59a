"""Inspect and replay the Stripe webhook inbox.

stripe_events list [--failed]          the latest events and their status
stripe_events replay --failed          process every failed event again, now
stripe_events replay evt_123 [...]     process the named events again (even if processed)
"""

from django.core.management.base import BaseCommand, CommandError

from payments.models import StripeEvent
from payments.services import event_process


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["list", "replay"])
        parser.add_argument("event_ids", nargs="*")
        parser.add_argument("--failed", action="store_true", help="only failed events")

    def handle(self, *args, action, event_ids, failed, **options):
        events = StripeEvent.objects.order_by("received_at", "id")
        if failed:
            events = events.filter(status=StripeEvent.Status.FAILED)
        if event_ids:
            events = events.filter(event_id__in=event_ids)
        if action == "list":
            for event in events.reverse()[:100]:
                self.stdout.write(
                    f"{event.event_id} {event.type} {event.status} attempts={event.attempts} {event.last_error}"
                )
            return
        if not (failed or event_ids):
            raise CommandError("replay needs --failed or event ids")
        results = []
        for event in events:
            if event_ids:
                # An explicit replay of a processed event: its effects are idempotent, so it is safe.
                StripeEvent.objects.filter(pk=event.pk).update(status=StripeEvent.Status.PENDING)
            status = event_process(event_pk=event.pk)
            results.append(status)
            self.stdout.write(f"{event.event_id} {event.type}: {status}")
        self.stdout.write(f"replayed {len(results)}, failed {results.count(StripeEvent.Status.FAILED)}")
