from datetime import UTC, datetime, timedelta

import pytest

from sessions.controller.metering import CHARGING, SOURCE_ENERGY_ADDED, MeterContext, Reading

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def energy_reading(seconds: float, wh, *, age_s: float = 60.0, state: str | None = CHARGING, **extra) -> Reading:
    """A reading whose data was recorded at T0 + seconds and fetched `age_s` later."""
    return Reading(
        taken_at=at(seconds),
        fetched_at=at(seconds + age_s),
        source=SOURCE_ENERGY_ADDED,
        energy_added_wh=wh,
        charge_state=state,
        is_plugged_in=True,
        **extra,
    )


def soc_reading(seconds: float, soc_bp, *, age_s: float = 60.0, state: str | None = CHARGING) -> Reading:
    return Reading(
        taken_at=at(seconds),
        fetched_at=at(seconds + age_s),
        source="soc",
        soc_bp=soc_bp,
        charge_state=state,
        is_plugged_in=True,
    )


@pytest.fixture
def ctx() -> MeterContext:
    return MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=10, nominal_power_w=11_000, charger_efficiency=1.0
    )
