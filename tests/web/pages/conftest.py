import pytest

from sessions.models import Vehicle, VehicleConnection


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", "other@example.com", "other-secret-42")


@pytest.fixture
def car(db):
    """A connected car of `user` (its vehicle API user id stored as Connect would; no API call made)."""

    def _car(user, external_id="sim-car-1"):
        connection = VehicleConnection.objects.create(user=user, external_user_id=f"user-of-{external_id}")
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
