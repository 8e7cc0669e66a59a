"""Injected faults: every error type, throttles, timeouts, ignored STOPs, determinism."""

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.engine import Simulator
from vehicle_sim.errors import CODES_BY_TYPE, STATUS_BY_TYPE

from .conftest import SOC, Car, assert_error, live_reads

ALL_ERRORS = [(t, c) for t, codes in CODES_BY_TYPE.items() for c in codes]


@pytest.mark.parametrize(("type_", "code"), ALL_ERRORS)
def test_every_error_type_and_code_can_be_injected_once(car, type_, code):
    car.set(faults={"inject": [{"type": type_, "code": code}]})
    error = assert_error(car.read(), STATUS_BY_TYPE[type_], type_, code)
    assert error["detail"]
    assert car.read().status_code == 200  # one-shot


def test_an_injected_error_can_target_one_endpoint(car):
    car.set(faults={"inject": [{"type": "UPSTREAM", "code": "NO_RESPONSE", "endpoint": "POST /charge"}]})
    assert car.read().status_code == 200
    assert_error(car.start(), 502, "UPSTREAM", "NO_RESPONSE")


def test_rate_limit_vehicle_carries_retry_after(car):
    car.set(faults={"throttle_retry_after_s": 42})
    response = car.read()
    assert_error(response, 429, "RATE_LIMIT", "VEHICLE")
    assert response.headers["Retry-After"] == "42"


def test_the_per_vehicle_token_bucket_throttles(make_car, client, sim, clock):
    sim.vehicle_rate_limit = (2, 1.0)  # 2 calls, then one more per minute
    car = make_car()
    assert car.read().status_code == 200
    assert car.read().status_code == 200
    response = car.read()
    assert_error(response, 429, "RATE_LIMIT", "VEHICLE")
    assert response.headers["Retry-After"] == "60"
    clock.advance(60)
    assert car.read().status_code == 200


def test_the_app_token_bucket_answers_smartcar_api(make_car, sim, clock, client):
    car = make_car()
    sim.app_rate_limit = (120, 2.0)

    def vehicle():
        return client.get(f"/v3/vehicles/{car.id}", headers=car.headers())

    for _ in range(120):
        assert vehicle().status_code == 200
    response = vehicle()
    assert_error(response, 429, "RATE_LIMIT", "SMARTCAR_API")
    assert "Retry-After" not in response.headers
    clock.advance(30)
    assert vehicle().status_code == 200


def test_the_monthly_billing_cap_answers_430(make_car, sim):
    sim.billing_limit_per_month = 2
    car = make_car()
    car.read()
    car.read()
    assert_error(car.read(), 430, "BILLING", "VEHICLE_REQUEST_LIMIT")


@pytest.mark.parametrize(("fault", "code"), [("asleep", "ASLEEP"), ("unreachable", "UNREACHABLE")])
def test_sleep_and_unreachability_block_car_requests(car, client, fault, code):
    car.set(faults={fault: True})
    assert_error(car.read(), 409, "VEHICLE_STATE", code)
    assert_error(car.start(), 409, "VEHICLE_STATE", code)
    assert client.get(f"/v3/vehicles/{car.id}", headers=car.headers()).status_code == 200  # platform data


@pytest.mark.parametrize("code", ["CHARGE_FAULT", "UNKNOWN", "FULLY_CHARGED", "NOT_CHARGING", "ASLEEP"])
def test_command_errors_are_injectable(car, code):
    car.set(faults={"command_error": code})
    assert_error(car.start(), 409, "VEHICLE_STATE", code)
    assert car.read().status_code == 200


def test_a_charge_fault_refuses_start_and_stops_a_running_charge(car, clock):
    car.start()
    clock.advance(10)
    car.set(faults={"charge_fault": True})
    assert car.truth()["charging"] is False
    assert_error(car.start(), 409, "VEHICLE_STATE", "CHARGE_FAULT")


def test_global_faults_apply_to_every_vehicle(make_car, client):
    first, second = make_car(), make_car()
    client.post("/_sim/faults", json={"upstream_error": "KNOWN_ISSUE"})
    assert_error(first.read(), 502, "UPSTREAM", "KNOWN_ISSUE")
    assert_error(second.start(), 502, "UPSTREAM", "KNOWN_ISSUE")
    client.post("/_sim/faults", json={"upstream_error": None})
    assert first.read().status_code == 200


def test_an_ignored_stop_is_answered_with_success_and_charging_goes_on(car, clock):
    car.set(faults={"ignore_stop": True})
    car.start()
    clock.advance(10)
    assert car.stop().json()["data"]["attributes"]["status"] == {"value": "SUCCESS"}
    clock.advance(600)
    assert car.truth()["charging"] is True


