"""Where a session's vehicle API calls go (issue 8 §1): few reads, the safety calls kept, honest counts."""

import itertools

import pytest

from sessions.models import SessionStatus, VehicleCommand
from sessions.models.charging import CommandKind, SessionTransition
from tests.plugins.cars import delivered_wh

S = SessionStatus


def start(driver, car, energy_wh):
    from sessions import services

    return services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=energy_wh)


def reads_while(session, status):
    """Reads sent while the session was in `status`: STARTING from the START on (the step that
    sends it reads the car first), CHARGING until the STOP."""
    commands = VehicleCommand.objects.filter(session=session).order_by("id")
    moves = dict(SessionTransition.objects.filter(session=session).values_list("to_status", "at"))
    if status == S.STARTING:
        begin = commands.filter(kind=CommandKind.START).first().id
        reads = commands.filter(kind=CommandKind.READ, id__gt=begin)
        return list(reads.filter(sent_at__lte=moves[S.CHARGING]) if S.CHARGING in moves else reads)
    reads = commands.filter(kind=CommandKind.READ, sent_at__gt=moves[S.CHARGING])
    stop = commands.filter(kind=CommandKind.STOP).first()
    return list(reads.filter(id__lt=stop.id) if stop else reads)


def billed_sim_calls(sim, car, before):
    after = sim.true_state(car.sim_id)["calls"]
    return sum(n - before.get(k, 0) for k, n in after.items() if k != "POST /batch")


def test_an_energy_counter_session_reads_sparsely_early_and_close_to_the_stop(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)

    session = drive(start(driver, car, energy_wh=20_000))

    assert session.status == S.COMPLETED, session.reason
    assert abs(delivered_wh(sim, car, before) - 20_000) <= 200
    # The read confirming the start is the first metering point; then reads, each after 70 % of
    # the time left, so that a power that moves (load management, heating) is seen before the
    # STOP: a few reads over the two hours, the last within minutes of the STOP.
    assert len(reads_while(session, S.STARTING)) == 1
    reads = reads_while(session, S.CHARGING)
    assert 2 <= len(reads) <= 5
    stop = session.commands.filter(kind=CommandKind.STOP).first()
    assert (stop.sent_at - reads[-1].sent_at).total_seconds() <= 800
    gaps = [(b.sent_at - a.sent_at).total_seconds() for a, b in itertools.pairwise(reads)]
    assert gaps == sorted(gaps, reverse=True)
    # 7 fixed calls (the read before START — its signals carry the driver's limit too —,
    # backstop, START, confirm, STOP, verification, restore) and the metering reads; counted as
    # the simulator counted them.
    assert session.api_calls == 7 + len(reads)
    assert session.api_calls == billed_sim_calls(sim, car, before["calls"])


def test_the_backstop_stays_where_it_protects_the_purchase(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.4)  # the driver's limit is 80 %: a 10 kWh purchase ends near 53 %
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=10_000))
    # 40 % + 15.7 % (10 kWh in a pack of as little as 85 % of 75 kWh) + a 1 % step + the 2 %
    # margin, whole percent up: never short of the purchase, whatever the pack really holds.
    assert session.backstop_limit_bp == 5900
    limits = list(session.commands.filter(kind=CommandKind.SET_LIMIT).values_list("detail", flat=True))
    assert limits == ["5900bp", "restore"]
    assert session.limit_restored


def test_no_backstop_where_the_drivers_limit_already_protects(sim, connect, credit, drive, driver):
    car = connect(driver, soc=0.5)  # 25 kWh from 50 % would end at 83 %: past the 80 % limit
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=25_000))
    assert session.backstop_limit_bp is None
    assert not session.commands.filter(kind=CommandKind.SET_LIMIT).exists()


def test_a_session_ending_on_the_taper_reads_close_to_the_end(sim, connect, credit, drive, driver):
    # From 62 % a 12 kWh purchase ends near 78 %, where the power falls: one read is not enough.
    car = connect(driver, soc=0.62, limit=0.9)
    credit(driver, energy_wh=40_000)
    before = sim.true_state(car.sim_id)
    session = drive(start(driver, car, energy_wh=12_000))
    assert session.status == S.COMPLETED, session.reason
    assert len(reads_while(session, S.CHARGING)) >= 2
    assert abs(delivered_wh(sim, car, before) - 12_000) <= 200


@pytest.mark.parametrize(("profile", "most_reads"), [("generic", 1), ("vw_group", 2)])
def test_confirming_the_start_follows_the_cars_telemetry(sim, connect, credit, drive, driver, profile, most_reads):
    """A 450-s car is read once its next snapshot exists, not every minute until one shows charging."""
    car = connect(driver, profile=profile, soc=0.3, limit=0.9)
    credit(driver, energy_wh=40_000)
    session = drive(start(driver, car, energy_wh=10_000), until=lambda s: s.status == S.CHARGING)
    assert session.status == S.CHARGING
    assert 1 <= len(reads_while(session, S.STARTING)) <= most_reads
