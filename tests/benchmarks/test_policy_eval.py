"""The offline harness: the targets of issue 8 on its two profiles, in virtual time, 200 seeded sessions."""

from dataclasses import replace
from functools import cache

import pytest

from benchmarks.policy_eval import (
    ENERGY_ADDED_PROFILE,
    SOC_ONLY_PROFILE,
    CarProfile,
    EvalSummary,
    compare,
    evaluate,
    latency_floor_pct_p95,
    percentile,
    run_session,
)
from sessions.controller.policy import FixedIntervalPolicy, LatencyModel, NaivePolicy, PredictivePolicy

SESSIONS = 200
# Baselines poll up to 300 times a session: compare them on the first 100 of the same seeds.
BASELINE_SESSIONS = 100
BASELINES = (30, 60, 300)


@cache
def summary(profile: CarProfile, policy_spec: str, sessions: int = SESSIONS):
    policy = PredictivePolicy() if policy_spec == "predictive" else FixedIntervalPolicy(float(policy_spec))
    return evaluate(policy, profile, sessions=sessions, seed=1)


def head(result: EvalSummary, sessions: int) -> EvalSummary:
    """The same policy's results on the first `sessions` seeds (evaluate() numbers them in order)."""
    return EvalSummary(result.policy, result.sessions[:sessions])


def test_it_replays_a_session_from_its_seed():
    a = run_session(PredictivePolicy(), ENERGY_ADDED_PROFILE, seed=42)
    b = run_session(PredictivePolicy(), ENERGY_ADDED_PROFILE, seed=42)
    c = run_session(PredictivePolicy(), ENERGY_ADDED_PROFILE, seed=43)
    assert a == b
    assert a != c


def test_it_counts_calls_like_a_fixed_loop_would():
    # START + a read every 60 s over the session + STOP + verification.
    result = run_session(FixedIntervalPolicy(60), ENERGY_ADDED_PROFILE, seed=5)
    minutes = result.purchase_wh / ENERGY_ADDED_PROFILE.power_w * 60
    assert minutes * 0.85 < result.reads < minutes * 1.25 + 5
    assert result.calls == result.reads + 2


def test_it_reports_the_true_energy_not_an_estimate():
    # A policy that stops at once delivers only what flowed during the STOP latency.
    result = run_session(FixedIntervalPolicy(30), replace(ENERGY_ADDED_PROFILE, purchase_max_wh=5000), seed=3)
    assert result.delivered_wh >= result.purchase_wh - 50


def test_it_finds_the_latency_floor_near_the_issue_figure():
    assert latency_floor_pct_p95(ENERGY_ADDED_PROFILE) == pytest.approx(0.65, abs=0.05)


def test_it_interpolates_percentiles_like_numpy():
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0


@pytest.mark.slow
def test_it_meets_the_energy_added_target_with_fewer_calls_than_fixed_intervals():
    result = summary(ENERGY_ADDED_PROFILE, "predictive")
    print("energy-added", result.row(), "floor", latency_floor_pct_p95(ENERGY_ADDED_PROFILE))
    assert result.error_pct_p95 <= 1.0
    assert result.calls_p50 <= 10
    same = head(result, BASELINE_SESSIONS)
    for seconds in BASELINES:
        baseline = summary(ENERGY_ADDED_PROFILE, str(seconds), BASELINE_SESSIONS)
        print(f"fixed:{seconds}", baseline.row())
        assert same.calls_p50 < baseline.calls_p50
        assert same.error_pct_p95 <= baseline.error_pct_p95
        assert same.error_pct_p50 <= baseline.error_pct_p50


@pytest.mark.slow
def test_it_beats_every_fixed_interval_on_soc_only_cars():
    result = summary(SOC_ONLY_PROFILE, "predictive")
    print("soc-only", result.row())
    # Regression guard for the level-change timing (without it p95 is near 4.5 %).
    assert result.error_pct_p95 <= 2.5
    same = head(result, BASELINE_SESSIONS)
    for seconds in BASELINES:
        baseline = summary(SOC_ONLY_PROFILE, str(seconds), BASELINE_SESSIONS)
        print(f"fixed:{seconds}", baseline.row())
        assert same.calls_p50 <= baseline.calls_p50
        assert same.error_pct_p95 < baseline.error_pct_p95
        assert same.error_pct_p50 < baseline.error_pct_p50


