"""How many charge commands a car will still take, per make (docs/reference/makes.md §2a, §2b, §4).

Some makes refuse commands past a budget, and a refused STOP lets the car charge on past the
purchase. The product counts the commands it sent each physical car (the vehicle API's vehicle
id, whichever account sent them) and does not start a session whose STOP may not fit: a session
needs its START and STOP, and the two limit commands (backstop, restore) where the make takes a
limit.

- VW: "excessive consecutive requests → temporarily rate-limited until the car is driven" (§2a;
  N = 5 is the simulator's unsourced default, §4). A car must be unplugged to be driven: commands
  count from the last time the product saw the car unplugged (an unplug without a drive does not
  really reset the car's counter, so this errs on the side of starting; a refused STOP is then
  handled at once, sessions/controller/stopping.py). A throttle refusal seen since then means no
  command fits until the car is seen unplugged again.
- Tesla: Fleet API "Discovery" plan, per vehicle and day: 5 charging commands (START/STOP), 50
  commands (§2b, T1; the data quota is in makes.py). Only with `TESLA_DISCOVERY_QUOTAS` (the plan
  was temporary; pay-per-use has no such quota, T2).
- BMW / MINI: 80 STOPs per vehicle per rolling 30 days (EU Energy API, §2b, S9).

Commands count when they reached the car: accepted, or refused by the car's own state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils.translation import gettext_noop

from sessions.models import MeterReading, Vehicle
from sessions.models.charging import CommandKind, VehicleCommand
from sessions.vehicle_api import errors as api_errors

DAY = timedelta(days=1)
THIRTY_DAYS = timedelta(days=30)
# A rate limit whose wait is this long is a quota (Tesla answers ~13 h), not a passing throttle.
QUOTA_RETRY_AFTER_S = 3600


@dataclass(frozen=True)
class CommandBudget:
    until_driven: int | None = None  # commands in a row before the car refuses them until driven
    daily_charge_commands: int | None = None  # START + STOP per rolling day
    daily_commands: int | None = None  # every command per rolling day
    stops_30d: int | None = None  # STOPs per rolling 30 days


NONE = CommandBudget()
BUDGETS: dict[str, CommandBudget] = {
    "VOLKSWAGEN": CommandBudget(until_driven=5),
    "TESLA": CommandBudget(daily_charge_commands=5, daily_commands=50),
    "BMW": CommandBudget(stops_30d=80),
    "MINI": CommandBudget(stops_30d=80),
}


def budget_for(make: str) -> CommandBudget:
    if make.upper() == "TESLA" and not settings.TESLA_DISCOVERY_QUOTAS:
        return NONE
    return BUDGETS.get(make.upper(), NONE)


@dataclass(frozen=True)
class Need:
    """Commands a session needs: every command, of which START/STOP, of which STOPs."""

    commands: int
    charge_commands: int
    stops: int


def session_need(*, limit_commands: bool) -> Need:
    """A session's START and STOP, and its backstop and restore where the car takes a limit."""
    return Need(commands=4 if limit_commands else 2, charge_commands=2, stops=1)


# A command the controller may choose to send (a START retry, a smart-charging pause and its
# resume) is sent only if the session's STOP and restore still fit after it.
START_THEN_STOP = Need(commands=3, charge_commands=2, stops=1)
PAUSE_RESUME_THEN_STOP = Need(commands=4, charge_commands=3, stops=2)


def leaves_room(*, make: str, car_id: str, now: datetime, need: Need) -> bool:
    return remaining(make=make, car_id=car_id, now=now).fits(need)


@dataclass(frozen=True)
class Remaining:
    """What the car will still take; None where its make sets no limit. `why` names the budget
    that binds (for the driver's message)."""

    commands: int | None = None
    charge_commands: int | None = None
    stops: int | None = None
    why: str = ""

    def fits(self, need: Need) -> bool:
        return (
            (self.commands is None or self.commands >= need.commands)
            and (self.charge_commands is None or self.charge_commands >= need.charge_commands)
            and (self.stops is None or self.stops >= need.stops)
        )


