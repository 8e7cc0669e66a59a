"""Load demo data: an operator, a driver, energy packages and a connected simulated vehicle.

Safe to run again: it updates what exists instead of duplicating it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from prepaid.models import EnergyPackage

DEMO_OPERATOR = ("operator", "ops@example.com", "operate-safely-42")
DEMO_DRIVER = ("driver", "driver@example.com", "drive-safely-42")
# (name, kWh, price in minor units incl. VAT); 45 cents per kWh, larger packages a little cheaper.
DEMO_PACKAGES = [("5 kWh", 5, 225), ("10 kWh", 10, 450), ("20 kWh", 20, 880), ("40 kWh", 40, 1700)]


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
        for order, (name, kwh, price_minor) in enumerate(DEMO_PACKAGES):
            EnergyPackage.objects.update_or_create(
                name=name,
                defaults={"energy_wh": kwh * 1000, "price_minor": price_minor, "currency": "eur", "order": order},
            )
        self.stdout.write(self.style.SUCCESS("Demo packages: " + ", ".join(p[0] for p in DEMO_PACKAGES)))
        self.stdout.write(self.style.SUCCESS("Demo users: operator / operate-safely-42, driver / drive-safely-42"))
