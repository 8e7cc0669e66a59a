"""The management API (webhooks, subscriptions) and webhook v4.0 deliveries of the simulator."""

import itertools
import json
from dataclasses import replace

import httpx
import pytest

from sessions.vehicle_api.webhooks_v3 import VehicleError, VehicleState, Verify, parse_delivery
from vehicle_sim import v3_webhooks
from vehicle_sim.server import load_state, save_state
from vehicle_sim.v3 import platform
from vehicle_sim.v3_webhooks import hash_challenge, sign

AMT = "sim-application-management-token"


class Receiver:
    """The product's side of the webhook, as an httpx transport: records deliveries, answers
    VERIFY with the HMAC (or not) and everything else with `status`."""

    def __init__(self, status=200, answer_verify=True):
        self.status = status
        self.answer_verify = answer_verify
        self.deliveries: list[tuple[str, dict, bytes]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.deliveries.append((str(request.url), dict(request.headers), request.content))
        event = json.loads(request.content)
        if event.get("eventType") == "VERIFY":
            challenge = event["data"]["challenge"]
            answer = hash_challenge(AMT, challenge) if self.answer_verify else "nope"
            return httpx.Response(200, json={"challenge": answer})
        return httpx.Response(self.status)

    def events(self, event_type=None):
        out = [json.loads(body) for _url, _headers, body in self.deliveries]
        return [e for e in out if event_type is None or e["eventType"] == event_type]


@pytest.fixture
def receiver():
    return Receiver()


@pytest.fixture
def deliver(sim, receiver):
    http = httpx.Client(transport=httpx.MockTransport(receiver))

    def run():
        return v3_webhooks.deliver_due(sim, client=http)

    yield run
    http.close()


@pytest.fixture
def quiet_traits(client):
    """Deterministic delivery for a car: no loss, no duplicates, no jitter."""

    def apply(car, **extra):
        traits = {"loss_rate": 0, "duplicate_rate": 0, "jitter_s": 0, **extra}
        assert client.post(f"/_sim/v3/vehicles/{car.id}/traits", json=traits).status_code == 200

    return apply


def auth(token):
    return {"Authorization": f"Bearer {token}"}


# --- the management API ---------------------------------------------------------------------------


def test_webhooks_are_read_through_the_management_api(client, app_token, webhook):
    listed = client.get("/v3/webhooks", headers=auth(app_token)).json()
    assert [h["id"] for h in listed["data"]] == [webhook["id"]]
    one = client.get(f"/v3/webhooks/{webhook['id']}", headers=auth(app_token)).json()["data"]
    assert one["type"] == "webhook"
    assert one["attributes"]["callbackUri"] == "http://127.0.0.1:9/hook"
    assert {"group": "Charge", "name": "IsCharging", "code": "charge-ischarging"} in one["attributes"]["triggers"]
    assert client.get("/v3/webhooks/nope", headers=auth(app_token)).status_code == 404


def test_subscriptions_create_list_get_delete_on_the_spec_routes(client, app_token, make_car, webhook):
    car = make_car()
    created = car.subscribe(webhook["id"])
    assert (created.status_code, created.json()) == (202, {"meta": {"message": "subscription creation in progress"}})
    again = car.subscribe(webhook["id"])
    assert again.status_code == 409
    listed = client.get("/v3/subscriptions", params={"filter[vehicleId]": car.id}, headers=auth(app_token)).json()
    [item] = listed["data"]
    assert item["type"] == "subscription"
    assert item["relationships"]["user"]["data"]["id"] == car.user_id
    assert item["attributes"]["vehicle"]["make"] == "TESLA"
    assert client.get(f"/v3/subscriptions/{item['id']}", headers=auth(app_token)).json()["data"]["id"] == item["id"]
    assert client.delete(f"/v3/subscriptions/{item['id']}", headers=auth(app_token)).status_code == 204
    assert client.delete(f"/v3/subscriptions/{item['id']}", headers=auth(app_token)).status_code == 404
    # The blog's routes do not exist under the spec reading.
    blog = client.get(f"/v3/webhooks/{webhook['id']}/subscriptions", headers=auth(app_token))
    assert (blog.status_code, blog.json()["errors"][0]["code"]) == (404, "PATH")


def test_subscriptions_on_the_blog_routes(client, app_token, make_car, webhook):
    client.post("/_sim/v3/config", json={"subscription_routes": "blog"})
    car = make_car()
    base = f"/v3/webhooks/{webhook['id']}/subscriptions"
    assert car.subscribe(webhook["id"]).json()["errors"][0]["code"] == "PATH"
    body = {"data": {"attributes": {"userId": car.user_id, "vehicleId": car.id}}}
    assert client.post(base, json=body, headers=auth(app_token)).status_code == 202
    [item] = client.get(base, headers=auth(app_token)).json()["data"]
    assert client.delete(f"{base}/{item['id']}", headers=auth(app_token)).status_code == 204


@pytest.mark.parametrize(
    ("attributes", "status"),
    [
        ({"webhookId": "nope"}, 404),
        ({}, 400),
        ({"userId": "someone"}, 404),
    ],
)
def test_a_bad_subscription_is_refused(client, app_token, make_car, webhook, attributes, status):
    car = make_car()
    full = {"webhookId": webhook["id"], "userId": car.user_id, "vehicleId": car.id}
    payload = {"data": {"attributes": {**full, **attributes}}} if attributes else {"data": {}}
    assert client.post("/v3/subscriptions", json=payload, headers=auth(app_token)).status_code == status


# --- VERIFY ---------------------------------------------------------------------------------------


def test_verify_is_sent_unsigned_and_turns_the_webhook_on(client, sim, receiver, make_car, quiet_traits):
    hook = client.post("/_sim/v3/webhooks", json={"callbackUri": "https://charge.example/hook"}).json()
    car = make_car()
    quiet_traits(car)
    car.subscribe(hook["id"])
    assert platform(sim).outbox == []  # nothing flows before VERIFY
    http = httpx.Client(transport=httpx.MockTransport(receiver))
    assert v3_webhooks.send_verify(sim, hook["id"], client=http) is True
    [(url, headers, body)] = receiver.deliveries
    assert url == "https://charge.example/hook"
    assert "sc-signature" not in headers
    delivery = parse_delivery(body, None, [AMT])
    assert isinstance(delivery, Verify) and not delivery.signed
    assert platform(sim).webhooks[hook["id"]]["verified"] is True


def test_a_wrong_answer_leaves_the_webhook_off_and_signing_verify_is_a_setting(client, sim):
    hook = client.post("/_sim/v3/webhooks", json={"callbackUri": "https://charge.example/hook"}).json()
    wrong = Receiver(answer_verify=False)
    http = httpx.Client(transport=httpx.MockTransport(wrong))
    assert v3_webhooks.send_verify(sim, hook["id"], client=http) is False
    assert platform(sim).webhooks[hook["id"]]["verified"] is False
    client.post("/_sim/v3/config", json={"sign_verify": True})
    right = Receiver()
    assert v3_webhooks.send_verify(sim, hook["id"], client=httpx.Client(transport=httpx.MockTransport(right))) is True
    [(_url, headers, body)] = right.deliveries
    assert headers["sc-signature"] == sign(AMT, body)


# --- VEHICLE_STATE --------------------------------------------------------------------------------


def test_subscribing_sends_a_first_delivery_and_names_what_the_make_cannot_report(
    clock, make_car, webhook, receiver, deliver, quiet_traits
):
    car = make_car(make="JAGUAR", model="I-PACE", soc=0.54)
    quiet_traits(car)
    car.subscribe(webhook["id"])
    assert deliver() == 2
    [state] = receiver.events("VEHICLE_STATE")
    assert state["triggers"] == [{"type": "FIRST_DELIVERY"}]
    codes = [s["code"] for s in state["data"]["signals"]]
    assert "charge-energyadded" in codes and "charge-wattage" not in codes  # only what the make has
    assert state["meta"]["signalCount"] == len(codes)
    assert state["data"]["user"]["id"] == car.user_id
    assert state["data"]["vehicle"] == {"id": car.id, "make": "JAGUAR", "model": "I-PACE", "year": 2024}
    [error_event] = receiver.events("VEHICLE_ERROR")
    [error] = error_event["data"]["errors"]
    assert (error["type"], error["code"], error["state"]) == ("COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "ERROR")
    assert {s["code"] for s in error["signals"]} == {
        "charge-wattage",
        "charge-voltage",
        "charge-amperage",
        "charge-chargerate",
    }


def test_a_change_in_a_trigger_signal_sends_a_signed_vehicle_state(
    clock, make_car, webhook, receiver, deliver, quiet_traits
):
    car = make_car(soc=0.3)  # generic: live data
    quiet_traits(car)
    car.subscribe(webhook["id"])
    deliver()
    receiver.deliveries.clear()
    car.command("start")
    clock.advance(9)
    assert deliver() == 0  # the car acts 10 s after the command
    clock.advance(1)
    assert deliver() == 1  # a live car's change is noticed and sent at once
    [(_url, headers, body)] = receiver.deliveries
    assert headers["sc-signature"] == sign(AMT, body)
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("Smartcar/")
    delivery = parse_delivery(body, headers["sc-signature"], [AMT])
    assert isinstance(delivery, VehicleState)
    triggered = {t.code for t in delivery.triggers}
    assert {"charge-ischarging", "charge-detailedchargingstatus"} <= triggered
    assert delivery.signals.is_charging is True
    assert delivery.signals.power_w == 11000
    assert delivery.envelope.version == "4.0"
    # Integral numbers are printed without ".0": the Node SDK re-serialises before hashing.
    assert json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False).encode() == body


def test_the_event_is_as_late_as_the_make_data(clock, make_car, webhook, receiver, deliver, quiet_traits):
    car = make_car(profile="vw_group", soc=0.5, limit=1.0)
    quiet_traits(car, detection_delay_s=[30, 30])
    car.subscribe(webhook["id"])
    deliver()
    receiver.deliveries.clear()
    car.command("start")
    clock.advance(449)
    assert deliver() == 0  # the VW cloud refreshes every 450 s
    clock.advance(30)
    assert deliver() == 0  # refreshed at 450 s, noticed 30 s later
    clock.advance(1)
    assert deliver() == 1
    [event] = receiver.events("VEHICLE_STATE")
    soc = next(s for s in event["data"]["signals"] if s["code"] == "tractionbattery-stateofcharge")
    assert soc["meta"]["oemUpdatedAt"] == soc["meta"]["retrievedAt"] - 30_000


def test_a_failed_delivery_is_retried_three_times_then_dropped(clock, sim, make_car, webhook, quiet_traits):
    failing = Receiver(status=500)
    http = httpx.Client(transport=httpx.MockTransport(failing))
    car = make_car()
    quiet_traits(car)
    car.subscribe(webhook["id"])
    attempts = [v3_webhooks.deliver_due(sim, client=http)]
    for wait in (25, 50, 100, 500):
        clock.advance(wait - 1)
        attempts.append(v3_webhooks.deliver_due(sim, client=http))
        clock.advance(1)
        attempts.append(v3_webhooks.deliver_due(sim, client=http))
    assert attempts == [1, 0, 1, 0, 1, 0, 1, 0, 0]
    bodies = [json.loads(body) for _u, _h, body in failing.deliveries]
    assert len({b["eventId"] for b in bodies}) == 1  # the same event…
    assert len({b["meta"]["deliveryId"] for b in bodies}) == 4  # …a new delivery id each attempt


def test_duplicates_and_losses_follow_the_make_knobs(clock, sim, make_car, webhook, receiver, deliver, quiet_traits):
    twice = make_car()
    quiet_traits(twice, duplicate_rate=1)
    twice.subscribe(webhook["id"])
    lost = make_car()
    quiet_traits(lost, loss_rate=1)
    lost.subscribe(webhook["id"])
    clock.advance(60)
    deliver()
    events = receiver.events("VEHICLE_STATE")
    assert [e["data"]["vehicle"]["id"] for e in events] == [twice.id, twice.id]
    assert events[0]["eventId"] == events[1]["eventId"]
    assert events[0]["meta"]["deliveryId"] != events[1]["meta"]["deliveryId"]
    assert any(entry["status"] == "lost upstream" for entry in platform(sim).log)


def test_jitter_lets_a_later_event_overtake_an_earlier_one(clock, make_car, webhook, receiver, deliver, quiet_traits):
    car = make_car(soc=0.2, limit=1.0)
    quiet_traits(car, jitter_s=900)
    car.subscribe(webhook["id"])
    car.command("start")
    for _ in range(30):
        clock.advance(120)  # 11 kW: a new percent every ~4 min on 75 kWh
        deliver()
    clock.advance(1000)
    deliver()
    socs = [
        next(s["body"]["value"] for s in e["data"]["signals"] if s["code"] == "tractionbattery-stateofcharge")
        for e in receiver.events("VEHICLE_STATE")
    ]
    assert len(socs) > 10
    assert socs != sorted(socs)  # received out of order; oemUpdatedAt puts them back in order


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (
            "signal_object",
            {
                "type": "SIGNAL_UPDATED",
                "signal": {"name": "IsCharging", "code": "charge-ischarging", "group": "Charge"},
            },
        ),
        ("code_object", {"code": "charge-ischarging", "name": "IsCharging", "group": "Charge"}),
        ("signal_string", {"signal": "Charge.IsCharging"}),
    ],
)
def test_the_trigger_shape_is_a_setting_and_the_client_reads_each(
    client, clock, make_car, webhook, receiver, deliver, quiet_traits, shape, expected
):
    client.post("/_sim/v3/config", json={"trigger_shape": shape})
    car = make_car()
    quiet_traits(car)
    car.subscribe(webhook["id"])
    deliver()
    receiver.deliveries.clear()
    car.command("start")
    clock.advance(11)
    deliver()
    [(_url, headers, body)] = receiver.deliveries
    assert expected in json.loads(body)["triggers"]
    parsed = parse_delivery(body, headers["sc-signature"], [AMT])
    assert "charge-ischarging" in {t.code for t in parsed.triggers}


