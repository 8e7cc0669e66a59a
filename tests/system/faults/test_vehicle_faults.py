"""Vehicle API faults over many seeded sessions: the driver's money is safe whatever the car's cloud does."""

import pytest

from sessions import services
from sessions.models import ChargingSession, SessionStatus, VehicleConnection
from sessions.models.charging import CommandKind
from tests.system.faults.conftest import assert_money_safe, run_fleet
from vehicle_sim import v3

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

S = SessionStatus
PROFILES = ["generic", "tesla_fleet", "generic", "hk_event_gen2"]


def _fleet(django_user_model, connect, credit, *, cars: int, energy_wh: int = 12_000, **car):
    credited, sessions = {}, []
    for i in range(cars):
        user = django_user_model.objects.create_user(f"driver{i}", f"d{i}@example.com", "drive-safely-42")
        credit(user, energy_wh=30_000)
        credited[user.pk] = 30_000
        parked = connect(user, PROFILES[i % len(PROFILES)], soc=0.2 + 0.05 * (i % 5), **car)
        sessions.append(
            (services.session_request(user=user, vehicle_id=parked.vehicle.pk, energy_wh=energy_wh), parked)
        )
    return credited, sessions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_keeps_money_safe_with_30_percent_of_calls_failing(
    seed, sim, flaky, api, connect, credit, django_user_model
):
    flaky.transport.rate = 0.3
    flaky.transport.rng.seed(seed)
    credited, sessions = _fleet(django_user_model, connect, credit, cars=8)

    run_fleet(sim)

    injected = flaky.transport.injected
    assert all(injected[kind] > 0 for kind in ("rate_limited", "upstream", "unknown_state", "timeout")), injected
    assert_money_safe(credited_wh=credited)
    # The faults delay charging; they do not stop most sessions from delivering what was bought.
    completed = ChargingSession.objects.filter(status=S.COMPLETED).count()
    assert completed >= len(sessions) // 2, list(ChargingSession.objects.values_list("status", "reason"))
    for session, car in sessions:
        session.refresh_from_db()
        if session.status == S.COMPLETED and not session.stop_not_carried_out:
            assert sim.true_state(car.sim_id)["charging"] is False, session.pk


def test_it_bills_at_most_the_purchase_when_the_car_ignores_stop(sim, flaky, api, connect, credit, django_user_model):
    credited, sessions = _fleet(django_user_model, connect, credit, cars=4, energy_wh=8_000)
    for _, car in sessions:
        sim.set_vehicle(car.sim_id, faults={"ignore_stop": True})

    run_fleet(sim)

    assert_money_safe(credited_wh=credited)
    for session, _car in sessions:
        session.refresh_from_db()
        # The car kept charging past the purchase; the driver pays the purchase and no more.
        assert session.billed_wh <= session.purchased_wh
        # Stopped by the charge limit the car takes (the backstop set at START, or the escalation's),
        # or flagged for the operator.
        stopped_by_limit = session.backstop_limit_bp is not None or session.stop_escalated
        assert session.stop_not_carried_out or stopped_by_limit, (session.pk, session.reason)
        # A STOP again while the car charged on, unless its backstop stopped it before a retry.
        assert session.commands.filter(kind=CommandKind.STOP).count() >= (1 if session.backstop_limit_bp else 2)


def test_it_settles_what_was_delivered_when_consent_is_revoked_mid_session(
    sim, flaky, api, connect, credit, django_user_model
):
    flaky.transport.rate = 0.1
    credited, sessions = _fleet(django_user_model, connect, credit, cars=6)
    revoked: set[int] = set()

    def revoke_some(_tick):
        # Half the drivers withdraw access once their car is charging.
        for session, _car in sessions[::2]:
            session.refresh_from_db()
            if session.pk in revoked or session.status != S.CHARGING or session.delivered_wh < 2_000:
                continue
            connection = VehicleConnection.objects.get(pk=session.vehicle.connection_id)
            platform = v3.platform(sim)
            with sim.lock:
                # The driver removes the car from the application at the vehicle API.
                platform.delete_connection(
                    platform.connection_id(connection.external_user_id, session.vehicle.external_id)
                )
            revoked.add(session.pk)

    run_fleet(sim, each_tick=revoke_some)

    assert revoked, "no session reached charging"
    assert_money_safe(credited_wh=credited)
    for session, _car in sessions:
        session.refresh_from_db()
        if session.pk in revoked:
            assert session.reason == "consent", (session.pk, session.status, session.reason)
            assert session.status in (S.INTERRUPTED, S.COMPLETED)
            assert 0 < session.billed_wh <= session.purchased_wh
