"""The v2.0 wire protocol: paths, headers, bodies, error shapes, batch quirks."""

import re
import uuid

import pytest

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_error(response, status, type_, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) >= {
        "type",
        "code",
        "description",
        "docURL",
        "statusCode",
        "requestId",
        "resolution",
        "suggestedUserMessage",
    }
    assert (body["type"], body["code"], body["statusCode"]) == (type_, code, status)
    assert body["requestId"] == response.headers["SC-Request-Id"]
    assert isinstance(body["resolution"], dict) and "type" in body["resolution"]
    assert body["docURL"].startswith("https://smartcar.com/docs/")
    return body


@pytest.mark.parametrize("slash", ["", "/"])
def test_it_serves_every_read_endpoint_with_and_without_trailing_slash(car, client, slash):
    h = car.headers()
    assert client.get(f"/v2.0/vehicles{slash}", headers=h).json() == {
        "vehicles": [car.id],
        "paging": {"count": 1, "offset": 0},
    }
    assert client.get(f"/v2.0/user{slash}", headers=h).json() == {"id": car.data["user_id"]}
    base = f"/v2.0/vehicles/{car.id}"
    assert client.get(f"{base}{slash}", headers=h).json() == {
        "id": car.id,
        "make": "TESLA",
        "model": "Model 3",
        "year": 2024,
    }
    assert client.get(f"{base}/vin{slash}", headers=h).json() == {"vin": car.data["vin"]}
    assert client.get(f"{base}/charge{slash}", headers=h).json() == {"isPluggedIn": True, "state": "NOT_CHARGING"}
    assert client.get(f"{base}/battery{slash}", headers=h).json() == {"percentRemaining": 0.3, "range": 135.0}
    assert client.get(f"{base}/battery/capacity{slash}", headers=h).json() == {"capacity": 75.0}
    assert client.get(f"{base}/charge/limit{slash}", headers=h).json() == {"limit": 0.8}
    nominal = client.get(f"{base}/battery/nominal_capacity{slash}", headers=h).json()
    assert nominal["capacity"] == {"nominal": 75.0, "source": "SMARTCAR"}
    assert nominal["availableCapacities"][0]["capacity"] == 75.0


def test_every_response_carries_json_content_type_and_a_request_id(car, client):
    for response in (car.get("battery"), car.start(), client.get("/v2.0/vehicles"), car.get("nope")):
        assert response.headers["Content-Type"] == "application/json"
        uuid.UUID(response.headers["SC-Request-Id"])


def test_data_responses_carry_data_age_fetched_at_and_unit_system(car):
    response = car.get("battery", headers={"SC-Unit-System": "imperial"})
    assert ISO_MS.match(response.headers["SC-Data-Age"])
    assert ISO_MS.match(response.headers["SC-Fetched-At"])
    assert response.headers["SC-Unit-System"] == "imperial"
    assert response.json()["range"] == pytest.approx(135.0 / 1.609344, abs=0.05)
    assert car.get("battery").headers["SC-Unit-System"] == "metric"


def test_commands_carry_only_the_request_id(car):
    response = car.start()
    assert "SC-Data-Age" not in response.headers
    assert response.json() == {"status": "success", "message": "Successfully sent request to vehicle"}


def test_vehicles_are_paged(make_car, client, sim):
    cars = [make_car() for _ in range(3)]
    pair = sim.issue_tokens([c.id for c in cars])
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    page = client.get("/v2.0/vehicles", params={"limit": 2, "offset": 1}, headers=h).json()
    assert page == {"vehicles": [cars[1].id, cars[2].id], "paging": {"count": 3, "offset": 1}}
    assert_error(client.get("/v2.0/vehicles", params={"limit": 51}, headers=h), 400, "VALIDATION", "PARAMETER")


def test_permissions_are_listed_with_paging(car):
    body = car.get("permissions", params={"limit": 2, "offset": 1}).json()
    assert body == {"permissions": ["read_vin", "read_battery"], "paging": {"count": 6, "offset": 1}}


@pytest.mark.parametrize("token", [None, "Bearer nope", "Basic abc"])
def test_it_rejects_missing_or_invalid_tokens(car, client, token):
    headers = {"Authorization": token} if token else {}
    body = assert_error(client.get(f"/v2.0/vehicles/{car.id}/battery", headers=headers), 401, "AUTHENTICATION", None)
    assert body["resolution"]["type"] == "REAUTHENTICATE"


def test_it_rejects_expired_tokens(car, clock):
    clock.advance(7200)
    assert_error(car.get("battery"), 401, "AUTHENTICATION", None)


def test_it_rejects_a_token_without_the_scope(make_car, sim, client):
    car = make_car()
    pair = sim.issue_tokens([car.id], scopes=["read_battery"])
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    assert client.get(f"/v2.0/vehicles/{car.id}/battery", headers=h).status_code == 200
    response = client.post(f"/v2.0/vehicles/{car.id}/charge", json={"action": "START"}, headers=h)
    assert_error(response, 403, "PERMISSION", None)


def test_it_rejects_a_vehicle_the_token_does_not_cover(make_car, client):
    first, second = make_car(), make_car()
    response = client.get(f"/v2.0/vehicles/{second.id}/battery", headers=first.headers())
    assert_error(response, 403, "PERMISSION", None)


def test_unknown_paths_and_versions_are_not_found(car, client):
    assert_error(car.get("odometer/warp"), 404, "RESOURCE_NOT_FOUND", "PATH")
    response = client.get(f"/v1.0/vehicles/{car.id}/battery", headers=car.headers())
    assert_error(response, 404, "RESOURCE_NOT_FOUND", "VERSION")


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