# --- VEHICLE_ERROR --------------------------------------------------------------------------------


@pytest.mark.parametrize("as_strings", [False, True])
def test_a_sleeping_car_sends_vehicle_error_then_resolved(
    client, clock, make_car, receiver, deliver, quiet_traits, as_strings
):
    client.post("/_sim/v3/config", json={"error_signals_as_strings": as_strings})
    hook = client.post(
        "/_sim/v3/webhooks",
        json={
            "callbackUri": "https://charge.example/data",
            "errorCallbackUri": "https://charge.example/errors",
            "verified": True,
        },
    ).json()
    car = make_car()
    quiet_traits(car)
    car.subscribe(hook["id"])
    deliver()
    receiver.deliveries.clear()
    car.set(faults={"asleep": True})
    deliver()
    car.set(faults={"asleep": False})
    deliver()
    states = []
    for url, headers, body in receiver.deliveries:
        assert url == "https://charge.example/errors"  # VEHICLE_ERROR goes to the error URI when set
        delivery = parse_delivery(body, headers["sc-signature"], [AMT])
        assert isinstance(delivery, VehicleError)
        [error] = delivery.errors
        assert (error.type, error.code) == ("VEHICLE_STATE", "ASLEEP")
        assert "tractionbattery-stateofcharge" in error.signal_codes
        states.append(error.state)
    assert states == ["ERROR", "RESOLVED"]


