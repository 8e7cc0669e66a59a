import math
import random
from dataclasses import replace
from datetime import datetime

import pytest

from sessions.controller.metering import (
    CHARGING,
    EVENT_COUNTER_RESET,
    NOT_CHARGING,
    RULE_DUPLICATE,
    RULE_GARBAGE,
    RULE_IMPLAUSIBLE_JUMP,
    RULE_NON_MONOTONIC,
    RULE_OUT_OF_ORDER,
    RULE_SPURIOUS_RESET,
    SOURCE_ENERGY_ADDED,
    SOURCE_POWER,
    SOURCE_SOC,
    Meter,
    MeterContext,
    Reading,
    estimate,
)
from tests.sessions.controller.conftest import T0, at, energy_reading, soc_reading

# 11 kW for 10 minutes.
TEN_MIN_WH = 1833


def rules(est):
    return [r.rule for r in est.rejections]


# --- the basics ---------------------------------------------------------------------------------


def test_it_estimates_delivered_energy_and_power_from_the_counter(ctx):
    est = estimate([energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), energy_reading(1200, 2 * TEN_MIN_WH)], ctx)
    assert est.source == SOURCE_ENERGY_ADDED
    assert est.delivered_wh == 2 * TEN_MIN_WH
    assert est.power_source == "readings"
    assert est.power_w == pytest.approx(11_000, rel=0.01)
    assert est.accepted == 3
    assert est.rejections == ()


def test_it_dates_the_estimate_by_data_age_not_fetch_time(ctx):
    # Data recorded at 600 s but fetched at 900 s: 5 minutes of charging the reading does not show.
    readings = [energy_reading(0, 0), energy_reading(600, TEN_MIN_WH, age_s=300)]
    est = estimate(readings, ctx)
    assert est.as_of == at(600)
    assert est.fetched_at == at(900)
    # Extrapolating to the fetch time adds the 300 s that flowed since the data was taken.
    assert est.delivered_at(at(900)) == pytest.approx(TEN_MIN_WH + 11_000 * 300 / 3600, rel=0.01)


def test_it_does_not_extrapolate_once_the_car_stopped(ctx):
    est = estimate([energy_reading(0, 0), energy_reading(600, TEN_MIN_WH, state=NOT_CHARGING)], ctx)
    assert est.delivered_at(at(3600)) == TEN_MIN_WH


def test_it_prefers_energy_added_when_the_car_also_reports_soc(ctx):
    readings = [
        Reading(taken_at=at(0), fetched_at=at(60), source="energy_added", energy_added_wh=0, soc_bp=5000),
        Reading(taken_at=at(600), fetched_at=at(660), source="energy_added", energy_added_wh=1833, soc_bp=5400),
    ]
    est = estimate(readings, ctx)
    assert est.source == SOURCE_ENERGY_ADDED
    assert est.delivered_wh == 1833  # not the 3000 Wh that 4 % of 75 kWh would say


def test_it_falls_back_to_nominal_power_with_a_single_reading(ctx):
    est = estimate([energy_reading(0, 0)], ctx)
    assert est.power_source == "nominal"
    assert est.power_w == 11_000


def test_it_uses_the_power_the_car_reports_before_it_has_a_span(ctx):
    est = estimate([energy_reading(0, 0, power_w=7_200)], ctx)
    assert est.power_source == "reported"
    assert est.power_w == 7_200


def test_it_has_an_empty_estimate_without_readings(ctx):
    est = estimate([], ctx)
    assert est.accepted == 0
    assert est.delivered_wh == 0
    assert est.as_of is None
    assert est.power_w == ctx.nominal_power_w


def test_it_keeps_pre_start_readings_out_of_the_power_fit(ctx):
    # The first reading predates the start (car not yet charging): its zero would drag the slope down.
    readings = [
        energy_reading(0, 0, state=NOT_CHARGING),
        energy_reading(300, 0),
        energy_reading(900, TEN_MIN_WH),
    ]
    est = estimate(readings, ctx)
    assert est.power_w == pytest.approx(11_000, rel=0.01)


def test_it_estimates_power_robustly_against_one_odd_value(ctx):
    # One reading 150 Wh high (plausible, so not rejected) barely moves the median of slopes.
    values = [0, 916, 1833 + 150, 2750, 3666]
    readings = [energy_reading(300 * i, v) for i, v in enumerate(values)]
    est = estimate(readings, ctx)
    assert est.power_w == pytest.approx(11_000, rel=0.02)


def test_it_follows_the_recent_power_when_it_tapers(ctx):
    # 11 kW for an hour, then 5.5 kW: the recent window says 5.5 kW, not the session average.
    readings = [energy_reading(0, 0), energy_reading(3600, 11_000)]
    readings += [energy_reading(3600 + 600 * k, 11_000 + 917 * k) for k in range(1, 5)]
    est = estimate(readings, ctx)
    assert est.power_w == pytest.approx(5_500, rel=0.05)


