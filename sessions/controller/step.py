"""One step of the controller: its context (the session, the clock, the vehicle calls it counts
and records), what it decided (`Outcome`), how long each state may last, and the reasons the
driver reads."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils.translation import gettext_noop

from sessions import clock
from sessions.models.charging import ChargingSession, CommandKind, SessionStatus, VehicleCommand
from sessions.models.grid import SmartPlan
from sessions.models.vehicles import Vehicle
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api.v3_types import CommandResult
from sessions.vehicles.services import ConsentRequired, call_vehicle, get_client

S = SessionStatus

# How long each state may last before the session is moved on (no session waits forever).
REQUESTED_DEADLINE = timedelta(minutes=20)
STARTING_DEADLINE = timedelta(minutes=15)
STOPPING_DEADLINE = timedelta(hours=2)
MIN_CHARGING_DEADLINE = timedelta(hours=6)

# Retries of a failed call: exponential backoff from 15 s, capped, with jitter.
RETRY_BASE_S = 15.0
RETRY_CAP_S = 300.0

# States in which a poke (a grid event joined while a step ran) brings the next step forward:
# those whose step consults the smart plan.
POKED_STATUSES = (S.REQUESTED, S.CHARGING)

# Plain-language reasons the driver sees, by machine code. Stored in English on the session
# (reason_message); the pages say them in the driver's language (web.pages.selectors).
REASONS: dict[str, str] = {
    "requested": gettext_noop("Waiting for the car to answer."),
    "start_sent": gettext_noop("Start sent; waiting for the car to begin charging."),
    "charging": gettext_noop("Charging."),
    "threshold": gettext_noop("Stopping: the stop is sent so that the car ends at the energy you bought."),
    "driver_stop": gettext_noop("Stopped at your request."),
    "operator_stop": gettext_noop("Stopped by the operator."),
    "operator_close": gettext_noop("Closed by the operator; you were billed only for what was delivered."),
    "completed": gettext_noop("The energy you bought has been delivered."),
    "unplugged": gettext_noop("The car is not plugged in. Plug it in, then start again."),
    "unplugged_mid": gettext_noop("The car was unplugged. You were billed only for what was delivered."),
    "car_full": gettext_noop("The car is full or at its charge limit. You were billed only for what was delivered."),
    "car_stopped": gettext_noop("The car stopped charging by itself. You were billed only for what was delivered."),
    "already_full": gettext_noop("The car is already full or at its charge limit; nothing to charge."),
    "asleep": gettext_noop("The car is asleep and did not wake up. Open the car's app to wake it, then try again."),
    "unreachable": gettext_noop("The car cannot be reached (no mobile signal?). Try again when it is online."),
    "consent": gettext_noop("Access to the car was withdrawn. Reconnect the vehicle, then start again."),
    "not_capable": gettext_noop("This car does not accept remote charging commands."),
    "cannot_stop": gettext_noop(
        "This car accepts no remote STOP, so a prepaid session could not end at your purchase."
    ),
    "low_battery": gettext_noop(
        "The car refuses remote charging commands at its current battery level "
        "(some makes need 50 % or more). Start the charge from the car or its app."
    ),
    "charge_fault": gettext_noop("The charger delivers no current (fault or charging schedule). Check the charger."),
    "did_not_start": gettext_noop("The car did not start charging. Check the cable and the car's charging schedule."),
    "vehicle_error": gettext_noop("The car's service did not accept the command. Try again later."),
    "timeout": gettext_noop("The session took too long and was closed; you were billed only for what was delivered."),
    "command_budget": gettext_noop(
        "The car's maker refused the command: it takes only so many remote charge commands "
        "(in a row until the car is driven, or per day). Drive the car, or start the charge from the car."
    ),
    "stop_refused": gettext_noop(
        "Your car refused our remote stop (its maker limits remote charge commands). Stop the "
        "charge in the car or its app, or unplug it, now: you pay only what you bought."
    ),
    "stop_not_verified": gettext_noop("We could not confirm the car stopped; you were billed at most what you bought."),
    "battery_max": gettext_noop(
        "Stopped at your battery's maximum charge; the rest of your credit stays in your wallet."
    ),
    "battery_max_reached": gettext_noop("The battery is already at the maximum you chose; nothing to charge."),
    "waiting_window": gettext_noop("Smart charging: waiting for the next planned (cheaper) window."),
    "paused_plan": gettext_noop("Smart charging: paused until the next planned (cheaper) window."),
    "paused_grid": gettext_noop("Paused for a grid event you take part in; charging resumes after it."),
}


def _reason(code: str) -> str:
    return REASONS.get(code, code)


@dataclass
class Outcome:
    """What a step decided: fields to write, an optional move, when to act next."""

    changes: dict[str, Any] = field(default_factory=dict)
    to_status: str | None = None
    reason: str = ""
    next_at: datetime | None = None
    settle: bool = False
    # Smart plan columns, written in the step's transaction only if the step keeps its lease.
    plan_changes: dict[str, Any] = field(default_factory=dict)
    after: list = field(default_factory=list)


class _Step:
    """The context of one step: the session, the clock, and counted, recorded vehicle calls."""

    def __init__(self, session: ChargingSession) -> None:
        self.session = session
        self.vehicle = session.vehicle
        # The moment the step decides at: its start, then each answer's arrival (`call`). A car
        # may take minutes to answer; what the step plans after an answer counts from then, or a
        # step that waited 20 s would plan its next action 20 s in the past (due at once).
        self.now = clock.now()
        self.calls = 0
        # Command records, written in one INSERT when the step ends (whatever way it ends).
        self.records: list[VehicleCommand] = []
        self.not_before: datetime | None = None
        # The charge limit, as the last read's signals reported it: saves a call.
        self.reported_limit_bp: int | None = None
        # Smart plan columns and effects (bonus lines, DR verification) for `_commit`'s transaction.
        self.plan_changes: dict[str, Any] = {}
        self.after: list = []
        # Reads of the car this step paid for, and the webhook reading it used instead of one.
        self.billed_reads = 0
        self.webhook_used_at: datetime | None = None
        # Seeded per session and attempt: two workers (or a replay) draw the same jitter.
        self.rng = random.Random(f"{session.pk}:{session.version}")  # noqa: S311 - jitter, not a secret

    def call(self, kind: str, detail: str, fn, *, billed: int = 1):
        """Run `fn(client, user_id)` against the vehicle API (`user_id`: the vehicle API user the
        connection acts for); record the command; count the calls."""
        session, vehicle = self.session, self.vehicle
        client = get_client()
        sent_at = clock.now()
        record = VehicleCommand(
            session=session, vehicle=vehicle, kind=kind, detail=detail, sent_at=sent_at, make=vehicle.make
        )
        self.calls += billed
        if kind == CommandKind.READ:
            self.billed_reads += billed
        try:
            result = call_vehicle(vehicle.connection, lambda user_id: fn(client, user_id))
        except api_errors.VehicleApiError as exc:
            record.ok = False
            record.error_type = (exc.type or type(exc).__name__)[:48]
            record.error_code = (exc.code or "")[:48]
            record.http_status = exc.status
            record.request_id = (exc.request_id or "")[:64]
            if isinstance(exc, api_errors.RateLimited) and exc.retry_after_s:
                self.not_before = clock.now() + timedelta(seconds=exc.retry_after_s)
            raise
        except ConsentRequired:
            record.ok = False
            record.error_type = "CONSENT_REQUIRED"
            raise
        except Exception as exc:
            # Anything else (a bug, a transport the client does not wrap) is recorded as a failed
            # call and raised as itself, not hidden behind the success branch below.
            record.ok = False
            record.error_type = type(exc).__name__[:48]
            raise
        finally:
            answered = clock.now()
            self.now = max(self.now, answered)
            record.latency_ms = max(0, int((answered - sent_at).total_seconds() * 1000))
            if record.ok is None:
                record.ok = True
                meta = getattr(result, "meta", None)
                record.request_id = ((meta.request_id if meta else "") or "")[:64]
                _command_times(record, result)
            self.records.append(record)
        return result

    def backoff(self, attempts: int) -> datetime:
        ceiling = min(RETRY_CAP_S, RETRY_BASE_S * 2**attempts)
        delay = ceiling / 2 + self.rng.uniform(0, ceiling / 2)
        at = self.now + timedelta(seconds=delay)
        return max(at, self.not_before) if self.not_before else at


def _command_times(record: VehicleCommand, result: Any) -> None:
    """A command the car carried out (v3: HTTP 200, SUCCESS) says when: `completedAt` − `executedAt`
    is how long it took to act, a latency measured by the API itself (a virtual clock answers at
    once, so our own wall time is no measure of it). A 202 (still running) tells nothing yet: its
    effect is confirmed from the car's signals, like every command's."""
    if not isinstance(result, CommandResult) or not result.done:
        return
    if result.executed_at is None or result.completed_at is None or result.completed_at < result.executed_at:
        return
    took_ms = int((result.completed_at - result.executed_at).total_seconds() * 1000)
    record.latency_ms = took_ms
    record.effect_latency_ms = took_ms


def command_done_at(step: _Step, kind: str) -> datetime | None:
    """When this step's last `kind` command took effect, if the API said so (a 200 SUCCESS with its
    times): the sending time plus the command's own duration."""
    record = next((r for r in reversed(step.records) if r.kind == kind), None)
    if record is None or not record.ok or record.effect_latency_ms is None:
        return None
    return record.sent_at + timedelta(milliseconds=record.effect_latency_ms)