# --- admin and persistence ------------------------------------------------------------------------


def test_traits_are_validated(client, make_car):
    car = make_car()
    assert client.post(f"/_sim/v3/vehicles/{car.id}/traits", json={"loss_rate": 2}).status_code == 400
    assert client.post(f"/_sim/v3/vehicles/{car.id}/traits", json={"signals": ["nope"]}).status_code == 400
    assert client.post(f"/_sim/v3/vehicles/{car.id}/traits", json={"bogus": 1}).status_code == 400
    traits = client.get(f"/_sim/v3/vehicles/{car.id}/traits").json()
    assert "charge-energyadded" in traits["signals"]
    assert client.post("/_sim/v3/config", json={"timestamps": "minutes"}).status_code == 400


def test_the_v3_state_survives_a_restart(tmp_path, sim, client, app_token, make_car, webhook):
    car = make_car()
    car.subscribe(webhook["id"])
    client.post("/_sim/v3/config", json={"timestamps": "iso"})
    path = tmp_path / "sim.json"
    save_state(sim, path)
    from vehicle_sim.app import make_app
    from vehicle_sim.clock import VirtualClock
    from vehicle_sim.engine import Simulator

    restored = Simulator(VirtualClock(sim.clock.now()), seed=11)
    assert load_state(restored, path)
    with httpx.Client(transport=httpx.WSGITransport(app=make_app(restored)), base_url="http://sim.test") as again:
        response = again.get(f"/v3/vehicles/{car.id}/signals", headers=car.headers())
        assert response.status_code == 200  # the app token, the connection and the subscription
        assert response.json()["data"][0]["meta"]["oemUpdatedAt"].endswith("Z")


