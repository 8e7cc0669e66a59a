"""Pure helpers of the benchmarks: percentiles, the latency floor, per-policy aggregation.

No Django, no I/O: the management commands feed them plain numbers, the tests check them against
hand-computed values.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's default).

    None for no values: an empty run has no median, and pretending 0 would read as "perfect".
    """
    data = sorted(float(v) for v in values)
    if not data:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_floor_pct(
    *,
    latency_s: tuple[float, float],
    battery_power_w: float,
    purchase_wh: tuple[float, float],
    q: float = 95.0,
    samples: int = 100_000,
    seed: int = 0,
) -> float:
    """The q-th percentile of |delivered − purchased| in % of the purchase that command latency alone implies.

    An oracle knows exactly when delivered energy reaches the purchase (no telemetry age, no
    steps, constant power) but not the latency of its STOP, drawn uniformly from `latency_s`. Its
    best constant send time is target − median latency (the median minimises E|error|), so the
    charge ends |L − median| seconds off target: an energy error of |L − median| × power. No real
    policy can beat this without knowing the latency of each command in advance.
    """
    lo, hi = latency_s
    if hi < lo or samples <= 0 or battery_power_w <= 0:
        raise ValueError("need lo <= hi, samples > 0, power > 0")
    rng = random.Random(seed)  # noqa: S311 - Monte-Carlo, not a secret
    median = (lo + hi) / 2
    p_lo, p_hi = purchase_wh
    errors = []
    for _ in range(samples):
        latency = rng.uniform(lo, hi)
        purchase = rng.uniform(p_lo, p_hi)
        errors.append(abs(latency - median) * battery_power_w / 3600 / purchase * 100)
    return percentile(errors, q)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def aggregate(results: Sequence[dict]) -> dict:
    """One policy's figures from its per-session results (dicts made by `benchmarks.fleet`).

    Accuracy counts every session that charged, however it ended — the policy's STOP, the car's
    backstop limit, a STOP that could not be verified: a session the backstop cut short is an
    error of the controller, not a session to leave out. Sessions that never charged (refused,
    failed at the start) are counted under `not_charged` and in `statuses`.

    Billing: `billed_above_delivered` counts sessions billed more than the car really took in,
    `unbilled_delivered_pct` is delivered energy up to the purchase that was not billed (the
    operator's cost), in % of all delivered energy; energy past the purchase is the overshoot.
    The floor (`floor_pct_p95`) is the p95 of the per-session oracle errors (`floor.py`) over the
    same sessions; `floor_blind_pct_p95` that of the oracle that also lacks the capacity.
    """
    charged = [r for r in results if r["charged"]]
    err_pct = [r["error_pct"] for r in charged]
    err_kwh = [r["error_wh"] / 1000 for r in charged]
    floors = [r["floor_error_pct"] for r in charged if r.get("floor_error_pct") is not None]
    blind = [r["floor_blind_error_pct"] for r in charged if r.get("floor_blind_error_pct") is not None]
    calls = [r["api_calls"] for r in results]
    stop_latency = [r["stop_latency_s"] for r in results if r["stop_latency_s"] is not None]
    stop_verified = [r["stop_to_end_s"] for r in results if r["stop_to_end_s"] is not None]
    breakdown: Counter = Counter()
    for r in results:
        breakdown.update(r["calls_by_kind"])
    n = len(results) or 1
    p95 = percentile(err_pct, 95)
    floor_p95 = percentile(floors, 95)
    above = [r for r in results if r["billed_wh"] > r["delivered_wh"]]
    delivered_total = sum(max(0, r["delivered_wh"]) for r in results)
    unbilled_total = sum(r.get("unbilled_wh", 0) for r in results)
    return {
        "sessions": len(results),
        "charged": len(charged),
        "stopped_by_policy": sum(1 for r in charged if r["stop_reason"] == "threshold"),
        "error_pct_p50": _round(percentile(err_pct, 50)),
        "error_pct_p95": _round(p95),
        "error_pct_max": _round(max(err_pct, default=None) if err_pct else None),
        "error_kwh_p50": _round(percentile(err_kwh, 50)),
        "error_kwh_p95": _round(percentile(err_kwh, 95)),
        "error_kwh_max": _round(max(err_kwh) if err_kwh else None),
        "floor_pct_p95": _round(floor_p95),
        "floor_blind_pct_p95": _round(percentile(blind, 95)),
        "ratio_to_floor": _round(p95 / floor_p95, 2) if p95 is not None and floor_p95 else None,
        "under_delivered": sum(1 for r in charged if r["delivered_wh"] < r["purchased_wh"]),
        "over_delivered": sum(1 for r in charged if r["delivered_wh"] > r["purchased_wh"]),
        "overshoot_kwh_total": round(sum(max(0, r["delivered_wh"] - r["purchased_wh"]) for r in results) / 1000, 3),
        "overshoot_recorded_kwh_total": round(sum(r["overshoot_wh"] for r in results) / 1000, 3),
        "billed_above_delivered": len(above),
        "billed_above_delivered_max_pct": _round(
            max(((r["billed_wh"] - r["delivered_wh"]) / r["purchased_wh"] * 100 for r in above), default=0.0)
        ),
        "unbilled_delivered_pct": _round(unbilled_total / delivered_total * 100 if delivered_total else 0.0),
        "unbilled_kwh_total": round(unbilled_total / 1000, 3),
        "calls_p50": _round(percentile(calls, 50), 1),
        "calls_p95": _round(percentile(calls, 95), 1),
        "calls_mean": _round(sum(calls) / n, 2),
        "calls_by_kind_per_session": {k: round(v / n, 2) for k, v in sorted(breakdown.items())},
        "webhook_readings_p50": _round(percentile([r.get("webhook_readings", 0) for r in results], 50), 1),
        "billed_reads_p50": _round(percentile([r.get("billed_reads", 0) for r in results], 50), 1),
        "sim_calls_mismatch": sum(1 for r in results if r["sim_billed_calls"] != r["api_calls"]),
        "stop_latency_s_p50": _round(percentile(stop_latency, 50), 1),
        "stop_latency_s_p95": _round(percentile(stop_latency, 95), 1),
        "stop_to_end_s_p50": _round(percentile(stop_verified, 50), 1),
        "stop_to_end_s_p95": _round(percentile(stop_verified, 95), 1),
        "billed_above_purchase": sum(1 for r in results if r["billed_wh"] > r["purchased_wh"]),
        "terminal": sum(1 for r in results if r["terminal"]),
        "ledger_drift": max((r.get("ledger_drift", 0) for r in results), default=0),
        "statuses": dict(sorted(Counter(f"{r['status']}:{r['reason']}" for r in results).items())),
        "not_charged": dict(sorted(Counter(r["reason"] for r in results if not r["charged"]).items())),
        "not_stopped_by_policy": dict(
            sorted(Counter(r["stop_reason"] or r["reason"] for r in charged if r["stop_reason"] != "threshold").items())
        ),
        "stop_not_carried_out": sum(1 for r in results if r["stop_not_carried_out"]),
        "still_charging_at_end": sum(1 for r in results if r["still_charging_at_end"]),
        "backstop_stopped": sum(1 for r in results if r["stopped_by_backstop"]),
        "escalated": sum(1 for r in results if r["escalated"]),
    }


_NUMBERS = re.compile(r"\b\d+\b|'[^']*'|%s")


def query_shape(sql: str) -> str:
    """A query with its literals and parameters blanked, so equal statements group together."""
    shape = _NUMBERS.sub("?", sql)
    shape = re.sub(r"\(\?(, \?)+\)", "(…)", shape)
    # Column lists say nothing about the cost; the verb, the tables and the conditions do.
    shape = re.sub(r'("\w+"\."\w+"( AS "\w+")?(, )?)+(?= FROM)', "… ", shape).replace("…  FROM", "… FROM")
    shape = re.sub(r'\(("\w+"(, )?)+\)', "(…)", shape)
    return shape[:200]
