"""The same assertions through every client adapter against the running simulator."""

import re
import uuid

import pytest

from vehicle_sim.errors import CODES_BY_TYPE, STATUS_BY_TYPE

from .conftest import ContractError, Result

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SUCCESS = {"status": "success", "message": "Successfully sent request to vehicle"}


def test_connect_code_exchange_and_refresh(adapter, contract_env):
    free = contract_env.sim.create_vehicle(soc=0.4, plugged=True)
    url = adapter.auth_url(["read_vehicle_info", "read_battery", "read_charge", "control_charge"], "st-1")
    assert url.startswith(f"{contract_env.url}/oauth/authorize?")
    assert "client_id=contract-client-id" in url
    params = contract_env.consent(url, [free.id])
    assert params["state"] == "st-1"
    tokens = adapter.exchange_code(params["code"])
    assert tokens.expires_in == 7200
    assert adapter.vehicles(tokens.access_token) == [free.id]
    uuid.UUID(adapter.user(tokens.access_token))

    with pytest.raises(ContractError) as reused:
        adapter.exchange_code(params["code"])
    assert (reused.value.type, reused.value.status_code) == ("invalid_grant", 400)

    rotated = adapter.refresh(tokens.refresh_token)
    assert rotated.refresh_token != tokens.refresh_token
    assert adapter.attributes(rotated.access_token, free.id).body["id"] == free.id
    contract_env.clock.advance(61)  # past the reuse grace window
    with pytest.raises(ContractError) as old:
        adapter.refresh(tokens.refresh_token)
    assert old.value.type == "invalid_grant"


def test_denied_consent_redirects_with_access_denied(adapter, contract_env):
    free = contract_env.sim.create_vehicle(demo=True)
    params = contract_env.consent(adapter.auth_url(["read_charge"], "st-2"), [free.id], action="deny")
    assert params["error"] == "access_denied"
    assert params["state"] == "st-2"


def test_reads(adapter, contract_env):
    vid, tokens = contract_env.new_car(soc=0.3, limit=0.8)
    token = tokens.access_token
    assert adapter.attributes(token, vid).body == {"id": vid, "make": "TESLA", "model": "Model 3", "year": 2024}
    charge = adapter.charge(token, vid)
    assert charge.body == {"isPluggedIn": True, "state": "NOT_CHARGING"}
    assert ISO_MS.match(charge.meta["data_age"])
    assert ISO_MS.match(charge.meta["fetched_at"])
    assert charge.meta["unit_system"] == "metric"
    uuid.UUID(charge.meta["request_id"])
    battery = adapter.battery(token, vid)
    assert battery.body["percentRemaining"] == pytest.approx(0.3)
    assert battery.body["range"] == pytest.approx(135.0)
    assert adapter.battery_capacity(token, vid).body["capacity"] == pytest.approx(75.0)
    assert adapter.get_charge_limit(token, vid).body["limit"] == pytest.approx(0.8)


def test_commands_take_effect_after_their_latency(adapter, contract_env):
    vid, tokens = contract_env.new_car(soc=0.3)
    token = tokens.access_token
    assert adapter.start_charge(token, vid).body == SUCCESS
    contract_env.clock.advance(10)
    assert adapter.charge(token, vid).body["state"] == "CHARGING"
    assert adapter.set_charge_limit(token, vid, 0.9).body == SUCCESS
    contract_env.clock.advance(600)
    assert adapter.get_charge_limit(token, vid).body["limit"] == pytest.approx(0.9)
    assert adapter.stop_charge(token, vid).body == SUCCESS
    contract_env.clock.advance(10)
    assert adapter.charge(token, vid).body["state"] == "NOT_CHARGING"
    truth = contract_env.sim.true_state(vid)
    assert truth["delivered_wall_wh"] == pytest.approx(11000 * 610 / 3600, rel=1e-6)


