import random
from dataclasses import replace
from datetime import timedelta

import pytest

from sessions.controller.metering import NOT_CHARGING, MeterContext, estimate
from sessions.controller.policy import (
    FLAG_OPERATOR,
    LOWER_CHARGE_LIMIT,
    READ,
    RETRY_STOP,
    STOP,
    FixedIntervalPolicy,
    LatencyModel,
    NaivePolicy,
    PolicyState,
    PredictiveConfig,
    PredictivePolicy,
    escalation,
    estimate_charging_start,
    infer_stop_latency_s,
    policy_from_spec,
    predict,
    settle,
    stop_verification_schedule,
)
from tests.sessions.controller.conftest import T0, at, energy_reading

CTX = MeterContext(
    capacity_wh=75_000, soc_step_bp=100, energy_step_wh=10, nominal_power_w=11_000, charger_efficiency=1.0
)
WH_PER_S = 11_000 / 3600


def charging_estimate(until_s: float, *, age_s: float = 60.0, power_w: float = 11_000):
    """Readings every 10 minutes from the start until `until_s` (data time), each `age_s` old."""
    times = [*range(0, int(until_s), 600), until_s]
    return estimate([energy_reading(t, round(power_w * t / 3600), age_s=age_s) for t in times], CTX)


def state(now_s: float, est, target_wh: int = 20_000, **kw) -> PolicyState:
    kw.setdefault("last_read_at", at(now_s))
    return PolicyState(now=at(now_s), target_wh=target_wh, estimate=est, started_at=T0, **kw)


# --- latency model -----------------------------------------------------------------------------


def test_it_starts_from_a_uniform_prior_of_3_to_45_seconds():
    model = LatencyModel()
    assert model.quantile(0.0) == 3
    assert model.median == pytest.approx(24)
    assert model.quantile(1.0) == 45
    assert model.cdf(13.5) == pytest.approx(0.25)


def test_it_learns_latency_from_observed_stops():
    model = LatencyModel()
    for _ in range(50):
        model = model.observe(10.0)
    assert model.median == pytest.approx(10.0, abs=0.01)
    # The prior still keeps a little weight: the 95th percentile is not 10 s.
    assert model.quantile(0.95) > 10.0


def test_it_keeps_only_the_latest_latency_samples():
    model = LatencyModel(max_samples=5)
    for value in (100, 100, 100, 100, 100, 5, 5, 5, 5, 5):
        model = model.observe(value)
    assert model.samples == (5.0,) * 5


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "7"])
def test_it_ignores_nonsense_latency_observations(bad):
    assert LatencyModel().observe(bad) == LatencyModel()


def test_it_caps_a_latency_observation_at_the_api_timeout():
    assert LatencyModel().observe(10_000).samples == (300.0,)


# --- prediction --------------------------------------------------------------------------------


def test_it_predicts_from_the_data_age_not_from_now():
    # Data recorded at 3000 s says 9167 Wh; energy kept flowing during the 60 s it took to reach us.
    est = charging_estimate(3000)
    pred = predict(state(3060, est))
    expected_target = 3000 + (20_000 - est.delivered_wh) / WH_PER_S
    assert (pred.target_at - T0).total_seconds() == pytest.approx(expected_target, abs=2)


def test_it_sends_stop_a_median_latency_before_the_target():
    est = charging_estimate(3000)
    pred = predict(state(3060, est))
    assert (pred.target_at - pred.send_at).total_seconds() == pytest.approx(24, abs=0.01)


def test_it_uses_the_learned_latency_for_compensation():
    est = charging_estimate(3000)
    fast = LatencyModel()
    for _ in range(100):
        fast = fast.observe(6.0)
    pred = predict(state(3060, est, latency=fast))
    assert (pred.target_at - pred.send_at).total_seconds() == pytest.approx(6, abs=0.5)


def test_it_predicts_on_nominal_power_before_any_reading():
    est = estimate([], CTX)
    pred = predict(state(0, est, target_wh=11_000, last_read_at=None, charging_started_at=at(20)))
    assert (pred.target_at - T0).total_seconds() == pytest.approx(20 + 3600)


# --- decisions ---------------------------------------------------------------------------------


def test_it_reads_first_when_the_car_should_be_charging_and_its_data_shows_it():
    est = estimate([], CTX)
    decision = PredictivePolicy().decide(state(0, est, last_read_at=None))
    assert decision.kind == READ
    # 90th percentile START latency (40.8 s) + 60 s data age.
    assert (decision.at - T0).total_seconds() == pytest.approx(40.8 + 60, abs=0.1)