def _limit_settable(vehicle: Vehicle) -> bool:
    """Whether a limit may be set: not refused by the car before, and readable (a limit we cannot
    read we cannot put back after the session)."""
    return vehicle.charge_limit_settable is not False and vehicle.charge_limit_readable is not False


def _limit_refused(vehicle: Vehicle, exc: api_errors.VehicleApiError) -> None:
    """A car that answers a set-limit with COMPATIBILITY never takes one: do not ask again."""
    if isinstance(exc, api_errors.CompatibilityError):
        vehicle.charge_limit_settable = False
        Vehicle.objects.filter(pk=vehicle.pk).update(charge_limit_settable=False)


def limit_percent(limit_bp: int) -> int:
    """A charge limit in basis points as the whole percent v3's set-limit takes (50..100), rounded
    up: a backstop or a cap computed in basis points never stops the car below that level."""
    return max(50, min(100, -(-limit_bp // 100)))


def _sent_at(step: _Step, kind: str) -> datetime:
    """When this step's last `kind` command really went out (the calls before it took time), else now."""
    return next((r.sent_at for r in reversed(step.records) if r.kind == kind), step.now)


PAUSE = "pause"
RESUME = "resume"


def _plan_of(session: ChargingSession) -> SmartPlan | None:
    try:
        return session.smart_plan
    except SmartPlan.DoesNotExist:
        return None
