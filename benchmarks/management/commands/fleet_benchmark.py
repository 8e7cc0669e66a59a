"""Stop accuracy against vehicle API calls: simulated sessions through the real controller (issue 8 §1).

Runs on a throwaway database (see benchmarks/db.py), never the developer's.
"""

import json
import logging
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benchmarks import report
from benchmarks.db import throwaway_database
from benchmarks.fleet import FleetConfig, run_fleet
from sessions.controller.policy import policy_from_spec
from vehicle_sim.profiles import PROFILES
from vehicle_sim.world import SOC_ROUNDING, WORLDS


def _range(text: str | None, *, negative: bool = False) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(":", 1))
    except ValueError as exc:
        raise CommandError(f"expected MIN:MAX, got {text!r}") from exc
    if hi < lo or (lo < 0 and not negative):
        raise CommandError(f"bad range {text!r}")
    return lo, hi


def _on_off(text: str | None) -> bool | None:
    return None if text is None else text == "on"


def add_world_arguments(parser) -> None:
    """The world's knobs (sessions/simulator/world.py); each one unset takes the named world's value."""
    parser.add_argument(
        "--world",
        default="realistic",
        choices=sorted(WORLDS),
        help="realistic (default; the make profiles use it) or ideal (the simulator as it was before)",
    )
    parser.add_argument("--actual-power-kw", default=None, help="MIN:MAX the charger really gives per session")
    parser.add_argument("--power-drop-rate", type=float, default=None, help="share of sessions whose power drops")
    parser.add_argument(
        "--capacity-error", type=float, default=None, help="usable capacity is (100 − PCT)..100 %% of nominal"
    )
    parser.add_argument("--soc-rounding", default=None, choices=SOC_ROUNDING)
    parser.add_argument("--start-latency-s", default=None, help="START latency MIN:MAX seconds")
    parser.add_argument("--stop-latency-s", default=None, help="STOP latency MIN:MAX seconds")
    parser.add_argument("--answer-latency-s", default=None, help="MIN:MAX seconds a read's HTTP answer takes")
    parser.add_argument("--ambient-c", default=None, help="MIN:MAX ambient temperature, °C (cold packs heat first)")
    parser.add_argument("--voltage-slope", type=float, default=None, help="energy per %% grows this much 0→100 %%")
    parser.add_argument("--rate-limits", default=None, choices=("on", "off"), help="per-vehicle throttle")
    parser.add_argument(
        "--heater-signal",
        action="store_true",
        help="cars that report wattage also report tractionbattery-isheateractive (availability per make unknown)",
    )


def world_options(opts: dict) -> dict:
    """FleetConfig fields from the world arguments."""
    return {
        "world": opts["world"],
        "actual_power_kw": _range(opts["actual_power_kw"]),
        "power_drop_rate": opts["power_drop_rate"],
        "capacity_error_pct": opts["capacity_error"],
        "soc_rounding": opts["soc_rounding"],
        "start_latency_s": _range(opts["start_latency_s"]),
        "stop_latency_s": _range(opts["stop_latency_s"]),
        "answer_latency_s": _range(opts["answer_latency_s"]),
        "ambient_c": _range(opts["ambient_c"], negative=True),
        "voltage_slope": opts["voltage_slope"],
        "rate_limits": _on_off(opts["rate_limits"]),
        "heater_signal": opts.get("heater_signal", False),
    }


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=20)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--latency-s", default=None, help="command latency MIN:MAX seconds, START and STOP alike (profile A: 3:45)"
        )
        parser.add_argument(
            "--telemetry-age-s",
            type=float,
            default=None,
            help="the car reports a snapshot every T s, so readings are 0..T s old (profile A: 60)",
        )
        parser.add_argument("--soc-step", type=float, default=None, help="reported battery level step, percent")
        parser.add_argument(
            "--energy-step-kwh", type=float, default=None, help="step of the car's energy added; 0 = not reported"
        )
        parser.add_argument("--power-kw", type=float, default=None, help="nominal power (what the product knows)")
        parser.add_argument("--capacity-kwh", type=float, default=None, help="nominal capacity (what the API reports)")
        parser.add_argument("--purchase-kwh", default="5:30", help="MIN:MAX kWh")
        parser.add_argument("--failure-rate", type=float, default=0.0, help="share of calls failing (502 UPSTREAM)")
        parser.add_argument("--ignore-stop-rate", type=float, default=0.0, help="share of cars that ignore STOP")
        parser.add_argument(
            "--policy", action="append", dest="policies", help="predictive | naive | fixed:SECONDS (repeatable)"
        )
        parser.add_argument("--profile", default="generic", choices=sorted(PROFILES))
        parser.add_argument(
            "--webhooks",
            action="store_true",
            help="subscribe the cars to a webhook: readings arrive by VEHICLE_STATE, reads only for what they miss",
        )
        add_world_arguments(parser)
        parser.add_argument("--json", dest="json_out", default=None, help="write the JSON document here")
        parser.add_argument("--out-dir", default=None, help="write a markdown table and PNG plots here")
        parser.add_argument("--name", default=None, help="file stem of the outputs in --out-dir")
        parser.add_argument("--keep-sessions", action="store_true", help="include per-session results in --json")
        parser.add_argument(
            "--current-db",
            action="store_true",
            help="run on the current database instead of a throwaway one (tests: pytest's database is one)",
        )
        parser.add_argument(
            "--tables-from-models",
            action="store_true",
            help="build the throwaway database from the models instead of migrating it (faster; fleet_suite uses it)",
        )

    def handle(self, *args, **opts):
        policies = opts["policies"] or ["predictive", "fixed:30", "fixed:60", "fixed:300", "naive"]
        for spec in policies:
            try:
                policy_from_spec(spec)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        config = FleetConfig(
            sessions=opts["sessions"],
            seed=opts["seed"],
            profile=opts["profile"],
            latency_s=_range(opts["latency_s"]),
            telemetry_age_s=opts["telemetry_age_s"],
            soc_step_pct=opts["soc_step"],
            energy_step_kwh=opts["energy_step_kwh"],
            power_kw=opts["power_kw"],
            capacity_kwh=opts["capacity_kwh"],
            purchase_kwh=_range(opts["purchase_kwh"]),
            failure_rate=opts["failure_rate"],
            ignore_stop_rate=opts["ignore_stop_rate"],
            webhooks=opts["webhooks"],
            **world_options(opts),
        )
        if opts["verbosity"] < 2:
            # Per-reading INFO lines (duplicates, ignored values) would drown the figures.
            logging.getLogger("sessions").setLevel(logging.WARNING)
        if opts["current_db"]:
            doc = run_fleet(config, policies)
        else:
            with throwaway_database(migrate=not opts["tables_from_models"]):
                doc = run_fleet(config, policies)
        sessions = doc.pop("sessions")
        if opts["keep_sessions"]:
            doc["sessions"] = sessions
        text = report.markdown({**doc, "sessions": sessions})
        self.stdout.write(text)
        if opts["json_out"]:
            Path(opts["json_out"]).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        if opts["out_dir"]:
            out = Path(opts["out_dir"])
            out.mkdir(parents=True, exist_ok=True)
            stem = opts["name"] or f"fleet-{config.profile}"
            (out / f"{stem}.md").write_text(text)
            for path in report.plots({**doc, "sessions": sessions}, out, stem=stem):
                self.stdout.write(f"wrote {path}")
