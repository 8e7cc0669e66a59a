"""Fault injection against the real simulator and the real controller, in virtual time.

`FlakyTransport` sits between our vehicle API client and the simulator's WSGI app and, from a
seeded random stream, fails a share of the vehicle calls the way Smartcar's cloud does: 429 with
`Retry-After`, 502 UPSTREAM, 409 VEHICLE_STATE UNKNOWN, or a read timeout *after* the request
reached the car (a START or STOP that took effect while we heard nothing). Nothing is mocked
behind it: the simulator applies every request that gets through.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command
from django.db.models import Sum

from prepaid.models import Hold, Wallet
from sessions.controller import runtime
from sessions.controller.step import STOPPING_DEADLINE
from sessions.models import ChargingSession
from sessions.models.charging import OPEN_STATUSES, TERMINAL_STATUSES, CommandKind
from tests.plugins.cars import START, Car, client_in_use, simulator_client, simulator_transport
from vehicle_sim.app import error_body
from vehicle_sim.errors import ApiError

# The controller's retry policy, as bounds a test can check (sessions/services.py, policy.py):
# STOP: one send, up to two resends while none was accepted, then one at each check that finds
# the car still charging (issue 18 §4: the limit and the operator add to the STOP, they never end
# it), checks backing off from 7.5 s, within the STOPPING deadline: never two in a burst.
MAX_STOPS = 3 + int(STOPPING_DEADLINE / timedelta(minutes=1))
MIN_STOP_GAP = timedelta(seconds=7)
# START: retried only while REQUESTED, with backoff from 15 s, inside REQUESTED_DEADLINE.
MAX_STARTS = 8

FAULT_KINDS = ("rate_limited", "upstream", "unknown_state", "timeout")


class FlakyTransport(httpx.BaseTransport):
    """Fails `rate` of the vehicle calls (not the IAM ones) from a seeded random stream, with v3
    `errors[]` bodies."""

    def __init__(self, inner: httpx.BaseTransport, *, rate: float, seed: int) -> None:
        self.inner = inner
        self.rate = rate
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.enabled = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.enabled or not request.url.path.startswith("/v3/vehicles/") or self.rng.random() >= self.rate:
            return self.inner.handle_request(request)
        kind = self.rng.choice(FAULT_KINDS)
        self.injected[kind] += 1
        if kind == "timeout":
            # The request reached the car; only the answer is lost.
            self.inner.handle_request(request).read()
            raise httpx.ReadTimeout("injected: no answer", request=request)
        headers = {"content-type": "application/json", "sc-request-id": f"fault-{sum(self.injected.values())}"}
        if kind == "rate_limited":
            error = ApiError("RATE_LIMIT", "VEHICLE", retry_after=self.rng.randint(5, 90))
            headers["retry-after"] = str(error.retry_after)
        elif kind == "upstream":
            error = ApiError("UPSTREAM", "UNKNOWN_ISSUE")
        else:
            error = ApiError("VEHICLE_STATE", "UNKNOWN")
        body = json.dumps(error_body(error)).encode()
        return httpx.Response(error.status, headers=headers, content=body, request=request)


@pytest.fixture(autouse=True)
def _fresh_latency_cache(fresh_latency_cache):
    """The learned STOP latency is cached per make and minute; tests must not share it."""


@pytest.fixture
def flaky():
    """Settings of the transport the `api` fixture builds: set `flaky.rate` / `flaky.seed` first."""

    class Knobs:
        rate = 0.0
        seed = 0
        transport: FlakyTransport | None = None

    return Knobs


@pytest.fixture
def api(sim, flaky):
    transport = FlakyTransport(simulator_transport(sim), rate=flaky.rate, seed=flaky.seed)
    flaky.transport = transport
    with client_in_use(sim, simulator_client(transport, clock=sim.clock.now)) as client:
        yield client


def run_fleet(sim, *, max_ticks: int = 20_000, max_hours: float = 30, each_tick=None) -> int:
    """Drive the real controller loop in virtual time until no session is open.

    Each turn jumps the clock to the earliest due action and runs one loop tick (steps run inline:
    Q_SYNC). Returns the number of ticks."""
    deadline = sim.clock.now() + timedelta(hours=max_hours)
    for ticks in range(max_ticks):
        open_ = ChargingSession.objects.filter(status__in=OPEN_STATUSES)
        due = open_.order_by("next_action_at").values_list("next_action_at", flat=True).first()
        if not open_.exists():
            return ticks
        assert due is not None, "an open session has no next action"
        if due > sim.clock.now():
            sim.clock.set(due)
        assert sim.clock.now() < deadline, "sessions did not end in virtual time"
        if each_tick:
            each_tick(ticks)
        runtime.tick()
    raise AssertionError(f"sessions still open after {max_ticks} ticks")


def assert_money_safe(*, credited_wh: dict[int, int]) -> None:
    """The invariants every fault scenario ends with (issue 9 §1)."""
    for session in ChargingSession.objects.all():
        assert session.status in TERMINAL_STATUSES, (session.pk, session.status, session.reason)
        assert 0 <= session.billed_wh <= session.purchased_wh, (session.pk, session.billed_wh)
        commands = session.commands
        # A STOP refused for lost consent never left us with a token: not an attempt at the car.
        stops = commands.filter(kind=CommandKind.STOP).exclude(error_type="CONSENT_REQUIRED").count()
        starts = commands.filter(kind=CommandKind.START).count()
        assert stops == session.stop_attempts, (session.pk, stops, session.stop_attempts)
        assert stops <= MAX_STOPS, (session.pk, stops)
        sent = list(commands.filter(kind=CommandKind.STOP).order_by("id").values_list("sent_at", flat=True))
        assert all(b - a >= MIN_STOP_GAP for a, b in itertools.pairwise(sent)), (session.pk, sent)
        assert starts <= MAX_STARTS, (session.pk, starts)
        # No START after one was accepted: an accepted START is never repeated.
        accepted = commands.filter(kind=CommandKind.START, ok=True).order_by("id").first()
        if accepted:
            assert not commands.filter(kind=CommandKind.START, id__gt=accepted.id).exists(), session.pk
        hold = Hold.objects.get(pk=session.hold_id)
        assert hold.status in (Hold.Status.SETTLED, Hold.Status.RELEASED), (session.pk, hold.status)
    # No credit lost or created: each wallet holds what was credited minus what was billed.
    for user_id, credited in credited_wh.items():
        billed = ChargingSession.objects.filter(user_id=user_id).aggregate(total=Sum("billed_wh"))["total"] or 0
        assert Wallet.objects.get(user_id=user_id).balance_wh == credited - billed, user_id
    call_command("ledger_check")  # SystemExit(1) on drift


__all__ = ["START", "Car", "FlakyTransport", "assert_money_safe", "run_fleet"]