# --- sanity rules, one test each -----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [-5, math.nan, math.inf, "12", None],
    ids=["negative", "nan", "inf", "string", "none"],
)
def test_it_ignores_garbage_energy(ctx, bad):
    readings = [energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), energy_reading(900, bad)]
    est = estimate(readings, ctx)
    assert est.delivered_wh == TEN_MIN_WH
    assert est.as_of == at(600)
    if bad is not None:
        assert rules(est) == [RULE_GARBAGE]


def test_it_ignores_an_energy_value_beyond_any_session(ctx):
    est = estimate([energy_reading(0, 0), energy_reading(600, 10**9)], ctx)
    assert est.delivered_wh == 0
    assert rules(est) == [RULE_GARBAGE]


@pytest.mark.parametrize("bad", [-1, 10_001, math.nan, True])
def test_it_ignores_garbage_soc(ctx, bad):
    est = estimate([soc_reading(0, 5000), soc_reading(600, 5200), soc_reading(900, bad)], ctx)
    assert est.delivered_wh == 1500
    assert rules(est) == [RULE_GARBAGE]


def test_it_ignores_a_reading_with_a_naive_timestamp(ctx):
    naive = Reading(taken_at=datetime(2026, 3, 1, 12, 10), fetched_at=at(700), source="energy_added", energy_added_wh=5)
    est = estimate([energy_reading(0, 0), naive], ctx)
    assert est.accepted == 1
    assert rules(est) == [RULE_GARBAGE]


def test_it_ignores_data_recorded_after_it_was_fetched(ctx):
    future = replace(energy_reading(600, 1833), fetched_at=at(0))
    est = estimate([energy_reading(0, 0, age_s=0), future], ctx)
    assert est.delivered_wh == 0
    assert rules(est) == [RULE_GARBAGE]


def test_it_ignores_readings_older_than_the_latest_accepted(ctx):
    # Arrives last (fetched at 1300 s) but carries data from 300 s: out of order.
    late = energy_reading(300, 900, age_s=1000)
    est = estimate([energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), late], ctx)
    assert est.delivered_wh == TEN_MIN_WH
    assert est.as_of == at(600)
    assert rules(est) == [RULE_OUT_OF_ORDER]


def test_it_orders_readings_by_arrival_not_by_list_position(ctx):
    first, second = energy_reading(0, 0), energy_reading(600, TEN_MIN_WH)
    assert estimate([second, first], ctx).delivered_wh == TEN_MIN_WH


def test_it_ignores_the_same_snapshot_served_twice(ctx):
    # Polling faster than the car refreshes returns the same data age again.
    again = energy_reading(600, TEN_MIN_WH, age_s=90)
    est = estimate([energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), again], ctx)
    assert est.delivered_wh == TEN_MIN_WH
    assert est.accepted == 2
    assert rules(est) == [RULE_DUPLICATE]


def test_it_ignores_a_decrease_of_the_energy_counter(ctx):
    readings = [energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), energy_reading(900, 1500)]
    est = estimate(readings, ctx)
    assert est.delivered_wh == TEN_MIN_WH
    assert rules(est) == [RULE_NON_MONOTONIC]


def test_it_ignores_an_implausible_jump(ctx):
    # 10 kWh in 5 minutes would need 120 kW from an 11 kW AC car.
    readings = [energy_reading(0, 0), energy_reading(600, TEN_MIN_WH), energy_reading(900, 11_833)]
    est = estimate(readings, ctx)
    assert est.delivered_wh == TEN_MIN_WH
    assert rules(est) == [RULE_IMPLAUSIBLE_JUMP]


def test_it_accepts_a_large_gain_over_a_long_gap(ctx):
    # The same 10 kWh over an hour is fine: the rule is about rate, not size.
    est = estimate([energy_reading(0, 0), energy_reading(3600, 10_000)], ctx)
    assert est.delivered_wh == 10_000
    assert est.rejections == ()


def test_it_keeps_the_total_across_a_counter_reset(ctx):
    # The car's session counter restarts mid-session (evcc users see wrong session energy from this).
    readings = [
        energy_reading(0, 0),
        energy_reading(600, 1830),
        energy_reading(1200, 20),  # reset just before 1200 s
        energy_reading(1800, 1850),
    ]
    est = estimate(readings, ctx)
    assert est.resets == 1
    assert [e.rule for e in est.events] == [EVENT_COUNTER_RESET]
    assert est.rejections == ()
    # 1830 before + 1850 after + the unseen part of the gap before the reset.
    assert 1830 + 1850 <= est.delivered_wh <= 1830 + 1850 + 1833
    assert est.delivered_low_wh <= 1830 + 1850 + 900 <= est.delivered_high_wh
    assert est.power_w == pytest.approx(11_000, rel=0.05)


