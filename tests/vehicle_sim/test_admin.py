"""The loopback admin API tools and benchmarks use, and the in-process client."""

import httpx
import pytest

from vehicle_sim.app import in_process_client, make_app
from vehicle_sim.engine import Simulator

from .conftest import Car, live_reads


def test_the_virtual_clock_is_advanced_and_set_through_the_admin_api(client, clock):
    assert client.get("/_sim/clock").json() == {"now": "2026-03-02T08:00:00.000Z", "virtual": True}
    assert client.post("/_sim/clock/advance", json={"seconds": 90}).json() == {"now": "2026-03-02T08:01:30.000Z"}
    assert client.post("/_sim/clock/set", json={"now": "2026-03-02T09:00:00Z"}).json() == {
        "now": "2026-03-02T09:00:00.000Z"
    }
    assert client.post("/_sim/clock/set", json={"now": "2026-03-02T08:00:00Z"}).status_code == 400


def test_a_real_clock_cannot_be_advanced():
    with in_process_client(Simulator()) as c:
        assert c.post("/_sim/clock/advance", json={"seconds": 5}).status_code == 400


def test_vehicles_are_listed_shown_and_changed(client, car):
    assert [v["id"] for v in client.get("/_sim/vehicles").json()["vehicles"]] == [car.id]
    assert client.get("/_sim/vehicles/nope").status_code == 404
    changed = car.set(soc=0.55, limit=0.9, charger_kw=7.4)
    assert (changed["soc"], changed["limit"], changed["charger_kw"]) == (0.55, 0.9, 7.4)
    assert client.post(f"/_sim/vehicles/{car.id}", json={"wheels": 5}).status_code == 400
    assert client.post(f"/_sim/vehicles/{car.id}/unplug").json()["plugged"] is False
    assert client.post(f"/_sim/vehicles/{car.id}/plug").json()["plugged"] is True


def test_an_unknown_profile_is_refused(client):
    response = client.post("/_sim/vehicles", json={"profile": "trabant"})
    assert response.status_code == 400
    assert "unknown profile" in response.json()["error"]


def test_reset_forgets_everything(client, car):
    assert client.post("/_sim/reset").json() == {"ok": True}
    assert client.get("/_sim/vehicles").json() == {"vehicles": []}
    assert car.read().status_code == 401  # app tokens and connections are gone too


def test_config_switches_rate_limits_and_latency(client, sim):
    client.post("/_sim/config", json={"app_rate_limit": [120, 2], "command_latency_s": [1, 2]})
    assert sim.app_rate_limit == (120, 2)
    assert sim.command_latency_s == (1, 2)
    client.post("/_sim/config", json={"app_rate_limit": None})
    assert sim.app_rate_limit is None


def test_the_in_process_client_skips_response_delays(sim):
    v = sim.create_vehicle(soc=0.3, plugged=True, faults={"response_delay_s": 3600})
    with in_process_client(sim) as c:
        response = Car(c, {"id": v.id, "user_id": sim.connect([v.id])}).read()
    assert response.status_code == 200


def test_state_survives_a_round_trip(sim, clock):
    v = sim.create_vehicle(profile="hk_event_gen2", soc=0.3, plugged=True)
    user_id = sim.connect([v.id])
    v.charging = True
    clock.advance(1800)
    again = live_reads(Simulator(clock))
    again.load_state(sim.to_state())
    clock.advance(1800)
    assert again.true_state(v.id)["soc"] == sim.true_state(v.id)["soc"]
    # The connection survived: the same user still reads the car.
    with httpx.Client(transport=httpx.WSGITransport(app=make_app(again)), base_url="http://sim") as c:
        assert Car(c, {"id": v.id, "user_id": user_id}).read().status_code == 200


def test_the_in_process_client_can_simulate_a_read_timeout(sim, clock):
    v = sim.create_vehicle(soc=0.3, plugged=True, faults={"response_delay_s": 400})
    sim.command_latency_s = (10, 10)
    with in_process_client(sim, read_timeout_s=310) as c:
        car = Car(c, {"id": v.id, "user_id": sim.connect([v.id])})
        with pytest.raises(httpx.ReadTimeout):
            car.start()
    clock.advance(10)
    # The command reached the car although the client gave up waiting.
    assert sim.true_state(v.id)["charging"] is True


def test_out_of_range_truth_is_refused(client, car):
    for change in ({"soc": 1.2}, {"limit": 0.3}, {"charger_kw": -1}, {"efficiency": "high"}):
        assert client.post(f"/_sim/vehicles/{car.id}", json=change).status_code == 400