def test_it_reads_again_while_charging_is_not_confirmed():
    est = estimate([energy_reading(0, 0, state=NOT_CHARGING)], CTX)
    decision = PredictivePolicy().decide(state(100, est))
    assert decision.kind == READ
    assert (decision.at - T0).total_seconds() == pytest.approx(160)


def test_it_reads_sparsely_early_and_densely_near_the_end():
    policy = PredictivePolicy()
    early = policy.decide(state(600, charging_estimate(540)))
    late = policy.decide(state(6000, charging_estimate(5940)))
    assert early.kind == late.kind == READ
    early_gap = (early.at - at(600)).total_seconds()
    late_gap = (late.at - at(6000)).total_seconds()
    assert early_gap > 1800
    assert late_gap < 400
    assert early_gap > 5 * late_gap


def test_it_never_reads_more_often_than_the_car_refreshes_its_data():
    est = charging_estimate(6200)
    quick = PredictivePolicy().decide(state(6260, est, target_wh=20_000))
    slow = PredictivePolicy().decide(state(6260, est, target_wh=20_000, telemetry_refresh_s=300))
    assert quick.kind == READ
    assert (quick.at - at(6260)).total_seconds() < 300
    # With data refreshed only every 300 s the next read would land after STOP: stop instead.
    assert slow.kind == STOP


def test_it_caps_the_read_interval():
    est = charging_estimate(60)
    decision = PredictivePolicy(PredictiveConfig(max_read_interval_s=900)).decide(state(120, est, target_wh=60_000))
    assert decision.kind == READ
    assert (decision.at - at(120)).total_seconds() == pytest.approx(900)


def test_it_commits_to_stop_when_no_read_would_change_it():
    est = charging_estimate(6300)
    decision = PredictivePolicy().decide(state(6360, est))
    pred = predict(state(6360, est))
    assert decision.kind == STOP
    assert decision.at == pred.send_at
    assert decision.at > at(6360)


def test_it_stops_at_once_when_the_estimate_reaches_the_purchase():
    est = charging_estimate(6600)  # 20 167 Wh already
    decision = PredictivePolicy().decide(state(6660, est))
    assert (decision.kind, decision.at) == (STOP, at(6660))


def test_it_stops_at_once_when_the_low_bound_reaches_the_purchase():
    est = replace(charging_estimate(3000), delivered_low_wh=20_000)
    decision = PredictivePolicy().decide(state(3060, est))
    assert (decision.kind, decision.at) == (STOP, at(3060))


def test_it_stops_at_once_when_the_send_time_has_passed():
    # Data is 10 minutes old (a slow cloud): the target was reached in the meantime.
    est = charging_estimate(6200, age_s=600)
    decision = PredictivePolicy().decide(state(6800, est))
    assert (decision.kind, decision.at) == (STOP, at(6800))


def test_it_keeps_calls_for_the_stop_and_its_verification():
    est = charging_estimate(600)
    policy = PredictivePolicy()
    assert policy.decide(state(660, est, calls_remaining=4)).kind == READ
    reserved = policy.decide(state(660, est, calls_remaining=3))
    assert reserved.kind == STOP
    # It does not stop early for lack of calls: STOP still goes out at the predicted time.
    assert reserved.at == predict(state(660, est)).send_at


def test_it_spreads_a_small_budget_so_the_last_read_lands_near_the_end():
    est = charging_estimate(600)
    policy = PredictivePolicy()
    rich = policy.decide(state(660, est))
    poor = policy.decide(state(660, est, calls_remaining=4))  # a single read left
    # With one read left it goes close to the end rather than a fraction of the way.
    assert poor.at > rich.at
    assert (predict(state(660, est)).send_at - poor.at).total_seconds() <= 240 + 1


def test_it_honours_retry_after_for_reads():
    est = charging_estimate(600)
    decision = PredictivePolicy().decide(state(660, est, not_before=at(5000)))
    assert decision.kind == READ
    assert decision.at == at(5000)


def test_it_honours_retry_after_for_stop():
    est = charging_estimate(6600)
    decision = PredictivePolicy().decide(state(6660, est, not_before=at(6800)))
    assert (decision.kind, decision.at) == (STOP, at(6800))


