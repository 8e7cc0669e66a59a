"""An operator's cancel of a grid event against the simulator: an event in progress ends now and
the paused session resumes at once (its bonus for the shortened pause credited); an event ahead
is removed and the waiting session charges in its window as if it had never been declared."""

from datetime import timedelta

from sessions import operator
from sessions import services as session_services
from sessions.grid import services as grid
from sessions.models import DemandResponseEvent, GridBonusEntry, SessionStatus, SmartPlan
from sessions.models.charging import CommandKind
from tests.plugins.grid import START

S = SessionStatus
H = timedelta(hours=1)
M = timedelta(minutes=1)


def _paused_and_verified(session):
    plan = SmartPlan.objects.filter(session=session).first()
    return plan is not None and plan.paused and plan.pause_verified_at is not None


def test_ending_an_event_in_progress_resumes_the_session_now(
    sim, drive, ledger_clean, django_capture_on_commit_callbacks, enrolled_charging
):
    _, session = enrolled_charging
    t0 = sim.clock.now()
    event, _ = grid.grid_event_declare(
        source="operator", external_id="cancel-me", starts_at=t0 + 10 * M, ends_at=t0 + 3 * H, region="DE"
    )
    session = drive(session, until=_paused_and_verified)
    sim.clock.set(t0 + 40 * M)

    assert operator.grid_event_cancel(event_id=event.pk) == "ended"

    event.refresh_from_db()
    assert event.ends_at == t0 + 40 * M
    # The bonus is credited once the resume step has committed (the test's transaction never does).
    with django_capture_on_commit_callbacks(execute=True):
        session = drive(session)
    assert session.status == S.COMPLETED, session.reason
    resume = session.commands.get(kind=CommandKind.START, detail="resume")
    assert t0 + 40 * M <= resume.sent_at < t0 + 45 * M  # not at the event's original end (t0 + 3 h)
    bonus = GridBonusEntry.objects.get(event=event)
    shifted = bonus.participation.energy_shifted_wh
    assert 0 < shifted <= 30 * 11_000 // 60 + 50  # at most the 30 paused minutes at 11 kW
    assert bonus.lot.energy_wh == bonus.expected_energy_wh > 0  # credited to the wallet
    ledger_clean()


def test_removing_an_event_ahead_lets_the_session_charge_in_its_window(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    prices([40, 20, 10, 10, 40, 40])  # 08:00 …: cheapest 10:00–12:00, then 09:00–10:00
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=20_000)
    event, _ = grid.grid_event_declare(
        source="operator", external_id="ahead", starts_at=START + 2 * H, ends_at=START + 4 * H, region="DE"
    )
    session = session_services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=11_000, deadline=START + 6 * H
    )
    session = drive(session, until=lambda s: s.reason == "waiting_window")
    # The event blocks the cheapest hours: the plan waits for the next cheapest, 09:00.
    assert grid.windows_of(SmartPlan.objects.get(session=session))[0].start == START + H

    assert operator.grid_event_cancel(event_id=event.pk) == "removed"

    assert not DemandResponseEvent.objects.filter(pk=event.pk).exists()
    session = drive(session, until=lambda s: s.status == S.CHARGING)
    start = session.commands.filter(kind=CommandKind.START, ok=True).order_by("id").first()
    assert START + 2 * H <= start.sent_at < START + 2 * H + 2 * M  # in the cheap window again
    session = drive(session)
    assert session.status == S.COMPLETED, session.reason
    ledger_clean()