def _paced_run(world: str, make: str, minutes: int = 40):
    """A live-profile car of `make` charging for `minutes`, subscribed, deliveries every 10 s:
    the data times (oemUpdatedAt, s) of the VEHICLE_STATEs received."""
    from vehicle_sim.clock import VirtualClock
    from vehicle_sim.engine import Simulator

    from .conftest import START

    clock = VirtualClock(START)
    sim = Simulator(clock, seed=5, world=world, command_latency_s=(10, 10))
    v3 = platform(sim)
    car = sim.create_vehicle("generic", make=make, soc=0.2, limit=1.0, plugged=True)
    user = v3.connect(car.id)["user_id"]
    hook = v3.create_webhook("http://receiver.test/hook", verified=True)
    v3.set_traits(car.id, {"loss_rate": 0, "duplicate_rate": 0, "jitter_s": 0})
    v3.subscribe(hook["id"], user, car.id)
    receiver = Receiver()
    http = httpx.Client(transport=httpx.MockTransport(receiver))
    with sim.lock:
        v3.command(user, car.id, "start", None)
    for _ in range(minutes * 6):
        clock.advance(10)
        v3_webhooks.deliver_due(sim, client=http)
    http.close()
    times = []
    for event in receiver.events("VEHICLE_STATE"):
        soc = next(s for s in event["data"]["signals"] if s["code"] == "tractionbattery-stateofcharge")
        times.append(soc["meta"]["oemUpdatedAt"] / 1000)
    return times, v3.traits_of(sim.vehicles[car.id])