def test_it_never_overshoots_by_more_than_the_latency_spread_allows():
    # Overshoot beyond (max − median latency) x power plus quantisation means it planned past the target.
    allowed_wh = (45 - 24) * 11_000 * 1.03 / 3600 + 40
    for i in range(40):
        result = run_session(PredictivePolicy(), ENERGY_ADDED_PROFILE, seed=1000 + i)
        assert result.overshoot_wh <= allowed_wh


def test_it_lands_closer_with_a_learned_latency_for_a_make_with_fast_commands():
    fast_car = replace(ENERGY_ADDED_PROFILE, latency_min_s=3, latency_max_s=9)
    prior_errors, learned_errors = [], []
    learned = LatencyModel()
    for _ in range(200):
        learned = learned.observe(6.0)
    for i in range(60):
        prior_errors.append(run_session(PredictivePolicy(), fast_car, seed=i, latency=LatencyModel()).error_wh)
        learned_errors.append(run_session(PredictivePolicy(), fast_car, seed=i, latency=learned).error_wh)
    assert percentile(learned_errors, 50) < percentile(prior_errors, 50) / 2


def test_it_runs_the_naive_baseline_through_the_same_interface():
    result = evaluate(NaivePolicy(), ENERGY_ADDED_PROFILE, sessions=5, seed=2)
    assert len(result.sessions) == 5
    assert all(s.calls > 10 for s in result.sessions)


def test_it_meets_the_target_when_data_comes_in_periodic_snapshots():
    # The simulator's periodic mode: a fresh snapshot every 60 s, served at once (age 0..60 s).
    periodic = replace(ENERGY_ADDED_PROFILE, telemetry_age_s=0, telemetry_refresh_s=60)
    result = evaluate(PredictivePolicy(), periodic, sessions=SESSIONS, seed=1)
    print("periodic energy-added", result.row())
    assert result.error_pct_p95 <= 1.0
    assert result.calls_p50 <= 10


def test_it_meets_the_target_on_charger_side_energy():
    lossy = replace(ENERGY_ADDED_PROFILE, efficiency=0.92)
    result = evaluate(PredictivePolicy(), lossy, sessions=SESSIONS, seed=1)
    print("efficiency 0.92", result.row())
    assert result.error_pct_p95 <= 1.0


def test_it_compares_one_row_per_policy_spec():
    rows = compare(["predictive", "fixed:300"], ENERGY_ADDED_PROFILE, sessions=3, seed=9)
    assert [r["policy"] for r in rows] == ["predictive", "fixed:300"]
    assert all(r["sessions"] == 3 for r in rows)


def test_it_meets_the_target_with_ten_percent_failed_calls():
    # Issue 4's realistic settings: 10 % of calls fail retryably and are retried 10 s later.
    flaky = replace(ENERGY_ADDED_PROFILE, failure_rate=0.10)
    result = evaluate(PredictivePolicy(), flaky, sessions=SESSIONS, seed=1)
    print("10 % failures", result.row())
    assert result.error_pct_p95 <= 1.0
    assert result.calls_p50 <= 10
    clean = summary(ENERGY_ADDED_PROFILE, "predictive")
    assert result.calls_p50 > clean.calls_p50 or result.calls_p95 > clean.calls_p95  # failures cost calls


def test_it_detects_retries_and_escalates_an_ignored_stop():
    stubborn = replace(ENERGY_ADDED_PROFILE, ignore_stop_rate=1.0)
    results = [run_session(PredictivePolicy(), stubborn, seed=300 + i) for i in range(30)]
    outcomes = {r.outcome for r in results}
    assert "stopped" not in outcomes
    assert outcomes <= {"escalated", "flagged"}
    for r in results:
        if r.outcome == "escalated":
            # The charge limit at the next whole percent caps the overshoot near one percent of the pack.
            assert r.overshoot_wh < 2_500
    normal = [run_session(PredictivePolicy(), ENERGY_ADDED_PROFILE, seed=300 + i) for i in range(30)]
    assert {r.outcome for r in normal} == {"stopped"}
    assert sum(r.calls for r in results) > sum(r.calls for r in normal)
