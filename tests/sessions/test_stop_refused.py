"""A car that refuses STOP (issue 18 §6): the product knows each car's command budget and does
not start a session whose STOP may not fit; a STOP refused for a throttle or a quota tells the
driver and the operators at once and lowers the charge limit; the admin's retry reports what the
car's service really answered."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import AdminSite
from django.contrib.messages.storage.fallback import FallbackStorage
from django.test import RequestFactory
from rest_framework.test import APIClient

from notifications import kinds
from notifications.models import Notification
from sessions import clock, services
from sessions.admin import ChargingSessionAdmin
from sessions.models import ChargingSession, SessionStatus
from sessions.models.charging import CommandKind, VehicleCommand
from sessions.vehicle_api import errors as api_errors
from sessions.vehicles import command_budget
from sessions.vehicles import services as vehicle_services
from tests.plugins.cars import delivered_wh
from web.pages import selectors as page_selectors

S = SessionStatus


def start(driver, car, energy_wh=1_000):
    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


def test_a_vw_that_would_refuse_the_next_stop_is_not_started_until_driven(
    sim, connect, credit, drive, driver, ledger_clean
):
    # VW refuses charge commands after 5 in a row until the car is driven (makes.md §2a, §4).
    car = connect(driver, profile="vw_group", soc=0.3, limit=0.9, telemetry_refresh_s=60)
    credit(driver, energy_wh=40_000)
    first = drive(start(driver, car))
    assert first.status == S.COMPLETED, first.reason
    # Backstop, START, STOP, restore: 4 of the 5. The next session needs 4 again.
    left = command_budget.remaining(make="VOLKSWAGEN", car_id=car.sim_id, now=clock.now())
    assert left.commands == 1
    with pytest.raises(services.SessionError) as refused:
        start(driver, car)
    assert refused.value.code == "command_budget"
    assert "Drive the car" in str(refused.value)
    api = APIClient()
    api.force_authenticate(driver)
    answer = api.post("/api/v1/sessions/", {"vehicle_id": car.vehicle.pk, "energy_kwh": "1"}, format="json")
    assert answer.status_code == 409 and answer.json()["type"].endswith("/problems/command-budget/")
    assert ChargingSession.objects.count() == 1
    # The driver unplugs and drives; the product sees the car unplugged (the vehicles page reads it).
    sim.set_vehicle(car.sim_id, plugged=False, sync_snapshot=True)
    sim.drive(car.sim_id)
    sim.clock.advance(600)
    vehicle_services.vehicle_refresh_snapshot(vehicle_id=car.vehicle.pk)
    sim.set_vehicle(car.sim_id, plugged=True, sync_snapshot=True)
    second = drive(start(driver, car))
    assert second.status == S.COMPLETED, second.reason
    ledger_clean()


def test_tesla_discovery_plan_quotas_hold_a_day_of_charging_commands(sim, connect, credit, drive, driver, settings):
    settings.TESLA_DISCOVERY_QUOTAS = True
    car = connect(driver, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    for _ in range(2):
        assert drive(start(driver, car)).status == S.COMPLETED
    # 4 of the 5 START/STOPs of the day are spent: the third session could not send its STOP.
    with pytest.raises(services.SessionError) as refused:
        start(driver, car)
    assert "today" in str(refused.value)
    sim.clock.advance(int(timedelta(days=1).total_seconds()))
    assert drive(start(driver, car)).status == S.COMPLETED


def test_bmw_holds_its_80_stops_a_month(connect, credit, driver):
    car = connect(driver, profile="bmw_mini", soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    now = clock.now()
    VehicleCommand.objects.bulk_create(
        VehicleCommand(vehicle=car.vehicle, kind=CommandKind.STOP, sent_at=now - timedelta(days=29, hours=-i), ok=True)
        for i in range(80)
    )
    with pytest.raises(services.SessionError) as refused:
        start(driver, car)
    assert "this month" in str(refused.value)


def test_quota_refusals_are_told_from_passing_failures():
    assert command_budget.refused_for_budget(api_errors.UpstreamError(code="RATE_LIMIT"))
    assert command_budget.refused_for_budget(api_errors.RateLimited(code="VEHICLE", retry_after_s=47_000))
    assert not command_budget.refused_for_budget(api_errors.RateLimited(code="VEHICLE", retry_after_s=120))
    assert not command_budget.refused_for_budget(api_errors.UpstreamError(code="UNKNOWN_ISSUE"))


def _retry_from_the_admin(operator, session) -> list[str]:
    request = RequestFactory().post("/admin/charging/chargingsession/")
    request.user = operator
    request.session = {}
    request._messages = FallbackStorage(request)
    ChargingSessionAdmin(ChargingSession, AdminSite()).retry_stop(
        request, ChargingSession.objects.filter(pk=session.pk)
    )
    return [str(m) for m in request._messages]


def test_a_stop_the_car_refuses_tells_the_driver_and_the_operator_at_once(
    sim, connect, credit, drive, driver, operator, ledger_clean
):
    car = connect(driver, profile="vw_group", soc=0.55, limit=0.9, telemetry_refresh_s=60)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = drive(start(driver, car, energy_wh=3_000), until=lambda s: s.status == S.CHARGING)
    # Another app (or a second account) spent the car's commands: its next one is refused.
    sim.set_vehicle(car.sim_id, consecutive_command_limit=2)
    session = drive(session, until=lambda s: s.status == S.STOPPING)
    assert session.reason == "stop_refused", session.reason
    assert session.stop_not_carried_out
    # The live page says what to do, in the step that met the refusal.
    view = page_selectors.session_view(session)
    assert "Stop the charge in the car" in view.as_json()["reason_message"]
    # Driver and operator emails are in the outbox, written in that step's transaction.
    assert Notification.objects.filter(kind=kinds.STOP_REFUSED, user=driver).count() == 1
    alert = Notification.objects.get(kind=kinds.OPERATOR_ALERT, to_email=operator.email)
    assert "refused the STOP" in alert.params["items"][0]
    # The other actuator was tried at once: the charge limit (VW's throttle refuses it too).
    assert session.commands.filter(kind=CommandKind.SET_LIMIT, detail="escalation").exists()
    assert session.stop_escalated
    # The operator's retry says what the car's service answered: refused, not "retried".
    messages = _retry_from_the_admin(operator, session)
    assert messages == [f"Session {session.pk}: STOP refused (UPSTREAM:RATE_LIMIT); tried again at every check."]
    # The STOP keeps being tried while the car charges on past the purchase (the STOP is sent
    # ahead of it, so the first attempts may all come before); the driver unplugs, which ends it.
    session = drive(session, until=lambda s: s.stop_attempts >= 4 and delivered_wh(sim, car, before) >= 3_000)
    sim.set_vehicle(car.sim_id, plugged=False)
    session = drive(session)
    assert session.status in (S.COMPLETED, S.INTERRUPTED)
    assert session.billed_wh <= 3_000 <= delivered_wh(sim, car, before)
    # One email each, however many STOPs were refused.
    assert Notification.objects.filter(kind=kinds.STOP_REFUSED).count() == 1
    ledger_clean()


def test_the_admin_retry_reports_a_stop_that_got_through(sim, connect, credit, drive, driver, operator):
    car = connect(driver, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=5_000), until=lambda s: s.status == S.CHARGING)
    refusals = [{"type": "UPSTREAM", "code": "UNKNOWN_ISSUE", "endpoint": "POST /charge"}] * 3
    sim.set_vehicle(car.sim_id, faults={"inject": refusals})
    services.session_request_stop(session_id=session.pk)
    session = drive(session, until=lambda s: s.stop_attempts >= 3)
    assert session.status == S.STOPPING and session.stop_first_sent_at is None
    messages = _retry_from_the_admin(operator, session)
    assert messages == [
        f"Session {session.pk}: STOP sent and accepted by the car's service; its effect is being checked."
    ]
    session = drive(session)
    assert session.status == S.INTERRUPTED and session.reason == "driver_stop"


def test_the_refused_stop_emails_say_what_to_do(
    sim, connect, credit, drive, driver, operator, django_capture_on_commit_callbacks, mailoutbox
):
    car = connect(driver, profile="vw_group", soc=0.55, limit=0.9, telemetry_refresh_s=60)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=3_000), until=lambda s: s.status == S.CHARGING)
    sim.set_vehicle(car.sim_id, consecutive_command_limit=2)
    with django_capture_on_commit_callbacks(execute=True):
        drive(session, until=lambda s: s.status == S.STOPPING)
    to_driver = next(m for m in mailoutbox if m.to == [driver.email] and "refused our stop" in m.subject)
    assert "Stop the charge in the car or its app, or unplug the cable, now." in to_driver.body
    assert f"/charge/{session.public_id}/" in to_driver.body
    to_operator = next(m for m in mailoutbox if m.to == [operator.email])
    assert "refused the STOP" in to_operator.body
    assert {n.status for n in Notification.objects.filter(kind__in=(kinds.STOP_REFUSED, kinds.OPERATOR_ALERT))} == {
        Notification.Status.SENT
    }


def test_a_vw_is_not_paused_when_the_pause_would_leave_no_room_for_the_stop(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    from tests.plugins.grid import START as GRID_START

    # Cheap 08–09 and 10–11, very dear 09–10: a Tesla pauses at 09:00 (test_smart_sessions.py).
    prices([10, 90, 10, 90, 90, 90])
    car = connect(driver, profile="vw_group", soc=0.3, limit=0.9, telemetry_refresh_s=60)
    credit(driver, energy_wh=40_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=15_000, deadline=GRID_START + timedelta(hours=6)
    )
    session = drive(session)
    assert session.status == S.COMPLETED, session.reason
    # Backstop and START leave 3 of VW's 5: a pause (STOP) and resume (START) would leave one,
    # short of the STOP and the restore. So no pause, and no command the car refused.
    assert not session.commands.filter(kind=CommandKind.STOP, detail="pause").exists()
    assert not session.commands.filter(error_code="RATE_LIMIT").exists()
    assert session.limit_restored
    ledger_clean()