def test_a_live_car_is_as_late_as_its_makes_cloud_in_the_realistic_world():
    times, traits = _paced_run("realistic", "BMW")
    low, high = traits.data_refresh_s
    assert (low, high) == (300, 600)  # makes.md §1: BMW 5–10 min
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 3 and all(gap >= low for gap in gaps), gaps
    assert all(gap <= high + 10 for gap in gaps), gaps  # the cloud refreshes when due (10 s cadence)


def test_a_streaming_make_and_the_ideal_world_stay_live():
    # BMW without its cloud's pacing: a VEHICLE_STATE per new percent (~4.5 min at 11 kW), sooner
    # than its 5-minute refresh would allow; Tesla streams its energy counter every few seconds.
    ideal, _ = _paced_run("ideal", "BMW", minutes=15)
    streaming, traits = _paced_run("realistic", "TESLA", minutes=10)
    assert traits.data_refresh_s is None
    for times, most in ((ideal, 299), (streaming, 60)):
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 3 and max(gaps) <= most, gaps


def test_the_make_refresh_is_a_validated_knob(client, make_car):
    car = make_car()
    ok = client.post(f"/_sim/v3/vehicles/{car.id}/traits", json={"data_refresh_s": [60, 120]})
    assert ok.status_code == 200 and ok.json()["data_refresh_s"] == [60.0, 120.0]
    bad = client.post(f"/_sim/v3/vehicles/{car.id}/traits", json={"data_refresh_s": [120, 60]})
    assert bad.status_code == 400


def test_sign_is_hex_hmac_sha256_of_the_raw_body():
    import hashlib
    import hmac

    body = b'{"a":1}'
    assert sign("key", body) == hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert len(sign("key", body)) == 64


def test_with_the_heater_signal_a_vehicle_state_carries_the_heater_state(
    clock, sim, make_car, webhook, receiver, deliver, quiet_traits
):
    sim.world = replace(sim.world, heater_signal=True)
    car = make_car(make="BMW", soc=0.3)  # generic physics: live data
    v = sim.vehicles[car.id]
    v.heater_w, v.heat_until_s = 1500.0, 600.0  # a cold pack, heated for its first 10 minutes
    quiet_traits(car)
    car.subscribe(webhook["id"])
    deliver()
    receiver.deliveries.clear()
    car.command("start")
    clock.advance(10)
    assert deliver() == 1
    [(_url, headers, body)] = receiver.deliveries
    delivery = parse_delivery(body, headers["sc-signature"], [AMT])
    assert (delivery.signals.is_charging, delivery.signals.heater_active) == (True, True)
