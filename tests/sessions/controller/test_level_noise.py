"""A car's shown level is rounded with a jitter near a boundary (the realistic world's `noisy`
rule, vehicle_sim/telemetry.report_level): 50 % may show at 49.35–50.65 % true. Metering takes a
shown level s to mean [s, s + step): what it proves can then exceed what went in."""

import pytest

from sessions.controller.metering import CHARGING, NOT_CHARGING, MeterContext, Reading, estimate
from sessions.vehicles import makes
from tests.sessions.controller.conftest import at
from vehicle_sim.telemetry import report_level

NOMINAL_WH = 75_000
PACK_WH = NOMINAL_WH * makes.USABLE_LOW_FRACTION  # the smallest pack the proof allows for
BATTERY_W = 7_000.0
START, END = 0.5060, 0.5940  # true levels: shown 50 % (jittered down) and 60 % (jittered up)


def shown(t: float, u: float) -> int:
    level = START + BATTERY_W * max(t, 0.0) / 3600 / PACK_WH
    return round(report_level(level, 0.01, "noisy", jitter_band=0.15, u=u) * 10_000)


def _readings() -> tuple[list[Reading], float]:
    end_s = (END - START) * PACK_WH / BATTERY_W * 3600
    out = [Reading(at(-60), at(-30), "soc", soc_bp=shown(-60, 0.1), charge_state=NOT_CHARGING, is_plugged_in=True)]
    for t, u in [(600, 0.9), (1200, 0.9), (1800, 0.9), (2400, 0.9), (end_s, 0.1)]:
        out.append(Reading(at(t), at(t + 30), "soc", soc_bp=shown(t, u), charge_state=CHARGING, is_plugged_in=True))
    return out, BATTERY_W * end_s / 3600


def _ctx(start_bp: int) -> MeterContext:
    return MeterContext(
        capacity_wh=NOMINAL_WH,
        soc_step_bp=100,
        energy_step_wh=0,
        start_soc_bp=start_bp,
        nominal_power_w=11_000,
        nominal_power_fraction=makes.NOMINAL_POWER_FRACTION,
        nominal_power_uncertainty=makes.NOMINAL_POWER_UNCERTAINTY,
        usable_fraction=makes.USABLE_FRACTION,
        usable_low_fraction=makes.USABLE_LOW_FRACTION,
        level_energy_rise=makes.LEVEL_ENERGY_RISE,
        level_jitter_bp=makes.LEVEL_JITTER_BP,
        charging_started_at=at(0),
        efficiency=1.0,
    )


def test_the_draw_is_the_jittered_one():
    readings, delivered = _readings()
    assert (readings[0].soc_bp, readings[-1].soc_bp) == (5000, 6000)
    assert delivered == pytest.approx((END - START) * PACK_WH)


def test_a_jittered_level_never_proves_more_than_went_in():
    # Without the jitter's allowance the proof reached 5,737 Wh for 5,610 delivered.
    readings, delivered = _readings()
    est = estimate(readings, _ctx(readings[0].soc_bp))
    assert est.delivered_low_wh <= delivered
    # ... and the allowance costs no more than the two ends' jitter.
    assert delivered - est.delivered_low_wh < 2 * makes.LEVEL_JITTER_BP * NOMINAL_WH / 10_000
