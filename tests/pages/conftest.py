from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import Purchase
from payments.services import purchase_create, purchase_transition
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage
from sessions.models import Vehicle, VehicleConnection


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", "other@example.com", "other-secret-42")


@pytest.fixture
def car(db):
    """A connected car of `user` (tokens stored as Connect would store them; no API call made)."""

    def _car(user, external_id="sim-car-1"):
        connection = VehicleConnection(user=user, access_expires_at=timezone.now() + timedelta(hours=2))
        connection.access_token = "access-token"
        connection.refresh_token = "refresh-token"
        connection.refresh_expires_at = timezone.now() + timedelta(days=60)
        connection.save()
        return Vehicle.objects.create(
            connection=connection, owner=user, external_id=external_id, make="TESLA", model="Model 3", year=2024
        )

    return _car


@pytest.fixture
def credit(db):
    """Credit `energy_wh` of paid energy (a package at `amount_minor`) to `user`'s wallet."""

    def _credit(user, energy_wh=10_000, amount_minor=450):
        package = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=amount_minor)
        purchase = purchase_create(user=user, package=package)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
        purchase.refresh_from_db()
        return wallet_services.wallet_credit_purchase(purchase=purchase)

    return _credit