def test_make_specific_tesla_charge(adapter, contract_env):
    vid, tokens = contract_env.new_car(soc=0.3)
    adapter.start_charge(tokens.access_token, vid)
    contract_env.clock.advance(10 + 360)
    result = adapter.request(tokens.access_token, vid, "GET", "tesla/charge")
    assert result.body["state"] == "CHARGING"
    assert result.body["wattage"] == pytest.approx(11.0)
    assert result.body["energyAdded"] == pytest.approx(1.01)  # 0.1 h × 11 kW × 0.92, in 0.01 kWh steps
    with pytest.raises(ContractError) as upper:
        adapter.request(tokens.access_token, vid, "GET", "TESLA/charge")
    assert (upper.value.type, upper.value.status_code) == ("PERMISSION", 403)


def test_batch_with_a_failing_sub_request(adapter, contract_env):
    vid, tokens = contract_env.new_car(soc=0.3)
    throttle_charge = {"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 17, "endpoint": "GET /charge"}
    contract_env.sim.set_vehicle(vid, faults={"inject": [throttle_charge]})
    out = adapter.batch(tokens.access_token, vid, ["/battery", "/charge", "/charge/limit"])
    assert isinstance(out["/battery"], Result)
    assert out["/battery"].body["percentRemaining"] == pytest.approx(0.3)
    assert ISO_MS.match(out["/battery"].meta["data_age"])
    assert out["/charge/limit"].body["limit"] == pytest.approx(0.8)
    error = out["/charge"]
    assert isinstance(error, ContractError)
    assert (error.type, error.code, error.status_code, error.retry_after) == ("RATE_LIMIT", "VEHICLE", 429, 17)


ALL_ERRORS = [(t, c) for t, codes in CODES_BY_TYPE.items() for c in codes]


@pytest.mark.parametrize(("type_", "code"), ALL_ERRORS)
def test_every_error_maps_to_type_code_status_and_request_id(adapter, contract_env, type_, code):
    vid, tokens = contract_env.new_car()
    contract_env.sim.set_vehicle(vid, faults={"inject": [{"type": type_, "code": code}]})
    with pytest.raises(ContractError) as caught:
        adapter.battery(tokens.access_token, vid)
    error = caught.value
    assert (error.type, error.code, error.status_code) == (type_, code, STATUS_BY_TYPE[type_])
    uuid.UUID(error.request_id)
    expected_retry = 120 if (type_, code) == ("RATE_LIMIT", "VEHICLE") else None
    assert error.retry_after == expected_retry


def test_state_errors_from_the_charge_state_machine(adapter, contract_env):
    vid, tokens = contract_env.new_car(plugged=False)
    with pytest.raises(ContractError) as unplugged:
        adapter.start_charge(tokens.access_token, vid)
    assert (unplugged.value.type, unplugged.value.code, unplugged.value.status_code) == (
        "VEHICLE_STATE",
        "CHARGING_PLUG_NOT_CONNECTED",
        409,
    )
    with pytest.raises(ContractError) as invalid:
        adapter.set_charge_limit(tokens.access_token, vid, 1.5)
    assert (invalid.value.type, invalid.value.code, invalid.value.status_code) == ("VALIDATION", "PARAMETER", 400)


def test_an_invalid_token_is_an_authentication_error(adapter, contract_env):
    vid, _ = contract_env.new_car()
    with pytest.raises(ContractError) as caught:
        adapter.charge("not-a-token", vid)
    assert (caught.value.type, caught.value.code, caught.value.status_code) == ("AUTHENTICATION", None, 401)


def test_a_throttled_vehicle_gives_retry_after(adapter, contract_env):
    vid, tokens = contract_env.new_car()
    contract_env.sim.set_vehicle(vid, faults={"throttle_retry_after_s": 90})
    with pytest.raises(ContractError) as caught:
        adapter.charge(tokens.access_token, vid)
    assert caught.value.retry_after == 90
