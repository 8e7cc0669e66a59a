"""Cars whose data refreshes at each level step while charging (Hyundai/Kia Gen2, 10 % levels):
a read that returns an older level shows that level still holds when it was read."""

from dataclasses import replace
from datetime import timedelta

import pytest

from sessions.controller import policy
from sessions.controller.metering import CHARGING, NOT_CHARGING, MeterContext, Reading, estimate
from tests.sessions.controller.conftest import at

LAG_S = 180.0
TARGET_WH = 21_400


def level(seconds: float, soc_bp: int, *, fetched_s: float | None = None, state=CHARGING, via="poll") -> Reading:
    """The car's level recorded at T0 + seconds (a step's event), fetched at `fetched_s`."""
    return Reading(
        taken_at=at(seconds),
        fetched_at=at(seconds + 30 if fetched_s is None else fetched_s),
        source="soc",
        soc_bp=soc_bp,
        charge_state=state,
        is_plugged_in=True,
        via=via,
    )


@pytest.fixture
def hk() -> MeterContext:
    return MeterContext(
        capacity_wh=72_600,
        soc_step_bp=1000,
        energy_step_wh=0,
        start_soc_bp=1000,
        nominal_power_w=11_000,
        charging_started_at=at(0),
        level_event_lag_s=LAG_S,
    )


# A 7.5-kW charge from 10 %: the level shows 20 % at 76 min, then the power drops to ~3 kW; the
# reads at 2 h, 2 h 30 and 2 h 50 all return the 20 % of 76 min (the next step has not come).
HELD = [
    level(-60, 1000, state=NOT_CHARGING),
    level(60, 1000),
    level(76 * 60, 2000),
    level(76 * 60, 2000, fetched_s=120 * 60),
    level(76 * 60, 2000, fetched_s=150 * 60),
    level(76 * 60, 2000, fetched_s=170 * 60),
]


def _decide(ctx: MeterContext, now_s: float) -> tuple[policy.Decision, float]:
    est = estimate(HELD, ctx)
    state = policy.PolicyState(
        now=at(now_s),
        target_wh=TARGET_WH,
        estimate=est,
        started_at=at(-60),
        charging_started_at=at(0),
        last_read_at=at(now_s),
        reads=len(HELD),
        telemetry_age_s=30.0,
        telemetry_refresh_s=600.0,
        soc_only=True,
    )
    return policy.PredictivePolicy().decide(state), est.delivered_at(at(now_s))


def test_a_held_level_bounds_the_energy_of_an_event_reporting_car(hk):
    # Still 20 % when read at 2 h 50 (less the lag): no more than two steps can have gone in
    # (from just over 10 % to just under 30 %), whatever the power was before.
    decision, now_wh = _decide(hk, 170 * 60 + 1)
    est = estimate(HELD, hk)
    assert est.as_of == at(170 * 60 - LAG_S)
    assert now_wh <= 2 * 7_260 * 1.01
    assert decision.kind != policy.STOP


def test_without_the_trait_an_old_level_is_extrapolated_past_what_it_allows(hk):
    # The data of other cars is as old as its time says: the same reads say nothing after 76 min,
    # and the estimate runs on at the power before the drop (the STOP that went out at half the
    # purchase on hk_event_gen2).
    decision, now_wh = _decide(replace(hk, level_event_lag_s=None), 170 * 60 + 1)
    assert now_wh > 2 * 7_260 * 1.2
    assert decision.kind == policy.STOP


def test_only_a_polled_answer_says_the_level_held(hk):
    # A webhook may arrive late (retries, reordering): its level says nothing of the time it came.
    late = [*HELD[:3], replace(HELD[3], via="webhook")]
    assert estimate(late, hk).as_of == at(76 * 60)
    assert estimate(HELD[:4], hk).as_of == at(120 * 60 - LAG_S)


def test_a_held_level_never_displaces_a_newer_reading(hk):
    # A read whose answer came just after a step was recorded, within the lag: left as it is.
    readings = [*HELD[:3], level(76 * 60, 2000, fetched_s=76 * 60 + 60)]
    est = estimate(readings, hk)
    assert est.as_of == at(76 * 60)
    assert est.accepted == 3  # the same snapshot again: a duplicate, as before


def test_a_step_after_a_held_level_is_taken(hk):
    readings = [*HELD[:4], level(125 * 60, 3000)]
    est = estimate(readings, hk)
    assert est.as_of == at(125 * 60)
    assert not est.rejections


def test_the_hyundai_and_kia_traits_say_their_levels_come_as_events():
    from sessions.vehicles import makes

    assert makes.traits_for("HYUNDAI").level_event_lag_s == pytest.approx(timedelta(minutes=3).total_seconds())
    assert makes.traits_for("kia").level_event_lag_s is not None
    assert makes.traits_for("TESLA").level_event_lag_s is None