def test_it_treats_a_lone_drop_to_zero_as_a_glitch_when_the_old_counter_carries_on(ctx):
    readings = [
        energy_reading(0, 0),
        energy_reading(600, 1833),
        energy_reading(1200, 0),  # a glitch, not a reset
        energy_reading(1800, 5500),
    ]
    est = estimate(readings, ctx)
    assert est.resets == 0
    assert est.delivered_wh == 5500
    assert RULE_SPURIOUS_RESET in rules(est)


def test_it_tells_a_glitch_from_a_reset_even_after_a_long_gap(ctx):
    # After 3 h at ~11 kW the old counter would be near 33 kWh; a new one near 33 kWh too, but
    # 1833 + 2000 is what the old counter carrying on at the observed power looks like.
    readings = [energy_reading(0, 0), energy_reading(600, 1833), energy_reading(660, 0), energy_reading(1200, 3700)]
    est = estimate(readings, ctx)
    assert est.resets == 0
    assert est.delivered_wh == 3700


def test_it_ignores_a_falling_soc(ctx):
    est = estimate([soc_reading(0, 5000), soc_reading(600, 5200), soc_reading(900, 5100)], ctx)
    assert est.delivered_wh == 1500
    assert rules(est) == [RULE_NON_MONOTONIC]


def test_it_ignores_an_implausible_soc_jump(ctx):
    est = estimate([soc_reading(0, 5000), soc_reading(600, 5200), soc_reading(900, 7000)], ctx)
    assert est.delivered_wh == 1500
    assert rules(est) == [RULE_IMPLAUSIBLE_JUMP]


def test_it_logs_each_ignored_reading(ctx, caplog):
    caplog.set_level("INFO", logger="sessions.controller.metering")
    estimate([energy_reading(0, 0), energy_reading(600, 1833), energy_reading(900, 1500)], ctx)
    assert any("non_monotonic" in m for m in caplog.messages)


# --- uncertainty -------------------------------------------------------------------------------


def test_it_bounds_counter_energy_by_one_step(ctx):
    est = estimate([energy_reading(0, 0), energy_reading(600, 1830)], ctx)
    assert (est.delivered_low_wh, est.delivered_wh, est.delivered_high_wh) == (1820, 1830, 1840)


def test_it_bounds_soc_energy_by_one_step_of_capacity(ctx):
    # 1 % of 75 kWh is 750 Wh: both ends of the difference are only known to a step.
    est = estimate([soc_reading(0, 5000), soc_reading(1800, 5700)], ctx)
    assert est.source == SOURCE_SOC
    assert est.delivered_wh == 5250
    assert est.delivered_low_wh == 4500
    assert est.delivered_high_wh == 6000


def test_it_bounds_coarse_soc_steps_widely(ctx):
    coarse = replace(ctx, soc_step_bp=1000)  # Hyundai/Kia gen2 report every 10 %
    est = estimate([soc_reading(0, 5000), soc_reading(3600, 6000)], coarse)
    assert est.delivered_wh == 7500
    assert est.delivered_high_wh - est.delivered_low_wh == 15_000


def test_it_measures_soc_energy_from_the_start_level_in_the_context(ctx):
    est = estimate([soc_reading(600, 5200)], replace(ctx, start_soc_bp=5000))
    assert est.delivered_wh == 1500


def test_it_tightens_soc_energy_with_the_start_time_and_a_straight_line():
    """With the charging start known, level changes pin the power and the energy well inside a step."""
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    power, start_level = 10_500.0, 5000.4  # true level is 50.004 %: hidden by the 1 % steps
    readings = []
    rng = random.Random(3)
    times = sorted(rng.uniform(10, 5400) for _ in range(25))
    for t in times:
        level = start_level + power * t / 3600 / 75_000 * 10_000
        readings.append(soc_reading(t, math.floor(level / 100) * 100))
    est = Meter(ctx)
    for r in readings:
        est.add(r)
    result = est.estimate(charging_started_at=T0, charging_started_uncertainty_s=10)
    truth = power * times[-1] / 3600
    steps_only = estimate(readings, ctx)
    assert abs(result.delivered_wh - truth) < 200
    assert abs(result.delivered_wh - truth) < abs(steps_only.delivered_wh - truth)
    assert result.delivered_low_wh <= truth <= result.delivered_high_wh
    width = result.delivered_high_wh - result.delivered_low_wh
    assert width < steps_only.delivered_high_wh - steps_only.delivered_low_wh
    assert result.power_w == pytest.approx(power, rel=0.03)


def test_it_gives_the_same_estimate_incrementally_and_in_batch(ctx):
    readings = [energy_reading(60 * i, 183 * i) for i in range(20)] + [energy_reading(1300, -1)]
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    assert meter.estimate() == estimate(readings, ctx)


