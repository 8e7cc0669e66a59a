"""The simulator's v3 wire protocol: IAM, Connect's user_id, connections, signals, commands, errors."""

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vehicle_sim.app import make_app
from vehicle_sim.engine import Simulator

from .conftest import CLIENT_ID, CLIENT_SECRET, START

# --- IAM ------------------------------------------------------------------------------------------------


def test_the_iam_endpoint_issues_an_hour_long_app_token_for_a_form_or_json(client, sim):
    credentials = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    by_form = client.post("/oauth2/token", data=credentials)
    by_json = client.post("/oauth2/token", json=credentials)
    for response in (by_form, by_json):
        assert response.status_code == 200
        body = response.json()
        assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
        assert set(body) == {"access_token", "token_type", "expires_in"}
    assert by_form.json()["access_token"] != by_json.json()["access_token"]
    assert sim.calls["POST /oauth2/token"] == 2


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": "wrong"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
            400,
            "unsupported_grant_type",
        ),
    ],
)
def test_the_iam_endpoint_refuses_with_oauth_errors(client, form, status, error):
    response = client.post("/oauth2/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_an_app_token_dies_after_an_hour(client, clock, make_car):
    car = make_car()
    assert car.signals().status_code == 200
    clock.advance(3600)
    response = car.signals()
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert (error["status"], error["type"]) == ("401", "AUTHENTICATION")


def test_no_token_or_an_unknown_one_is_refused(client, make_car):
    car = make_car()
    assert client.get(f"/v3/vehicles/{car.id}/signals").status_code == 401
    forged = {"Authorization": "Bearer not-a-token", "sc-user-id": car.user_id}
    response = client.get(f"/v3/vehicles/{car.id}/signals", headers=forged)
    assert response.status_code == 401
    assert response.json()["errors"][0]["type"] == "AUTHENTICATION"


# --- Connect and connections ---------------------------------------------------------------------------------


def test_connect_redirects_with_the_user_id(client):
    vehicle_id = client.post("/_sim/vehicles", json={"connect": False}).json()["id"]
    form = {
        "client_id": CLIENT_ID,
        "redirect_uri": "http://127.0.0.1:8000/vehicles/connect/callback/",
        "scope": "read_battery read_charge control_charge",
        "state": "st-1",
        "action": "approve",
        "vehicle": [vehicle_id],
    }
    response = client.post("/oauth/authorize", data=form)
    assert response.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    assert query["state"] == "st-1"
    assert query["user_id"]
    assert query["code"]  # still sent (3P), never needed on v3
    truth = client.get(f"/_sim/vehicles/{vehicle_id}").json()
    assert truth["owner_user_id"] == query["user_id"]


def test_connections_list_pages_and_filters(client, app_token, make_car):
    cars = [make_car() for _ in range(3)]
    auth = {"Authorization": f"Bearer {app_token}"}
    response = client.get("/v3/connections", params={"page[size]": 2}, headers=auth)
    body = response.json()
    assert response.status_code == 200
    assert (len(body["data"]), body["meta"]["totalCount"]) == (2, 3)
    assert body["links"]["next"]
    item = body["data"][0]
    assert item["type"] == "connection"
    assert item["relationships"]["vehicle"]["data"]["id"] == cars[0].id
    assert item["relationships"]["user"]["data"]["id"] == cars[0].user_id
    assert "control_charge" in item["attributes"]["permissions"]
    assert item["id"] != cars[0].id  # a connection is a (user, vehicle) pair, not the vehicle
    page2 = client.get("/v3/connections", params={"page[size]": 2, "page[number]": 2}, headers=auth).json()
    assert len(page2["data"]) == 1 and page2["links"]["next"] is None
    mine = client.get("/v3/connections", params={"filter[userId]": cars[1].user_id}, headers=auth).json()
    assert [c["relationships"]["vehicle"]["data"]["id"] for c in mine["data"]] == [cars[1].id]
    one = client.get(f"/v3/connections/{item['id']}", headers=auth).json()["data"]
    assert one["id"] == item["id"]


def test_the_connections_of_a_state_saved_with_v2_tokens_survive_the_upgrade(clock):
    # Until v3 only, every code, access and refresh token carried the consent it came from.
    old = Simulator(clock, seed=1)
    vehicle = old.create_vehicle("generic", plugged=True)
    state = old.to_state()
    del state["grants"]
    consent = {"user_id": "user-1", "vehicle_ids": [vehicle.id], "scopes": ["read_battery"], "revoked": False}
    expires_at = START.timestamp() + 7200
    state["tokens"] = {"access": {"a": {**consent, "expires_at": expires_at}}, "refresh": {}, "codes": {}}
    again = Simulator(clock, seed=1)
    again.load_state(state)
    client = httpx.Client(transport=httpx.WSGITransport(app=make_app(again)), base_url="http://sim.test")
    token = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    ).json()["access_token"]
    [item] = client.get("/v3/connections", headers={"Authorization": f"Bearer {token}"}).json()["data"]
    assert item["relationships"]["user"]["data"]["id"] == "user-1"
    assert item["attributes"]["permissions"] == ["read_battery"]
    assert item["meta"]["createdAt"] == "2026-03-02T08:00:00.000Z"


