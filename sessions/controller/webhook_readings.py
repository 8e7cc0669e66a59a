"""Readings that the car's webhooks deliver (VEHICLE_STATE), and when they spare a billed read.

Webhooks are the main source of readings (docs/vehicle-api-v3-switch.md, steps 4 and 5): a
delivery's signal values become a `MeterReading` of the car's open session — the same rows and the
same metering as a polled reading, at the signal's own time, `via="webhook"`. Deliveries are
at-least-once and unordered (docs/reference/vehicle-api-v3.md §6), so a snapshot already stored is
not stored again, and one older than readings already stored is placed among them by its data time
(metering takes readings in `fetched_at` order and would otherwise drop it as out of order).

The controller then reads the car only for what webhooks did not bring in time:
- a webhook reading newer than every other reading, not used by a step yet, and no older than the
  car's refresh period (plus `WEBHOOK_GRACE`) answers the step's read: no call is made;
- when webhooks are flowing for the session but the next one is not due yet, the read waits for it
  (`ReadDeferred`) until it is overdue, then the car is polled; the delivery pulls the waiting step
  forward.
The decisions are the pure functions below; the receiver (sessions/vehicles/webhooks.py) stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F
from django.db.models.functions import Greatest

from sessions.controller import metering
from sessions.models.charging import OPEN_STATUSES, ChargingSession, MeterReading, SessionStatus
from sessions.vehicle_api import signals as sig
from sessions.vehicle_api.signals import SignalSet

S = SessionStatus
VIA_POLL = "poll"
VIA_WEBHOOK = "webhook"
WAIT_FOR_WEBHOOK = "webhook"  # ChargingSession.planned_action of a step waiting for a webhook

# How late a webhook may come after the car's next snapshot exists: Smartcar noticing the change
# ("seconds", makes.md §1 Webhooks) plus delivery. A read that waited this long is made.
WEBHOOK_GRACE = timedelta(seconds=60)
_TICK = timedelta(microseconds=1)

CHARGE_STATES = {metering.CHARGING, metering.NOT_CHARGING, metering.FULLY_CHARGED}


class ReadDeferred(Exception):
    """The step's read waits for the car's next webhook reading, at most until `until`."""

    def __init__(self, until: datetime) -> None:
        self.until = until
        super().__init__(f"read deferred until {until.isoformat()}")


# --- signals → a reading (pure) -------------------------------------------------------------------


def charge_state(signals: SignalSet) -> str | None:
    """CHARGING / NOT_CHARGING / FULLY_CHARGED from the detailed status, else from IsCharging."""
    status = signals.charging_status
    if isinstance(status, str) and status.upper() in CHARGE_STATES:
        return status.upper()
    charging = signals.is_charging
    if charging is None:
        return None
    return metering.CHARGING if charging else metering.NOT_CHARGING


def _time(signals: SignalSet, *codes: str) -> datetime | None:
    for code in codes:
        signal = signals.get(code)
        if signal is not None and signal.ok and signal.data_time is not None:
            return signal.data_time
    return None


def reading_from_signals(signals: SignalSet, *, received_at: datetime, counter: bool = True) -> metering.Reading | None:
    """The reading a set of signal values makes, polled or delivered by webhook alike, or None
    when it holds nothing the controller uses. Its energy is the best the car has, labelled: the
    session energy counter (`charge-energyadded`) when `counter` (the session counts on one), else
    the charging power (`charge-wattage`, a measurement) with the battery level, else the level
    alone. Its time is the car's own (`oemUpdatedAt`) of the signal it is measured by (else of the
    charge state), never later than we got it."""
    energy, soc, power = signals.energy_added_wh, signals.soc_bp, signals.power_w
    state, plugged = charge_state(signals), signals.is_plugged_in
    if energy is None and soc is None and power is None and state is None and plugged is None:
        return None
    if counter and energy is not None:
        source, measured_by = metering.SOURCE_ENERGY_ADDED, (sig.ENERGY_ADDED,)
    elif power is not None:
        source, measured_by = metering.SOURCE_POWER, (sig.SOC, sig.WATTAGE)
    else:
        source, measured_by = metering.SOURCE_SOC, (sig.SOC,)
    taken = _time(signals, *measured_by, sig.CHARGING_STATUS, sig.IS_CHARGING, sig.IS_PLUGGED_IN)
    taken = min(taken or received_at, received_at)  # a clock ahead of ours must not jump the queue
    return metering.Reading(
        taken_at=taken,
        fetched_at=received_at,
        source=source,
        energy_added_wh=energy if source == metering.SOURCE_ENERGY_ADDED else None,
        soc_bp=soc,
        power_w=power,
        charge_state=state,
        is_plugged_in=plugged,
        heater_active=signals.heater_active,
    )


# --- decisions (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionView:
    """What the pull-forward decision needs of a session."""

    status: str
    planned_action: str
    next_action_at: datetime | None
    purchased_wh: int
    delivered_wh: int = 0
    power_w: int | None = None
    baseline_energy_wh: int | None = None
    start_soc_bp: int | None = None
    capacity_wh: int | None = None


def _delivered_by(reading: metering.Reading, view: SessionView) -> int | None:
    if reading.energy_added_wh is not None:
        return reading.energy_added_wh - (view.baseline_energy_wh or 0)
    if reading.soc_bp is not None and view.start_soc_bp is not None and view.capacity_wh:
        return (reading.soc_bp - view.start_soc_bp) * view.capacity_wh // 10_000
    return None


def pulls_forward(view: SessionView, previous: metering.Reading | None, new: metering.Reading, now: datetime) -> bool:
    """Whether a new webhook reading changes what the controller would do before its next step:
    a step waits for it; the car's state (charging, plugged in) changed; it is the session's first
    reading; or, charging, the purchase would be reached before the planned step."""
    if view.status not in OPEN_STATUSES:
        return False
    if previous is not None and new.taken_at <= previous.taken_at:
        return False  # a late (older) snapshot: placed in the history, it changes nothing now
    if view.planned_action == WAIT_FOR_WEBHOOK or previous is None:
        return True
    if (new.charge_state and new.charge_state != previous.charge_state) or (
        new.is_plugged_in is not None and new.is_plugged_in != previous.is_plugged_in
    ):
        return True
    if view.status != S.CHARGING or view.next_action_at is None:
        return False
    delivered = _delivered_by(new, view)
    if delivered is None:
        return False
    # While the pack heater runs the wattage is not the battery's power: the session's stands.
    power = new.power_w if new.power_w is not None and not new.heater_active else (view.power_w or 0)
    ahead_s = max(0.0, (view.next_action_at - new.taken_at).total_seconds())
    return delivered + power * ahead_s / 3600 >= view.purchased_wh


def answers_read(
    *,
    webhook_at: datetime | None,
    used_at: datetime | None,
    newest_at: datetime | None,
    now: datetime,
    refresh_s: float,
) -> bool:
    """A webhook reading (data time `webhook_at`) answers a read when no step used it yet, no
    other reading is newer (`newest_at`), and a read now could not return a newer snapshot."""
    if webhook_at is None or (used_at is not None and webhook_at <= used_at):
        return False
    if newest_at is not None and webhook_at < newest_at:
        return False
    return now - webhook_at <= timedelta(seconds=refresh_s) + WEBHOOK_GRACE


def wait_for_webhook_until(*, webhook_at: datetime | None, now: datetime, refresh_s: float) -> datetime | None:
    """When webhooks are flowing for the session (`webhook_at`: the newest one's data time), the
    time until which a read waits for the next one; None when it is overdue (poll now)."""
    if webhook_at is None:
        return None
    until = webhook_at + timedelta(seconds=refresh_s) + WEBHOOK_GRACE
    return until if until > now else None


# --- the controller's side ---------------------------------------------------------------------------


def answer_read(step, rows: list[metering.Reading], refresh_s: float) -> metering.Reading | None:
    """The webhook reading that answers this step's read (marked used), else None; raises
    ReadDeferred when the read should wait for the next webhook. Only a step that has not called
    the car yet waits: a deferred step commits nothing but its next time."""
    session = step.session
    newest = max((r.taken_at for r in rows), default=None)
    if answers_read(
        webhook_at=session.webhook_reading_at,
        used_at=session.webhook_used_at,
        newest_at=newest,
        now=step.now,
        refresh_s=refresh_s,
    ):
        found = [r for r in rows if r.taken_at == session.webhook_reading_at and r.charge_state is not None]
        if found:
            step.webhook_used_at = session.webhook_reading_at
            return found[-1]
    if step.records:
        return None
    until = wait_for_webhook_until(webhook_at=session.webhook_reading_at, now=step.now, refresh_s=refresh_s)
    if until is not None:
        raise ReadDeferred(until)
    return None


# --- the receiver's side (inside its transaction) ------------------------------------------------------


def _as_reading(row: MeterReading) -> metering.Reading:
    return metering.Reading(
        taken_at=row.taken_at,
        fetched_at=row.fetched_at,
        source=row.source,
        energy_added_wh=row.energy_added_wh,
        soc_bp=row.soc_bp,
        power_w=row.power_w,
        charge_state=row.charge_state or None,
        is_plugged_in=row.is_plugged_in,
        heater_active=row.heater_active,
    )


def store_webhook_reading(session_id: int, reading: metering.Reading, *, now: datetime) -> str:
    """Store a delivered reading for the open session (locked for the rest of the caller's
    transaction, so concurrent deliveries of one car queue). Returns "stored", "duplicate" (that
    snapshot is already stored) or "closed" (the session ended meanwhile)."""
    session = (
        ChargingSession.objects.select_for_update(of=("self",))
        .select_related("vehicle")
        .filter(pk=session_id, status__in=OPEN_STATUSES)
        .first()
    )
    if session is None:
        return "closed"
    if MeterReading.objects.filter(session=session, taken_at=reading.taken_at).exists():
        return "duplicate"
    rows = MeterReading.objects.filter(session=session)
    previous = rows.filter(taken_at__lt=reading.taken_at).order_by("-taken_at", "-id").first()
    later = rows.filter(taken_at__gt=reading.taken_at).order_by("fetched_at").values_list("fetched_at", flat=True)
    fetched = reading.fetched_at
    first_later = later.first()
    if first_later is not None and first_later <= fetched:
        # Out of order: metering takes readings by arrival, so place it just before the first
        # newer snapshot, not after it (where it would be dropped as older than the latest).
        fetched = max(reading.taken_at, first_later - _TICK)
    MeterReading.record(session, reading, fetched_at=fetched, via=VIA_WEBHOOK)
    changes: dict = {"webhook_readings": F("webhook_readings") + 1}
    if reading.charge_state is not None:
        # Only a reading that says whether the car charges can stand in for a read (a step acts
        # on the charge state). The row is locked: NULL is seen here, not left to GREATEST
        # (SQLite's MAX returns NULL).
        changes["webhook_reading_at"] = (
            Greatest(F("webhook_reading_at"), reading.taken_at) if session.webhook_reading_at else reading.taken_at
        )
    view = SessionView(
        status=session.status,
        planned_action=session.planned_action,
        next_action_at=session.next_action_at,
        purchased_wh=session.purchased_wh,
        delivered_wh=session.delivered_wh,
        power_w=session.power_w,
        baseline_energy_wh=session.baseline_energy_wh,
        start_soc_bp=session.start_soc_bp,
        capacity_wh=session.vehicle.capacity_wh,
    )
    if first_later is None and pulls_forward(view, _as_reading(previous) if previous else None, reading, now):
        # `pokes`: a step in flight then commits "act now" instead of its planned time.
        changes["next_action_at"] = now
        changes["pokes"] = F("pokes") + 1
    ChargingSession.objects.filter(pk=session.pk).update(**changes)
    return "stored"
