"""Demand response against the simulator: a utility's signed event pauses enrolled sessions,
they resume after it (re-planned to keep their deadline), the report says who really stopped,
and the bonus is credited to the wallet once per verified participation, as a bonus credit lot
that the rest of the session spends before paid credit."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from prepaid.models import CreditLot, LedgerEntry, LotConsumption, Wallet
from sessions import services
from sessions.grid import api as grid_api
from sessions.grid import selectors as grid_selectors
from sessions.grid import services as grid
from sessions.models import (
    DemandResponseEvent,
    DemandResponseParticipation,
    GridBonusEntry,
    SessionStatus,
    SmartPlan,
)
from sessions.models.charging import CommandKind
from tests.plugins.grid import START

S = SessionStatus
H = timedelta(hours=1)
M = timedelta(minutes=1)


def post_event(client, sim, payload, *, secret=None, skew_s=0):
    body = json.dumps(payload).encode()
    stamp = int(sim.clock.now().timestamp()) + skew_s
    headers = grid_api.sign(body, timestamp=stamp, secret=secret)
    return client.post(
        reverse("grid:event-declare"),
        data=body,
        content_type="application/json",
        headers=headers,
    )


def event_payload(event_id="ev-1", start=START + 30 * M, end=START + H, **extra):
    return {"id": event_id, "starts_at": start.isoformat(), "ends_at": end.isoformat(), "region": "DE", **extra}


def paused_and_verified(session):
    plan = SmartPlan.objects.filter(session=session).first()
    return plan is not None and plan.paused and plan.pause_verified_at is not None


def test_a_signed_grid_event_pauses_an_enrolled_session_and_credits_the_bonus(
    sim,
    connect,
    credit,
    drive,
    driver,
    client,
    ledger_clean,
    django_user_model,
    django_capture_on_commit_callbacks,
    enrolled_charging,
):
    car, session = enrolled_charging
    t0 = sim.clock.now()
    # Another driver's car in the region, not enrolled: the event leaves it alone.
    other_user = django_user_model.objects.create_user("other", "o@example.com", "pw-other-42")
    other = connect(other_user, soc=0.3)
    credit(other_user, energy_wh=20_000)
    other_session = services.session_request(user=other_user, vehicle_id=other.vehicle.pk, energy_wh=5_000)

    answer = post_event(client, sim, event_payload(start=t0 + 20 * M, end=t0 + 50 * M, bonus_minor_per_kwh=10))
    assert answer.status_code == 201, answer.content
    assert answer.json()["participants"] == 1

    session = drive(session, until=paused_and_verified)
    assert session.reason == "paused_grid"
    pause = session.commands.get(kind=CommandKind.STOP, detail="pause")
    assert t0 + 20 * M <= pause.sent_at < t0 + 22 * M
    sim.clock.set(t0 + 35 * M)
    assert sim.true_state(car.sim_id)["charging"] is False

    # The bonus is credited once the resume step has committed (in its own transaction, wallet
    # first); the test's transaction never commits, so the captured callback runs at the block's end.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        session = drive(session, until=lambda s: s.commands.filter(detail="resume").exists())
    assert len(callbacks) == 1
    assert CreditLot.objects.filter(kind=CreditLot.Kind.BONUS).count() == 1
    session = drive(session)

    assert session.status == S.COMPLETED, session.reason
    resume = session.commands.get(kind=CommandKind.START, detail="resume")
    assert resume.sent_at >= t0 + 50 * M
    assert session.billed_wh <= 20_000
    event = DemandResponseEvent.objects.get()
    report = grid_selectors.grid_event_report(event=event)
    assert report["vehicles"] == 1 and report["verified_stopped"] == 1
    row = report["participants"][0]
    assert row["verified_stopped"] and row["pause_commands"] == 1
    # 30 minutes at 11 kW were planned in the window; the pause was verified ~2 minutes in.
    assert 4_500 <= report["energy_shifted_wh"] <= 5_500
    # 10 cents per kWh shifted, credited as energy at the 45 ct/kWh credit price.
    grant = GridBonusEntry.objects.get()
    expected = round(report["energy_shifted_wh"] * 10 / 45)
    assert grant.event == event and grant.participation.session == session
    assert grant.lot.kind == CreditLot.Kind.BONUS and grant.lot.purchase is None and grant.lot.amount_minor == 0
    assert grant.lot.energy_wh == expected == grant.expected_energy_wh
    assert grant.lot.wallet.user == driver
    line = LedgerEntry.objects.get(kind=LedgerEntry.Kind.BONUS)
    assert (line.lot, line.delta_wh, line.idempotency_key) == (grant.lot, expected, grant.idempotency_key)
    assert report["bonus_wh"] == row["bonus_wh"] == expected and not row["bonus_pending"]
    assert grid_selectors.bonus_total_wh(user=driver) == expected
    # The rest of the session spent the bonus before the paid credit.
    draws = {d.lot_id: d.energy_wh for d in LotConsumption.objects.filter(hold=session.hold)}
    assert draws[grant.lot_id] == expected
    assert sum(draws.values()) == session.billed_wh
    wallet = Wallet.objects.get(user=driver)
    assert wallet.balance_wh == 40_000 + expected - session.billed_wh
    # Crediting again, by the sweep or directly, changes nothing.
    assert grid.grid_bonuses_credit_due() == 0
    assert grid.grid_bonus_credit(participation_id=grant.participation_id) == grant
    assert CreditLot.objects.filter(kind=CreditLot.Kind.BONUS).count() == 1

    other_session = drive(other_session)
    assert not other_session.commands.filter(detail="pause").exists()
    assert not DemandResponseParticipation.objects.filter(session=other_session).exists()
    ledger_clean()


def test_a_grid_event_inside_the_cheap_window_near_the_deadline_moves_the_charge_earlier(
    sim, connect, credit, drive, driver, prices, ledger_clean
):
    # 08–14 dear, 14–15 cheap, 15–16 cheapest; deadline 16:00; one hour of charging.
    prices([40, 40, 40, 40, 40, 40, 10, 8])
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=40_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=11_000, deadline=START + 8 * H
    )
    session = drive(session, until=lambda s: s.reason == "waiting_window")
    assert session.next_action_at == START + 7 * H  # the cheapest hour, 15:00

    sim.clock.set(START + H)
    grid.grid_event_declare(
        source="utility", external_id="peak-15", starts_at=START + 7 * H, ends_at=START + 7 * H + 30 * M, region="DE"
    )
    session = drive(session, until=lambda s: s.status != S.REQUESTED)
    plan = SmartPlan.objects.get(session=session)
    assert plan.meets_deadline
    start = session.commands.get(kind=CommandKind.START, detail="")
    assert START + 6 * H <= start.sent_at < START + 6 * H + 5 * M  # moved to 14:00

    session = drive(
        session, until=lambda s: s.status in (S.COMPLETED, S.INTERRUPTED) or sim.clock.now() > START + 7 * H
    )
    if session.is_open:
        sim.clock.set(max(sim.clock.now(), START + 7 * H + 15 * M))
        assert sim.true_state(car.sim_id)["charging"] is False
        session = drive(session)
    assert session.status == S.COMPLETED, session.reason
    assert session.ended_at <= START + 8 * H
    assert session.billed_wh <= 11_000
    # The purchase stays the cap: no command ever started the car inside the event.
    inside = session.commands.filter(
        kind=CommandKind.START, sent_at__gte=START + 7 * H, sent_at__lt=START + 7 * H + 30 * M
    )
    assert not inside.exists()
    ledger_clean()


def test_an_event_that_covers_the_deadline_charges_after_it_and_says_so(sim, connect, credit, drive, driver, prices):
    prices([10, 10, 10, 10])
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    grid.grid_event_declare(
        source="operator", external_id="all-morning", starts_at=START, ends_at=START + 2 * H, region="DE"
    )
    credit(driver, energy_wh=40_000)
    session = services.smart_session_request(
        user=driver, vehicle_id=car.vehicle.pk, energy_wh=5_500, deadline=START + H
    )
    session = drive(session)
    plan = SmartPlan.objects.get(session=session)
    assert not plan.meets_deadline
    assert session.commands.get(kind=CommandKind.START).sent_at >= START + 2 * H
    assert session.status == S.COMPLETED and session.billed_wh <= 5_500


@pytest.mark.parametrize(
    "kwargs",
    [{"secret": "wrong-secret"}, {"skew_s": -3600}],
    ids=["bad-signature", "stale-timestamp"],
)
def test_the_endpoint_refuses_unauthenticated_events(sim, api, client, db, kwargs):
    assert post_event(client, sim, event_payload(), **kwargs).status_code == 403
    unsigned = client.post(reverse("grid:event-declare"), data=event_payload(), content_type="application/json")
    assert unsigned.status_code == 403
    assert not DemandResponseEvent.objects.exists()


def test_a_replayed_event_creates_nothing_new(sim, api, client, db):
    first = post_event(client, sim, event_payload("ev-9"))
    again = post_event(client, sim, event_payload("ev-9"))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == {**first.json(), "created": False}
    assert DemandResponseEvent.objects.count() == 1


def test_an_operator_declares_with_a_staff_session_and_reads_the_report(sim, api, client, operator, driver):
    client.force_login(driver)
    assert (
        client.post(reverse("grid:event-declare"), data=event_payload(), content_type="application/json").status_code
        == 403
    )
    client.force_login(operator)
    made = client.post(reverse("grid:event-declare"), data=event_payload("op-1"), content_type="application/json")
    assert made.status_code == 201
    event = DemandResponseEvent.objects.get()
    assert event.source == "operator" and event.declared_by == operator
    report = client.get(reverse("grid:event-report", args=[event.public_id]))
    assert report.status_code == 200 and report.json()["vehicles"] == 0


def test_an_event_needs_a_sane_window(sim, api, client, db):
    bad = post_event(client, sim, event_payload(start=START + H, end=START + 30 * M))
    assert bad.status_code == 400 and bad.json()["error"] == "bad_window"
    long = post_event(client, sim, event_payload(end=START + 12 * H))
    assert long.status_code == 400


def test_without_a_secret_no_utility_gets_in(sim, api, client, db, settings):
    body = json.dumps(event_payload("ev-x")).encode()
    headers = grid_api.sign(body, timestamp=int(sim.clock.now().timestamp()), secret="")
    settings.GRID_API_SECRET = ""
    answer = client.post(reverse("grid:event-declare"), data=body, content_type="application/json", headers=headers)
    assert answer.status_code == 403