def test_deleting_a_connection_cuts_that_user_off_and_deleting_a_user_purges_them(client, app_token, make_car, webhook):
    car = make_car()
    other = make_car()
    car.subscribe(webhook["id"])
    auth = {"Authorization": f"Bearer {app_token}"}
    [connection] = client.get("/v3/connections", params={"filter[vehicleId]": car.id}, headers=auth).json()["data"]
    assert client.delete(f"/v3/connections/{connection['id']}", headers=auth).status_code == 204
    assert car.signals().status_code == 403
    assert client.get("/v3/subscriptions", headers=auth).json()["data"] == []
    assert client.delete(f"/v3/connections/{connection['id']}", headers=auth).status_code == 404
    assert client.delete(f"/v3/users/{other.user_id}", headers=auth).status_code == 204
    assert other.signals().status_code == 403
    assert client.get("/v3/connections", headers=auth).json()["data"] == []
    assert client.delete(f"/v3/users/{other.user_id}", headers=auth).status_code == 404


def test_connection_ids_may_equal_vehicle_ids_under_the_blog_reading(client, app_token, make_car):
    car = make_car()
    client.post("/_sim/v3/config", json={"connection_ids": "vehicle"})
    auth = {"Authorization": f"Bearer {app_token}"}
    [item] = client.get("/v3/connections", headers=auth).json()["data"]
    assert item["id"] == car.id
    assert client.delete(f"/v3/connections/{car.id}", headers=auth).status_code == 204


# --- the vehicle ---------------------------------------------------------------------------------------------------


def test_the_vehicle_answer_is_wrapped_or_not(client, make_car):
    car = make_car(make="JAGUAR", model="I-PACE", year=2021)
    wrapped = client.get(f"/v3/vehicles/{car.id}", headers=car.headers(user=False)).json()
    assert wrapped["data"]["attributes"] == {
        "make": "JAGUAR",
        "model": "I-PACE",
        "year": 2021,
        "powertrainType": "BEV",
        "mode": "live",
    }
    client.post("/_sim/v3/config", json={"vehicle_wrapped": False})
    bare = client.get(f"/v3/vehicles/{car.id}", headers=car.headers(user=False)).json()
    assert bare["id"] == car.id and "powertrainType" not in bare["attributes"]
    assert client.get("/v3/vehicles/nope", headers=car.headers(user=False)).status_code == 404


# --- signals --------------------------------------------------------------------------------------------------------


