"""What one controller step costs the database, by kind of step, and the readings a step sees.

A step reads its readings from the copy on the session row (`readings_cache`), not from the
table; the copy must give exactly what the table gives, and be rebuilt when it is not whole.
"""

from collections import defaultdict

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sessions import services
from sessions.controller import machine, metering, readings, runtime
from sessions.grid import services as grid
from sessions.models import SessionStatus
from sessions.models.charging import ChargingSession, MeterReading

S = SessionStatus


def table_readings(session) -> list[metering.Reading]:
    """The readings as the controller read them from the table before the copy existed."""
    since = session.start_sent_at or session.created_at
    return [
        metering.Reading(
            taken_at=r.taken_at,
            fetched_at=r.fetched_at,
            source=r.source,
            energy_added_wh=r.energy_added_wh,
            soc_bp=r.soc_bp,
            power_w=r.power_w,
            charge_state=r.charge_state or None,
            is_plugged_in=r.is_plugged_in,
            via=r.via,
        )
        for r in MeterReading.objects.filter(session=session, taken_at__gte=since)
    ]


def statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


def step_by_step(sim, session, *, on_step=None, max_steps=200):
    """Drive one session to its end, one claimed step at a time; returns {kind: [queries, ...]}
    where kind is "from→to" (the status before and after the step)."""
    costs = defaultdict(list)
    for _ in range(max_steps):
        session.refresh_from_db()
        if not session.is_open:
            return costs
        sim.clock.set(max(sim.clock.now(), session.next_action_at))
        [(session_id, token)] = runtime.sessions_claim_due()
        # The learned latency is cached per make and minute, shared by every session of the make.
        readings.latency_model(session.vehicle.make)
        # SQLite probes its JSON support once per connection, the first time a JSON value is read.
        assert connection.features.supports_json_field
        before = session.status
        with CaptureQueriesContext(connection) as queries:
            machine.session_step(session_id=session_id, lease_token=token)
        session.refresh_from_db()
        costs[f"{before}→{session.status}"].append(len(statements(queries)))
        if on_step:
            on_step(session)
    raise AssertionError("session did not end")


def assert_copy_matches_table(session):
    loaded = machine._session_for_step(session.pk)
    assert loaded.readings_cached == loaded.readings_stored == MeterReading.objects.filter(session=session).count()
    assert readings._readings(loaded) == table_readings(loaded)
    assert not getattr(loaded, "readings_dirty", False)  # whole: nothing was re-read


@pytest.mark.parametrize("profile", ["generic", "tesla_fleet", "vw_group"])
def test_every_kind_of_step_but_settlement_costs_at_most_five_queries(sim, connect, credit, driver, profile):
    car = connect(driver, profile, soc=0.3)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)

    costs = step_by_step(sim, session, on_step=assert_copy_matches_table)

    session.refresh_from_db()
    assert session.status == S.COMPLETED
    assert {"requested→starting", "starting→charging", "charging→stopping", "stopping→completed"} <= set(costs)
    # Settlement writes the ledger (hold, lots, entries) in the step's transaction: not counted.
    # On PostgreSQL a step that moves writes its transition log in its compare-and-set UPDATE
    # (one statement); SQLite has no data-modifying WITH, so there the log is one INSERT more.
    apart = 0 if connection.vendor == "postgresql" else 1
    for kind, counts in costs.items():
        moved = kind.split("→")[0] != kind.split("→")[1]
        if kind != "stopping→completed":
            assert max(counts) <= 5 + (apart if moved else 0), (kind, counts)
    # The start: session load (with the car's previous session, whose backstop may still be on
    # the car: sessions.controller.limits.driver_limit), reading, commands, the update and its log.
    assert max(costs["requested→starting"]) <= 4 + apart, costs
    # Charging seen: the same, and the start's email to the outbox in the same transaction.
    assert max(costs["starting→charging"]) <= 5 + apart, costs
    # A read while charging: session load, reading insert, command insert, compare-and-set.
    assert max(costs.get("charging→charging", [4])) <= 4, costs


def test_the_start_step_of_an_enrolled_car_looks_up_no_enrollment(sim, connect, credit, driver):
    car = connect(driver, soc=0.3)
    grid.enrollment_set(vehicle=car.vehicle, region="DE")
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    [(session_id, token)] = runtime.sessions_claim_due()
    readings.latency_model(car.vehicle.make)
    assert connection.features.supports_json_field  # probed once per connection (SQLite)
    with CaptureQueriesContext(connection) as queries:
        machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert session.status == S.STARTING
    # With no event ahead: load (enrollment and the car's previous session annotated), reading,
    # event lookup, commands, update (and its log, apart on SQLite).
    apart = 0 if connection.vendor == "postgresql" else 1
    assert len(statements(queries)) <= 5 + apart, "\n".join(statements(queries))
    assert not any("demandresponseenrollment" in q and 'vehicle_id" = ' in q for q in statements(queries)[1:])


def test_a_copy_missing_a_stored_reading_is_rebuilt_from_the_table(sim, connect, credit, driver):
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    for _ in range(3):  # request, start, first read while charging
        session.refresh_from_db()
        sim.clock.set(max(sim.clock.now(), session.next_action_at))
        [(session_id, token)] = runtime.sessions_claim_due()
        machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert session.status == S.CHARGING and session.readings_cached >= 2
    # A step that stored a reading and then lost its lease (or crashed) never wrote the copy.
    last = MeterReading.objects.filter(session=session).last()
    last.pk = None
    last.taken_at += (last.taken_at - session.start_sent_at) / 10
    last.fetched_at = last.taken_at
    last.save()

    loaded = machine._session_for_step(session.pk)
    assert loaded.readings_stored == loaded.readings_cached + 1
    assert readings._readings(loaded) == table_readings(loaded)
    assert loaded.readings_dirty and loaded.readings_cached == loaded.readings_stored


