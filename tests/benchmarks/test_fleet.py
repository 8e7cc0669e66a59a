"""fleet_benchmark end to end on a few sessions: the real controller against the simulator."""

import json

import pytest
from django.core.management import call_command

from benchmarks.fleet import START, FleetConfig, fleet_specs

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {
    "sessions",
    "error_pct_p50",
    "error_pct_p95",
    "error_pct_max",
    "overshoot_kwh_total",
    "calls_p50",
    "calls_p95",
    "billed_above_purchase",
    "terminal",
}


def run(tmp_path, *args):
    out = tmp_path / "fleet.json"
    call_command(
        "fleet_benchmark", "--current-db", "--json", str(out), "--out-dir", str(tmp_path), "--name", "t", *args
    )
    return json.loads(out.read_text())


def test_it_runs_every_policy_on_the_same_fleet_to_a_terminal_state(tmp_path, capsys):
    policies = ("--policy", "predictive", "--policy", "fixed:300")
    doc = run(tmp_path, "--world", "ideal", "--sessions", "4", "--seed", "3", *policies)
    assert set(doc["policies"]) == {"predictive", "fixed:300"}
    for spec, figures in doc["policies"].items():
        assert set(figures) >= KEYS, spec
        assert figures["sessions"] == 4
        assert figures["terminal"] == 4
        assert figures["billed_above_purchase"] == 0
        # Every billed call the controller counted is one the simulator served.
        assert figures["sim_calls_mismatch"] == 0
        assert figures["error_pct_p95"] is not None
    assert doc["policies"]["predictive"]["error_pct_p95"] < 5
    # A fixed 5-minute loop cannot be as accurate as the predictive STOP at 11 kW.
    assert doc["policies"]["predictive"]["error_pct_p95"] < doc["policies"]["fixed:300"]["error_pct_p95"]
    assert doc["config"]["latency_floor_pct_p95"] > 0
    assert 0 < doc["policies"]["predictive"]["floor_pct_p95"] < 1
    assert (tmp_path / "t.md").exists() and (tmp_path / "t-error-cdf.png").stat().st_size > 0
    assert "| `predictive` |" in capsys.readouterr().out


def test_it_meters_a_soc_only_car_with_the_battery_read(tmp_path):
    doc = run(
        tmp_path,
        *("--world", "ideal", "--sessions", "2", "--energy-step-kwh", "0", "--policy", "predictive", "--keep-sessions"),
    )
    figures = doc["policies"]["predictive"]
    assert figures["terminal"] == 2 and figures["billed_above_purchase"] == 0
    for session in doc["sessions"]["predictive"]:
        # One signals read at the start answers the level, the plug, the charge state and the
        # driver's limit: no second read for the limit.
        assert session["calls_by_kind"]["read_initial"] == 1
        assert "read_limit" not in session["calls_by_kind"]
        assert session["calls_by_kind"]["limit_backstop"] == 1


def test_the_realistic_world_is_measured_against_its_own_floor(tmp_path):
    """Cars whose power, capacity and latencies differ from what the product is told: every
    session still ends, is never billed above its purchase, and has its own oracle error."""
    doc = run(tmp_path, "--sessions", "3", "--seed", "2", "--policy", "predictive", "--keep-sessions")
    assert doc["config"]["world"] == "realistic"
    assert doc["config"]["world_knobs"]["capacity_error_pct"] == 15
    figures = doc["policies"]["predictive"]
    assert figures["terminal"] == 3 and figures["billed_above_purchase"] == 0 and figures["ledger_drift"] == 0
    assert figures["sim_calls_mismatch"] == 0
    sessions = doc["sessions"]["predictive"]
    assert all(s["floor_error_pct"] is not None for s in sessions)
    # The actual power is drawn per session, never above the nominal 11 kW the product is told.
    assert all(0.55 * 11 <= s["true_power_kw"] <= 11 for s in sessions)
    assert len({s["true_power_kw"] for s in sessions}) == 3
    # What the world drew and the product cannot see is kept beside each session, to explain it.
    for s in sessions:
        draws = s["draws"]
        assert 0.85 <= draws["usable_fraction"] <= 1.0
        assert draws["wall_kw"] == s["true_power_kw"] and draws["efficiency"] == 0.92
        assert len(draws["power_steps"]) == s["power_steps"]
        assert (draws["heater_w"] > 0) == (draws["heat_until_s"] > 0)
    assert len({s["draws"]["usable_fraction"] for s in sessions}) == 3


