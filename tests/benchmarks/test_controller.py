"""controller_benchmark on a few sessions: it steps real sessions and measures every step."""

import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_measures_lag_cpu_and_queries_per_step(tmp_path):
    out = tmp_path / "controller.json"
    call_command(
        "controller_benchmark",
        "--current-db",
        "--workers",
        "0",
        "--sessions",
        "3",
        "--duration-s",
        "3",
        "--speed",
        "200",
        "--interval-s",
        "0.2",
        "--json",
        str(out),
    )
    doc = json.loads(out.read_text())
    assert doc["step_error_count"] == 0
    # Each session was at least requested (READ + START) and then checked while starting.
    assert doc["steps"] >= 3 and doc["steps_by_state"]["requested"] == 3
    assert doc["queries_per_step_p50"] > 0 and doc["cpu_ms_per_step_p50"] > 0
    assert doc["tick_lag_s_p99"] is not None and doc["tick_lag_s_p99"] >= 0
    assert any("charging_chargingsession" in shape for shape in doc["queries_by_shape_per_step"])
    assert doc["config"]["sessions"] == 3
