"""Charging sessions against the real simulator, in virtual time.

The simulator runs in-process (httpx.WSGITransport, no socket) on a VirtualClock; the controller
reads the same clock through `sessions.clock`, so hours of charging take milliseconds and every
test is deterministic under its seed.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.management import call_command

from payments.models import Purchase
from payments.services import purchase_create, purchase_transition
from prepaid import services as wallet_services
from prepaid.models import EnergyPackage
from sessions import clock, runtime, services, vehicles
from sessions.models import ChargingSession, Vehicle
from sessions.models.charging import TERMINAL_STATUSES
from sessions.simulator.app import make_app
from sessions.simulator.clock import VirtualClock
from sessions.simulator.engine import Simulator
from sessions.vehicle_api import VehicleApiClient

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ORIGIN = "http://sim.test"


@pytest.fixture(autouse=True)
def _fresh_latency_cache():
    """The learned STOP latency is cached per make and minute; tests must not share it."""
    services._latency_models_cached.cache_clear()
    yield
    services._latency_models_cached.cache_clear()


@pytest.fixture
def sim():
    return Simulator(VirtualClock(START), seed=7)


@pytest.fixture
def api(sim):
    """Our client wired into the simulator; the controller and token service use it."""
    client = VehicleApiClient(
        api_origin=ORIGIN,
        auth_url=f"{ORIGIN}/oauth/token",
        connect_origin=ORIGIN,
        client_id="sim-client-id",
        client_secret="sim-client-secret",
        redirect_uri="http://testserver/vehicles/connect/callback/",
        transport=httpx.WSGITransport(app=make_app(sim, sleep=lambda seconds: None)),
        clock=sim.clock.now,
    )
    vehicles.use_client(client)
    with clock.use(sim.clock.now, all_threads=True):
        yield client
    vehicles.use_client(None)
    client.close()


@dataclass
class Car:
    sim_id: str
    vehicle: Vehicle


@pytest.fixture
def connect(sim, api, db):
    """Connect a simulated car to `user` as Connect would: a token pair stored encrypted."""

    def _connect(user, profile="generic", **car):
        car.setdefault("plugged", True)
        car.setdefault("soc", 0.3)
        simulated = sim.create_vehicle(profile, **car)
        return Car(simulated.id, vehicles.vehicle_connect_simulated(user=user, sim=sim, sim_vehicle_id=simulated.id))

    return _connect


@pytest.fixture
def credit(db):
    """Credit `energy_wh` of paid energy to `user`'s wallet."""

    def _credit(user, energy_wh=40_000, amount_minor=1800):
        package = EnergyPackage.objects.create(name=f"{energy_wh} Wh", energy_wh=energy_wh, price_minor=amount_minor)
        purchase = purchase_create(user=user, package=package)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.AWAITING_PAYMENT)
        purchase_transition(purchase_id=purchase.pk, to_status=Purchase.Status.PAID)
        purchase.refresh_from_db()
        return wallet_services.wallet_credit_purchase(purchase=purchase)

    return _credit


@pytest.fixture
def drive(sim):
    """Run the controller loop in virtual time until the session ends (or `until` says so).

    Each turn jumps the clock to the session's next due action and runs one loop tick, which
    claims due sessions and runs their steps (django-q2 runs tasks inline in tests)."""

    def _drive(session, *, until=None, max_steps=400, max_hours=24):
        deadline = sim.clock.now() + timedelta(hours=max_hours)
        for _ in range(max_steps):
            session.refresh_from_db()
            if session.status in TERMINAL_STATUSES or (until and until(session)):
                return session
            due = session.next_action_at
            assert due is not None, f"open session without a next action: {session.status}"
            if due > sim.clock.now():
                sim.clock.set(due)
            assert sim.clock.now() < deadline, "session did not end in virtual time"
            runtime.tick()
        raise AssertionError(f"session still {session.status} after {max_steps} steps")

    return _drive


@pytest.fixture
def ledger_clean():
    def _check():
        call_command("ledger_check")  # SystemExit(1) on drift

    return _check


def delivered_wh(sim, car: Car, before: dict) -> int:
    """True energy that reached the battery since `before` (a true_state snapshot)."""
    return round(sim.true_state(car.sim_id)["delivered_battery_wh"] - before["delivered_battery_wh"])


__all__ = ["ChargingSession", "delivered_wh"]