def test_signals_need_sc_user_id_and_a_connected_user(client, make_car):
    car = make_car()
    missing = car.signals(user=False)
    assert missing.status_code == 400
    [error] = missing.json()["errors"]
    assert (error["type"], error["code"], error["detail"]) == ("VALIDATION", "MISSING_PARAMETER", "missing userId")
    stranger = client.get(f"/v3/vehicles/{car.id}/signals", headers={**car.headers(), "sc-user-id": "someone-else"})
    assert stranger.status_code == 403
    assert stranger.json()["errors"][0]["type"] == "PERMISSION"


def test_an_unsubscribed_car_answers_an_empty_store(make_car, sim):
    # 3P: /signals reads a store filled by webhook subscriptions; without one, data:[] (billed).
    car = make_car()
    body = car.signals().json()
    assert body["data"] == []
    assert body["meta"]["totalCount"] == 0
    assert sim.vehicles[car.id].calls["GET /v3/signals"] == 1
    assert (
        car.client.get(
            f"/v3/vehicles/{car.id}/signals/tractionbattery-stateofcharge", headers=car.headers()
        ).status_code
        == 404
    )


def test_the_live_reading_reads_the_car_without_a_subscription(client, make_car):
    car = make_car(soc=0.42)
    client.post("/_sim/v3/config", json={"unsubscribed_signals": "live"})
    signals = car.signal_map()
    soc = signals["tractionbattery-stateofcharge"]
    assert soc["attributes"]["body"] == {"value": 42, "unit": "percent"}
    assert soc["attributes"]["status"] == {"value": "SUCCESS"}
    assert soc["meta"]["oemUpdatedAt"] == int(START.timestamp() * 1000)


def test_a_subscribed_car_answers_from_the_store_in_the_json_api_shape(make_car, webhook):
    car = make_car(soc=0.5, limit=0.9)
    assert car.subscribe(webhook["id"]).status_code == 202
    body = car.signals().json()
    assert set(body) == {"data", "meta", "links", "included"}
    assert body["meta"] == {"page": 1, "pageSize": 13, "totalCount": 13}
    assert body["included"]["vehicle"]["attributes"]["make"] == "TESLA"
    signals = {item["id"]: item for item in body["data"]}
    soc = signals["tractionbattery-stateofcharge"]
    assert set(soc) == {"id", "type", "attributes", "meta", "links"}
    assert set(soc["attributes"]) == {"code", "name", "group", "status", "body"}
    assert (soc["attributes"]["name"], soc["attributes"]["group"]) == ("StateOfCharge", "TractionBattery")
    limits = signals["charge-chargelimits"]["attributes"]["body"]
    assert limits == {
        "values": [{"type": "GLOBAL", "limit": 90, "condition": None}],
        "activeLimit": 90,
        "unit": "percent",
    }
    assert signals["charge-timetocomplete"]["attributes"]["body"] == {"value": 0}  # no unit key, as real payloads


def test_reading_the_store_is_billed_but_never_polls_the_oem(client, make_car, webhook):
    # GM refuses OEM polls closer than 30 min; reads of the store are not polls.
    car = make_car(profile="gm_onstar", soc=0.6)
    car.subscribe(webhook["id"])
    assert client.post("/_sim/config", json={"billing_limit_per_month": 3}).status_code == 200
    for _ in range(3):
        assert car.signals().status_code == 200
    over = car.signals()
    assert over.status_code == 430
    assert over.json()["errors"][0]["code"] == "VEHICLE_REQUEST_LIMIT"