def soc_line_readings(power_w: float, start_level_bp: float, times, capacity_wh: int = 75_000):
    out = []
    for t in times:
        level = start_level_bp + power_w * t / 3600 / capacity_wh * 10_000
        out.append(soc_reading(t, math.floor(level / 100) * 100))
    return out


def crossing_time(power_w: float, start_level_bp: float, boundary_bp: float, capacity_wh: int = 75_000) -> float:
    return (boundary_bp - start_level_bp) / (power_w / 3600 / capacity_wh * 10_000)


def test_it_says_when_the_next_soc_level_should_show():
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    readings = soc_line_readings(11_000, 5030, [30, 200, 400, 1000, 1500])
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    assert est.soc_step_s == pytest.approx(245, rel=0.1)  # 750 Wh at 11 kW
    last_level = readings[-1].soc_bp
    truth = crossing_time(11_000, 5030, last_level + 100)
    mid = (est.soc_phase_mid_at - T0).total_seconds()
    assert abs(mid - truth) <= est.soc_phase_width_s / 2 + 5
    assert est.soc_phase_width_s < 245


def test_it_narrows_the_energy_with_a_read_at_the_expected_level_change():
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    readings = soc_line_readings(11_000, 5030, [30, 200, 400, 1000, 1500])
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    before = meter.estimate(charging_started_at=T0)
    at_change = (before.soc_phase_mid_at - T0).total_seconds()
    meter.add(soc_line_readings(11_000, 5030, [at_change])[0])
    after = meter.estimate(charging_started_at=T0)
    width = after.delivered_high_wh - after.delivered_low_wh
    assert width < (before.delivered_high_wh - before.delivered_low_wh) * 0.7
    truth = 11_000 * at_change / 3600
    assert after.delivered_low_wh <= truth <= after.delivered_high_wh


def test_it_fits_the_straight_parts_before_and_after_the_power_tapers():
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    # 11 kW for an hour, then 4 kW: no single line fits both.
    first = soc_line_readings(11_000, 5030, range(0, 3601, 60))
    level_at_hour = 5030 + 11_000 / 75_000 * 10_000
    second = [
        soc_reading(3600 + t, math.floor((level_at_hour + 4_000 * t / 3600 / 75_000 * 10_000) / 100) * 100)
        for t in range(60, 3601, 60)
    ]
    meter = Meter(ctx)
    for r in first + second:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0)
    assert est.power_w == pytest.approx(4_000, rel=0.1)
    assert est.soc_step_s == pytest.approx(750 / 4_000 * 3600, rel=0.1)  # the phase follows the new power
    truth = 11_000 + 4_000
    assert est.delivered_low_wh <= truth <= est.delivered_high_wh
    # Two straight pieces, before and after the bend, pin it far inside the ±750 Wh of the steps.
    assert est.delivered_wh == pytest.approx(truth, abs=150)
    steps_only = estimate(first + second, ctx)
    assert est.delivered_high_wh - est.delivered_low_wh < steps_only.delivered_high_wh - steps_only.delivered_low_wh


def test_it_counts_charger_side_energy_when_told_the_efficiency(ctx):
    readings = [energy_reading(0, 0), energy_reading(600, 1686)]  # 10.12 kW into the battery
    est = estimate(readings, replace(ctx, efficiency=0.92))
    assert est.delivered_wh == round(1686 / 0.92)
    assert est.power_w == pytest.approx(11_000, rel=0.01)


def test_it_adds_what_flowed_before_a_late_first_soc_reading():
    # Charging began at T0 but the first level we saw is from 5 minutes later.
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    readings = soc_line_readings(11_000, 5030, [300, 900])
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0)
    truth = 11_000 * 900 / 3600
    assert est.delivered_low_wh <= truth <= est.delivered_high_wh
    assert abs(est.delivered_wh - truth) < 400


def test_its_power_prior_is_battery_side():
    """The nominal power is the charger's; the SoC and the counter see the battery, 8 % less by default."""
    ctx = MeterContext(capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000)
    assert estimate([], ctx).power_w == 10_120
    est = estimate([soc_reading(0, 3000), soc_reading(600, 3100)], ctx)
    assert est.power_source == "nominal" or est.power_w < 11_000


def test_its_soc_energy_after_a_stop_ends_where_charging_ended():
    """A car stopped at 3000 s and read again later: energy is power x (end − start), not x (last read − start)."""
    ctx = MeterContext(capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000)
    power, start_level, end_s = 10_120.0, 3000.4, 3000.0
    charging = soc_line_readings(power, start_level, range(60, 3000, 110))
    stopped_level = start_level + power * end_s / 3600 / 75_000 * 10_000
    after = [soc_reading(t, math.floor(stopped_level / 100) * 100, state="NOT_CHARGING") for t in (3120, 3600)]
    meter = Meter(replace(ctx, start_soc_bp=3000))
    for r in charging + after:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    truth = power * end_s / 3600
    assert est.delivered_low_wh <= truth <= est.delivered_high_wh
    assert abs(est.delivered_wh - truth) < 120
    # Counting up to the last read instead would have added ten minutes of charging.
    assert est.delivered_wh < truth + power * 600 / 3600 / 2