def test_it_stops_instead_of_a_read_that_retry_after_pushes_past_the_stop():
    est = charging_estimate(600)
    send_at = predict(state(660, est)).send_at
    decision = PredictivePolicy().decide(state(660, est, not_before=send_at + timedelta(seconds=30)))
    assert decision.kind == STOP
    assert decision.at == send_at + timedelta(seconds=30)


def test_it_reads_on_a_fixed_clock_and_stops_on_a_reading_past_the_purchase_as_the_baseline():
    policy = FixedIntervalPolicy(30)
    before = policy.decide(state(3060, charging_estimate(3000)))
    assert (before.kind, before.at) == (READ, at(3090))
    after = policy.decide(state(6660, charging_estimate(6600)))
    assert (after.kind, after.at) == (STOP, at(6660))


def test_it_stops_at_the_target_without_latency_compensation_as_the_naive_baseline():
    est = charging_estimate(6500)
    decision = NaivePolicy().decide(state(6520, est))
    assert decision.kind == STOP
    assert decision.at == predict(state(6520, est)).target_at


def test_it_builds_policies_from_benchmark_specs():
    assert policy_from_spec("predictive").name == "predictive"
    assert policy_from_spec("naive").name == "naive"
    fixed = policy_from_spec("fixed:300")
    assert isinstance(fixed, FixedIntervalPolicy)
    assert fixed.seconds == 300
    assert fixed.name == "fixed:300"
    with pytest.raises(ValueError):
        policy_from_spec("fixed:0")
    with pytest.raises(ValueError):
        policy_from_spec("clever")


# --- start and latency inference ---------------------------------------------------------------


def test_it_estimates_the_charging_start_from_the_start_latency():
    best, half = estimate_charging_start(start_sent_at=T0, latency=LatencyModel())
    assert best == at(24)
    assert half == pytest.approx(21)


def test_it_narrows_the_charging_start_with_charge_states():
    readings = [energy_reading(10, 0, state=NOT_CHARGING), energy_reading(30, 0)]
    best, half = estimate_charging_start(start_sent_at=T0, latency=LatencyModel(), readings=readings)
    assert best == at(20)
    assert half == pytest.approx(10)


def test_it_infers_stop_latency_from_the_energy_that_still_went_in():
    seconds = infer_stop_latency_s(
        stop_sent_at=at(6000), predicted_wh_at_send=18_000, final_delivered_wh=18_061, power_w=11_000
    )
    assert seconds == pytest.approx(20, abs=0.1)
    assert infer_stop_latency_s(stop_sent_at=at(0), predicted_wh_at_send=1, final_delivered_wh=1, power_w=0) is None
    assert (
        infer_stop_latency_s(stop_sent_at=at(0), predicted_wh_at_send=100, final_delivered_wh=50, power_w=11_000) == 0.0
    )


# --- verification, escalation, settlement ------------------------------------------------------


def test_it_verifies_a_stop_once_it_should_show_in_the_data():
    delay = stop_verification_schedule(0, random.Random(1), telemetry_age_s=60)
    assert delay.total_seconds() == pytest.approx(40.8 + 60, abs=0.1)


def test_it_backs_off_verification_with_seeded_jitter():
    def delays(seed):
        rng = random.Random(seed)
        return [stop_verification_schedule(a, rng, base_s=30, cap_s=600).total_seconds() for a in range(1, 9)]

    first, again, other = delays(7), delays(7), delays(8)
    assert first == again  # a seeded RNG replays the same schedule
    assert first != other
    for attempt, seconds in enumerate(first, start=1):
        ceiling = min(600, 30 * 2 ** (attempt - 1))
        assert max(30, ceiling / 2) <= seconds <= max(30, ceiling)
    assert first[-1] > first[0]
    with pytest.raises(ValueError):
        stop_verification_schedule(-1, random.Random(1))


def test_it_escalates_from_retry_to_charge_limit_to_operator():
    kw = {"supports_charge_limit": True, "current_soc_bp": 6234}
    assert escalation(1, **kw).kind == RETRY_STOP
    assert escalation(2, **kw).kind == RETRY_STOP
    lowered = escalation(3, **kw)
    assert lowered.kind == LOWER_CHARGE_LIMIT
    assert lowered.limit_bp == 6300  # its current level, to the next whole percent the API takes
    assert escalation(4, limit_already_lowered=True, **kw).kind == FLAG_OPERATOR


