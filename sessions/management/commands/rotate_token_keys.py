"""Re-encrypt the stored vehicle API application token under the newest TOKEN_ENCRYPTION_KEYS key."""

from django.core.management.base import BaseCommand

from sessions.vehicles.services import token_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt the stored vehicle API application token(s) under the first (newest) key of "
        "TOKEN_ENCRYPTION_KEYS. Run after prepending a new key; then the old key can be removed."
    )

    def handle(self, *args, **options):
        rotated, skipped = token_keys_rotate()
        self.stdout.write(f"rotated {rotated} application token(s); {skipped} skipped (current or changed meanwhile)")
