"""Vehicle webhooks: VEHICLE_STATE events signed over compact JSON, retries, VERIFY."""

import hashlib
import hmac
import json

import httpx
import pytest

from vehicle_sim import webhooks
from vehicle_sim.webhooks import deliver_pending, hash_challenge, send_verify, sign

AMT = "sim-application-management-token"


class Receiver:
    """A real WSGI receiver in process: records deliveries, answers with a chosen status."""

    def __init__(self, statuses=None, challenge_key=AMT):
        self.statuses = list(statuses or [])
        self.received = []
        self.challenge_key = challenge_key

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        self.received.append({"body": body, "signature": environ.get("HTTP_SC_SIGNATURE")})
        payload = json.loads(body)
        status = self.statuses.pop(0) if self.statuses else 200
        answer = b"{}"
        if payload["eventType"] == "VERIFY":
            answer = json.dumps(
                {"challenge": hash_challenge(self.challenge_key, payload["data"]["challenge"])}
            ).encode()
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [answer]

    def client(self):
        return httpx.Client(transport=httpx.WSGITransport(app=self))


def test_sign_is_hex_hmac_sha256_of_the_raw_body():
    body = b'{"a":1}'
    assert sign("key", body) == hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert len(sign("key", body)) == 64


@pytest.fixture
def hooked(sim):
    sim.webhook_url = "http://receiver.test/webhooks/vehicle/"
    return sim


def test_a_charge_state_change_is_delivered_signed(hooked, clock):
    v = hooked.create_vehicle(soc=0.3, plugged=True)
    token = hooked.issue_tokens([v.id])["access_token"]
    hooked.vehicle_request(token, "POST", v.id, "charge", {"action": "START"})
    assert deliver_pending(hooked) == 0  # nothing happened yet: the command is on its way
    clock.advance(10)
    hooked.vehicle(v.id)  # lazily advance the physics
    receiver = Receiver()
    assert deliver_pending(hooked, receiver.client()) == 1
    delivery = receiver.received[0]
    assert delivery["signature"] == sign(AMT, delivery["body"])
    payload = json.loads(delivery["body"])
    assert delivery["body"] == json.dumps(payload, separators=(",", ":")).encode()  # compact
    assert payload["eventType"] == "VEHICLE_STATE"
    assert payload["vehicleId"] == v.id
    assert payload["meta"]["version"] == "4.0"
    assert payload["meta"]["deliveryId"]
    signals = {s["code"]: s["body"] for s in payload["data"]["signals"]}
    assert signals["charge-ischarging"] == {"value": True}
    assert signals["charge-ischargingcableconnected"] == {"value": True}
    assert payload["data"]["vehicle"]["id"] == v.id


def test_reaching_the_limit_and_unplugging_send_events(hooked, clock):
    v = hooked.create_vehicle(soc=0.79, limit=0.8, plugged=True)
    v.charging = True
    clock.advance(3600)
    hooked.set_vehicle(v.id, plugged=False)
    receiver = Receiver()
    assert deliver_pending(hooked, receiver.client()) == 2
    states = [
        signal["body"]["value"]
        for r in receiver.received
        for signal in json.loads(r["body"])["data"]["signals"]
        if signal["code"] == "charge-detailedchargingstatus"
    ]
    assert states == ["FULLY_CHARGED", "NOT_CHARGING"]


def test_failed_deliveries_are_retried_with_the_same_event_id(hooked, clock):
    v = hooked.create_vehicle(soc=0.3, plugged=True)
    hooked.set_vehicle(v.id, plugged=False)
    receiver = Receiver(statuses=[500, 500, 500, 500])
    client = receiver.client()
    assert deliver_pending(hooked, client) == 1
    for delay in webhooks.RETRY_DELAYS_S:
        clock.advance(delay - 1)
        assert deliver_pending(hooked, client) == 0
        clock.advance(1)
        assert deliver_pending(hooked, client) == 1
    clock.advance(1000)
    assert deliver_pending(hooked, client) == 0  # dropped after 3 retries
    events = [json.loads(r["body"]) for r in receiver.received]
    assert len({e["eventId"] for e in events}) == 1
    assert len({e["meta"]["deliveryId"] for e in events}) == 4


def test_a_successful_retry_ends_the_retries(hooked, clock):
    v = hooked.create_vehicle(soc=0.3, plugged=True)
    hooked.set_vehicle(v.id, plugged=False)
    receiver = Receiver(statuses=[503])
    deliver_pending(hooked, receiver.client())
    clock.advance(25)
    deliver_pending(hooked, receiver.client())
    clock.advance(500)
    assert deliver_pending(hooked, receiver.client()) == 0
    assert [entry["ok"] for entry in hooked.webhook_log] == [False, True]


def test_no_webhook_url_means_no_events(sim, clock):
    v = sim.create_vehicle(soc=0.3, plugged=True)
    sim.set_vehicle(v.id, plugged=False)
    assert sim.webhook_outbox == []


def test_verify_checks_the_receivers_challenge_answer(hooked):
    assert send_verify(hooked, Receiver().client()) is True
    assert send_verify(hooked, Receiver(challenge_key="wrong").client()) is False
    assert send_verify(hooked, Receiver(statuses=[500]).client()) is False


def test_an_event_exists_even_when_nobody_reads_the_car(hooked, clock):
    v = hooked.create_vehicle(soc=0.79, limit=0.8, plugged=True)
    v.charging = True
    clock.advance(3600)
    receiver = Receiver()
    assert deliver_pending(hooked, receiver.client()) == 1
    assert json.loads(receiver.received[0]["body"])["vehicleId"] == v.id


def test_pending_events_survive_a_restart(hooked, clock):
    from vehicle_sim.engine import Simulator

    v = hooked.create_vehicle(soc=0.3, plugged=True)
    hooked.set_vehicle(v.id, plugged=False)
    again = Simulator(clock)
    again.load_state(json.loads(json.dumps(hooked.to_state())))
    receiver = Receiver()
    assert deliver_pending(again, receiver.client()) == 1
    assert json.loads(receiver.received[0]["body"])["vehicleId"] == v.id


def test_the_server_sends_webhooks_from_its_own_thread(hooked):
    import threading
    import time
    from wsgiref.simple_server import make_server

    from vehicle_sim.server import QuietHandler, SimulatorServer, ThreadingWSGIServer

    receiver = Receiver()
    httpd = make_server("127.0.0.1", 0, receiver, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    hooked.webhook_url = f"http://127.0.0.1:{httpd.server_address[1]}/webhooks/vehicle/"
    try:
        with SimulatorServer(hooked, webhook_interval_s=0.02):
            v = hooked.create_vehicle(soc=0.3, plugged=True)
            hooked.set_vehicle(v.id, plugged=False)
            deadline = time.monotonic() + 5
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(receiver.received) == 1
    assert receiver.received[0]["signature"] == sign(AMT, receiver.received[0]["body"])
