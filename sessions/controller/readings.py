"""Readings of the car: stored as they come, copied onto the session row (`readings_cache`),
turned into the meter estimate and the stop policy's state; the STOP latency learned per make."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from sessions import clock
from sessions.controller import metering, policy, webhook_readings
from sessions.controller.step import PAUSE, RESUME, _Step
from sessions.grid import services as grid
from sessions.models.charging import ChargingSession, CommandKind, MeterReading, SessionStatus, VehicleCommand
from sessions.vehicle_api import errors as api_errors
from sessions.vehicle_api import signals as sig
from sessions.vehicles import makes
from sessions.vehicles.services import charge_state, vehicle_learn_capabilities

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _cache_row(r: MeterReading) -> list:
    def whole(value):
        return None if value is None else int(value)  # as the IntegerField stores it

    return [
        (r.taken_at - _EPOCH) // _US,
        (r.fetched_at - _EPOCH) // _US,
        r.source,
        whole(r.energy_added_wh),
        whole(r.soc_bp),
        whole(r.power_w),
        r.charge_state or "",
        r.is_plugged_in,
        r.via,
        r.heater_active,
    ]


def _from_cache_row(row: list) -> metering.Reading:
    taken_us, fetched_us, source, energy, soc, power, charge_state, plugged = row[:8]
    # Copies written before the ninth field (how the reading came) say nothing of it.
    via = row[8] if len(row) > 8 else ""
    # Nor, before the tenth, of the pack heater: unknown, as for a car that does not report it.
    heater = row[9] if len(row) > 9 else None
    return metering.Reading(
        taken_at=_EPOCH + taken_us * _US,
        fetched_at=_EPOCH + fetched_us * _US,
        source=source,
        energy_added_wh=energy,
        soc_bp=soc,
        power_w=power,
        charge_state=charge_state or None,
        is_plugged_in=plugged,
        via=via,
        heater_active=heater,
    )


def _cache_whole(session: ChargingSession) -> bool:
    stored = getattr(session, "readings_stored", None)
    return stored is not None and stored == session.readings_cached == len(session.readings_cache)


def _reading_rows(session: ChargingSession) -> list[metering.Reading]:
    """All the session's readings in id order: from the row's copy when it is whole, else from
    the table (and the copy is rebuilt, to be written by the step's commit)."""
    rows = getattr(session, "reading_rows", None)
    if rows is not None:
        return rows
    if not _cache_whole(session):
        session.readings_cache = [_cache_row(r) for r in MeterReading.objects.filter(session=session)]
        session.readings_cached = session.readings_stored = len(session.readings_cache)
        session.readings_dirty = True
    session.reading_rows = [_from_cache_row(row) for row in session.readings_cache]
    return session.reading_rows


def _cache_append(session: ChargingSession, stored: MeterReading) -> None:
    """A reading just stored: add it to a whole copy (a broken copy is rebuilt when read)."""
    if not _cache_whole(session):
        return
    rows = _reading_rows(session)
    row = _cache_row(stored)
    session.readings_cache = [*session.readings_cache, row]
    session.readings_cached = session.readings_stored = len(session.readings_cache)
    session.reading_rows = [*rows, _from_cache_row(row)]
    session.readings_dirty = True


def _read(step: _Step) -> metering.Reading:
    """The car's current reading: a webhook reading that answers it (no call), else a read of the
    car's signals (one billed call), stored. Raises webhook_readings.ReadDeferred when the read
    waits for the car's next webhook (sessions/controller/webhook_readings.py).

    The reading is built as a webhook's is (`webhook_readings.reading_from_signals`).
    Raises errors.NoSignalData when the car's signals hold neither a charge state nor a level."""
    session = step.session
    answered = webhook_readings.answer_read(step, _reading_rows(session), _refresh_s(session))
    if answered is not None:
        return answered
    vehicle = step.vehicle
    vid = vehicle.external_id
    result = step.call(CommandKind.READ, "signals", lambda c, u: c.get_signals(u, vid))
    signals = result.signals
    vehicle_learn_capabilities(vehicle, signals)
    step.reported_limit_bp = signals.charge_limit_bp
    state = charge_state(signals)
    energy = signals.energy_added_wh
    soc = signals.soc_bp
    if state is None and soc is None and energy is None:
        # An empty store (no subscription yet, or a car that never reported): nothing to act on.
        raise api_errors.NoSignalData(f"no charge state nor level in the signals of vehicle {vid}")
    if session.status == SessionStatus.REQUESTED:
        # The session's first reads decide what it is metered by, from what the car answers: a
        # counter it reports (even one the request did not know of), none if it says it has none.
        if energy is not None and not session.energy_step_wh:
            session.energy_step_wh = makes.traits_for(vehicle.make).energy_step_wh
        elif energy is None and vehicle.signal_capabilities.get(sig.ENERGY_ADDED) == sig.Capability.NOT_CAPABLE:
            session.energy_step_wh = 0
    # Received when the answer came (a read can take seconds): the car's data may be newer than
    # the moment we asked, never newer than the moment we got it.
    reading = webhook_readings.reading_from_signals(
        signals, received_at=clock.now(), counter=bool(session.energy_step_wh)
    )
    stored = MeterReading.record(session, reading)
    _cache_append(session, stored)
    return reading


def _readings(session: ChargingSession) -> list[metering.Reading]:
    """The readings metering counts: those taken since the START was sent (or the request)."""
    since = session.start_sent_at or session.created_at
    return [r for r in _reading_rows(session) if r.taken_at >= since]


def latency_model(make: str, kind: str = CommandKind.STOP) -> policy.LatencyModel:
    """The STOP (or START) latency distribution learned from this make's recent commands."""
    return _latency_models_cached(make.upper(), int(clock.now().timestamp() // 60))[kind]


@functools.lru_cache(maxsize=256)
def _latency_models_cached(make: str, _minute: int) -> dict[str, policy.LatencyModel]:
    # Cached per minute, both kinds in one query: every step of every session of a make would
    # otherwise query the same rows.
    rows = (
        VehicleCommand.objects.filter(
            make__iexact=make, kind__in=(CommandKind.START, CommandKind.STOP), ok=True, effect_latency_ms__isnull=False
        )
        .exclude(detail__in=(PAUSE, RESUME))
        .order_by("-id")
        .values_list("kind", "effect_latency_ms", "effect_latency_max_ms")[:400]
    )
    low, high = makes.traits_for(make).command_latency_s
    models = {
        kind: policy.LatencyModel(prior_min_s=low, prior_max_s=high) for kind in (CommandKind.START, CommandKind.STOP)
    }
    for kind, lo_ms, hi_ms in reversed(list(rows)):
        m = models[kind]
        models[kind] = m.observe(lo_ms / 1000) if hi_ms is None else m.observe_interval(lo_ms / 1000, hi_ms / 1000)
    return models


def _estimate(session: ChargingSession, readings: list[metering.Reading]) -> metering.MeterEstimate:
    started_at, half_width = (None, 0.0)
    if session.start_sent_at:
        started_at, half_width = policy.estimate_charging_start(
            start_sent_at=session.start_sent_at,
            latency=latency_model(session.vehicle.make, CommandKind.START),
            readings=readings,
        )
    ctx = metering.MeterContext(
        capacity_wh=session.vehicle.capacity_wh or 75_000,
        soc_step_bp=session.soc_step_bp,
        energy_step_wh=session.energy_step_wh,
        start_soc_bp=session.start_soc_bp,
        start_energy_added_wh=session.baseline_energy_wh or 0,
        nominal_power_w=session.nominal_power_w,
        nominal_power_fraction=makes.NOMINAL_POWER_FRACTION,
        nominal_power_uncertainty=makes.NOMINAL_POWER_UNCERTAINTY,
        usable_fraction=makes.USABLE_FRACTION,
        usable_low_fraction=makes.USABLE_LOW_FRACTION,
        level_energy_rise=makes.LEVEL_ENERGY_RISE,
        level_jitter_bp=makes.LEVEL_JITTER_BP,
        level_event_lag_s=makes.traits_for(session.vehicle.make).level_event_lag_s,
        charging_started_at=started_at,
        charging_started_uncertainty_s=half_width,
    )
    return metering.estimate(readings, ctx)


def _policy_state(step: _Step, estimate, latency, readings) -> policy.PolicyState:
    session = step.session
    last_read = max((r.fetched_at for r in readings), default=None)
    ages = sorted((r.fetched_at - r.taken_at).total_seconds() for r in readings)
    return policy.PolicyState(
        now=step.now,
        target_wh=grid.target_wh(session),
        estimate=estimate,
        started_at=session.start_sent_at or session.created_at,
        latency=latency,
        charging_started_at=session.charging_at,
        last_read_at=last_read,
        reads=len(readings),
        telemetry_age_s=ages[len(ages) // 2] if ages else 60.0,
        telemetry_refresh_s=float(session.telemetry_refresh_s),
        calls_remaining=max(0, session.call_budget - session.api_calls - step.calls),
        not_before=step.not_before
        or (session.not_before if session.not_before and session.not_before > step.now else None),
        nominal_power_w=session.nominal_power_w,
        soc_only=not session.energy_step_wh,
        start_latency=latency_model(step.vehicle.make, CommandKind.START),
        read_cost=1,  # one signals read answers everything the car reports
    )


def _still_ahead(when: datetime | None, now: datetime) -> datetime | None:
    return when if when and when > now else None


def _metering_fields(estimate: metering.MeterEstimate) -> dict[str, Any]:
    return {
        "delivered_wh": max(0, estimate.delivered_wh),
        "delivered_low_wh": max(0, estimate.delivered_low_wh),
        "delivered_high_wh": max(0, estimate.delivered_high_wh),
        "power_w": max(0, estimate.power_w),
        "power_low_w": max(0, estimate.power_low_w),
        "power_high_w": max(0, estimate.power_high_w),
        "data_source": estimate.source,
        "last_reading_at": estimate.as_of,
    }


def _refresh_s(session: ChargingSession) -> float:
    """How often the car's data is refreshed (s), at least a minute (live cars are read no faster)."""
    return max(60.0, float(session.telemetry_refresh_s or 0))


def _next_snapshot_at(step: _Step, reading: metering.Reading) -> datetime:
    """When the car's next snapshot can be fetched: a read before it returns the same data again."""
    due = reading.taken_at + timedelta(seconds=_refresh_s(step.session)) + policy.GRID_MARGIN
    if due <= step.now:
        # Older data than the make's refresh allows: this car refreshes slower (Tesla's Fleet API
        # every ~180 s, not 60). Its next snapshot is about as far ahead as this one is old.
        due = step.now + (step.now - reading.taken_at)
    return due


def _telemetry_age_s(session: ChargingSession) -> float:
    # The session's first 20 readings (in id order), from the copy on the row as a step has it.
    ages = sorted((r.fetched_at - r.taken_at).total_seconds() for r in _reading_rows(session)[:20])
    return ages[len(ages) // 2] if ages else 60.0


def _current_soc_bp(session: ChargingSession, reading: metering.Reading) -> int | None:
    """The car's level now: as read, or (cars that report energy, not level) start + delivered."""
    if reading.soc_bp is not None:
        return reading.soc_bp
    capacity = session.vehicle.capacity_wh
    if session.start_soc_bp is None or not capacity or reading.energy_added_wh is None:
        return None
    delivered = reading.energy_added_wh - (session.baseline_energy_wh or 0)
    return min(10_000, session.start_soc_bp + delivered * 10_000 // capacity)
