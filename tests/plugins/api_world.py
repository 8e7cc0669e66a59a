"""Data for the API, dashboard and admin tests: two drivers and an operator, one of the drivers
with a vehicle, paid credit, a finished and a running session and a refund."""

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from payments.models import Purchase, Refund
from payments.services import refund_request
from prepaid.models import CreditLot
from sessions import services as session_services
from sessions.models import ChargingSession, Vehicle, VehicleConnection
from tests.plugins.wallet import paid_credit

ROLES = ["anon", "other", "owner", "staff"]


@pytest.fixture
def fresh_throttles():
    # Throttle counters live in the cache, keyed by user id; ids repeat across tests.
    cache.clear()
    yield
    cache.clear()


def make_vehicle(user, *, make="TESLA", model="Model 3", status=VehicleConnection.Status.ACTIVE) -> Vehicle:
    connection = VehicleConnection.objects.create(user=user, status=status)
    return Vehicle.objects.create(
        connection=connection, owner=user, external_id=f"v-{user.pk}-{make}-{model}", make=make, model=model
    )


@dataclass
class World:
    owner: object
    other: object
    staff: object
    vehicle: Vehicle
    vehicle2: Vehicle
    lot: CreditLot
    purchase: Purchase
    finished: ChargingSession
    running: ChargingSession
    refund: Refund


@pytest.fixture
def world(db, django_user_model) -> World:
    owner = django_user_model.objects.create_user("owner", "owner@example.com", "pw-owner-42")
    other = django_user_model.objects.create_user("other", "other@example.com", "pw-other-42")
    staff = django_user_model.objects.create_user(
        "ops", "ops@example.com", "pw-ops-42", is_staff=True, is_superuser=True
    )
    vehicle = make_vehicle(owner)
    vehicle2 = make_vehicle(owner, make="HYUNDAI", model="Ioniq 5")
    lot = paid_credit(owner)
    finished = session_services.session_request(user=owner, vehicle_id=vehicle.pk, energy_wh=5_000)
    session_services.session_close_stuck(session_id=finished.pk)
    finished.refresh_from_db()
    running = session_services.session_request(user=owner, vehicle_id=vehicle2.pk, energy_wh=10_000)
    refund = refund_request(wallet_id=lot.wallet_id, requested_by=owner, energy_wh=1_000)
    return World(owner, other, staff, vehicle, vehicle2, lot, lot.purchase, finished, running, refund)


def client_for(world: World, role: str, *, token: bool = True) -> APIClient:
    client = APIClient()
    user = {"anon": None, "other": world.other, "owner": world.owner, "staff": world.staff}[role]
    if user is not None:
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        else:
            client.force_login(user)
    return client


@pytest.fixture
def as_role(world):
    return lambda role, **kw: client_for(world, role, **kw)