def test_a_random_failure_rate_is_deterministic_under_a_seed(clock):
    def outcomes(seed):
        sim = live_reads(Simulator(clock, seed=seed))
        v = sim.create_vehicle(soc=0.3, plugged=True, faults={"failure_rate": 0.3})
        with httpx.Client(transport=httpx.WSGITransport(app=make_app(sim)), base_url="http://sim") as client:
            car = Car(client, {"id": v.id, "user_id": sim.connect([v.id])})
            return [car.read().status_code for _ in range(60)]

    first = outcomes(11)
    assert first == outcomes(11)
    assert set(first) == {200, 502}
    assert 5 < first.count(502) < 35


def test_a_response_delay_holds_the_answer(car, client):
    car.set(faults={"response_delay_s": 2.5})
    assert car.read().status_code == 200
    assert client.slept == [2.5]


def test_unknown_faults_are_refused(car, client):
    response = client.post(f"/_sim/vehicles/{car.id}", json={"faults": {"gremlins": True}})
    assert response.status_code == 400


def test_a_delayed_answer_makes_an_http_client_time_out(sim):
    from vehicle_sim.server import SimulatorServer

    hanging = sim.create_vehicle(soc=0.3, plugged=True, faults={"response_delay_s": 1.0})
    other = sim.create_vehicle(soc=0.3, plugged=True)
    with SimulatorServer(sim) as server, httpx.Client(base_url=server.url) as client:
        slow = Car(client, {"id": hanging.id, "user_id": sim.connect([hanging.id])})
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"/v3/vehicles/{slow.id}/signals", headers=slow.headers(), timeout=0.2)
        # Other cars are not held up by the hanging one.
        fast = Car(client, {"id": other.id, "user_id": sim.connect([other.id])})
        response = client.get(f"/v3/vehicles/{fast.id}/signals", headers=fast.headers(), timeout=0.5)
        assert response.status_code == 200


def test_make_app_has_no_django_dependency():
    import subprocess
    import sys

    code = (
        "import sys; import vehicle_sim.app, vehicle_sim.server; "
        "sys.exit(1 if any(m == 'django' or m.startswith('django.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_in_process_transport_works_for_the_project_client(sim):
    from vehicle_sim.app import in_process_client

    v = sim.create_vehicle(soc=0.3, plugged=True)
    with in_process_client(sim) as client:
        car = Car(client, {"id": v.id, "user_id": sim.connect([v.id])})
        signals = car.signals()
    assert signals["charge-ischargingcableconnected"]["body"] == {"value": True}
    assert signals["charge-detailedchargingstatus"]["body"] == {"value": "NOT_CHARGING"}


def test_billing_and_daily_quotas_count_side_by_side(make_car, sim, clock):
    sim.billing_limit_per_month = 100
    car = make_car(profile="bmw_mini")
    for _ in range(3):
        assert car.read().status_code == 200
        clock.advance(86400 / 2)
        car.renew()
    assert car.truth()["calls"]["GET /v3/signals"] == 3


def test_a_global_charge_fault_also_blocks_a_start_on_its_way(car, client, clock):
    car.start()
    client.post("/_sim/faults", json={"charge_fault": True})
    clock.advance(10)
    assert car.truth()["charging"] is False


def test_an_unknown_injected_error_is_refused_up_front(car, client):
    response = client.post(f"/_sim/vehicles/{car.id}", json={"faults": {"inject": [{"type": "OOPS", "code": "X"}]}})
    assert response.status_code == 400
    assert client.post("/_sim/faults", json={"inject": [{"type": "UPSTREAM", "code": "NOPE"}]}).status_code == 400
    assert car.read().status_code == 200


def test_an_internal_failure_still_answers_a_json_server_error(car, sim, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(sim, "_reported", broken)
    assert_error(car.read(), 500, "SERVER", "INTERNAL")


def test_frozen_telemetry_serves_stale_data_with_its_age(car, clock):
    car.start()
    clock.advance(10)
    car.set(faults={"freeze_telemetry": True})
    first = car.signals()[SOC]
    clock.advance(1800)
    stale = car.signals()[SOC]
    assert stale["body"] == first["body"]
    assert stale["meta"]["oemUpdatedAt"] == first["meta"]["oemUpdatedAt"]
    assert car.truth()["soc"] > first["body"]["value"] / 100 + 0.05
    car.set(faults={"freeze_telemetry": False})
    assert car.level() > first["body"]["value"] / 100