# --- issue 16: usable capacity, power priors, moving power ------------------------------------


def test_levels_are_converted_at_the_usable_share_of_the_nominal_capacity(ctx):
    from dataclasses import replace

    from tests.sessions.controller.conftest import soc_reading

    soc_ctx = replace(ctx, energy_step_wh=0, usable_fraction=0.9, usable_low_fraction=0.85)
    readings = [soc_reading(0, 2000), soc_reading(3600, 3200)]
    est = estimate(readings, soc_ctx)
    # 12 % of 75 kWh at 90 %: 8.1 kWh, proven down to what 85 % of the pack would hold (less a step).
    assert est.delivered_wh == pytest.approx(8_100, abs=1)
    assert est.delivered_low_wh <= 0.85 * 75_000 * 0.11 + 1
    assert est.delivered_high_wh >= 75_000 * 0.13 - 1
    assert est.capacity_wh == 67_500


def test_the_nominal_power_is_a_wide_prior_not_a_measurement(ctx):
    from dataclasses import replace

    prior_ctx = replace(ctx, nominal_power_fraction=0.85, nominal_power_uncertainty=0.25)
    est = estimate([energy_reading(0, 0, power_w=None)], prior_ctx)
    assert est.power_w == round(11_000 * 0.85)
    assert est.power_source == "nominal"


def test_a_counter_power_is_the_latest_stretch_after_a_drop(ctx):
    # 11 kW for an hour, then 5.5 kW: two readings after the drop measure the new power alone.
    readings = [
        energy_reading(0, 0),
        energy_reading(1200, 3667),
        energy_reading(2400, 7333),
        energy_reading(3600, 11_000),
        energy_reading(4200, 11_917),
        energy_reading(4800, 12_833),
    ]
    est = estimate(readings, ctx)
    assert est.power_w == pytest.approx(5_500, rel=0.01)
    assert est.power_settled
    # With only one reading after the drop the newest pair is all there is: not settled yet.
    early = estimate(readings[:5], ctx)
    assert not early.power_settled


def test_a_reported_wattage_that_moved_ends_the_stretch_at_once(ctx):
    readings = [
        energy_reading(0, 0, power_w=11_000),
        energy_reading(1800, 5_500, power_w=11_000),
        energy_reading(3600, 11_000, power_w=5_000),  # the car already shows the drop
    ]
    est = estimate(readings, ctx)
    assert not est.power_settled
    # No stretch of the new power to time yet: the car's own wattage (battery side) is the figure.
    assert est.power_w == pytest.approx(5_000 * ctx.charger_efficiency, rel=0.01)


def two_power_soc_readings(seconds, *, drop_at: float, before_w: float, after_w: float, wattage: bool = False):
    """1 % levels (floored) of a car at 50.3 % charging at `before_w`, then at `after_w` from `drop_at`."""

    def delivered(t: float) -> float:
        return (before_w * min(t, drop_at) + after_w * max(0.0, t - drop_at)) / 3600

    out = []
    for t in seconds:
        reading = soc_reading(t, math.floor((5030 + delivered(t) / 75_000 * 10_000) / 100) * 100)
        out.append(replace(reading, power_w=round(before_w if t < drop_at else after_w)) if wattage else reading)
    return out, delivered


def test_an_soc_estimate_after_a_power_drop_does_not_prove_the_old_power():
    # 8 kW for an hour, then 4 kW, read every 5 minutes. The 1 % steps hide the bend: the newest
    # run of readings one line still fits reaches back across the drop, and the level that line
    # pins now lies above the true one, proving more energy than went in. Only the latest stretch
    # of one power may say where the level is now, and only as far as all its slopes agree.
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    readings, delivered = two_power_soc_readings(range(0, 6001, 300), drop_at=3600, before_w=8_000, after_w=4_000)
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    assert est.delivered_low_wh <= delivered(6000) <= est.delivered_high_wh
    # Still tighter than the bare steps (±1 step, 750 Wh, at each end).
    steps_only = estimate(readings, ctx)
    assert est.delivered_high_wh - est.delivered_low_wh < steps_only.delivered_high_wh - steps_only.delivered_low_wh


def test_an_soc_car_reporting_its_wattage_ends_the_stretch_where_the_wattage_moved():
    ctx = MeterContext(
        capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
    )
    readings, delivered = two_power_soc_readings(
        range(0, 4501, 300), drop_at=3600, before_w=8_000, after_w=4_000, wattage=True
    )
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    # 15 minutes after the drop the level moved one step at the new power: the power is the new
    # one, not the line of the hour before, and the energy proven is no more than went in.
    assert est.power_w == pytest.approx(4_000, rel=0.05)
    assert est.delivered_low_wh <= delivered(4500) <= est.delivered_high_wh


