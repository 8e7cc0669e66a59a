"""A worker killed with SIGKILL mid-session and restarted; PostgreSQL dropping the workers'
connections mid-run. Real processes (controller loop + django-q2 cluster) over Redis on
PostgreSQL, the simulator as a threaded HTTP server, one sped-up clock shared by all."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django_q.models import Task

from sessions.models import ChargingSession, SessionStatus
from tests.plugins.processes import assert_fleet_invariants
from tests.system.scaleout.harness import WORKER_APPLICATION_NAME

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

S = SessionStatus


def _charging_or_later(n):
    return lambda: ChargingSession.objects.filter(status__in=[S.CHARGING, S.STOPPING]).count() >= n


# The in-flight worker is `run_controller`'s default (the only path for cars that answer a command
# after minutes); the django-q2 path stays for `--in-flight 0`. A killed worker of either kind is
# replaced without a lost or doubled session.
@pytest.mark.parametrize("in_flight", [0, 200], ids=["django-q2", "in-flight"])
def test_a_worker_killed_mid_session_is_replaced_and_every_session_completes(fleet, in_flight):
    fleet.request(30)
    first = fleet.group("first", in_flight=in_flight)
    fleet.wait(timeout_s=180, until=_charging_or_later(10))

    first.kill()
    killed_at = fleet.clock.now()
    assert not first.alive()
    fleet.group("second", in_flight=in_flight)
    fleet.wait(timeout_s=300)

    assert_fleet_invariants(fleet, crash_at=killed_at)
    assert ChargingSession.objects.filter(status=S.COMPLETED).count() >= 27
    # Which path stepped the sessions: django-q2 keeps its finished tasks.
    queued_steps = Task.objects.filter(func="sessions.tasks.session_step").count()
    assert (queued_steps > 0) == (in_flight == 0), queued_steps


def test_sessions_survive_the_database_dropping_the_workers_connections(fleet):
    fleet.request(30)
    group = fleet.group("only")
    fleet.wait(timeout_s=180, until=_charging_or_later(5))
    name = connection.settings_dict["NAME"]
    terminated = 0
    # About six minutes of simulated outage-by-resets (6 s of wall time at the test's speed).
    until = time.monotonic() + 6
    resets_ended_at = fleet.clock.now() + timedelta(seconds=6 * fleet.clock.speed)

    def reset_connections():
        nonlocal terminated
        if time.monotonic() > until:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name = %s AND pid <> pg_backend_pid()",
                [name, WORKER_APPLICATION_NAME],
            )
            terminated += cursor.fetchone()[0]

    fleet.wait(timeout_s=300, on_poll=reset_connections)

    assert terminated >= 4, terminated
    assert group.alive(), group.tail()
    assert_fleet_invariants(fleet, crash_at=resets_ended_at)
    # Steps lost to the resets only delay sessions; a session whose start window ran out during
    # them ends without billing. Most deliver what was bought.
    outcomes = list(ChargingSession.objects.values_list("status", "reason"))
    assert sum(status == S.COMPLETED for status, _ in outcomes) >= 20, outcomes
