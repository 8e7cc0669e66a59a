"""Merging runs of different policies on the same fleet, and the markdown they produce."""

import pytest

from benchmarks.report import markdown, merge
from tests.benchmarks.test_stats import _result

CONFIG = {
    "sessions": 3,
    "seed": 1,
    "profile": "generic",
    "make": "TESLA",
    "latency_s": [3, 45],
    "telemetry_age_s": 60,
    "soc_step_pct": 1,
    "energy_step_kwh": 0.01,
    "power_kw": 11,
    "capacity_kwh": 75,
    "purchase_kwh": [5, 30],
    "failure_rate": 0,
    "ignore_stop_rate": 0,
    "latency_floor_pct_p95": 0.5,
}


def _doc(spec, errors_wh, sessions):
    results = [{**_result(10_000, 10_000 + e), "index": i} for i, e in enumerate(errors_wh)]
    return {"policies": {}, "sessions": {spec: results}, "config": {**CONFIG, "sessions": sessions}}


def test_it_merges_policies_and_compares_them_on_the_common_cars():
    a = _doc("predictive", [10, 20, 30, 40], 4)
    b = _doc("fixed:30", [100, 200], 2)
    full = merge([a, b])
    assert full["config"]["sessions"] == {"predictive": 4, "fixed:30": 2}
    assert full["policies"]["predictive"]["sessions"] == 4
    common = merge([a, b], common_subset=True)
    assert common["config"]["sessions"] == 2
    assert common["policies"]["predictive"]["sessions"] == 2
    assert common["policies"]["predictive"]["error_pct_max"] == 0.2
    text = markdown(common)
    assert "| `fixed:30` |" in text and "2 sessions per policy" in text


def test_it_refuses_to_merge_different_fleets():
    a = _doc("predictive", [10], 1)
    b = _doc("fixed:30", [10], 1)
    b["config"]["seed"] = 2
    with pytest.raises(ValueError):
        merge([a, b])