@pytest.mark.parametrize("action", [None, "GO", 1])
def test_it_validates_the_charge_action(car, action):
    assert_error(car.post("charge", {"action": action}), 400, "VALIDATION", "PARAMETER")


def test_invalid_json_is_a_validation_error(car, client):
    response = client.post(
        f"/v2.0/vehicles/{car.id}/charge",
        content=b"{nope",
        headers={**car.headers(), "Content-Type": "application/json"},
    )
    assert_error(response, 400, "VALIDATION", None)


@pytest.mark.parametrize("limit", [0.75, "0.75"])
def test_it_accepts_the_limit_as_number_or_numeric_string(car, clock, limit):
    assert car.post("charge/limit", {"limit": limit}).json()["status"] == "success"
    clock.advance(10)
    assert car.get("charge/limit").json() == {"limit": 0.75}


@pytest.mark.parametrize("limit", [0.49, 1.01, "abc", None, True])
def test_it_rejects_limits_outside_half_to_one(car, limit):
    assert_error(car.post("charge/limit", {"limit": limit}), 400, "VALIDATION", "PARAMETER")


def test_tesla_endpoints_need_the_lower_case_make(car, make_car):
    assert car.get("tesla/charge/wattmeter").status_code == 409
    assert_error(car.get("TESLA/charge"), 403, "PERMISSION", None)
    nissan = make_car(profile="nissan_start_only")
    assert_error(nissan.get("tesla/charge"), 501, "COMPATIBILITY", "MAKE_NOT_COMPATIBLE")


def test_the_wattmeter_reads_power_while_charging(car, clock):
    assert_error(car.get("tesla/charge/wattmeter"), 409, "VEHICLE_STATE", "NOT_CHARGING")
    car.start()
    clock.advance(20)
    assert car.get("tesla/charge/wattmeter").json() == {"wattage": 11.0}


def test_tesla_charge_has_the_documented_fields(car):
    body = car.get("tesla/charge").json()
    for name in ("amperage", "completionTime", "wattage", "voltage", "isPluggedIn", "state", "socLimit", "energyAdded"):
        assert name in body
    assert body["socLimit"] == 0.8
    assert body["energyAdded"] == 0.0


def test_batch_answers_every_sub_request_and_survives_partial_failures(car):
    response = car.post(
        "batch",
        {
            "requests": [
                {"path": "/battery"},
                {"path": "/charge/limit"},
                {"path": "/tesla/charge/wattmeter"},
                {"path": "/"},
            ]
        },
    )
    assert response.status_code == 200
    responses = response.json()["responses"]
    assert [r["code"] for r in responses] == [200, 200, 409, 200]
    for sub in responses:
        assert isinstance(sub["headers"], dict)  # the Python SDK indexes it on 200
    assert ISO_MS.match(responses[0]["headers"]["sc-data-age"])
    assert responses[0]["headers"]["sc-unit-system"] == "metric"
    assert responses[0]["body"] == {"percentRemaining": 0.3, "range": 135.0}
    assert responses[2]["body"]["code"] == "NOT_CHARGING"
    assert responses[2]["body"]["requestId"] == response.headers["SC-Request-Id"]
    assert responses[3]["body"]["make"] == "TESLA"


def test_batch_sub_errors_carry_retry_after_in_that_casing(car):
    car.set(
        faults={"inject": [{"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 30, "endpoint": "GET /charge"}]}
    )
    responses = car.post("batch", {"requests": [{"path": "/battery"}, {"path": "/charge"}]}).json()["responses"]
    assert responses[0]["code"] == 200
    assert responses[1]["code"] == 429
    assert responses[1]["headers"] == {"Retry-After": "30"}


def test_batch_only_runs_get_endpoints(car, clock):
    responses = car.post("batch", {"requests": [{"path": "/application"}]}).json()["responses"]
    assert responses[0]["code"] == 404
    assert car.get("battery").status_code == 200  # the vehicle was not disconnected


def test_batch_validates_its_body(car):
    assert_error(car.post("batch", {"requests": []}), 400, "VALIDATION", "PARAMETER")


def test_disconnect_takes_the_vehicle_away_from_the_token(car, client):
    response = client.delete(f"/v2.0/vehicles/{car.id}/application", headers=car.headers())
    assert response.json() == {"status": "success"}
    assert_error(car.get("battery"), 403, "PERMISSION", None)
    assert client.get("/v2.0/vehicles", headers=car.headers()).json()["vehicles"] == []


def test_it_counts_calls_per_vehicle_and_globally(car, client):
    car.get("battery")
    car.get("battery/")
    car.start()
    car.post("batch", {"requests": [{"path": "/charge"}]})
    counters = client.get("/_sim/counters").json()
    assert counters["vehicles"][car.id] == {"GET /battery": 2, "POST /charge": 1, "POST /batch": 1, "GET /charge": 1}
    assert counters["global"]["GET /battery"] == 2


def test_the_admin_api_is_loopback_only(sim):
    import httpx

    from vehicle_sim.app import make_app

    transport = httpx.WSGITransport(app=make_app(sim), remote_addr="10.0.0.5")
    with httpx.Client(transport=transport, base_url="http://sim.test") as remote:
        assert remote.get("/_sim/vehicles").status_code == 403


def test_a_car_that_shows_its_limit_only_when_plugged(make_car, client):
    car = make_car(plugged=False, limit_needs_plug=True)
    assert_error(car.get("charge/limit"), 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    assert_error(car.post("charge/limit", {"limit": 0.9}), 409, "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    car.set(plugged=True)
    assert car.get("charge/limit").json() == {"limit": 0.8}
