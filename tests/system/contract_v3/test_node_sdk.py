"""The official Node SDK (npm `smartcar` 10.4.0, tests/system/contract_v3/node) against the simulator.

Its v3 surface: `smartcar.getVehicle`, `Vehicle#getSignals` / `#getSignal`, the generic
`Vehicle#request(method, path, body, headers, '3')`, and `hashChallenge` / `verifyPayload`. It has
no client-credentials call and no v3 management API: the app token is fetched here.

`getSignals` / `getSignal` send the given token and no `sc-user-id`
(docs/reference/vehicle-api-v3.md §1.2): with an app token they cannot work against the real v3
either, and are expected to fail with 400. They would work only with a per-user v2 token (the
other reading of the CONFLICT), which the simulator no longer issues: it speaks v3 only, as the
product does, so their success path is not run. `verifyPayload` hashes
`JSON.stringify` of the parsed body, so it passes only if the simulator signs bytes that
JavaScript re-serialises identically.

Installed by `make venv` / `make test` (`npm ci`); without Node it is skipped locally and fails in
CI, which installs it.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from sessions.vehicle_api.signals import SignalSet
from sessions.vehicle_api.webhooks_v3 import challenge_answer
from vehicle_sim import v3_webhooks

from .conftest import AMT, CLIENT_ID, CLIENT_SECRET

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture
def node():
    path = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "smartcar" / "package.json").exists()
    if path is None or not installed:
        if os.environ.get("CI"):
            pytest.fail("CI needs Node and the SDK: apt-get install nodejs npm; make venv (runs npm ci)")
        pytest.skip("the Node SDK check needs node and `npm ci` in tests/system/contract_v3/node (make venv)")
    return path


def run_node(node, env, spec) -> dict:
    completed = subprocess.run(
        [node, str(NODE_DIR / "v3_calls.js"), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMARTCAR_API_V3_ORIGIN": env.url},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_the_node_sdk_v3_calls_against_the_simulator(node, server_env):
    env = server_env
    received = []

    def receive(request):
        received.append((request.headers.get("sc-signature"), request.content.decode()))
        return httpx.Response(200)

    vehicle_id, user_id = env.car(soc=0.4, make="TESLA")
    token = httpx.post(
        f"{env.url}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    ).json()["access_token"]
    webhook_id = env.webhook()
    subscription = {"data": {"attributes": {"webhookId": webhook_id, "userId": user_id, "vehicleId": vehicle_id}}}
    httpx.post(f"{env.url}/v3/subscriptions", json=subscription, headers={"Authorization": f"Bearer {token}"})
    v3_webhooks.deliver_due(env.sim, client=httpx.Client(transport=httpx.MockTransport(receive)))
    signature, body = received[-1]

    results = run_node(
        node,
        env,
        {
            "vehicleId": vehicle_id,
            "userId": user_id,
            "appToken": token,
            "amt": AMT,
            "challenge": "a1b2c3d4e5f6",
            "webhook": {"signature": signature, "body": body},
        },
    )

    assert results["getVehicle"]["ok"], results["getVehicle"]
    assert results["getVehicle"]["value"]["data"]["attributes"]["make"] == "TESLA"
    # No sc-user-id: refused like on the real v3; the SDK does not parse v3 error bodies (SDK_ERROR).
    failed = results["getSignalsAppToken"]
    assert (failed["ok"], failed["error"]["statusCode"], failed["error"]["type"]) == (False, 400, "SDK_ERROR")
    # The generic request with the app token and sc-user-id: what a v3 integration needs.
    assert SignalSet.from_items(results["requestSignals"]["value"]["data"]).is_plugged_in is True
    for name, command_type in (("start", "charge-start"), ("setLimit", "charge-set-limit"), ("stop", "charge-stop")):
        assert results[name]["ok"], results[name]
        assert results[name]["value"]["data"]["attributes"]["commandType"] == command_type
        assert results[name]["value"]["data"]["attributes"]["status"] == {"value": "SUCCESS"}
    assert results["setLimit"]["value"]["data"]["attributes"]["parameters"] == {"percent": 75}
    assert results["notConnected"]["error"]["statusCode"] == 403
    calls = env.sim.vehicles[vehicle_id].calls
    assert (calls["POST /charge"], calls["POST /charge/limit"]) == (2, 1)
    # Webhook helpers: the same HMAC as ours, and the simulator's signature survives JSON.stringify.
    assert results["hashChallenge"] == challenge_answer(AMT, "a1b2c3d4e5f6")["challenge"]
    assert results["verifyPayload"] is True
    assert results["verifyTampered"] is False
