"""The client, services and pages against the bundled simulator (vehicle_sim's WSGI app): the
real wire protocol end to end through httpx.WSGITransport (no network, no fixed port)."""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from sessions.models import VehicleConnection
from sessions.vehicle_api import ChargeState, errors
from sessions.vehicles import services
from tests.plugins.cars import approve, simulator_client, simulator_transport
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim():
    return Simulator(VirtualClock(START), seed=11, command_latency_s=(0, 0))


@pytest.fixture
def sim_transport(sim):
    return simulator_transport(sim)


@pytest.fixture
def sim_client(sim_transport):
    client = simulator_client(sim_transport, connect_mode="simulated")
    yield client
    client.close()


def test_the_client_speaks_the_simulators_protocol(sim, sim_transport, sim_client):
    car = sim.create_vehicle("generic", make="TESLA", model="Model 3", capacity_kwh=57.5, soc=0.4, plugged=True)
    answer = approve(sim_transport, sim_client.authorize_url(state="xyz"), [car.id])
    assert answer["state"] == "xyz"
    pair = sim_client.exchange_code(answer["code"])

    assert sim_client.list_vehicles(pair.access_token) == [car.id]
    attributes = sim_client.attributes(pair.access_token, car.id)
    assert (attributes.make, attributes.model) == ("TESLA", "Model 3")
    assert sim_client.battery_capacity_wh(pair.access_token, car.id).capacity_wh == 57500
    battery = sim_client.battery(pair.access_token, car.id)
    assert battery.soc_bp == 4000
    assert battery.meta.data_age is not None and battery.meta.request_id
    assert sim_client.charge_status(pair.access_token, car.id).is_plugged_in is True

    assert sim_client.start_charge(pair.access_token, car.id).status == "success"
    sim.advance_clock(60)
    assert sim_client.charge_status(pair.access_token, car.id).state is ChargeState.CHARGING
    with pytest.raises(errors.VehicleStateError) as caught:
        sim_client.start_charge(pair.access_token, car.id)
    assert caught.value.code == "CHARGING_IN_PROGRESS"

    results = sim_client.batch(pair.access_token, car.id, ["/charge", "/battery", "/nope"])
    assert results["/charge"].state is ChargeState.CHARGING
    assert 4000 <= results["/battery"].soc_bp <= 10000
    assert isinstance(results["/nope"], errors.VehicleApiError)

    rotated = sim_client.refresh(pair.refresh_token)
    assert rotated.refresh_token != pair.refresh_token
    assert sim_client.disconnect(rotated.access_token, car.id).status == "success"
    with pytest.raises(errors.VehicleApiError):
        sim_client.battery(rotated.access_token, car.id)


def test_the_connect_pages_work_end_to_end(client, driver, sim, sim_transport, sim_client, monkeypatch):
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

    services.connection_disconnect(connection_id=connection.pk, client=sim_client)
    connection.refresh_from_db()
    assert connection.status == VehicleConnection.Status.DISCONNECTED
