"""The pure helpers of the benchmarks against hand-computed figures."""

import pytest

from benchmarks.stats import aggregate, latency_floor_pct, percentile, query_shape


def test_it_interpolates_percentiles_between_ranks():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile(range(1, 102), 95) == 96
    assert percentile([7], 99) == 7
    assert percentile([1, 2], 100) == 2
    assert percentile([1, 2], 0) == 1


def test_it_has_no_percentile_of_nothing():
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_it_has_no_latency_floor_without_latency_spread():
    assert latency_floor_pct(latency_s=(10, 10), battery_power_w=10_000, purchase_wh=(5000, 30_000)) == 0


def test_it_derives_the_latency_floor_from_the_spread():
    # |L − median| is uniform on 0..1 s; at 3600 W that is 0..1 Wh, i.e. 0..1 % of a 100 Wh purchase.
    floor = latency_floor_pct(latency_s=(0, 2), battery_power_w=3600, purchase_wh=(100, 100), samples=50_000)
    assert floor == pytest.approx(0.95, abs=0.01)
    # Twice the power, twice the error.
    double = latency_floor_pct(latency_s=(0, 2), battery_power_w=7200, purchase_wh=(100, 100), samples=50_000)
    assert double == pytest.approx(1.9, abs=0.02)


def _result(purchased, delivered, *, calls=10, billed=None, stop_reason="threshold", status="completed", **extra):
    billed = min(purchased, delivered) if billed is None else billed
    base = {
        "purchased_wh": purchased,
        "delivered_wh": delivered,
        "error_wh": abs(delivered - purchased),
        "error_pct": abs(delivered - purchased) / purchased * 100,
        "billed_wh": billed,
        "overshoot_wh": max(0, delivered - purchased),
        "status": status,
        "reason": "completed",
        "stop_reason": stop_reason,
        "terminal": status in ("completed", "failed", "interrupted"),
        "charged": True,
        "api_calls": calls,
        "sim_billed_calls": calls,
        "calls_by_kind": {"read_metering": calls - 2, "start": 1, "stop": 1},
        "stop_latency_s": 20.0,
        "stop_to_end_s": 90.0,
        "stop_not_carried_out": False,
        "escalated": False,
        "still_charging_at_end": False,
        "stopped_by_backstop": False,
        "floor_error_pct": 0.5,
        "floor_blind_error_pct": 0.5,
        "webhook_readings": 0,
        "unbilled_wh": max(0, min(delivered, purchased) - billed),
    }
    return {**base, **extra}


def test_it_aggregates_accuracy_calls_and_billing():
    results = [
        _result(10_000, 10_100, calls=8),  # +1 %
        _result(20_000, 19_900, calls=12),  # −0.5 %
        _result(10_000, 10_000, calls=10),  # exact
        _result(10_000, 0, calls=3, stop_reason="", status="failed", charged=False, stop_latency_s=None),
    ]
    agg = aggregate(results)
    assert agg["sessions"] == 4
    assert agg["stopped_by_policy"] == 3 and agg["charged"] == 3
    assert agg["error_pct_p50"] == 0.5
    assert agg["error_pct_max"] == 1.0
    assert agg["error_pct_p95"] == pytest.approx(0.95)
    assert agg["floor_pct_p95"] == 0.5
    assert agg["ratio_to_floor"] == pytest.approx(1.9)
    assert agg["overshoot_kwh_total"] == 0.1
    assert agg["under_delivered"] == 1 and agg["over_delivered"] == 1
    assert agg["calls_p50"] == 9.0
    assert agg["calls_by_kind_per_session"]["start"] == 1
    assert agg["billed_above_purchase"] == 0
    assert agg["terminal"] == 4
    assert agg["not_charged"] == {"completed": 1}
    assert agg["statuses"] == {"completed:completed": 3, "failed:completed": 1}
    assert agg["sim_calls_mismatch"] == 0
    assert agg["billed_above_delivered"] == 0 and agg["unbilled_delivered_pct"] == 0
    assert agg["webhook_readings_p50"] == 0


def test_a_session_the_backstop_ended_counts_in_every_statistic():
    cut_short = _result(10_000, 7_000, stop_reason="", status="interrupted", stopped_by_backstop=True)
    agg = aggregate([_result(10_000, 10_000), cut_short])
    assert agg["charged"] == 2 and agg["backstop_stopped"] == 1
    assert agg["error_pct_max"] == 30.0
    assert agg["under_delivered"] == 1
    assert agg["not_stopped_by_policy"] == {"completed": 1}


def test_it_reports_billing_against_the_true_delivery():
    over = _result(10_000, 9_800, billed=9_900)  # billed 100 Wh the car did not get: 1 % of the purchase
    under = _result(10_000, 10_000, billed=9_000)  # 1 kWh delivered, not billed
    agg = aggregate([over, under, _result(10_000, 10_200)])
    assert agg["billed_above_delivered"] == 1
    assert agg["billed_above_delivered_max_pct"] == 1.0
    assert agg["unbilled_kwh_total"] == 1.0
    # Of 30.0 kWh delivered, 1.0 kWh was not billed (the 0.2 kWh past a purchase is overshoot).
    assert agg["unbilled_delivered_pct"] == pytest.approx(100 / 30, abs=1e-3)


def test_it_counts_a_session_billed_above_its_purchase():
    agg = aggregate([_result(10_000, 10_500, billed=10_500), _result(10_000, 10_000, sim_billed_calls=9)])
    assert agg["billed_above_purchase"] == 1
    assert agg["sim_calls_mismatch"] == 1


def test_it_groups_queries_by_shape():
    a = query_shape('SELECT "a"."id", "a"."b" AS "x" FROM "a" WHERE "a"."id" = 5 AND "a"."s" IN (%s, %s)')
    b = query_shape('SELECT "a"."id", "a"."b" AS "x" FROM "a" WHERE "a"."id" = 7 AND "a"."s" IN (%s, %s, %s)')
    assert a == b == 'SELECT … FROM "a" WHERE "a"."id" = ? AND "a"."s" IN (…)'
    assert query_shape('INSERT INTO "t" ("a", "b") VALUES (%s, %s)') == 'INSERT INTO "t" (…) VALUES (…)'