def _least(*pairs: tuple[int | None, str]) -> tuple[int | None, str]:
    known = [(value, why) for value, why in pairs if value is not None]
    return min(known, key=lambda pair: pair[0]) if known else (None, "")


def refused_for_budget(exc: Exception) -> bool:
    """A command refused for a throttle or a quota (the OEM's RATE_LIMIT, a ~13-h Retry-After),
    not a passing failure: trying again soon will not help."""
    if isinstance(exc, api_errors.UpstreamError) and exc.code == "RATE_LIMIT":
        return True
    return isinstance(exc, api_errors.RateLimited) and (exc.retry_after_s or 0) >= QUOTA_RETRY_AFTER_S


def _reached_car() -> Q:
    return Q(ok=True) | Q(error_type="VEHICLE_STATE")


def last_seen_unplugged(car_id: str) -> datetime | None:
    """When the car last reported itself unplugged to the product (a reading of any session, or a
    snapshot of any account's row), in the car's own time (its data age)."""
    reading = MeterReading.objects.filter(session__car_id=car_id, is_plugged_in=False).aggregate(at=Max("taken_at"))
    snapshot = Vehicle.objects.filter(external_id=car_id, is_plugged_in=False).aggregate(at=Max("data_age"))
    seen = [at for at in (reading["at"], snapshot["at"]) if at is not None]
    return max(seen) if seen else None


def remaining(*, make: str, car_id: str, now: datetime) -> Remaining:
    """The commands this car will still take now, from what the product sent it."""
    budget = budget_for(make)
    if budget == NONE or not car_id:
        return Remaining()
    sent = VehicleCommand.objects.filter(
        vehicle__external_id=car_id, kind__in=(CommandKind.START, CommandKind.STOP, CommandKind.SET_LIMIT)
    )
    commands: list[tuple[int | None, str]] = []
    charge: list[tuple[int | None, str]] = []
    stops = None
    if budget.until_driven is not None:
        since = last_seen_unplugged(car_id)
        in_a_row = sent.filter(sent_at__gt=since) if since else sent
        throttled = in_a_row.filter(error_code="RATE_LIMIT").exists()
        used = in_a_row.filter(_reached_car()).count()
        left = 0 if throttled else max(0, budget.until_driven - used)
        commands.append((left, "until_driven"))
    if budget.daily_commands is not None:
        used = sent.filter(_reached_car(), sent_at__gt=now - DAY).count()
        commands.append((max(0, budget.daily_commands - used), "daily"))
    if budget.daily_charge_commands is not None:
        used = (
            sent.filter(_reached_car(), sent_at__gt=now - DAY)
            .filter(kind__in=(CommandKind.START, CommandKind.STOP))
            .count()
        )
        charge.append((max(0, budget.daily_charge_commands - used), "daily"))
    if budget.stops_30d is not None:
        used = sent.filter(kind=CommandKind.STOP, ok=True, sent_at__gt=now - THIRTY_DAYS).count()
        stops = max(0, budget.stops_30d - used)
    left_commands, why_commands = _least(*commands)
    left_charge, why_charge = _least(*charge)
    why = why_commands or why_charge or ("stops_30d" if stops is not None else "")
    return Remaining(commands=left_commands, charge_commands=left_charge, stops=stops, why=why)


# What the driver reads when the car's budget would not leave room for the STOP.
REFUSALS = {
    "until_driven": gettext_noop(
        "This car has taken as many remote charge commands in a row as its maker allows before it "
        "is driven, so it might refuse the stop. Drive the car (or start the charge from the car), "
        "then try again."
    ),
    "daily": gettext_noop(
        "This car has taken as many remote charge commands today as its maker allows, so it might "
        "refuse the stop. Try again tomorrow, or start the charge from the car."
    ),
    "stops_30d": gettext_noop(
        "This car has taken as many remote stops this month as its maker allows, so it might refuse "
        "the stop. Start the charge from the car."
    ),
}
