"""Injected faults: every error type, throttles, timeouts, ignored STOPs, determinism."""

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.engine import Simulator
from vehicle_sim.errors import CODES_BY_TYPE, STATUS_BY_TYPE

from .test_api import assert_error

ALL_ERRORS = [(t, c) for t, codes in CODES_BY_TYPE.items() for c in codes]


@pytest.mark.parametrize(("type_", "code"), ALL_ERRORS)
def test_every_error_type_and_code_can_be_injected_once(car, type_, code):
    car.set(faults={"inject": [{"type": type_, "code": code}]})
    body = assert_error(car.get("battery"), STATUS_BY_TYPE[type_], type_, code)
    assert body["description"]
    assert car.get("battery").status_code == 200  # one-shot


def test_an_injected_error_can_target_one_endpoint(car):
    car.set(faults={"inject": [{"type": "UPSTREAM", "code": "NO_RESPONSE", "endpoint": "POST /charge"}]})
    assert car.get("battery").status_code == 200
    assert_error(car.start(), 502, "UPSTREAM", "NO_RESPONSE")


def test_rate_limit_vehicle_carries_retry_after(car):
    car.set(faults={"throttle_retry_after_s": 42})
    response = car.get("battery")
    assert_error(response, 429, "RATE_LIMIT", "VEHICLE")
    assert response.headers["Retry-After"] == "42"


def test_the_per_vehicle_token_bucket_throttles(make_car, client, sim, clock):
    sim.vehicle_rate_limit = (2, 1.0)  # 2 calls, then one more per minute
    car = make_car()
    assert car.get("battery").status_code == 200
    assert car.get("battery").status_code == 200
    response = car.get("battery")
    assert_error(response, 429, "RATE_LIMIT", "VEHICLE")
    assert response.headers["Retry-After"] == "60"
    clock.advance(60)
    assert car.get("battery").status_code == 200


def test_the_app_token_bucket_answers_smartcar_api(make_car, sim, clock):
    car = make_car()
    sim.app_rate_limit = (120, 2.0)
    for _ in range(120):
        assert car.get("").status_code == 200
    response = car.get("")
    assert_error(response, 429, "RATE_LIMIT", "SMARTCAR_API")
    assert "Retry-After" not in response.headers
    clock.advance(30)
    assert car.get("").status_code == 200


def test_the_monthly_billing_cap_answers_430(make_car, sim):
    sim.billing_limit_per_month = 2
    car = make_car()
    car.get("battery")
    car.get("charge")
    assert_error(car.get("battery"), 430, "BILLING", "VEHICLE_REQUEST_LIMIT")


@pytest.mark.parametrize(("fault", "code"), [("asleep", "ASLEEP"), ("unreachable", "UNREACHABLE")])
def test_sleep_and_unreachability_block_car_requests(car, fault, code):
    car.set(faults={fault: True})
    assert_error(car.get("charge"), 409, "VEHICLE_STATE", code)
    assert_error(car.start(), 409, "VEHICLE_STATE", code)
    assert car.get("vin").status_code == 200  # platform data


@pytest.mark.parametrize("code", ["CHARGE_FAULT", "UNKNOWN", "FULLY_CHARGED", "NOT_CHARGING", "ASLEEP"])
def test_command_errors_are_injectable(car, code):
    car.set(faults={"command_error": code})
    assert_error(car.start(), 409, "VEHICLE_STATE", code)
    assert car.get("charge").status_code == 200


def test_a_charge_fault_refuses_start_and_stops_a_running_charge(car, clock):
    car.start()
    clock.advance(10)
    car.set(faults={"charge_fault": True})
    assert car.truth()["charging"] is False
    assert_error(car.start(), 409, "VEHICLE_STATE", "CHARGE_FAULT")


def test_global_faults_apply_to_every_vehicle(make_car, client):
    first, second = make_car(), make_car()
    client.post("/_sim/faults", json={"upstream_error": "KNOWN_ISSUE"})
    assert_error(first.get("battery"), 502, "UPSTREAM", "KNOWN_ISSUE")
    assert_error(second.start(), 502, "UPSTREAM", "KNOWN_ISSUE")
    client.post("/_sim/faults", json={"upstream_error": None})
    assert first.get("battery").status_code == 200


def test_an_ignored_stop_is_answered_with_success_and_charging_goes_on(car, clock):
    car.set(faults={"ignore_stop": True})
    car.start()
    clock.advance(10)
    assert car.stop().json()["status"] == "success"
    clock.advance(600)
    assert car.truth()["charging"] is True