def test_levels_low_in_the_pack_prove_the_energy_a_percent_holds_there():
    # A pack at 85 % of its nominal 75 kWh whose voltage climbs 15 % from empty to full holds
    # 85 % x 75 kWh x (1 + 0.15 (s − ½)) per unit of level at level s: from 12 to 41 %, ~4 % less
    # than an average percent. What the levels prove must hold for that pack too.
    ctx = MeterContext(
        capacity_wh=75_000,
        soc_step_bp=100,
        energy_step_wh=0,
        nominal_power_w=11_000,
        usable_fraction=0.945,
        usable_low_fraction=0.85,
        level_energy_rise=0.15,
    )
    pack_wh, rise = 0.85 * 75_000, 0.15

    def stored(level: float) -> float:
        return pack_wh * (level + rise * (level * level - level) / 2)

    power_w, start = 6_000.0, 0.1201
    readings = []
    for t in range(0, 3 * 3600 + 1, 300):
        energy = stored(start) + power_w * t / 3600
        lo, hi = start, 1.0  # the level that holds this energy
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if stored(mid) < energy else (lo, mid)
        readings.append(soc_reading(t, math.floor(lo * 100) * 100))
    meter = Meter(ctx)
    for r in readings:
        meter.add(r)
    est = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    assert readings[-1].soc_bp == 4100
    assert est.delivered_low_wh <= power_w * 3 <= est.delivered_high_wh
    # Counting every percent alike, the levels prove more than went in.
    meter = Meter(replace(ctx, level_energy_rise=0.0))
    for r in readings:
        meter.add(r)
    alike = meter.estimate(charging_started_at=T0, charging_started_uncertainty_s=0)
    assert alike.delivered_low_wh > power_w * 3


# --- a car that reports its charging power (v3 `charge-wattage`) -------------------------------


def power_car_readings(
    *,
    end_s,
    every_s,
    capacity_wh,
    wall_w,
    heater_w=0.0,
    drop_at_s=None,
    after_w=None,
    eff=0.92,
    start=0.2,
    rise=0.0,
    heat_until_s=math.inf,
    heater_signal=False,
):
    """Readings of a car that reports its level (1 % steps, floored) and its charger-side power:
    `wall_w` (`after_w` from `drop_at_s`), `heater_w` of it (battery side) heating the pack until
    `heat_until_s`, the rest at `eff` into the battery. A percent at level s holds (1 + rise (s − ½))
    of the average. `heater_signal`: the readings say whether the heater runs. Returns (readings,
    battery Wh at each reading's time)."""

    def level_at(wh):
        s = start
        while wh > 0:  # 0.01 % at a time: the energy each holds grows with the level
            wh -= capacity_wh / 10_000 * (1 + rise * (s - 0.5))
            s += 0.0001
        return s

    def wall(t):
        return after_w if drop_at_s is not None and t >= drop_at_s else wall_w

    def battery_wh(t):
        before = min(t, drop_at_s) if drop_at_s is not None else t
        after = t - before
        heated = min(t, heat_until_s)
        return (wall_w * eff * before + (after_w or 0) * eff * after - heater_w * heated) / 3600

    readings, truth, t = [], [], 0.0
    while t <= end_s:
        level = math.floor(level_at(battery_wh(t)) * 100 + 1e-9) * 100
        readings.append(
            Reading(
                taken_at=at(t),
                fetched_at=at(t + 30),
                source=SOURCE_POWER,
                soc_bp=level,
                power_w=round(wall(t)),
                charge_state=CHARGING,
                is_plugged_in=True,
                heater_active=(heater_w > 0 and t < heat_until_s) if heater_signal else None,
            )
        )
        truth.append(battery_wh(t))
        t += every_s
    return readings, truth


def power_ctx(capacity_wh, **kw):
    return MeterContext(
        capacity_wh=capacity_wh,
        soc_step_bp=100,
        energy_step_wh=0,
        start_soc_bp=2000,
        nominal_power_w=11_000,
        charging_started_at=T0,
        charging_started_uncertainty_s=5,
        **kw,
    )


def test_a_car_that_reports_its_power_is_metered_by_that_power():
    # 7 kW for 40 minutes into an 81 kWh pack: under four level steps, each 810 Wh. The levels
    # alone know the energy to about a step; the power added up over time knows it to watts.
    readings, truth = power_car_readings(end_s=2400, every_s=300, capacity_wh=81_000, wall_w=7_000)
    est = estimate(readings, power_ctx(81_000))
    assert est.source == SOURCE_POWER and est.power_source == "reported"
    assert est.delivered_wh == pytest.approx(truth[-1], abs=5)
    assert est.delivered_low_wh <= truth[-1] <= est.delivered_high_wh
    # The STOP is planned on the measured power (battery side), not a level slope.
    assert est.power_w == pytest.approx(7_000 * 0.92, rel=0.001)