def test_it_keeps_the_fleet_the_same_under_the_same_seed():
    config = FleetConfig(sessions=30, seed=5).resolved()
    assert fleet_specs(config) == fleet_specs(config)
    assert fleet_specs(config)[:10] == fleet_specs(FleetConfig(sessions=10, seed=5).resolved())
    for spec in fleet_specs(config):
        assert 5000 <= spec.purchase_wh <= 30_000
        assert spec.soc + spec.purchase_wh / 75_000 <= 0.85 + 1e-9


def test_a_make_refused_at_request_is_reported_not_crashed_on(tmp_path):
    """Nissan (START only: no STOP, no settable limit) is refused before any credit is held."""
    doc = run(tmp_path, "--sessions", "2", "--profile", "nissan_start_only", "--policy", "predictive")
    figures = doc["policies"]["predictive"]
    assert figures["statuses"] == {"refused:cannot_stop": 2}
    assert figures["calls_p50"] == 0 and figures["billed_above_purchase"] == 0
    assert figures["stopped_by_policy"] == 0 and figures["error_pct_p95"] is None


def test_with_webhooks_readings_arrive_by_webhook_and_billed_reads_fall(tmp_path):
    args = ("--profile", "bmw_mini", "--sessions", "3", "--seed", "2", "--policy", "predictive", "--keep-sessions")
    polled = run(tmp_path, *args)["policies"]["predictive"]
    hooked_doc = run(tmp_path, *args, "--webhooks")
    hooked = hooked_doc["policies"]["predictive"]
    assert hooked_doc["config"]["webhooks"] is True
    assert polled["webhook_readings_p50"] == 0 and hooked["webhook_readings_p50"] > 0
    assert hooked["terminal"] == 3 and hooked["billed_above_purchase"] == 0
    assert hooked["billed_reads_p50"] < polled["billed_reads_p50"]
    assert hooked["calls_p50"] < polled["calls_p50"]
    assert hooked["sim_calls_mismatch"] == 0  # subscribing is not a call of the session's
    for session in hooked_doc["sessions"]["predictive"]:
        assert session["billed_reads"] <= session["api_calls"]


@pytest.mark.parametrize(
    ("profile", "args", "power", "counter"),
    [
        # A make without an energy counter reports its charging power: metering is built on it.
        ("bmw_mini", {}, True, False),
        ("vw_group", {}, True, False),
        ("mercedes_eq_eu", {}, True, False),
        # Profile B: a counting make (Tesla-like) defined without its counter reports levels only.
        ("generic", {"energy_step_kwh": 0.0}, False, False),
        ("generic", {"energy_step_kwh": 0.01}, True, True),
    ],
)
def test_a_car_reports_the_signals_its_make_and_the_command_line_give_it(profile, args, power, counter):
    from benchmarks.fleet import FleetSimulator, _sim_car
    from vehicle_sim import profiles, v3
    from vehicle_sim.clock import SteppedClock

    config = FleetConfig(profile=profile, world="realistic", sessions=1, **args).resolved()
    sim = FleetSimulator(SteppedClock(START), seed=1, world=config.sim_world())
    car = _sim_car(sim, config, fleet_specs(config)[0])
    reported = set(v3.platform(sim).available(sim.vehicles[car.id]))
    assert (profiles.WATTAGE in reported) is power
    assert (profiles.ENERGY_ADDED in reported) is counter
