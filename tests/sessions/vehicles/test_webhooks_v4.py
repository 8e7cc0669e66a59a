"""The vehicle webhook receiver (payload v4.0): VERIFY, trust, dedup, readings, errors, rejections.

Deliveries go through the real view (`/vehicles/webhook/`) for a car of the in-process simulator
with a charging session, as docs/reference/vehicle-api-v3.md §6 shapes them."""

import json
from datetime import timedelta

import pytest
from django.test import Client

from sessions import clock, services
from sessions.controller import metering, readings
from sessions.models import SessionStatus, VehicleEvent
from sessions.models.charging import CommandKind, MeterReading
from sessions.vehicles import webhooks
from sessions.vehicles.webhooks import signature

S = SessionStatus
URL = "/vehicles/webhook/"


def body_of(event) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def post(client, event, *, key=None, sig=None, raw=None):
    from django.conf import settings

    body = raw if raw is not None else body_of(event)
    headers = {}
    if sig is not None:
        headers["HTTP_SC_SIGNATURE"] = sig
    elif key is not False:
        headers["HTTP_SC_SIGNATURE"] = signature(key or settings.VEHICLE_WEBHOOK_AMT, body)
    return client.post(URL, body, content_type="application/json", **headers)


def ms(when) -> int:
    return int(when.timestamp() * 1000)


def signal(code, value, unit=None, *, at):
    name = {"charge-energyadded": "EnergyAdded", "tractionbattery-stateofcharge": "StateOfCharge"}.get(code, code)
    body = {"value": value} if unit is None else {"value": value, "unit": unit}
    return {
        "code": code,
        "name": name,
        "group": code.split("-")[0],
        "body": body,
        "status": {"value": "SUCCESS"},
        "meta": {"oemUpdatedAt": ms(at), "retrievedAt": ms(at) + 4000},
    }


def state_event(car, event_id, *, at, soc=None, energy_kwh=None, charging=True, plugged=True, user_id=None):
    items = [signal("charge-ischarging", charging, at=at), signal("charge-ischargingcableconnected", plugged, at=at)]
    if soc is not None:
        items.append(signal("tractionbattery-stateofcharge", soc, "percent", at=at))
    if energy_kwh is not None:
        items.append(signal("charge-energyadded", energy_kwh, "kWh", at=at))
    return {
        "eventId": event_id,
        "eventType": "VEHICLE_STATE",
        "data": {
            "user": {"id": user_id or car.vehicle.connection.external_user_id},
            "vehicle": {"id": car.sim_id, "make": car.vehicle.make, "model": car.vehicle.model, "year": 2024},
            "signals": items,
        },
        "triggers": [{"type": "SIGNAL_UPDATED", "signal": {"name": "IsCharging", "code": "charge-ischarging"}}],
        "meta": {
            "version": "4.0",
            "deliveryId": "d-1",
            "deliveredAt": ms(at) + 9000,
            "webhookId": "wh",
            "mode": "LIVE",
        },
    }


def error_event(car, event_id, type_, code, state):
    return {
        "eventId": event_id,
        "eventType": "VEHICLE_ERROR",
        "data": {
            "user": {"id": car.vehicle.connection.external_user_id},
            "vehicle": {"id": car.sim_id, "make": car.vehicle.make},
            "errors": [{"type": type_, "code": code, "state": state, "description": f"{code} says the car"}],
        },
        "meta": {"version": "4.0", "deliveryId": "d-2", "deliveredAt": ms(clock.now()), "webhookId": "wh"},
    }


@pytest.fixture
def charging(sim, connect, credit, drive, driver):
    """A car in a charging session (steps driven on the simulator), and the session."""
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=10_000)
    session = drive(session, until=lambda s: s.status == S.CHARGING)
    sim.clock.advance(30)  # past the snapshot the last step read (a live car's is "now")
    return car, session


# --- VERIFY and trust --------------------------------------------------------------------------------------------