def test_a_power_drop_between_readings_is_followed_at_the_next_reading():
    readings, truth = power_car_readings(
        end_s=3600, every_s=300, capacity_wh=60_000, wall_w=11_000, drop_at_s=1750, after_w=5_500
    )
    est = estimate(readings, power_ctx(60_000))
    # Within the trapezoid's error over the one span with the drop (300 s at 5.5 kW / 2).
    assert abs(est.delivered_wh - truth[-1]) <= 5_500 * 300 / 3600 / 2 * 0.92 + 10
    assert est.delivered_low_wh <= truth[-1] <= est.delivered_high_wh
    assert est.power_w == round(5_500 * 0.92)


def test_what_a_heater_takes_of_the_reported_power_is_never_billed_nor_planned_on():
    # A cold pack: 1.5 kW of the 7 kW the wall gives heats it. The wattage cannot tell; what is
    # billed (the low bound) stays what the levels prove at the smallest pack the car may have.
    readings, truth = power_car_readings(end_s=3600, every_s=300, capacity_wh=81_000, wall_w=7_000, heater_w=1_500)
    ctx = power_ctx(81_000, usable_fraction=0.945, usable_low_fraction=0.85, level_energy_rise=0.15)
    meter = Meter(ctx)
    for reading, true_wh in zip(readings, truth, strict=True):
        meter.add(reading)
        est = meter.estimate()
        assert est.delivered_low_wh <= true_wh <= est.delivered_high_wh
    # The estimate is the wall's energy at the charger's efficiency (6.44 kWh, the heater's share
    # in it: no bound of the levels tells it at this length), but the levels rise slower than
    # 6.44 kW can fill even the largest pack: the STOP is planned on the levels' power.
    assert est.delivered_wh == pytest.approx(7_000 * 0.92, abs=10)
    assert est.power_w == pytest.approx(7_000 * 0.92 - 1_500, rel=0.03)


def test_the_levels_high_bound_does_not_cap_what_the_power_measured():
    # High in the pack a percent holds more than the capacity's hundredth (4 % more from 70 to
    # 86 %): the levels' high bound at the nominal capacity falls below the energy delivered. The
    # wall's energy is the bound; the power's estimate is not cut to the levels'.
    readings, truth = power_car_readings(
        end_s=7200, every_s=300, capacity_wh=81_000, wall_w=7_000, start=0.7, rise=0.15
    )
    ctx = replace(
        power_ctx(81_000, usable_fraction=0.945, usable_low_fraction=0.85, level_energy_rise=0.15), start_soc_bp=7000
    )
    est = estimate(readings, ctx)
    assert est.delivered_wh == pytest.approx(truth[-1], abs=10)
    assert est.delivered_low_wh <= truth[-1] <= est.delivered_high_wh


def test_a_pause_the_readings_show_adds_no_power():
    # 7 kW for 20 minutes, paused for 40 (the verification read shows it), 7 kW again for 20:
    # the pause counts nothing; the stop and the restart fall between two readings (half each).
    charging, _ = power_car_readings(end_s=1200, every_s=300, capacity_wh=81_000, wall_w=7_000)
    paused = [
        replace(charging[-1], taken_at=at(t), fetched_at=at(t + 30), power_w=0, charge_state=NOT_CHARGING)
        for t in (1260, 2400)
    ]
    resumed = [
        replace(charging[-1], taken_at=at(t), fetched_at=at(t + 30), soc_bp=charging[-1].soc_bp + 100 * (t > 3000))
        for t in (2700, 3000, 3600)
    ]
    est = estimate([*charging, *paused, *resumed], power_ctx(81_000))
    truth = 7_000 * 0.92 * (1200 + 30 + (3600 - 2700) + 150) / 3600  # stop at 1230, restart at 2550 (mid-spans)
    assert est.source == SOURCE_POWER
    assert est.delivered_wh == pytest.approx(truth, abs=10)


def test_a_car_that_stopped_keeps_the_power_it_charged_at_for_planning():
    # The car reports 0 W once it stops: the power it would charge at again is the levels', not 0.
    readings, _ = power_car_readings(end_s=2400, every_s=300, capacity_wh=81_000, wall_w=7_000)
    stopped = replace(readings[-1], taken_at=at(2460), fetched_at=at(2490), power_w=0, charge_state=NOT_CHARGING)
    est = estimate([*readings, stopped], power_ctx(81_000))
    assert est.power_w == pytest.approx(7_000 * 0.92, rel=0.15)


# --- a car that says its pack heater runs (`tractionbattery-isheateractive`) ----------------------