def test_a_random_failure_rate_is_deterministic_under_a_seed(clock):
    def outcomes(seed):
        sim = Simulator(clock, seed=seed)
        v = sim.create_vehicle(soc=0.3, plugged=True, faults={"failure_rate": 0.3})
        token = sim.issue_tokens([v.id])["access_token"]
        return [sim.vehicle_request(token, "GET", v.id, "battery").status for _ in range(60)]

    first = outcomes(11)
    assert first == outcomes(11)
    assert set(first) == {200, 502}
    assert 5 < first.count(502) < 35


def test_a_response_delay_holds_the_answer(car, client):
    car.set(faults={"response_delay_s": 2.5})
    assert car.get("battery").status_code == 200
    assert client.slept == [2.5]


def test_unknown_faults_are_refused(car, client):
    response = client.post(f"/_sim/vehicles/{car.id}", json={"faults": {"gremlins": True}})
    assert response.status_code == 400


def test_a_delayed_answer_makes_an_http_client_time_out(sim):
    from vehicle_sim.server import SimulatorServer

    v = sim.create_vehicle(soc=0.3, plugged=True, faults={"response_delay_s": 1.0})
    token = sim.issue_tokens([v.id])["access_token"]
    with SimulatorServer(sim) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(
                f"{server.url}/v2.0/vehicles/{v.id}/battery",
                headers={"Authorization": f"Bearer {token}"},
                timeout=0.2,
            )
        # Other cars are not held up by the hanging one.
        other = sim.create_vehicle(soc=0.3, plugged=True)
        other_token = sim.issue_tokens([other.id])["access_token"]
        fast = httpx.get(
            f"{server.url}/v2.0/vehicles/{other.id}/battery",
            headers={"Authorization": f"Bearer {other_token}"},
            timeout=0.5,
        )
        assert fast.status_code == 200


def test_make_app_has_no_django_dependency():
    import subprocess
    import sys

    code = (
        "import sys; import vehicle_sim.app, vehicle_sim.server; "
        "sys.exit(1 if any(m == 'django' or m.startswith('django.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_in_process_transport_works_for_the_project_client(sim):
    v = sim.create_vehicle(soc=0.3, plugged=True)
    token = sim.issue_tokens([v.id])["access_token"]
    transport = httpx.WSGITransport(app=make_app(sim))
    with httpx.Client(transport=transport, base_url="http://sim") as c:
        assert c.get(f"/v2.0/vehicles/{v.id}/charge", headers={"Authorization": f"Bearer {token}"}).json() == {
            "isPluggedIn": True,
            "state": "NOT_CHARGING",
        }


def test_billing_and_daily_quotas_count_side_by_side(make_car, sim, clock):
    sim.billing_limit_per_month = 100
    car = make_car(profile="bmw_mini")
    for _ in range(3):
        assert car.get("battery").status_code == 200
        clock.advance(86400 / 2)
        car.renew()
    assert car.truth()["calls"]["GET /battery"] == 3


def test_a_global_charge_fault_also_blocks_a_start_on_its_way(car, client, clock):
    car.start()
    client.post("/_sim/faults", json={"charge_fault": True})
    clock.advance(10)
    assert car.truth()["charging"] is False


def test_an_unknown_injected_error_is_refused_up_front(car, client):
    response = client.post(f"/_sim/vehicles/{car.id}", json={"faults": {"inject": [{"type": "OOPS", "code": "X"}]}})
    assert response.status_code == 400
    assert client.post("/_sim/faults", json={"inject": [{"type": "UPSTREAM", "code": "NOPE"}]}).status_code == 400
    assert car.get("battery").status_code == 200


def test_an_internal_failure_still_answers_a_json_server_error(car, sim, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(sim, "vehicle_request", broken)
    assert_error(car.get("battery"), 500, "SERVER", "INTERNAL")


def test_frozen_telemetry_serves_stale_data_with_its_age(car, clock):
    car.start()
    clock.advance(10)
    car.set(faults={"freeze_telemetry": True})
    first = car.get("battery")
    clock.advance(1800)
    stale = car.get("battery")
    assert stale.json() == first.json()
    assert stale.headers["SC-Data-Age"] == first.headers["SC-Data-Age"]
    assert car.truth()["soc"] > first.json()["percentRemaining"] + 0.05
    car.set(faults={"freeze_telemetry": False})
    assert car.get("battery").json()["percentRemaining"] > first.json()["percentRemaining"]
