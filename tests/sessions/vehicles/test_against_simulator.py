"""The services and pages against the bundled simulator (vehicle_sim's WSGI app): the real v3
wire protocol end to end through httpx.WSGITransport (no network, no fixed port)."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from sessions.models import VehicleConnection
from sessions.vehicle_api import errors
from sessions.vehicle_api.v3_types import ChargeState
from sessions.vehicles import services
from tests.plugins.cars import ORIGIN, REDIRECT_URI, approve, simulator_client, simulator_transport
from vehicle_sim import v3
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim():
    simulator = Simulator(VirtualClock(START), seed=11, command_latency_s=(0, 0))
    # No webhook subscription here: the store answers unsubscribed cars live (a CONFLICT reading).
    v3.platform(simulator).config.update({"unsubscribed_signals": "live"})
    return simulator


@pytest.fixture
def sim_transport(sim):
    return simulator_transport(sim)


@pytest.fixture
def sim_client(sim_transport, sim):
    client = simulator_client(sim_transport, clock=sim.clock.now)
    yield client
    client.close()


@pytest.fixture
def connect_settings(settings):
    """Connect on the simulator's consent page, as the development settings point it there."""
    settings.VEHICLE_CONNECT_ORIGIN = ORIGIN
    settings.VEHICLE_CLIENT_ID = "sim-client-id"
    settings.VEHICLE_REDIRECT_URI = REDIRECT_URI
    settings.VEHICLE_CONNECT_MODE = "simulated"
    return settings


def test_the_services_speak_the_simulators_protocol(sim, sim_transport, sim_client, connect_settings, driver):
    car = sim.create_vehicle("generic", make="TESLA", model="Model 3", capacity_kwh=57.5, soc=0.4, plugged=True)
    answer = approve(sim_transport, services.authorize_url(state="xyz"), [car.id])
    assert answer["state"] == "xyz" and answer["user_id"]

    connection = services.connection_create(user=driver, external_user_id=answer["user_id"], client=sim_client)
    vehicle = connection.vehicles.get()
    assert (vehicle.external_id, vehicle.make, vehicle.model, vehicle.capacity_wh) == (
        car.id,
        "TESLA",
        "Model 3",
        57500,
    )
    assert (vehicle.soc_bp, vehicle.is_plugged_in) == (4000, True)
    assert vehicle.signal_capabilities["charge-energyadded"] == "capable"

    user_id = connection.external_user_id
    started = services.call_vehicle(connection, lambda u: sim_client.start_charge(u, car.id))
    assert started.done and started.completed_at >= started.executed_at
    sim.advance_clock(60)
    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=sim_client)
    assert vehicle.charge_state == ChargeState.CHARGING
    with pytest.raises(errors.VehicleStateError) as caught:
        sim_client.start_charge(user_id, car.id)
    assert caught.value.code == "CHARGING_IN_PROGRESS"

    services.connection_disconnect(connection_id=connection.pk, client=sim_client)
    with pytest.raises(errors.PermissionDenied):
        sim_client.get_signals(user_id, car.id)


def test_the_connect_pages_work_end_to_end(
    client, driver, sim, sim_transport, sim_client, connect_settings, monkeypatch
):
    monkeypatch.setattr(services, "get_client", lambda: sim_client)
    car = sim.create_vehicle("generic", make="VOLKSWAGEN", model="ID.4", soc=0.66, plugged=True)
    client.force_login(driver)

    authorize = client.get(reverse("vehicles:connect"))["Location"]
    answer = approve(sim_transport, authorize, [car.id])
    page = client.get(reverse("vehicles:connect_callback"), answer, follow=True).content.decode()

    assert "Connected 1 vehicle." in page
    connection = VehicleConnection.objects.get(user=driver)
    vehicle = connection.vehicles.get()
    assert (vehicle.external_id, vehicle.make, vehicle.model) == (car.id, "VOLKSWAGEN", "ID.4")
    vehicle = services.vehicle_refresh_snapshot(vehicle_id=vehicle.pk, client=sim_client)
    assert vehicle.soc_bp == 6600 and vehicle.is_plugged_in is True
    # VW reports no energy counter (docs/reference/vehicle-api-v3.md §3.2): a fact learned.
    assert vehicle.signal_capabilities["charge-energyadded"] == "not_capable"

    services.connection_disconnect(connection_id=connection.pk, client=sim_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.DISCONNECTED
    assert v3.platform(sim).connections() == []