def test_a_step_that_stays_in_its_state_commits_without_a_transaction_around_its_update(sim, connect, credit, driver):
    """Its one UPDATE is atomic by itself: BEGIN and COMMIT would be two more round trips on the
    worker's connection, for most steps of a charging session. A step that moves keeps its
    transaction (the transition log, the driver's notice, the settlement commit with it)."""
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    outside = len(connection.atomic_blocks)  # the test's own transaction
    depth_at_commit: dict[str, set[int]] = defaultdict(set)
    seen: list[int] = []

    def note(execute, sql, params, many, context):
        if 'UPDATE "charging_chargingsession"' in sql and '"version" = (' in sql:
            seen.append(len(connection.atomic_blocks) - outside)
        return execute(sql, params, many, context)

    for _ in range(200):
        session.refresh_from_db()
        if not session.is_open:
            break
        sim.clock.set(max(sim.clock.now(), session.next_action_at))
        [(session_id, token)] = runtime.sessions_claim_due()
        before, seen[:] = session.status, []
        with connection.execute_wrapper(note):
            machine.session_step(session_id=session_id, lease_token=token)
        session.refresh_from_db()
        depth_at_commit[f"{before}→{session.status}"].update(seen)

    assert session.status == S.COMPLETED
    assert depth_at_commit["charging→charging"] == {0}
    for kind in ("requested→starting", "starting→charging", "charging→stopping", "stopping→completed"):
        assert depth_at_commit[kind] == {1}, kind


def test_the_copy_keeps_how_each_reading_came_and_an_older_copy_reads_as_unknown(sim, connect, credit, driver):
    # Metering trusts a polled level of an event-reporting car to hold until it was read, and
    # only a polled one (metering.MeterContext.level_event_lag_s): the copy must say which it is.
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    for _ in range(3):
        session.refresh_from_db()
        sim.clock.set(max(sim.clock.now(), session.next_action_at))
        [(session_id, token)] = runtime.sessions_claim_due()
        machine.session_step(session_id=session_id, lease_token=token)
    loaded = machine._session_for_step(session.pk)
    assert {r.via for r in readings._reading_rows(loaded)} == {"poll"}

    # A copy written before it said how its readings came: unknown, never taken for a poll.
    old = [row[:8] for row in loaded.readings_cache]
    session.__class__.objects.filter(pk=session.pk).update(readings_cache=old)
    loaded = machine._session_for_step(session.pk)
    assert {r.via for r in readings._reading_rows(loaded)} == {""}


def test_the_start_takes_the_cars_previous_session_from_the_load(sim, connect, credit, driver):
    """The previous session on the car is loaded with the session: a backstop it left on the car
    still makes its recorded limit the driver's, with no lookup of its own."""
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    first = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    step_by_step(sim, first)
    first.refresh_from_db()
    assert first.status == S.COMPLETED and first.limit_to_restore and first.driver_limit_bp is not None
    # Its restore has not reached the car yet: the car still shows the backstop.
    ChargingSession.objects.filter(pk=first.pk).update(limit_restored=False)
    second = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    sim.clock.set(max(sim.clock.now(), second.next_action_at))
    [(session_id, token)] = runtime.sessions_claim_due()
    with CaptureQueriesContext(connection) as queries:
        machine.session_step(session_id=session_id, lease_token=token)
    second.refresh_from_db()
    assert second.status == S.STARTING
    assert second.driver_limit_bp == first.driver_limit_bp and second.limit_to_restore
    lookups = [q for q in statements(queries)[1:] if q.startswith("SELECT") and "charging_chargingsession" in q]
    assert not lookups, lookups


@pytest.mark.postgres
def test_a_move_that_lost_its_lease_logs_no_transition(sim, connect, credit, driver):
    """The transition log is written by the compare-and-set UPDATE's own statement: when another
    worker moved the session meanwhile, neither the move nor its log line is written."""
    car = connect(driver, soc=0.3)
    credit(driver, energy_wh=30_000)
    session = services.session_request(user=driver, vehicle_id=car.vehicle.pk, energy_wh=8_000)
    [(session_id, token)] = runtime.sessions_claim_due()

    def taken_over(execute, sql, params, many, context):
        if sql.startswith("WITH moved AS (UPDATE"):
            with connection.cursor() as cursor:  # another worker's commit, just before ours
                cursor.execute("UPDATE charging_chargingsession SET version = version + 1 WHERE id = %s", [session_id])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(taken_over):
        measured = machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert measured.outcome == "lost_lease"
    assert session.status == S.REQUESTED
    assert list(session.transitions.values_list("to_status", flat=True)) == [S.REQUESTED]

    # Not taken over: the move and its log line.
    session.lease_token = None
    ChargingSession.objects.filter(pk=session_id).update(lease_token=None, lease_until=None)
    [(session_id, token)] = runtime.sessions_claim_due()
    machine.session_step(session_id=session_id, lease_token=token)
    session.refresh_from_db()
    assert session.status == S.STARTING
    assert list(session.transitions.values_list("from_status", "to_status", "reason")) == [
        ("", S.REQUESTED, ""),
        (S.REQUESTED, S.STARTING, "start_sent"),
    ]
    assert session.transitions.last().at == session.start_sent_at
