"""Smart against immediate charging over a month of day-ahead-shaped prices.

A seeded fleet plugs in every evening (arrival ~18:30, departure ~07:00, 8–30 kWh, 7.4 or 11 kW).
Immediate charging starts at arrival; smart charging follows `sessions.grid.smart.plan_charge` with
the departure as deadline, the same window cost the controller uses. Both deliver the same
energy; the command prints the cost of each, the saving, the windows (start/stop commands) per
session and any missed deadline. Pure computation: no database, no vehicle calls.
"""

import json
import random
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from benchmarks import price_curve
from sessions.grid import smart

MONTH_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def run(*, days: int = 30, cars: int = 40, seed: int = 7, step_minutes: int = 60, window_cost_minor: int = 5) -> dict:
    rng = random.Random(seed)  # noqa: S311 - a benchmark's randomness, not a secret
    prices = price_curve.day_ahead_curve(MONTH_START, days + 2, seed=seed, step=timedelta(minutes=step_minutes))
    totals = {"sessions": 0, "energy_wh": 0, "immediate_millis": 0, "smart_millis": 0, "windows": 0, "missed": 0}
    for day in range(days):
        midnight = MONTH_START + timedelta(days=day)
        for _ in range(cars):
            if rng.random() > 0.8:
                continue  # not every car charges every day
            arrive = midnight + timedelta(hours=min(23.0, max(15.0, rng.gauss(18.5, 1.0))))
            arrive = arrive.replace(second=0, microsecond=0)
            depart = midnight + timedelta(days=1, hours=min(9.0, max(5.5, rng.gauss(7.0, 0.5))))
            energy = rng.randrange(8_000, 30_001, 500)
            power = rng.choice((7_400, 11_000))
            window = [p for p in prices if p.end > arrive and p.start < depart + timedelta(hours=12)]
            plan = smart.plan_charge(
                now=arrive,
                energy_wh=energy,
                power_w=power,
                prices=window,
                deadline=depart,
                window_cost_millis=window_cost_minor * 1000,
                horizon=depart - arrive,
            )
            immediate = smart.plan_charge(
                now=arrive, energy_wh=energy, power_w=power, prices=window, horizon=depart - arrive
            )
            totals["sessions"] += 1
            totals["energy_wh"] += energy
            totals["immediate_millis"] += immediate.cost_millis
            totals["smart_millis"] += plan.cost_millis
            totals["windows"] += len(plan.windows)
            totals["missed"] += 0 if plan.meets_deadline else 1
    saving = totals["immediate_millis"] - totals["smart_millis"]
    kwh = totals["energy_wh"] / 1000
    return {
        **totals,
        "days": days,
        "cars": cars,
        "seed": seed,
        "step_minutes": step_minutes,
        "immediate_minor": smart.millis_to_minor(totals["immediate_millis"]),
        "smart_minor": smart.millis_to_minor(totals["smart_millis"]),
        "saving_minor": smart.millis_to_minor(saving),
        "saving_percent": round(100 * saving / totals["immediate_millis"], 1) if totals["immediate_millis"] else 0.0,
        "immediate_ct_per_kwh": round(totals["immediate_millis"] / 1000 / kwh, 2) if kwh else 0.0,
        "smart_ct_per_kwh": round(totals["smart_millis"] / 1000 / kwh, 2) if kwh else 0.0,
        "windows_per_session": round(totals["windows"] / totals["sessions"], 2) if totals["sessions"] else 0.0,
    }


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--cars", type=int, default=40)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--step-minutes", type=int, choices=[15, 60], default=60)
        parser.add_argument("--window-cost", type=int, default=None, help="minor units per extra window")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        cost = settings.SMART_WINDOW_COST_MINOR if options["window_cost"] is None else options["window_cost"]
        result = run(
            days=options["days"],
            cars=options["cars"],
            seed=options["seed"],
            step_minutes=options["step_minutes"],
            window_cost_minor=cost,
        )
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        r = result
        self.stdout.write(
            f"{r['sessions']} sessions over {r['days']} days ({r['cars']} cars, seed {r['seed']}, "
            f"{r['step_minutes']}-minute prices), {r['energy_wh'] / 1000:.0f} kWh\n"
            f"immediate: {r['immediate_minor'] / 100:.2f} EUR ({r['immediate_ct_per_kwh']} ct/kWh)\n"
            f"smart:     {r['smart_minor'] / 100:.2f} EUR ({r['smart_ct_per_kwh']} ct/kWh), "
            f"{r['windows_per_session']} windows per session, {r['missed']} missed deadlines\n"
            f"saving:    {r['saving_minor'] / 100:.2f} EUR ({r['saving_percent']} %)"
        )