def test_it_flags_the_operator_when_the_limit_cannot_help():
    assert escalation(3, supports_charge_limit=False, current_soc_bp=7000).kind == FLAG_OPERATOR
    # Below 50 % the API refuses a limit at the current level.
    assert escalation(3, supports_charge_limit=True, current_soc_bp=4200).kind == FLAG_OPERATOR
    assert escalation(3, supports_charge_limit=True, current_soc_bp=None).kind == FLAG_OPERATOR


def test_it_settles_the_delivered_energy_up_to_the_purchase():
    assert settle(10_000, 9_500) == (9_500, 0)
    assert settle(10_000, 10_240) == (10_000, 240)
    assert settle(10_000, 10_000) == (10_000, 0)
    assert settle(10_000, -5) == (0, 0)
    with pytest.raises(ValueError):
        settle(-1, 0)


def test_it_never_bills_above_the_purchase():
    rng = random.Random(20260301)
    for _ in range(20_000):
        purchased = rng.randrange(0, 200_000)
        delivered = rng.choice([rng.randrange(-1_000, 400_000), purchased, purchased + 1, purchased - 1])
        billed, overshoot = settle(purchased, delivered)
        assert 0 <= billed <= purchased
        assert billed <= max(delivered, 0)
        assert overshoot >= 0
        assert billed + overshoot == max(delivered, 0)


# --- SoC-only cars -----------------------------------------------------------------------------

SOC_CTX = MeterContext(
    capacity_wh=75_000, soc_step_bp=100, energy_step_wh=0, nominal_power_w=11_000, charger_efficiency=1.0
)


def soc_estimate(until_s: float, *, phase_mid_s: float, width_s: float, reads: int):
    from tests.sessions.controller.conftest import soc_reading

    readings = [soc_reading(t, 5000 + int(t / 245) * 100) for t in (*range(0, int(until_s), 600), until_s)]
    est = estimate(readings, SOC_CTX)
    return replace(est, soc_phase_mid_at=at(phase_mid_s), soc_phase_width_s=width_s, soc_step_s=245.0)


def test_it_confirms_a_soc_only_start_at_the_median_latency():
    est = estimate([], SOC_CTX)
    decision = PredictivePolicy().decide(state(0, est, last_read_at=None, soc_only=True))
    assert (decision.at - T0).total_seconds() == pytest.approx(24 + 60, abs=0.1)


def test_it_times_early_reads_of_a_soc_only_car_at_the_expected_level_change():
    est = soc_estimate(100, phase_mid_s=180, width_s=200, reads=1)
    decision = PredictivePolicy().decide(state(160, est, reads=1, soc_only=True))
    assert decision.kind == READ
    # The level change expected at data time 180 (+ 245 s per level), seen 60 s later, >= 60 s from now.
    assert (decision.at - T0).total_seconds() == pytest.approx(180 + 60)
    later = PredictivePolicy().decide(state(200, est, reads=2, soc_only=True))
    assert (later.at - T0).total_seconds() == pytest.approx(180 + 245 + 60)
    assert "phase" in decision.reason


def test_it_stops_timing_level_changes_once_the_phase_is_pinned():
    est = soc_estimate(100, phase_mid_s=180, width_s=5, reads=1)
    decision = PredictivePolicy().decide(state(160, est, reads=1, soc_only=True))
    assert "phase" not in decision.reason


def test_it_snaps_a_scheduled_soc_read_to_a_level_change():
    est = soc_estimate(3000, phase_mid_s=3100, width_s=30, reads=8)
    plain = PredictivePolicy(PredictiveConfig(snap_soc_reads=False)).decide(state(3060, est, reads=8))
    snapped = PredictivePolicy().decide(state(3060, est, reads=8))
    assert plain.kind == snapped.kind == READ
    offset = (snapped.at - timedelta(seconds=60) - at(3100)).total_seconds() % 245
    assert offset == pytest.approx(0, abs=0.01) or offset == pytest.approx(245, abs=0.01)
    assert abs((snapped.at - plain.at).total_seconds()) <= 245 / 2 + 1


def test_it_times_a_last_soc_read_just_before_stop():
    est = soc_estimate(6100, phase_mid_s=6150, width_s=120, reads=8)
    pred = predict(state(6500, est))
    assert (pred.send_at - at(6500)).total_seconds() < 240  # about to commit to STOP
    decision = PredictivePolicy().decide(state(6500, est, reads=8, soc_only=True))
    assert decision.kind == READ
    assert at(6560) <= decision.at < pred.send_at
    assert (pred.send_at - decision.at).total_seconds() <= 245
    pinned = replace(est, soc_phase_width_s=5.0)
    assert PredictivePolicy().decide(state(6500, pinned, reads=8, soc_only=True)).kind == STOP


