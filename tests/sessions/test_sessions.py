"""Charging sessions against the simulator, in virtual time: each scenario of issue 4 §8."""

import uuid
from datetime import timedelta

import pytest

from prepaid.errors import InsufficientCredit
from prepaid.models import Hold, Wallet
from sessions import clock, services
from sessions.controller import machine, readings, runtime, stopping
from sessions.models import SessionStatus, VehicleCommand
from sessions.models.charging import CommandKind
from tests.plugins.cars import delivered_wh
from vehicle_sim import v3

S = SessionStatus


def start(driver, car, energy_wh=10_000):
    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


def stops_sent(session):
    return session.commands.filter(kind=CommandKind.STOP).count()


def test_it_charges_to_the_purchase_and_stops(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)

    session = drive(start(driver, car))

    truth = delivered_wh(sim, car, before)
    assert session.status == S.COMPLETED, session.reason
    assert sim.true_state(car.sim_id)["charging"] is False
    assert abs(truth - 10_000) <= 300, truth
    assert session.billed_wh == min(session.delivered_wh, 10_000)
    assert session.overshoot_wh == session.delivered_wh - session.billed_wh
    assert list(session.transitions.values_list("to_status", flat=True)) == [
        S.REQUESTED,
        S.STARTING,
        S.CHARGING,
        S.STOPPING,
        S.COMPLETED,
    ]
    # The backstop limit was set for the session and the driver's own limit restored.
    assert session.backstop_limit_bp is not None and session.limit_restored
    sim.clock.advance(60)  # a limit, like any command, takes effect after the command's latency
    assert sim.true_state(car.sim_id)["limit"] == pytest.approx(0.8)
    wallet = Wallet.objects.get(user=driver)
    assert wallet.balance_wh == 40_000 - session.billed_wh
    assert Hold.objects.get(pk=session.hold_id).status == Hold.Status.SETTLED
    ledger_clean()


def test_it_holds_the_credit_and_refuses_an_overspend(connect, credit, driver):
    car = connect(driver)
    credit(driver, energy_wh=8_000)
    with pytest.raises(InsufficientCredit):
        start(driver, car, energy_wh=9_000)
    start(driver, car, energy_wh=8_000)
    assert Wallet.objects.get(user=driver).balance_wh == 0


def test_it_allows_one_open_session_per_vehicle(connect, credit, driver):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    start(driver, car)
    with pytest.raises(services.SessionError) as refused:
        start(driver, car)
    assert refused.value.code == "session_open"
    # The refused request's hold was rolled back with it.
    assert Wallet.objects.get(user=driver).balance_wh == 20_000


def test_a_driver_stop_bills_what_was_delivered(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car, energy_wh=20_000), until=lambda s: s.delivered_wh > 3_000)
    assert session.status == S.CHARGING

    assert services.session_request_stop(session_id=session.pk)
    session = drive(session)

    assert session.status == S.INTERRUPTED and session.reason == "driver_stop"
    assert sim.true_state(car.sim_id)["charging"] is False
    assert 3_000 < session.billed_wh < 20_000
    assert Wallet.objects.get(user=driver).balance_wh == 30_000 - session.billed_wh
    ledger_clean()


def test_an_unplugged_car_is_settled_for_what_it_took(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car, energy_wh=20_000), until=lambda s: s.delivered_wh > 2_000)
    sim.set_vehicle(car.sim_id, plugged=False)

    session = drive(session)

    assert session.status == S.INTERRUPTED and session.reason == "unplugged_mid"
    assert 2_000 < session.billed_wh < 20_000
    # Found by a read or by the STOP itself (the policy reads little once the power is known):
    # a STOP the car answers "not plugged in" is not sent again.
    assert stops_sent(session) <= 1
    ledger_clean()


def test_an_unplugged_car_fails_at_start_and_releases_the_hold(connect, credit, drive, driver, ledger_clean):
    car = connect(driver, plugged=False)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car))
    assert session.status == S.FAILED and session.reason == "unplugged"
    assert "Plug it in" in session.reason_message
    assert session.commands.filter(kind=CommandKind.START).count() == 0
    assert Wallet.objects.get(user=driver).balance_wh == 30_000
    ledger_clean()


def test_the_application_token_is_renewed_mid_session(sim, api, connect, credit, drive, driver, ledger_clean):
    # 30 kWh at 11 kW take ~2.8 h: longer than the 1 h application token, renewed before expiry.
    car = connect(driver, soc=0.2)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=30_000))
    assert session.status == S.COMPLETED, session.reason
    assert api.tokens.renewals >= 3
    assert sim.calls["POST /oauth2/token"] == api.tokens.renewals
    ledger_clean()


def test_revoked_consent_ends_the_session_and_flags_it(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car, energy_wh=20_000), until=lambda s: s.delivered_wh > 2_000)
    connection = car.vehicle.connection
    # The driver removes the car from the application at the vehicle API: a 403 from now on.
    platform = v3.platform(sim)
    platform.delete_connection(platform.connection_id(connection.external_user_id, car.sim_id))

    session = drive(session)

    assert session.status == S.INTERRUPTED and session.reason == "consent"
    assert session.stop_not_carried_out  # we could not stop the car: the operator sees it
    assert session.billed_wh <= 20_000
    connection.refresh_from_db()
    assert connection.status == connection.Status.NEEDS_CONSENT
    ledger_clean()


