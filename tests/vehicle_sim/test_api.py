"""The engine behind the v3 routes: auth, scopes, the charge state machine, counters, admin access.

The v3 wire shapes themselves (IAM, connections, signals, commands, errors) are in v3/test_v3_api.py.
"""

import uuid

import httpx
import pytest

from vehicle_sim.app import make_app

from .conftest import LIMITS, WATTAGE, assert_error


@pytest.mark.parametrize("slash", ["", "/"])
def test_paths_are_served_with_and_without_a_trailing_slash(car, client, slash):
    base = f"/v3/vehicles/{car.id}"
    assert client.get(f"{base}/signals{slash}", headers=car.headers()).status_code == 200
    assert client.get(f"{base}{slash}", headers=car.headers()).status_code == 200
    assert client.post(f"{base}/commands/charge/start{slash}", headers=car.headers()).status_code == 200


def test_every_response_carries_json_content_type_and_a_request_id(car, client):
    for response in (car.read(), car.start(), client.get("/v3/nope", headers=car.headers())):
        assert response.headers["Content-Type"] == "application/json"
        uuid.UUID(response.headers["SC-Request-Id"])


@pytest.mark.parametrize("token", [None, "Bearer nope", "Basic abc"])
def test_it_rejects_missing_or_invalid_tokens(car, client, token):
    headers = {"Authorization": token, "sc-user-id": car.user_id} if token else {"sc-user-id": car.user_id}
    error = assert_error(client.get(f"/v3/vehicles/{car.id}/signals", headers=headers), 401, "AUTHENTICATION", None)
    assert error["resolution"]["type"] == "REAUTHENTICATE"


def test_a_connection_without_the_scope_reads_but_cannot_command(make_car):
    car = make_car(scopes=["read_battery"])
    assert car.signals()["tractionbattery-stateofcharge"]["status"]["value"] == "SUCCESS"
    assert car.signals()[LIMITS]["status"]["error"]["type"] == "PERMISSION"
    assert_error(car.start(), 403, "PERMISSION", None)


def test_it_rejects_a_vehicle_the_user_did_not_connect(make_car, client):
    first, second = make_car(), make_car()
    response = client.get(f"/v3/vehicles/{second.id}/signals", headers=first.headers())
    assert_error(response, 403, "PERMISSION", None)


def test_the_charge_state_machine_answers_with_vehicle_state_errors(car, clock):
    car.set(plugged=False)
    assert_error(car.start(), 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    assert_error(car.stop(), 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    car.set(plugged=True)
    assert_error(car.stop(), 409, "VEHICLE_STATE", "NOT_CHARGING")
    car.start()
    clock.advance(10)
    assert_error(car.start(), 409, "VEHICLE_STATE", "CHARGING_IN_PROGRESS")
    car.set(soc=0.8)
    clock.advance(1)
    assert_error(car.start(), 409, "VEHICLE_STATE", "FULLY_CHARGED")


def test_stop_is_accepted_while_a_start_is_on_its_way(car, clock):
    car.start()
    assert car.stop().status_code == 200
    clock.advance(30)
    assert car.truth()["charging"] is False


def test_invalid_json_is_a_validation_error(car, client):
    response = client.post(
        f"/v3/vehicles/{car.id}/commands/charge/set-limit",
        content=b"{nope",
        headers={**car.headers(), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION", None)


def test_a_new_limit_is_read_back_once_the_car_applied_it(car, clock):
    assert car.set_limit(75).status_code == 200
    clock.advance(10)
    assert car.signals()[LIMITS]["body"]["activeLimit"] == 75


@pytest.mark.parametrize("percent", [49, 101, "75", 75.5, None, True])
def test_it_rejects_limits_outside_half_to_one_or_not_whole(car, percent):
    assert_error(car.set_limit(percent), 400, "VALIDATION", "PARAMETER")


def test_the_wattage_reads_power_while_charging(car, clock):
    assert car.value(WATTAGE) == 0
    car.start()
    clock.advance(20)
    assert car.value(WATTAGE) == 11_000


def test_it_counts_calls_per_vehicle_and_globally(car, client):
    car.read()
    car.read()
    car.start()
    counters = client.get("/_sim/counters").json()
    assert counters["vehicles"][car.id] == {"GET /v3/signals": 2, "POST /charge": 1}
    assert counters["global"]["GET /v3/signals"] == 2


def test_the_admin_api_is_loopback_only(sim):
    transport = httpx.WSGITransport(app=make_app(sim), remote_addr="10.0.0.5")
    with httpx.Client(transport=transport, base_url="http://sim.test") as remote:
        assert remote.get("/_sim/vehicles").status_code == 403
        assert remote.get("/_sim/v3").status_code == 403


def test_a_car_that_takes_a_limit_only_when_plugged(make_car):
    car = make_car(plugged=False, limit_needs_plug=True)
    assert car.signals()[LIMITS]["body"]["activeLimit"] is None  # null while unplugged
    assert_error(car.set_limit(90), 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    car.set(plugged=True)
    assert car.signals()[LIMITS]["body"]["activeLimit"] == 80
    assert car.set_limit(90).status_code == 200