def test_it_fetches_a_periodic_snapshot_as_soon_as_it_exists():
    # Snapshots every 60 s on a grid through data time 3000 s, served at once (no lag).
    est = charging_estimate(3000, age_s=30)
    decision = PredictivePolicy().decide(state(3030, est, telemetry_age_s=0, telemetry_refresh_s=60))
    assert decision.kind == READ
    offset = (decision.at - at(3000)).total_seconds() % 60
    assert offset == pytest.approx(1.0)  # one second after a snapshot is due, not in between


def test_it_verifies_a_stop_after_one_more_refresh_of_periodic_data():
    delay = stop_verification_schedule(0, random.Random(1), telemetry_age_s=0, telemetry_refresh_s=180)
    assert delay.total_seconds() == pytest.approx(40.8 + 180, abs=0.1)


def test_it_keeps_an_eye_on_a_car_that_stopped_charging_by_itself():
    est = estimate([energy_reading(0, 0), energy_reading(600, 1833, state=NOT_CHARGING)], CTX)
    decision = PredictivePolicy().decide(state(660, est))
    assert decision.kind == READ
    assert decision.at == at(720)
    assert "NOT_CHARGING" in decision.reason


def test_it_judges_a_stop_only_on_data_recorded_after_it_could_have_worked():
    from sessions.controller.policy import STILL_CHARGING, STOPPED, TOO_EARLY, stop_verification_outcome

    def outcome(taken_s, charge_state):
        return stop_verification_outcome(
            stop_sent_at=at(0), taken_at=at(taken_s), charge_state=charge_state, latency=LatencyModel()
        )

    assert outcome(30, NOT_CHARGING) == STOPPED
    assert outcome(-5, NOT_CHARGING) == TOO_EARLY  # recorded before the STOP went out
    assert outcome(30, "CHARGING") == TOO_EARLY  # the STOP may still be on its way (up to 45 s)
    assert outcome(60, "CHARGING") == STILL_CHARGING
    assert outcome(60, None) == TOO_EARLY


def test_it_bounds_learned_latency_by_the_smallest_and_largest_seen():
    model = LatencyModel().observe(2.0).observe(60.0)
    assert model.quantile(0.0) == 2.0
    assert model.quantile(1.0) == pytest.approx(60.0, abs=0.01)


# --- energy-counter cars: the power is measured, and measured again when it moves -------------


def counter_estimate(times, start_soc_bp: int = 3000, power_w=lambda t: 11_000):
    ctx = replace(CTX, start_soc_bp=start_soc_bp)
    energy, last, readings = 0.0, 0, []
    for t in times:
        energy += power_w(t) * (t - last) / 3600
        last = t
        readings.append(energy_reading(t, round(energy)))
    return estimate(readings, ctx)


def test_it_keeps_reading_a_counter_car_as_the_stop_draws_near():
    # Two readings pin the power, but a power can still move (load management, a heater switching
    # off): the reads go on, closer and closer, until the STOP is due within the commit horizon.
    est = counter_estimate([100, 4400])
    decision = PredictivePolicy().decide(state(4460, est, target_wh=20_000))
    assert decision.kind == READ
    remaining = (predict(state(4460, est, target_wh=20_000)).send_at - at(4460)).total_seconds()
    assert (decision.at - at(4460)).total_seconds() == pytest.approx(0.7 * remaining, abs=61)


def test_it_measures_the_power_again_when_it_just_dropped():
    # 11 kW, then 5.5 kW from 4000 s: the newest pair mixes both powers.
    est = counter_estimate(
        [100, 2200, 4400], power_w=lambda t: 11_000 if t <= 2200 else (11_000 * 1800 + 5_500 * 400) / 2200
    )
    assert not est.power_settled
    decision = PredictivePolicy().decide(state(4460, est, target_wh=20_000))
    assert decision.kind == READ and "power changed" in decision.reason
    # Once the counter has run 300 s on the new power (data of 4700 s, fetched 60 s later).
    assert decision.at == at(4400 + 300 + 60)