def test_a_power_car_whose_heater_is_reported_active_is_metered_by_its_levels_not_its_wattage():
    # The heater case above, but the car says its heater runs: the wattage is not the battery's
    # power, so neither the energy so far nor the STOP's power is taken from it.
    kw = {"end_s": 3600, "every_s": 300, "capacity_wh": 81_000, "wall_w": 7_000, "heater_w": 1_500}
    ctx = power_ctx(81_000, usable_fraction=0.945, usable_low_fraction=0.85, level_energy_rise=0.15)
    said, truth = power_car_readings(**kw, heater_signal=True)
    unsaid, _ = power_car_readings(**kw)
    levels_only = [replace(r, source=SOURCE_SOC, power_w=None) for r in unsaid]
    heated, today, levels = estimate(said, ctx), estimate(unsaid, ctx), estimate(levels_only, ctx)
    # Without the signal: as today, the wall's energy at the charger's efficiency (6.44 kWh).
    assert today.delivered_wh == pytest.approx(7_000 * 0.92, abs=10)
    # With it: the levels' estimate, as for a car without wattage (the truth is 4.94 kWh).
    assert heated.delivered_wh == levels.delivered_wh
    assert heated.delivered_low_wh <= truth[-1] <= heated.delivered_high_wh
    assert abs(heated.delivered_wh - truth[-1]) < abs(today.delivered_wh - truth[-1]) / 2
    # No STOP planned on the wattage: the power is the levels' (5.0 kW battery side), not 6.44 kW.
    assert heated.power_w == pytest.approx(7_000 * 0.92 - 1_500, rel=0.05)
    assert heated.power_w < 7_000 * 0.92 * 0.9
    # A STOP for 6 kWh more: planned later than on the wattage.
    target = heated.delivered_wh + 6_000
    assert (target - heated.delivered_wh) / heated.power_w > (target - today.delivered_wh) / today.power_w


def test_once_the_heater_is_reported_off_the_wattage_measures_the_energy_from_then_on():
    kw = {"end_s": 5400, "every_s": 300, "capacity_wh": 81_000, "wall_w": 7_000, "heater_w": 1_500}
    ctx = power_ctx(81_000, usable_fraction=0.945, usable_low_fraction=0.85, level_energy_rise=0.15)
    said, truth = power_car_readings(**kw, heat_until_s=1800, heater_signal=True)
    assert said[5].heater_active is True and said[6].heater_active is False  # off from 1800 s
    at_off = estimate(said[:7], ctx)
    est = estimate(said, ctx)
    # The levels' energy when the heater was seen off, and the wattage's for the hour since.
    assert est.delivered_wh == pytest.approx(at_off.delivered_wh + 7_000 * 0.92, abs=2)
    assert est.delivered_low_wh <= truth[-1] <= est.delivered_high_wh
    # Today: the wattage's sum from the start (9.66 kWh), the heater's 0.75 kWh in it.
    today = estimate([replace(r, heater_active=None) for r in said], ctx)
    assert today.delivered_wh == pytest.approx(7_000 * 0.92 * 1.5, abs=10)
    assert abs(est.delivered_wh - truth[-1]) < abs(today.delivered_wh - truth[-1]) / 2
    # The STOP is planned on the wattage again.
    assert est.power_source == "reported"
    assert est.power_w == round(7_000 * 0.92)


def test_a_heater_that_runs_again_stops_the_wattage_measuring_until_it_stops_again():
    kw = {"end_s": 3600, "every_s": 300, "capacity_wh": 81_000, "wall_w": 7_000, "heater_w": 1_500}
    ctx = power_ctx(81_000, usable_fraction=0.945, usable_low_fraction=0.85, level_energy_rise=0.15)
    said, _ = power_car_readings(**kw, heat_until_s=900, heater_signal=True)
    again = [replace(r, heater_active=True) if i >= 8 else r for i, r in enumerate(said)]
    levels = [replace(r, source=SOURCE_SOC, power_w=None, heater_active=None) for r in said]
    est, lv = estimate(again, ctx), estimate(levels, ctx)
    assert est.power_w < 7_000 * 0.92 * 0.9  # not the wattage while it runs
    assert est.delivered_wh == lv.delivered_wh  # the levels' alone, with the nominal prior as theirs


def test_a_power_car_that_never_says_off_or_on_is_metered_as_today():
    # `heater_active=False` throughout (the car reports the signal, no heater) changes nothing.
    kw = {"end_s": 2400, "every_s": 300, "capacity_wh": 81_000, "wall_w": 7_000}
    said, _ = power_car_readings(**kw, heater_signal=True)
    unsaid, _ = power_car_readings(**kw)
    assert all(r.heater_active is False for r in said)
    assert estimate(said, power_ctx(81_000)) == estimate(unsaid, power_ctx(81_000))
