from datetime import timedelta

import pytest
from django.utils import timezone

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
            connection=connection,
            owner=user,
            external_id=external_id,
            make="TESLA",
            model="Model 3",
            year=2024,
            is_plugged_in=True,  # as the first read after Connect finds it
        )

    return _car


@pytest.fixture
def credit(buy):
    """Credit `energy_wh` of paid energy (a package at `amount_minor`) to `user`'s wallet."""
    return buy
