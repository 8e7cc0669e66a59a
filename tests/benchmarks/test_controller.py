"""controller_benchmark on a few sessions: it runs real sessions to their end through the
in-flight worker and measures every step."""

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def run(tmp_path, *extra) -> dict:
    out = tmp_path / "controller.json"
    call_command(
        "controller_benchmark",
        "--current-db",
        "--sessions",
        "4",
        "--purchase-kwh",
        "0.5:1",
        "--speed",
        "300",
        "--interval-s",
        "0.05",
        "--max-duration-s",
        "120",
        "--json",
        str(out),
        *extra,
    )
    return json.loads(out.read_text())


def test_every_session_runs_to_its_end_and_every_step_is_measured(tmp_path):
    doc = run(tmp_path)
    assert doc["step_errors"] == 0
    assert doc["sessions"] == 4 and doc["terminal_count"] == 4 and doc["open_at_end"] == 0
    assert doc["terminal"].get("completed", 0) >= 1
    assert doc["billed_above_purchase"] == 0 and doc["ledger_drift"] == 0
    # Each session starts, meters, stops and settles: several kinds of step, each measured.
    assert {"requested→starting", "starting→charging"} <= set(doc["by_kind"])
    assert any(kind.endswith("→completed") for kind in doc["by_kind"])
    assert doc["queries_per_step_p50"] > 0 and doc["cpu_ms_per_step_p50"] > 0
    assert doc["tick_lag_p99_s"] is not None and doc["decision_delay_p99_s"] is not None
    assert doc["in_flight_max"] >= 1 and doc["rss_max_mib"] > 0
    assert any("charging_chargingsession" in shape for shape in doc["queries_by_shape_per_step"])
    assert doc["config"]["answer_latency"] == "realistic"


def test_ideal_answers_come_at_once(tmp_path):
    doc = run(tmp_path, "--answer-latency", "ideal")
    assert doc["config"]["answer_latency_s"] == [0.0, 0.0]
    assert doc["terminal_count"] == 4
