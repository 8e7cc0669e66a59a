"""The official Python SDK (smartcar==6.19.1) against the simulator's v3, for every v3 call it has.

Its v3 surface: `smartcar.smartcar.get_vehicle` (not exported at the top), `Vehicle.get_signals`
/ `get_signal`, the generic `Vehicle.request` (with `version: "3"` and our own headers), and the
webhook helpers
`hash_challenge` / `verify_payload`. It has no client-credentials token call and no management
API for v3 subscriptions: the app token comes from the IAM endpoint through plain httpx here.

`get_signals` / `get_signal` send the token they are given and no `sc-user-id`
(docs/reference/vehicle-api-v3.md §1.2). With an app token that cannot work against the real v3
either ("missing userId", 400), which is tested. They would work only under the other reading of
the CONFLICT, where a per-user v2 token still opens v3; the simulator no longer issues v2 tokens
(it speaks v3 only, as the product does), so their success path is not run.
"""

import importlib
import json

import httpx
import pytest

from sessions.vehicle_api.signals import SignalSet
from sessions.vehicle_api.webhooks_v3 import challenge_answer
from vehicle_sim import v3_webhooks

from .conftest import AMT, CLIENT_ID, CLIENT_SECRET


@pytest.fixture
def sdk(server_env, monkeypatch):
    """The SDK pointed at the simulator. It reads its origins from the environment when
    `smartcar.config` is imported, so that module is re-executed (and again afterwards)."""
    import smartcar
    import smartcar.config

    monkeypatch.setenv("SMARTCAR_VEHICLE_API_V3_ORIGIN", server_env.url)
    monkeypatch.setenv("SMARTCAR_API_ORIGIN", server_env.url)
    importlib.reload(smartcar.config)
    yield smartcar
    monkeypatch.undo()
    importlib.reload(smartcar.config)


def app_token(env) -> str:
    credentials = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return httpx.post(f"{env.url}/oauth2/token", data=credentials).json()["access_token"]


def subscribed_car(env, **fields):
    vehicle_id, user_id = env.car(**fields)
    body = {"data": {"attributes": {"webhookId": env.webhook(), "userId": user_id, "vehicleId": vehicle_id}}}
    headers = {"Authorization": f"Bearer {app_token(env)}"}
    assert httpx.post(f"{env.url}/v3/subscriptions", json=body, headers=headers).status_code == 202
    return vehicle_id, user_id


def test_get_vehicle_reads_the_v3_vehicle(sdk, server_env):
    vehicle_id, _user = server_env.car(make="POLESTAR", model="Polestar 2", year=2024)
    # Defined in smartcar.smartcar but not exported by the package's __init__.
    answer = sdk.smartcar.get_vehicle(app_token(server_env), vehicle_id)
    assert answer["body"]["data"]["attributes"]["make"] == "POLESTAR"
    assert answer["body"]["data"]["id"] == vehicle_id


def test_get_signals_with_an_app_token_fails_like_on_the_real_v3_for_want_of_sc_user_id(sdk, server_env):
    vehicle_id, _user = subscribed_car(server_env)
    with pytest.raises(sdk.SmartcarException) as caught:
        sdk.Vehicle(vehicle_id, app_token(server_env)).get_signals()
    # The SDK does not know v3 error bodies: it reports an SDK_ERROR carrying the raw body.
    assert caught.value.status_code == 400
    assert caught.value.type == "SDK_ERROR"
    [error] = json.loads(caught.value.message)["errors"]
    assert (error["code"], error["detail"]) == ("MISSING_PARAMETER", "missing userId")


def test_the_generic_request_reaches_signals_and_commands_with_sc_user_id(sdk, server_env):
    vehicle_id, user_id = subscribed_car(server_env, soc=0.3)
    vehicle = sdk.Vehicle(vehicle_id, app_token(server_env), {"version": "3"})
    signals = vehicle.request("GET", "signals", headers={"sc-user-id": user_id})
    assert SignalSet.from_items(signals.body["data"]).is_plugged_in is True
    started = vehicle.request("POST", "commands/charge/start", headers={"sc-user-id": user_id})
    assert started.body["data"]["attributes"]["status"] == {"value": "SUCCESS"}
    limit = vehicle.request(
        "POST", "commands/charge/set-limit", {"data": {"attributes": {"percent": 70}}}, {"sc-user-id": user_id}
    )
    assert limit.body["data"]["attributes"]["parameters"] == {"percent": 70}
    server_env.clock.advance(10)
    assert server_env.sim.true_state(vehicle_id)["charging"] is True
    stopped = vehicle.request("POST", "commands/charge/stop", headers={"sc-user-id": user_id})
    assert stopped.body["data"]["attributes"]["commandType"] == "charge-stop"
    with pytest.raises(sdk.SmartcarException) as caught:
        vehicle.request("POST", "commands/charge/start", headers={"sc-user-id": "not-connected"})
    assert caught.value.status_code == 403


def test_the_webhook_helpers_agree_with_the_simulator_and_our_receiver(sdk, server_env):
    received = []

    def receive(request):
        received.append((request.headers.get("sc-signature"), request.content))
        event = json.loads(request.content)
        if event["eventType"] == "VERIFY":
            return httpx.Response(200, json={"challenge": sdk.hash_challenge(AMT, event["data"]["challenge"])})
        return httpx.Response(200)

    http = httpx.Client(transport=httpx.MockTransport(receive))
    hook = server_env.admin.post("/_sim/v3/webhooks", json={"callbackUri": "https://charge.example/hook"}).json()
    assert v3_webhooks.send_verify(server_env.sim, hook["id"], client=http)  # the SDK's answer is accepted
    _unsigned, verify_body = received[0]
    challenge = json.loads(verify_body)["data"]["challenge"]
    assert sdk.hash_challenge(AMT, challenge) == challenge_answer(AMT, challenge)["challenge"]
    vehicle_id, user_id = server_env.car()
    body = {"data": {"attributes": {"webhookId": hook["id"], "userId": user_id, "vehicleId": vehicle_id}}}
    httpx.post(
        f"{server_env.url}/v3/subscriptions", json=body, headers={"Authorization": f"Bearer {app_token(server_env)}"}
    )
    v3_webhooks.deliver_due(server_env.sim, client=http)
    signature, state_body = received[-1]
    assert json.loads(state_body)["eventType"] == "VEHICLE_STATE"
    assert sdk.verify_payload(AMT, signature, state_body.decode()) is True
    assert sdk.verify_payload(AMT, signature, state_body.decode().replace("true", "false", 1)) is False
