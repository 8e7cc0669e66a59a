"""Fill the vehicle API user id of connections made before the switch to v3."""

from django.core.management.base import BaseCommand

from sessions.vehicles.services import connections_backfill_user_ids


class Command(BaseCommand):
    help = (
        "Ask the vehicle API (v3) which user connected each vehicle of the active connections that "
        "have no vehicle API user id yet (made under v2), and store it. Run once after migrating; "
        "connections it cannot fill ask their driver to reconnect on first use."
    )

    def handle(self, *args, **options):
        filled, left = connections_backfill_user_ids()
        self.stdout.write(f"filled {filled} connection(s); {left} left for the driver to reconnect")