@pytest.mark.parametrize(
    ("make", "capable", "not_capable"),
    [
        ("TESLA", {"charge-energyadded", "charge-wattage"}, set()),
        ("JAGUAR", {"charge-energyadded"}, {"charge-wattage", "charge-voltage"}),
        ("LAND ROVER", {"charge-energyadded"}, {"charge-wattage"}),
        ("BMW", {"charge-wattage"}, {"charge-energyadded"}),
        ("MERCEDES-BENZ", {"charge-wattage"}, {"charge-energyadded"}),
        ("POLESTAR", {"charge-wattage", "charge-amperage"}, {"charge-energyadded"}),
        ("VOLKSWAGEN", {"charge-wattage"}, {"charge-energyadded", "tractionbattery-range"}),
        ("HYUNDAI", {"tractionbattery-stateofcharge"}, {"charge-energyadded", "charge-wattage"}),
    ],
)
def test_signal_availability_follows_the_make(make_car, webhook, make, capable, not_capable):
    car = make_car(make=make)
    car.subscribe(webhook["id"])
    signals = car.signal_map()
    for code in capable:
        assert signals[code]["attributes"]["status"] == {"value": "SUCCESS"}, code
    for code in not_capable:
        status = signals[code]["attributes"]["status"]
        assert status == {"value": "ERROR", "error": {"type": "COMPATIBILITY", "code": "VEHICLE_NOT_CAPABLE"}}, code
        assert "body" not in signals[code]["attributes"] and signals[code]["meta"] == {}


def test_a_car_without_a_readable_limit_is_not_capable_of_charge_limits(make_car, webhook):
    car = make_car(profile="nissan_start_only")
    car.subscribe(webhook["id"])
    status = car.signal_map()["charge-chargelimits"]["attributes"]["status"]
    assert status["error"]["code"] == "VEHICLE_NOT_CAPABLE"


def test_a_signal_outside_the_granted_scopes_is_a_permission_error(make_car, webhook):
    car = make_car(scopes=["read_battery", "control_charge"])
    car.subscribe(webhook["id"])
    signals = car.signal_map()
    assert signals["tractionbattery-stateofcharge"]["attributes"]["status"]["value"] == "SUCCESS"
    assert signals["charge-ischarging"]["attributes"]["status"]["error"]["type"] == "PERMISSION"


def test_a_make_cloud_shows_changes_late_and_smartcar_notices_later_still(clock, make_car, webhook):
    # VW: the cloud refreshes every 450 s; Smartcar sees a new value 10–60 s after that.
    car = make_car(profile="vw_group", soc=0.5, limit=1.0)
    car.subscribe(webhook["id"])
    assert car.command("start").status_code == 200
    first = car.signal_map()["tractionbattery-stateofcharge"]
    clock.advance(449)
    assert car.signal_map()["tractionbattery-stateofcharge"] == first  # the cloud has not refreshed
    clock.advance(1)  # the cloud refreshes at 450 s: not yet noticed
    assert car.signal_map()["tractionbattery-stateofcharge"] == first
    clock.advance(60)
    later = car.signal_map()["tractionbattery-stateofcharge"]
    assert later["attributes"]["body"]["value"] > first["attributes"]["body"]["value"]
    oem = later["meta"]["oemUpdatedAt"]
    assert oem == int((START.timestamp() + 450) * 1000)
    assert oem + 10_000 <= later["meta"]["retrievedAt"] <= oem + 60_000


@pytest.mark.parametrize(
    ("fmt", "expected"), [("ms", 1772438400000), ("s", 1772438400), ("iso", "2026-03-02T08:00:00.000Z")]
)
def test_timestamps_come_in_the_configured_encoding(client, make_car, webhook, fmt, expected):
    client.post("/_sim/v3/config", json={"timestamps": fmt})
    car = make_car()
    car.subscribe(webhook["id"])
    assert car.signal_map()["tractionbattery-stateofcharge"]["meta"]["oemUpdatedAt"] == expected


def test_imperial_units_on_request(make_car, webhook):
    car = make_car(soc=0.5)
    car.subscribe(webhook["id"])
    metric = car.signal_map()["tractionbattery-range"]["attributes"]["body"]
    imperial = car.client.get(f"/v3/vehicles/{car.id}/signals", headers=car.headers(**{"SC-Unit-System": "imperial"}))
    body = {i["id"]: i for i in imperial.json()["data"]}["tractionbattery-range"]["attributes"]["body"]
    assert (metric["unit"], body["unit"]) == ("km", "miles")
    assert body["value"] == pytest.approx(metric["value"] / 1.609344, abs=0.1)


