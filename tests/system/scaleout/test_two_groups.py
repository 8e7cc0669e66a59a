"""Issue 9 §3: two controller+worker groups over Redis on one PostgreSQL run 500 sessions."""

import os
from datetime import timedelta

import pytest

from sessions.models import ChargingSession, SessionStatus
from sessions.models.charging import TERMINAL_STATUSES
from tests.plugins.processes import assert_fleet_invariants

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

S = SessionStatus
SESSIONS = int(os.environ.get("SCALEOUT_SESSIONS", "500"))
# Drivers arrive over 15 simulated minutes, as a fleet does, not in one instant.
ARRIVALS = timedelta(minutes=15)
# Wall-clock budget for the run (a loaded CI machine is slow; a quiet one takes about a minute).
TIMEOUT_S = float(os.environ.get("SCALEOUT_TIMEOUT_S", "600"))


def test_two_groups_run_500_sessions_each_stop_sent_once(fleet):
    fleet.request(SESSIONS, arrivals=ARRIVALS)
    a, b = fleet.group("a"), fleet.group("b")

    fleet.wait(timeout_s=TIMEOUT_S)

    assert a.alive() and b.alive(), a.tail() + b.tail()
    assert_fleet_invariants(fleet)
    assert ChargingSession.objects.filter(status=S.COMPLETED).count() >= SESSIONS * 0.9


def test_a_group_killed_halfway_leaves_the_other_to_finish(fleet):
    fleet.request(SESSIONS, arrivals=ARRIVALS)
    a, b = fleet.group("a"), fleet.group("b")

    # Halfway: a quarter of the sessions are stopping or done, the rest charging or starting.
    fleet.wait(
        timeout_s=TIMEOUT_S,
        until=lambda: (
            ChargingSession.objects.filter(status__in=[S.STOPPING, *TERMINAL_STATUSES]).count() >= SESSIONS // 4
        ),
    )
    a.kill()
    killed_at = fleet.clock.now()
    fleet.wait(timeout_s=TIMEOUT_S)

    assert b.alive(), b.tail()
    assert_fleet_invariants(fleet, crash_at=killed_at)
    assert ChargingSession.objects.filter(status=S.COMPLETED).count() >= SESSIONS * 0.9