def test_it_keeps_reading_where_the_purchase_ends_on_the_taper():
    # 65 % + 20 kWh on 75 kWh ends near 92 %: the power will fall, so no early commit.
    est = counter_estimate([100, 4400], start_soc_bp=6500)
    decision = PredictivePolicy().decide(state(4460, est, target_wh=20_000))
    assert decision.kind == READ


def test_it_does_not_commit_on_the_prior_power_alone():
    est = counter_estimate([100])
    assert PredictivePolicy().decide(state(160, est, target_wh=5_000)).kind == READ


# --- issue 16: latencies from charge-state flips, backstop, billing, budgets -----------------------


def test_censored_latencies_move_the_model_where_the_flips_say():
    # The prior says 5–40 s; the cars took 60–80 s: flips seen between snapshots 50–90 s after.
    model = LatencyModel(prior_min_s=5, prior_max_s=40)
    for _ in range(30):
        model = model.observe_interval(50, 90)
    assert 50 <= model.median <= 90
    assert model.quantile(0.9) > 60
    # An interval that says nothing (0 to the API's limit) is ignored; a narrow one is a sample.
    assert model.observe_interval(0, 300) is model
    assert model.observe_interval(70, 70.5).samples == (70.25,)


def test_open_intervals_only_cap_the_latency_from_above():
    # Every flip was already done at the first look, 30 s after the command: the mass moves below 30 s.
    model = LatencyModel(prior_min_s=3, prior_max_s=45)
    for _ in range(40):
        model = model.observe_interval(0, 30)
    # (The prior keeps its 8 samples' worth: 6 % of the mass stays above 30 s.)
    assert model.quantile(0.9) <= 30 < model.quantile(0.95) <= 36
    assert model.median < 24


def test_it_reads_the_latency_off_the_charge_state_flip():
    from sessions.controller.policy import flip_interval
    from tests.sessions.controller.conftest import soc_reading

    readings = [
        soc_reading(0, 3000, state=NOT_CHARGING),
        soc_reading(60, 3000, state=NOT_CHARGING),
        soc_reading(120, 3000),
        soc_reading(4000, 4200),
        soc_reading(4100, 4300),
        soc_reading(4200, 4300, state=NOT_CHARGING),
    ]
    assert flip_interval(readings, at(10), to_charging=True) == (50.0, 110.0)
    assert flip_interval(readings, at(4050), to_charging=False) == (50.0, 150.0)
    # A car that stopped at its own limit says nothing about the STOP.
    full = [*readings[:-1], soc_reading(4200, 4300, state="FULLY_CHARGED")]
    assert flip_interval(full, at(4050), to_charging=False) is None
    assert flip_interval(readings[:2], at(10), to_charging=True) is None


def test_the_readings_win_over_a_start_latency_model_they_contradict():
    from tests.sessions.controller.conftest import soc_reading

    # The model says 3–45 s; the car still showed NOT_CHARGING 90 s after START and CHARGING at 150 s.
    readings = [soc_reading(90, 3000, state=NOT_CHARGING), soc_reading(150, 3000)]
    best, half = estimate_charging_start(start_sent_at=T0, latency=LatencyModel(), readings=readings)
    assert best == at(120) and half == 30


def test_the_backstop_sits_a_step_and_a_margin_above_where_the_purchase_can_end():
    from sessions.controller.policy import backstop_limit_bp

    # 10 kWh from 40 % into 75 kWh is 13.3 %, into the smallest pack (85 %) 15.7 %.
    assert backstop_limit_bp(start_soc_bp=4000, purchased_wh=10_000, capacity_wh=75_000) == 5700
    assert (
        backstop_limit_bp(start_soc_bp=4000, purchased_wh=10_000, capacity_wh=75_000, usable_low_fraction=0.85) == 5900
    )
    # A 10 % level step: the car may show 60 % while it is at 69 %.
    assert backstop_limit_bp(start_soc_bp=4000, purchased_wh=10_000, capacity_wh=75_000, soc_step_bp=1000) == 6600
    assert backstop_limit_bp(start_soc_bp=1000, purchased_wh=1_000, capacity_wh=75_000) == 5000
    assert backstop_limit_bp(start_soc_bp=7000, purchased_wh=20_000, capacity_wh=75_000, max_soc_bp=9000) == 9000


