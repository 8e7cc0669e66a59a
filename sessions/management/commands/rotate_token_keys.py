"""Re-encrypt stored vehicle API tokens under the newest TOKEN_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand

from sessions.vehicles.services import connection_rotate_token_keys


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored vehicle API token under the first (newest) key of "
        "TOKEN_ENCRYPTION_KEYS. Run after prepending a new key; then the old key can be removed."
    )

    def handle(self, *args, **options):
        rotated, skipped = connection_rotate_token_keys()
        self.stdout.write(f"rotated {rotated} connection(s); {skipped} skipped (already current or changed meanwhile)")