def test_a_single_signal_is_not_wrapped(client, make_car, webhook):
    car = make_car()
    car.subscribe(webhook["id"])
    response = client.get(f"/v3/vehicles/{car.id}/signals/charge-ischarging", headers=car.headers())
    assert response.status_code == 200
    assert response.json()["id"] == "charge-ischarging" and "data" not in response.json()
    assert client.get(f"/v3/vehicles/{car.id}/signals/nonsense", headers=car.headers()).status_code == 404


# --- commands --------------------------------------------------------------------------------------------------------


def test_a_command_within_the_sync_limit_answers_200_done_when_it_completes(clock, make_car, webhook):
    car = make_car(soc=0.3)
    car.subscribe(webhook["id"])
    response = car.command("start")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["type"] == "command-execution"
    assert data["attributes"]["commandType"] == "charge-start"
    assert data["attributes"]["status"] == {"value": "SUCCESS"}
    assert data["attributes"]["executionMode"] == "sync"
    assert data["meta"]["durationInSeconds"] == 10
    assert (data["meta"]["executedAt"], data["meta"]["completedAt"]) == (
        "2026-03-02T08:00:00.000Z",
        "2026-03-02T08:00:10.000Z",
    )
    # On a virtual clock the answer comes at once: the car acts at completedAt.
    assert car.truth()["charging"] is False
    clock.advance(10)
    assert car.truth()["charging"] is True
    assert car.signal_map()["charge-ischarging"]["attributes"]["body"] == {"value": True}


def test_a_command_slower_than_the_sync_limit_answers_202_still_running(client, clock, make_car):
    car = make_car(soc=0.3)
    client.post("/_sim/config", json={"command_latency_s": [200, 200]})
    response = car.command("start")
    assert response.status_code == 202
    data = response.json()["data"]
    assert data["attributes"]["status"] == {"value": "PENDING"}
    assert data["attributes"]["executionMode"] == "async"
    clock.advance(200)
    assert car.truth()["charging"] is True


def test_set_limit_takes_a_whole_percent(make_car, clock):
    car = make_car(soc=0.3, limit=0.8)
    response = car.command("set-limit", {"data": {"attributes": {"percent": 65}}})
    assert response.status_code == 200
    assert response.json()["data"]["attributes"]["parameters"] == {"percent": 65}
    clock.advance(10)
    assert car.truth()["limit"] == pytest.approx(0.65)
    for bad in (49, 101, 0.7, "80", None):
        refused = car.command("set-limit", {"data": {"attributes": {"percent": bad}}})
        assert refused.status_code == 400, bad
        assert refused.json()["errors"][0]["type"] == "VALIDATION"
    for shapeless in ({"data": []}, {"data": {"attributes": 80}}, [80], None):
        assert car.command("set-limit", shapeless).status_code == 400, shapeless


def test_command_refusals_are_v3_error_bodies(make_car):
    car = make_car(plugged=False)
    response = car.command("start")
    assert response.status_code == 409
    [error] = response.json()["errors"]
    assert set(error) == {"status", "type", "code", "title", "detail", "links", "resolution", "suggestedUserMessage"}
    assert (error["status"], error["type"], error["code"]) == ("409", "VEHICLE_STATE", "CHARGING_PLUG_NOT_CONNECTED")
    assert error["links"]["about"].startswith("https://smartcar.com/docs/errors/api-errors/vehicle-state-errors")
    assert car.command("start", user=False).status_code == 400  # sc-user-id required on commands too


def test_a_vehicle_throttle_carries_retry_after(make_car):
    car = make_car()
    car.set(faults={"throttle_retry_after_s": 90})
    response = car.command("start")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "90"
    assert response.json()["errors"][0]["code"] == "VEHICLE"


def test_make_rules_still_apply_on_v3(make_car):
    nissan = make_car(profile="nissan_start_only")
    assert nissan.command("stop").json()["errors"][0]["code"] == "VEHICLE_NOT_CAPABLE"
    gm = make_car(profile="gm_onstar", soc=0.3)
    assert gm.command("start").json()["errors"][0]["code"] == "LOW_BATTERY"