def test_an_asleep_car_fails_at_start_with_an_actionable_reason(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver, faults={"asleep": True})
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car))
    assert session.status == S.FAILED and session.reason == "asleep"
    assert "wake" in session.reason_message
    assert session.transitions.last().at - session.created_at <= services.REQUESTED_DEADLINE + timedelta(minutes=5)
    assert Wallet.objects.get(user=driver).balance_wh == 30_000
    ledger_clean()


def test_an_unreachable_car_at_stop_is_stopped_once_it_answers(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.planned_action == "stop" or s.status == S.STOPPING)
    sim.set_vehicle(car.sim_id, faults={"unreachable": True})
    session = drive(session, until=lambda s: s.status == S.STOPPING and s.attempts >= 2)
    sim.set_vehicle(car.sim_id, faults={"unreachable": False})

    session = drive(session)

    assert session.status == S.COMPLETED
    assert sim.true_state(car.sim_id)["charging"] is False
    assert session.billed_wh <= 10_000
    ledger_clean()


def test_an_ignored_stop_is_retried_then_escalated_to_the_charge_limit(
    sim, connect, credit, drive, driver, ledger_clean
):
    # From 45 %, the level at the STOP (~58 %) can be set as a limit (the API takes 50–100 %).
    car = connect(driver, soc=0.45, limit=1.0)
    credit(driver, energy_wh=30_000)
    sim.set_vehicle(car.sim_id, faults={"ignore_stop": True})

    session = drive(start(driver, car))

    assert session.status == S.COMPLETED
    assert stops_sent(session) >= 3  # the first STOP and its retries
    assert session.stop_escalated
    assert session.commands.filter(kind=CommandKind.SET_LIMIT, detail="escalation").exists()
    assert sim.true_state(car.sim_id)["charging"] is False
    assert session.billed_wh == 10_000 and session.overshoot_wh > 0  # absorbed, never billed
    ledger_clean()


def test_a_stop_the_car_never_carries_out_is_flagged(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver, soc=0.3, limit=1.0, limit_settable=False)
    credit(driver, energy_wh=30_000)
    car.vehicle.charge_limit_settable = False
    car.vehicle.save()
    sim.set_vehicle(car.sim_id, faults={"ignore_stop": True})

    session = drive(start(driver, car), until=lambda s: s.stop_not_carried_out)
    assert session.status == S.STOPPING  # still watching the car
    session = drive(session, max_hours=48)
    assert session.status == S.COMPLETED and session.reason == "stop_not_verified"
    assert session.billed_wh == 10_000
    ledger_clean()


def test_retry_after_is_honoured(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.CHARGING)
    sim.set_vehicle(car.sim_id, faults={"inject": [{"type": "RATE_LIMIT", "code": "VEHICLE", "retry_after": 600}]})
    limited_at = sim.clock.now()
    last_before = VehicleCommand.objects.order_by("-id").first().pk
    session.next_action_at = limited_at
    session.planned_action = "read"
    session.save(update_fields=["next_action_at", "planned_action"])
    runtime.tick()
    session.refresh_from_db()
    assert session.not_before == limited_at + timedelta(seconds=600)
    assert session.next_action_at >= session.not_before

    session = drive(session)
    assert session.status == S.COMPLETED
    calls_after = VehicleCommand.objects.filter(session=session, pk__gt=last_before)
    assert calls_after.filter(sent_at__lt=limited_at + timedelta(seconds=600)).count() == 1  # only the 429
    ledger_clean()


def test_a_step_with_a_stale_lease_writes_nothing(sim, connect, credit, driver):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = start(driver, car)
    [(session_id, token)] = runtime.sessions_claim_due()
    machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    version, commands = session.version, session.commands.count()

    # The same task delivered twice (at-least-once broker): the second run finds its lease gone.
    machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert (session.version, session.commands.count()) == (version, commands)
    machine.session_step(session_id=session_id, lease_token=uuid.uuid4())
    session.refresh_from_db()
    assert session.version == version