def test_verify_is_answered_unsigned_with_the_hmac_of_its_challenge_and_stores_nothing(client, settings, db):
    event = {"eventId": "v-1", "eventType": "VERIFY", "data": {"challenge": "abc123-XYZ"}, "meta": {"version": "4.0"}}
    response = post(client, event, key=False)
    assert response.status_code == 200
    assert response.json() == {"challenge": signature(settings.VEHICLE_WEBHOOK_AMT, b"abc123-XYZ")}
    assert not VehicleEvent.objects.exists()


def test_an_unsigned_verify_whose_challenge_could_be_a_body_is_refused(client, db):
    challenge = '{"eventId":"x","eventType":"VEHICLE_STATE"}'
    event = {"eventId": "v-2", "eventType": "VERIFY", "data": {"challenge": challenge}}
    assert post(client, event, key=False).status_code == 401


def test_forged_unsigned_malformed_and_oversized_deliveries_get_a_clear_4xx_and_store_nothing(client, charging):
    car, _session = charging
    event = state_event(car, "e-forged", at=clock.now(), soc=50)
    assert post(client, event, sig="00" * 32).status_code == 401
    assert post(client, event, key=False).status_code == 401
    assert post(client, event, key="some-other-key").status_code == 401
    signed_garbage = post(client, None, raw=b"[" * 40 + b"]" * 40)  # deeper than we accept
    assert signed_garbage.status_code == 400 and "problem" in signed_garbage["Content-Type"]
    assert post(client, None, raw=b"[" * 40 + b"]" * 40, key=False).status_code == 401  # says no more
    assert post(client, None, raw=b'{"eventType":"VEHICLE_STATE"}').status_code == 400  # no eventId
    long_id = {**event, "eventId": "x" * 65}
    assert post(client, long_id).status_code == 400
    too_big = body_of({**event, "pad": "x" * (webhooks.MAX_BODY_BYTES + 1)})
    assert post(client, None, raw=too_big).status_code == 413
    assert not VehicleEvent.objects.exists()
    assert not MeterReading.objects.filter(via="webhook").exists()


def test_a_delivery_signed_with_the_previous_amt_is_accepted_during_a_rotation(client, charging, settings):
    car, _session = charging
    settings.VEHICLE_WEBHOOK_AMT_PREVIOUS = ["old-amt"]
    response = post(client, state_event(car, "e-rot", at=clock.now(), soc=50), key="old-amt")
    assert response.status_code == 200 and response.json()["status"] == "stored"


# --- VEHICLE_STATE → readings ----------------------------------------------------------------------------------


def test_a_vehicle_state_becomes_a_reading_of_the_open_session_at_the_signals_time(client, charging):
    car, session = charging
    taken = clock.now() - timedelta(seconds=20)
    response = post(client, state_event(car, "e-1", at=taken, soc=47))
    assert response.status_code == 200 and response.json() == {"status": "stored"}
    row = MeterReading.objects.get(session=session, via="webhook")
    assert (row.taken_at, row.soc_bp, row.source, row.charge_state) == (taken, 4700, "soc", "CHARGING")
    assert row.fetched_at == clock.now() and row.is_plugged_in is True
    session.refresh_from_db()
    assert session.webhook_readings == 1 and session.webhook_reading_at == taken
    assert VehicleEvent.objects.get(event_id="e-1").vehicle_external_id == car.sim_id


def test_a_retried_delivery_and_the_same_snapshot_in_another_event_are_stored_once(client, charging):
    car, session = charging
    taken = clock.now() - timedelta(seconds=5)
    assert post(client, state_event(car, "e-1", at=taken, soc=47)).json() == {"status": "stored"}
    assert post(client, state_event(car, "e-1", at=taken, soc=47)).json() == {"status": "duplicate"}
    assert post(client, state_event(car, "e-2", at=taken, soc=47)).json() == {"status": "duplicate"}
    assert MeterReading.objects.filter(session=session, via="webhook").count() == 1
    session.refresh_from_db()
    assert session.webhook_readings == 1
    assert VehicleEvent.objects.filter(event_id__in=["e-1", "e-2"]).count() == 2