def test_the_driver_pays_what_the_readings_prove():
    from sessions.controller.policy import unbilled_wh

    # Estimated 10 kWh, proven 9.2 kWh (a coarse level, an uncertain capacity): 9.2 billed.
    assert settle(20_000, 10_000, 9_200) == (9_200, 0)
    assert unbilled_wh(20_000, 10_000, 9_200) == 800
    # Past the purchase: the purchase is billed, the rest is overshoot; nothing left unbilled.
    assert settle(10_000, 10_400, 10_390) == (10_000, 400)
    assert unbilled_wh(10_000, 10_400, 10_000) == 0
    # A proof can never exceed the estimate.
    assert settle(20_000, 10_000, 12_000) == (10_000, 0)


def test_an_soc_only_car_keeps_two_batch_reads_and_the_stop_in_its_budget():
    est = charging_estimate(600)
    policy = PredictivePolicy()
    # A read costs 2 calls: the STOP and two verification reads need 5.
    assert policy.decide(state(660, est, calls_remaining=7, read_cost=2)).kind == READ
    assert policy.decide(state(660, est, calls_remaining=6, read_cost=2)).kind == STOP


def test_it_reads_before_the_purchase_would_be_in_were_the_power_to_rise_back():
    # Measured at 5.5 kW on an 11-kW car that reports no power of its own: if the power came
    # back to the nominal, the purchase would be in twice as fast.
    slow = charging_estimate(3000, power_w=5_500)
    policy = PredictivePolicy()
    decision = policy.decide(state(3060, slow, target_wh=10_000))
    assert decision.kind == READ
    pred = predict(state(3060, slow, target_wh=10_000))
    fastest_s = (10_000 - slow.delivered_wh) / 11_000 * 3600 - 24 - 60  # from the data, less latency and age
    assert (decision.at - at(3060)).total_seconds() <= 0.7 * fastest_s + 61
    assert (decision.at - at(3060)).total_seconds() < 0.5 * (pred.send_at - at(3060)).total_seconds()


def test_a_car_that_reports_its_power_is_expected_back_at_most_at_its_peak():
    # Reported 11 kW, then 5.5 kW: it may come back to 11 kW, not beyond.
    readings = [
        energy_reading(0, 0, power_w=11_000),
        energy_reading(600, 1833, power_w=11_000),
        energy_reading(1800, 3667, power_w=5_500),
        energy_reading(2400, 4583, power_w=5_500),
        energy_reading(3000, 5500, power_w=5_500),
    ]
    est = estimate(readings, CTX)
    assert est.peak_power_w == 11_000 and est.power_settled
    slow = replace(est, peak_power_w=5_500)
    policy = PredictivePolicy()
    ahead = policy.decide(state(3060, est, target_wh=12_000, nominal_power_w=22_000)).at
    calm = policy.decide(state(3060, slow, target_wh=12_000, nominal_power_w=22_000)).at
    assert ahead < calm


def heated_pack_estimate(reported_w: int):
    """A counter at 5.83 kW every 5 minutes, the car reporting `reported_w` all along."""
    return estimate([energy_reading(t, round(5_830 * t / 3600), power_w=reported_w) for t in range(0, 3001, 300)], CTX)


def test_it_reads_once_more_before_a_committed_stop_while_the_power_may_still_rise():
    # The car reports 7.33 kW but its counter runs at 5.83: a cold pack's heater takes the rest,
    # and switches off once the pack is warm. The STOP is due in under the commit horizon; were
    # the heater to stop now, 1.5 kW more would go in until then: read the snapshot fetched a
    # little before the STOP, and plan again on what it shows.
    heated = heated_pack_estimate(7_330)
    assert heated.peak_power_w == 7_330 and heated.power_w == pytest.approx(5_830, rel=0.01)
    policy = PredictivePolicy()
    now = state(3060, heated, target_wh=5_300)
    send_at = predict(now).send_at
    assert (send_at - now.now).total_seconds() < policy.config.commit_horizon_s
    decision = policy.decide(now)
    assert decision.kind == READ
    assert send_at - timedelta(seconds=policy.config.recheck_lead_s + 61) <= decision.at < send_at
    # Read there, the same power again: no second look, the STOP goes out as planned.
    after = state((decision.at - T0).total_seconds(), heated, target_wh=5_300)
    assert policy.decide(after).kind == STOP
    # A car whose counter runs at the power it reports has nothing to rise to: commit at once.
    steady = heated_pack_estimate(5_830)
    assert policy.decide(state(3060, steady, target_wh=5_300)).kind == STOP