def test_a_worker_that_died_mid_step_is_healed_by_the_lease(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = start(driver, car)
    claimed = runtime.sessions_claim_due()  # claimed, then the worker is SIGKILLed: no step runs
    assert [c[0] for c in claimed] == [session.pk]
    assert runtime.sessions_claim_due() == []  # leased: no other loop takes it meanwhile

    sim.clock.advance(runtime.LEASE.total_seconds() + 1)
    session = drive(session)
    assert session.status == S.COMPLETED
    ledger_clean()


def test_two_loops_never_claim_the_same_session(sim, connect, credit, driver, django_user_model):
    sessions = []
    for n in range(6):
        user = django_user_model.objects.create_user(f"d{n}", password="x-password-1")
        credit(user, energy_wh=20_000)
        sessions.append(start(user, connect(user)))
    first = runtime.sessions_claim_due(limit=4)
    second = runtime.sessions_claim_due(limit=4)
    assert len(first) == 4 and len(second) == 2
    assert not {c[0] for c in first} & {c[0] for c in second}


def test_a_vehicle_webhook_pulls_the_next_step_forward(client, sim, connect, credit, drive, driver, settings):
    import json

    from sessions.vehicles.webhooks import signature

    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.CHARGING)
    assert session.next_action_at > clock.now()
    body = json.dumps(
        {"eventId": "evt-1", "eventType": "VEHICLE_STATE", "vehicleId": car.sim_id, "data": {}},
        separators=(",", ":"),
    ).encode()
    headers = {"HTTP_SC_SIGNATURE": signature(settings.VEHICLE_WEBHOOK_AMT, body)}
    response = client.post("/vehicles/webhook/", body, content_type="application/json", **headers)
    assert response.status_code == 200 and response.json() == {"status": "stored"}
    session.refresh_from_db()
    assert session.next_action_at == clock.now()
    again = client.post("/vehicles/webhook/", body, content_type="application/json", **headers)
    assert again.json() == {"status": "duplicate"}
    forged = client.post("/vehicles/webhook/", body, content_type="application/json", HTTP_SC_SIGNATURE="00" * 32)
    assert forged.status_code == 401


def test_a_charging_read_step_costs_at_most_five_queries(sim, connect, credit, drive, driver):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car, energy_wh=20_000), until=lambda s: s.status == S.CHARGING)
    sim.clock.set(session.next_action_at)
    [(session_id, token)] = runtime.sessions_claim_due()
    readings.latency_model(car.vehicle.make)  # shared per make and minute across every session
    with CaptureQueriesContext(connection) as queries:
        machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert session.status == S.CHARGING and session.readings.count() >= 2
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) <= 5, "\n".join(statements)


def test_energy_from_an_earlier_charge_on_the_same_plug_in_is_not_billed(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=40_000)
    first = drive(start(driver, car, energy_wh=6_000))
    assert first.status == S.COMPLETED
    # Same plug-in: the car's "energy added" still shows the first session's ~6 kWh.
    assert sim.true_state(car.sim_id)["session_battery_wh"] > 5_000
    before = sim.true_state(car.sim_id)

    second = drive(start(driver, car, energy_wh=4_000))

    truth = delivered_wh(sim, car, before)
    assert second.status == S.COMPLETED
    assert abs(second.delivered_wh - truth) <= 150, (second.delivered_wh, truth)
    assert abs(truth - 4_000) <= 200, truth


def test_a_car_refusing_commands_at_its_battery_level_fails_at_once(sim, connect, credit, drive, driver):
    car = connect(driver, profile="gm_onstar", soc=0.3)  # GM: START and STOP only at 50 % or more
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car))
    assert session.status == S.FAILED and session.reason == "low_battery"
    assert "50 %" in session.reason_message
    assert session.commands.filter(kind=CommandKind.START).count() == 1  # refused once, not retried
    assert Wallet.objects.get(user=driver).balance_wh == 30_000


def test_a_car_without_a_remote_stop_is_refused_before_any_credit_is_held(connect, credit, driver):
    car = connect(driver, profile="nissan_start_only")
    credit(driver, energy_wh=30_000)
    with pytest.raises(services.SessionError) as refused:
        start(driver, car)
    assert refused.value.code == "cannot_stop"
    assert Wallet.objects.get(user=driver).balance_wh == 30_000


def test_a_start_lost_on_the_way_is_sent_again(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    # The START request fails upstream (it never reached the car): the controller cannot tell.
    sim.set_vehicle(
        car.sim_id, faults={"inject": [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge"}]}
    )
    session = drive(start(driver, car))
    assert session.status == S.COMPLETED, session.reason
    assert session.commands.filter(kind=CommandKind.START).count() == 2
    assert session.commands.filter(kind=CommandKind.START, detail="retry", ok=True).exists()
    ledger_clean()


def test_a_failed_restore_of_the_drivers_limit_is_tried_again(sim, connect, credit, drive, driver):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.status == S.STOPPING)
    sim.set_vehicle(
        car.sim_id,
        faults={"inject": [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge/limit"}]},
    )
    session = drive(session)
    assert session.status == S.COMPLETED and session.limit_restored
    restores = session.commands.filter(kind=CommandKind.SET_LIMIT, detail="restore")
    assert [c.ok for c in restores] == [False, True]


def test_a_refused_stop_is_sent_again_within_seconds(sim, connect, credit, drive, driver, ledger_clean):
    car = connect(driver)
    credit(driver, energy_wh=30_000)
    session = drive(start(driver, car), until=lambda s: s.planned_action == "stop")
    sim.set_vehicle(
        car.sim_id, faults={"inject": [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge"}]}
    )
    session = drive(session)
    assert session.status == S.COMPLETED
    first, second = session.commands.filter(kind=CommandKind.STOP).order_by("id")[:2]
    assert (first.ok, second.ok) == (False, True)
    assert (second.sent_at - first.sent_at).total_seconds() <= stopping.STOP_RESEND_S + 1
    assert abs(session.delivered_wh - 10_000) <= 300
    ledger_clean()
