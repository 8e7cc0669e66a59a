"""`make run`'s demo: each new account finds a simulated car of its own on the simulator's
consent page (issue 19 §3c), instead of one demo car offered to every account."""

from urllib.parse import urlencode

import httpx
import pytest

from sessions.models import Vehicle
from vehicle_sim import v3
from vehicle_sim.clock import VirtualClock
from vehicle_sim.engine import Simulator
from vehicle_sim.server import SimulatorServer
from web.demo import ensure_demo_vehicles

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def simulator(settings):
    from datetime import UTC, datetime

    sim = Simulator(VirtualClock(datetime(2026, 6, 1, 9, 0, tzinfo=UTC)), seed=3)
    server = SimulatorServer(sim).start()
    # The product's v3 client at the simulator; the store answers unsubscribed cars live.
    v3.platform(sim).config.update({"unsubscribed_signals": "live"})
    settings.VEHICLE_API_V3_ORIGIN = settings.VEHICLE_MANAGEMENT_ORIGIN = server.url
    settings.VEHICLE_CONNECT_ORIGIN = server.url
    settings.VEHICLE_IAM_URL = f"{server.url}/oauth2/token"
    yield sim, server
    server.stop()


def _sign_up(client, name: str):
    return client.post(
        "/accounts/signup/",
        {"username": name, "email": f"{name}@example.com", "password1": "charge-me-42!", "password2": "charge-me-42!"},
    )


def _consent_page(server, settings) -> str:
    query = urlencode({"client_id": settings.VEHICLE_CLIENT_ID, "redirect_uri": "http://127.0.0.1/cb", "mode": "test"})
    return httpx.get(f"{server.url}/oauth/authorize?{query}").text


def test_each_new_account_gets_its_own_car_on_the_consent_page(client, settings, simulator):
    sim, server = simulator
    settings.DEMO_CARS = True
    assert _sign_up(client, "alice").status_code == 302
    client.logout()
    assert _sign_up(client, "bob").status_code == 302

    offered = sim.connectable_vehicles()
    assert sorted(v.label for v in offered) == ["demo car of alice", "demo car of bob"]
    assert not any(v.demo for v in offered)  # none shared by every account
    assert all(v.plugged for v in offered)
    page = _consent_page(server, settings)
    assert "<strong>demo car of alice</strong>" in page and "<strong>demo car of bob</strong>" in page


def test_without_the_demo_no_car_is_made(client, settings, simulator):
    sim, _ = simulator
    settings.DEMO_CARS = False
    assert _sign_up(client, "carol").status_code == 302
    assert sim.connectable_vehicles() == []


def test_a_simulator_that_is_down_does_not_stop_a_sign_up(client, settings):
    settings.DEMO_CARS = True
    settings.VEHICLE_API_V3_ORIGIN = "http://127.0.0.1:9"  # nothing listens
    assert _sign_up(client, "dave").status_code == 302


def test_the_demo_driver_has_a_connected_car_and_an_own_one_to_connect(django_user_model, settings, simulator):
    sim, _ = simulator
    driver = django_user_model.objects.create_user("driver", "driver@example.com", "drive-safely-42")
    cars = ensure_demo_vehicles(user=driver)
    assert len(cars) == 1 and Vehicle.objects.filter(owner=driver, is_active=True).count() == 1
    [waiting] = sim.connectable_vehicles()
    assert waiting.label == "demo car of driver" and not waiting.demo
