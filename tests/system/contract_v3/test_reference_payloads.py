"""Contract: the reference's example payloads (docs/reference/vehicle-api-v3.md) against our
client's parsers, and our simulator's answers against the reference's shapes.

Shape = every key path of the reference example with the JSON type of its value (null in the
reference matches anything). The simulator may send more keys, never fewer or other types."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from sessions.vehicle_api import errors
from sessions.vehicle_api.signals import Capability, SignalSet
from sessions.vehicle_api.v3_wire import Reply, V3Protocol, error_from_reply, parse_command
from sessions.vehicle_api.webhooks_v3 import VehicleError, VehicleState, Verify, parse_delivery, signature
from vehicle_sim import v3_webhooks
from vehicle_sim.v3 import platform

from .conftest import AMT

REFERENCE = json.loads(
    (Path(__file__).parents[2] / "sessions" / "vehicle_api" / "v3" / "fixtures" / "reference.json").read_text()
)


def json_type(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape(obj, prefix="") -> dict[str, str | None]:
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out[prefix + key] = json_type(value)
            out.update(shape(value, f"{prefix}{key}."))
    elif isinstance(obj, list) and obj:
        out.update(shape(obj[0], f"{prefix}[]."))
    return out


def assert_has_shape(answer, example):
    got, want = shape(answer), shape(example)
    missing = sorted(path for path in want if path not in got)
    assert missing == [], f"missing in the simulator's answer: {missing}"
    wrong = {p: (got[p], t) for p, t in want.items() if t is not None and got[p] is not None and got[p] != t}
    assert wrong == {}, f"other JSON types than the reference: {wrong}"


def reply(status, body, headers=None) -> Reply:
    return Reply(status=status, headers=headers or {"Content-Type": "application/json"}, body=body)


# --- the reference through our parsers ------------------------------------------------------------------------


def test_the_token_example_parses():
    plan = V3Protocol(client_id="client_x", client_secret="s").app_token(datetime(2026, 1, 1, tzinfo=UTC))
    next(plan)
    with pytest.raises(StopIteration) as done:
        plan.send(reply(200, REFERENCE["token"]["body"]))
    token = done.value.value
    assert (token.access_token, token.expires_in_s, token.token_type) == ("<string>", 3600, "Bearer")


@pytest.mark.parametrize("name", ["invalid_request", "invalid_client"])
def test_the_token_error_examples_are_oauth_errors(name):
    example = REFERENCE["token_errors"][name]
    error = error_from_reply(reply(example["status"], example["body"]))
    assert isinstance(error, errors.OAuthError)
    assert (error.error, error.retryable) == (name, False)


def test_the_signals_example_parses():
    body = REFERENCE["signals"]["body"]
    signals = SignalSet.from_items(body["data"], body["included"]["vehicle"])
    assert signals["charge-voltage"].value == 85
    assert signals.capabilities()["tractionbattery-range"] == Capability.NOT_CAPABLE


def test_the_command_example_parses():
    result = parse_command(reply(200, REFERENCE["command"]["body"]))
    assert (result.done, result.command_type, result.parameters) == (True, "charge-set-limit", {"percent": 80})
    assert result.duration_s == Decimal(2)


@pytest.mark.parametrize(
    ("name", "cls"), [("error_upstream", errors.UpstreamError), ("error_generic_401", errors.AuthenticationError)]
)
def test_the_error_examples_map_to_typed_errors(name, cls):
    example = REFERENCE[name]
    assert isinstance(error_from_reply(reply(example["status"], example["body"])), cls)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("webhook_vehicle_state", VehicleState), ("webhook_vehicle_error", VehicleError), ("webhook_verify", Verify)],
)
def test_the_webhook_examples_parse_when_signed(name, kind):
    body = json.dumps(REFERENCE[name]).encode()
    assert isinstance(parse_delivery(body, signature(AMT, body), [AMT]), kind)


# --- our simulator against the reference's shapes ---------------------------------------------------------------


@pytest.fixture
def env(wsgi_env):
    return wsgi_env


def app_headers(env, user_id=None):
    token = env.admin.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": env.sim.grants.client_id,
            "client_secret": env.sim.grants.client_secret,
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    if user_id:
        headers["sc-user-id"] = user_id
    return headers


def test_the_simulator_token_answer_has_the_reference_shape(env):
    credentials = {
        "grant_type": "client_credentials",
        "client_id": env.sim.grants.client_id,
        "client_secret": env.sim.grants.client_secret,
    }
    response = env.admin.post("/oauth2/token", data=credentials)
    assert response.status_code == REFERENCE["token"]["status"]
    assert_has_shape(response.json(), REFERENCE["token"]["body"])
    for name, example in REFERENCE["token_errors"].items():
        bad = {"client_id": "x"} if name == "invalid_request" else {**credentials, "client_secret": "wrong"}
        refused = env.admin.post("/oauth2/token", data=bad)
        assert (refused.status_code, refused.json()["error"]) == (example["status"], name)
        assert_has_shape(refused.json(), example["body"])


def test_the_simulator_signals_have_the_reference_shape(env):
    vehicle_id, user_id = env.car(make="JAGUAR", model="I-PACE")  # Range-capable, Wattage not
    headers = app_headers(env, user_id)
    webhook_id = env.webhook()
    body = {"data": {"attributes": {"webhookId": webhook_id, "userId": user_id, "vehicleId": vehicle_id}}}
    assert env.admin.post("/v3/subscriptions", json=body, headers=headers).status_code == 202
    answer = env.admin.get(f"/v3/vehicles/{vehicle_id}/signals", headers=headers).json()
    example = REFERENCE["signals"]["body"]
    success = next(i for i in answer["data"] if i["id"] == "charge-energyadded")
    failure = next(i for i in answer["data"] if i["id"] == "charge-wattage")
    assert_has_shape(success, example["data"][0])
    assert_has_shape(failure, example["data"][1])
    assert failure["attributes"]["status"] == example["data"][1]["attributes"]["status"]
    assert_has_shape(
        {k: v for k, v in answer.items() if k != "data"}, {k: v for k, v in example.items() if k != "data"}
    )
    single = env.admin.get(f"/v3/vehicles/{vehicle_id}/signals/charge-energyadded", headers=headers).json()
    assert_has_shape(single, example["data"][0])  # one signal, not wrapped


def test_the_simulator_command_and_errors_have_the_reference_shape(env):
    vehicle_id, user_id = env.car()
    headers = app_headers(env, user_id)
    url = f"/v3/vehicles/{vehicle_id}/commands/charge/set-limit"
    done = env.admin.post(url, json={"data": {"attributes": {"percent": 80}}}, headers=headers)
    assert done.status_code == REFERENCE["command"]["status"]
    assert_has_shape(done.json(), REFERENCE["command"]["body"])
    assert done.json()["data"]["attributes"]["commandType"] == "charge-set-limit"
    env.admin.post(f"/_sim/vehicles/{vehicle_id}", json={"faults": {"upstream_error": "INVALID_DATA"}})
    failed = env.admin.post(f"/v3/vehicles/{vehicle_id}/commands/charge/start", headers=headers)
    assert failed.status_code == REFERENCE["error_upstream"]["status"]
    assert_has_shape(failed.json(), REFERENCE["error_upstream"]["body"])
    assert failed.json()["errors"][0]["resolution"] == {"type": "RETRY_LATER"}
    unauthorized = env.admin.get(f"/v3/vehicles/{vehicle_id}/signals")
    assert unauthorized.status_code == 401
    assert_has_shape(unauthorized.json(), REFERENCE["error_generic_401"]["body"])


def test_the_simulator_connection_vehicle_and_subscription_have_the_reference_shape(env):
    vehicle_id, user_id = env.car()
    headers = app_headers(env)
    [connection] = env.admin.get("/v3/connections", headers=headers).json()["data"]
    assert_has_shape(connection, REFERENCE["connection"]["body"]["data"])
    vehicle = env.admin.get(f"/v3/vehicles/{vehicle_id}", headers=headers).json()
    assert_has_shape(vehicle, REFERENCE["vehicle_wrapped"]["body"])
    body = {"data": {"attributes": {"webhookId": env.webhook(), "userId": user_id, "vehicleId": vehicle_id}}}
    created = env.admin.post("/v3/subscriptions", json=body, headers=headers)
    assert (created.status_code, created.json()) == (202, REFERENCE["subscription_created"]["body"])


def test_the_simulator_webhooks_have_the_reference_shape(env):
    received: list[tuple[dict, bytes]] = []

    def receive(request):
        received.append((dict(request.headers), request.content))
        event = json.loads(request.content)
        if event["eventType"] == "VERIFY":
            return httpx.Response(200, json={"challenge": signature(AMT, event["data"]["challenge"].encode())})
        return httpx.Response(200)

    http = httpx.Client(transport=httpx.MockTransport(receive))
    hook = env.admin.post("/_sim/v3/webhooks", json={"callbackUri": "https://charge.example/hook"}).json()
    assert v3_webhooks.send_verify(env.sim, hook["id"], client=http)
    vehicle_id, user_id = env.car(make="JAGUAR", model="I-PACE")
    with env.sim.lock:
        platform(env.sim).subscribe(hook["id"], user_id, vehicle_id)
    v3_webhooks.deliver_due(env.sim, client=http)
    env.admin.post(f"/v3/vehicles/{vehicle_id}/commands/charge/start", headers=app_headers(env, user_id))
    env.clock.advance(60)
    v3_webhooks.deliver_due(env.sim, client=http)
    events = {}
    for headers, body in received:
        event = json.loads(body)
        events.setdefault(event["eventType"], []).append(event)
        if event["eventType"] != "VERIFY":
            assert headers["sc-signature"] == signature(AMT, body)
    assert_has_shape(events["VERIFY"][0], REFERENCE["webhook_verify"])
    changed = next(e for e in events["VEHICLE_STATE"] if e["triggers"][0].get("type") == "SIGNAL_UPDATED")
    assert_has_shape(changed, REFERENCE["webhook_vehicle_state"])
    assert_has_shape(events["VEHICLE_ERROR"][0], REFERENCE["webhook_vehicle_error"])