def test_an_out_of_order_delivery_is_placed_by_its_time_and_metering_keeps_it(client, charging, sim):
    car, session = charging
    now = clock.now()
    newer, older = now - timedelta(seconds=10), now - timedelta(seconds=200)
    post(client, state_event(car, "e-new", at=newer, soc=49))
    sim.clock.advance(30)
    post(client, state_event(car, "e-old", at=older, soc=48))
    rows = {r.taken_at: r for r in MeterReading.objects.filter(session=session, via="webhook")}
    assert rows[older].fetched_at < rows[newer].fetched_at  # arrival order follows the data time
    session.refresh_from_db()
    assert session.webhook_reading_at == newer  # the newest stays the newest
    estimate = readings._estimate(session, list(readings._reading_rows(session)))
    assert not [r for r in estimate.rejections if r.rule == metering.RULE_OUT_OF_ORDER]


def test_a_delivery_for_a_car_without_an_open_session_is_kept_and_meters_nothing(client, sim, connect, driver):
    car = connect(driver)
    response = post(client, state_event(car, "e-idle", at=clock.now(), soc=50))
    assert response.json() == {"status": "stored"}
    assert VehicleEvent.objects.filter(event_id="e-idle").exists()
    assert not MeterReading.objects.exists()


def test_a_delivery_of_another_smartcar_user_for_the_same_car_meters_nothing(client, charging):
    car, session = charging
    post(client, state_event(car, "e-other", at=clock.now(), soc=50, user_id="someone-else"))
    assert not MeterReading.objects.filter(session=session, via="webhook").exists()


def test_a_change_of_state_pulls_the_next_step_forward_and_a_plain_update_does_not(client, charging, sim):
    car, session = charging
    post(client, state_event(car, "e-1", at=clock.now() - timedelta(seconds=1), soc=40))
    session.refresh_from_db()
    planned = session.next_action_at = clock.now() + timedelta(minutes=5)
    session.planned_action = "read"
    session.save(update_fields=["next_action_at", "planned_action"])
    sim.clock.advance(20)
    post(client, state_event(car, "e-2", at=clock.now(), soc=40))
    session.refresh_from_db()
    assert session.next_action_at == planned  # nothing the controller would do differently
    sim.clock.advance(20)
    post(client, state_event(car, "e-3", at=clock.now(), soc=40, charging=False, plugged=False))
    session.refresh_from_db()
    assert session.next_action_at == clock.now()


def test_nothing_is_stored_half_way_when_storing_the_reading_fails(charging, monkeypatch):
    car, _session = charging

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(webhooks.webhook_readings, "store_webhook_reading", broken)
    response = post(Client(raise_request_exception=False), state_event(car, "e-x", at=clock.now(), soc=50))
    assert response.status_code == 500  # the sender retries
    assert not VehicleEvent.objects.filter(event_id="e-x").exists()


# --- the controller uses them ---------------------------------------------------------------------------------


def step_at(sim, session, when):
    """Run the session's step at `when` (the controller loop claims it there)."""
    from sessions.controller import runtime

    type(session).objects.filter(pk=session.pk).update(next_action_at=when)
    sim.clock.set(when)
    runtime.tick()
    session.refresh_from_db()


def soc_now(sim, car):
    return round(sim.true_state(car.sim_id)["soc"] * 100, 1)


def test_webhook_readings_answer_reads_a_read_waits_for_the_next_one_and_polls_when_it_is_late(client, charging, sim):
    car, session = charging
    reads = session.commands.filter(kind=CommandKind.READ)
    polls, billed = reads.count(), session.billed_reads
    assert billed >= 1  # the polls that got it charging
    t = clock.now()
    post(client, state_event(car, "e-1", at=t, soc=soc_now(sim, car)))
    step_at(sim, session, t + timedelta(seconds=5))
    assert reads.count() == polls and session.billed_reads == billed  # answered by the webhook
    assert session.webhook_used_at == t and session.planned_action != "webhook"

    # The next read, before the next webhook is overdue (refresh 60 s + grace 60 s), waits for it.
    step_at(sim, session, t + timedelta(seconds=30))
    assert reads.count() == polls and session.planned_action == "webhook"
    assert session.next_action_at == t + timedelta(seconds=120)
    # It comes: the waiting step is pulled forward and uses it, again without a call.
    sim.clock.set(t + timedelta(seconds=50))
    post(client, state_event(car, "e-2", at=clock.now(), soc=soc_now(sim, car)))
    session.refresh_from_db()
    assert session.next_action_at == clock.now()
    step_at(sim, session, clock.now())
    assert reads.count() == polls and session.webhook_used_at == t + timedelta(seconds=50)

    # No webhook for longer than that: the car is polled (and counted as a billed read).
    step_at(sim, session, t + timedelta(seconds=50 + 121))
    assert reads.count() == polls + 1 and session.billed_reads == billed + 1
    assert session.webhook_readings == 2