def test_the_app_rate_limit_is_a_v3_error(client, make_car):
    car = make_car()
    client.post("/_sim/config", json={"app_rate_limit": [1, 0]})
    assert car.signals().status_code == 200
    limited = car.signals()
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == "SMARTCAR_API"


def test_an_unknown_path_is_a_path_error(client, app_token):
    response = client.get("/v3/nothing/here", headers={"Authorization": f"Bearer {app_token}"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "PATH"


def test_over_a_real_clock_the_200_is_held_until_the_command_completed():
    # 20 s of latency on a clock running 10× faster than the wall: the answer waits 2 real seconds
    # (recorded here, not slept), so "200 = done" holds for a client on that clock.
    import httpx

    from vehicle_sim.app import make_app
    from vehicle_sim.clock import RealClock
    from vehicle_sim.engine import Simulator

    sim = Simulator(RealClock(speed=10), seed=3, command_latency_s=(20, 20))
    slept = []
    with httpx.Client(transport=httpx.WSGITransport(app=make_app(sim, sleep=slept.append)), base_url="http://sim") as c:
        vehicle_id = c.post("/_sim/vehicles", json={"soc": 0.3, "plugged": True, "connect": False}).json()["id"]
        user_id = c.post("/_sim/v3/connections", json={"vehicle_id": vehicle_id}).json()["user_id"]
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        token = c.post("/oauth2/token", data=form).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "sc-user-id": user_id}
        response = c.post(f"/v3/vehicles/{vehicle_id}/commands/charge/start", headers=headers)
    assert response.status_code == 200
    assert slept == [pytest.approx(2.0)]


# --- the pack heater's state (`tractionbattery-isheateractive`): off unless the world turns it on ---------


HEATER = "tractionbattery-isheateractive"


def cold(sim, car, heat_until_s=1800):
    """A cold pack: the world heats it first (1.5 kW for `heat_until_s` charging seconds)."""
    v = sim.vehicles[car.id]
    v.heater_w, v.heat_until_s = 1500.0, float(heat_until_s)
    return car


def test_only_with_the_heater_signal_a_wattage_car_reports_its_heater_as_the_physics_runs_it(
    clock, sim, make_car, webhook
):
    car = cold(sim, make_car(make="BMW", soc=0.3, limit=1.0))
    no_wattage = cold(sim, make_car(make="JAGUAR", soc=0.3, limit=1.0))
    for c in (car, no_wattage):
        c.subscribe(webhook["id"])
    # No make reports it by default, nor lists it as not capable: the answer is as before.
    assert HEATER not in car.signal_map()
    sim.world = replace(sim.world, heater_signal=True)

    def heater(c):
        item = c.signal_map()[HEATER]
        return item["attributes"].get("body"), item["attributes"]["status"]

    assert heater(car) == ({"value": False}, {"value": "SUCCESS"})  # plugged in, not charging
    assert HEATER not in no_wattage.signal_map()
    assert car.command("start").status_code == 200
    clock.advance(60)  # the START took effect at 10 s: 50 charging seconds, the pack heats
    assert heater(car)[0] == {"value": True}
    assert sim.vehicle(car.id).charging_s < 1800
    clock.advance(1800)  # past 1800 charging seconds: the pack is warm
    assert sim.vehicle(car.id).charging_s > 1800
    assert heater(car)[0] == {"value": False}


def test_a_warm_pack_reports_no_heater_while_charging(clock, sim, make_car, webhook):
    sim.world = replace(sim.world, heater_signal=True)
    car = make_car(make="BMW", soc=0.3, limit=1.0)
    car.subscribe(webhook["id"])
    assert car.command("start").status_code == 200
    clock.advance(60)
    assert sim.vehicle(car.id).charging
    assert car.signal_map()[HEATER]["attributes"]["body"] == {"value": False}