# --- VEHICLE_ERROR -----------------------------------------------------------------------------------------------


def test_a_vehicle_error_marks_the_open_session_and_its_resolved_clears_it(client, charging):
    car, session = charging
    post(client, error_event(car, "x-1", "VEHICLE_STATE", "ASLEEP", "ERROR"))
    session.refresh_from_db()
    assert session.vehicle_error == "VEHICLE_STATE:ASLEEP" and "ASLEEP" in session.vehicle_error_message
    post(client, error_event(car, "x-2", "VEHICLE_STATE", "ASLEEP", "RESOLVED"))
    session.refresh_from_db()
    assert session.vehicle_error == "" and session.vehicle_error_message == ""


def test_an_account_error_marks_the_connection_until_resolved(client, charging):
    car, session = charging
    post(client, error_event(car, "x-1", "CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED", "ERROR"))
    connection = car.vehicle.connection
    connection.refresh_from_db()
    session.refresh_from_db()
    assert connection.api_error == "CONNECTED_SERVICES_ACCOUNT:AUTHENTICATION_FAILED" and connection.api_error_at
    assert session.vehicle_error == ""
    post(client, error_event(car, "x-2", "CONNECTED_SERVICES_ACCOUNT", "AUTHENTICATION_FAILED", "RESOLVED"))
    connection.refresh_from_db()
    assert connection.api_error == "" and connection.api_error_at is None


def test_a_car_error_without_an_open_session_marks_the_connection(client, sim, connect, driver):
    car = connect(driver)
    post(client, error_event(car, "x-1", "VEHICLE_STATE", "UNREACHABLE", "ERROR"))
    car.vehicle.connection.refresh_from_db()
    assert car.vehicle.connection.api_error == "VEHICLE_STATE:UNREACHABLE"


def test_signals_a_car_cannot_report_are_no_fault_to_show(client, charging):
    car, session = charging
    event = error_event(car, "x-1", "COMPATIBILITY", "VEHICLE_NOT_CAPABLE", "ERROR")
    event["data"]["errors"][0]["signals"] = [{"code": "charge-energyadded", "name": "EnergyAdded", "group": "Charge"}]
    assert post(client, event).status_code == 200
    session.refresh_from_db()
    car.vehicle.connection.refresh_from_db()
    assert session.vehicle_error == "" and car.vehicle.connection.api_error == ""
    assert VehicleEvent.objects.filter(event_id="x-1").exists()


def test_a_test_mode_delivery_is_kept_but_never_metered(client, charging):
    car, session = charging
    event = state_event(car, "e-test", at=clock.now(), soc=99)
    event["meta"]["mode"] = "TEST"
    assert post(client, event).json() == {"status": "stored"}
    assert VehicleEvent.objects.filter(event_id="e-test").exists()
    assert not MeterReading.objects.filter(session=session, via="webhook").exists()


def test_a_reading_without_the_charge_state_is_metered_but_never_stands_in_for_a_read(client, charging, sim):
    car, session = charging
    event = state_event(car, "e-soc-only", at=clock.now(), soc=45)
    event["data"]["signals"] = [s for s in event["data"]["signals"] if s["code"] == "tractionbattery-stateofcharge"]
    assert post(client, event).json() == {"status": "stored"}
    session.refresh_from_db()
    assert session.webhook_readings == 1 and session.webhook_reading_at is None
    reads = session.commands.filter(kind=CommandKind.READ).count()
    step_at(sim, session, clock.now() + timedelta(seconds=5))
    assert session.commands.filter(kind=CommandKind.READ).count() == reads + 1  # polled
    assert session.status == S.CHARGING
