"""Every make profile and the README's profiles A and B on one world, three seeds each, the
predictive policy against the fixed:30/60/300 and naive baselines: one pooled table (issue 16 §3).

Writes suite.md (the table and the targets), suite.json (pooled and per-seed figures) and
suite-error-vs-calls.png (one panel per profile) into --out-dir. Each (profile, seed) runs as its
own `fleet_benchmark` process on its own throwaway database, --jobs at a time.
"""

import shlex
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from benchmarks.suite import POLICIES, SEEDS, run_suite, suite_profiles, write
from sessions.controller.policy import policy_from_spec
from vehicle_sim.world import WORLDS


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=6, help="predictive sessions per profile and seed")
        parser.add_argument(
            "--baseline-sessions", type=int, default=2, help="baseline sessions per profile and seed (the first cars)"
        )
        parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="comma-separated seeds")
        parser.add_argument(
            "--profile",
            action="append",
            dest="profiles",
            help=f"repeatable; default all: {', '.join(suite_profiles())}",
        )
        parser.add_argument("--policy", action="append", dest="policies", help=f"default: {', '.join(POLICIES)}")
        parser.add_argument("--world", default="realistic", choices=sorted(WORLDS))
        parser.add_argument(
            "--webhooks",
            action="store_true",
            help="the cars send their readings by webhook (fleet_benchmark --webhooks); billed reads and "
            "webhook readings are counted apart",
        )
        parser.add_argument("--jobs", type=int, default=2, help="fleet_benchmark processes at a time")
        parser.add_argument("--out-dir", default="docs/benchmarks/suite")
        parser.add_argument(
            "--keep-parts",
            action="store_true",
            help="keep each part's fleet_benchmark JSON (per-session results) in OUT_DIR/parts/; a part kept "
            "there with the same arguments is reused (an interrupted suite resumes)",
        )
        parser.add_argument(
            "--kept-only",
            action="store_true",
            help="measure nothing: build the table from the parts kept in OUT_DIR/parts/ (those missing are listed)",
        )

    def handle(self, *args, **opts):
        try:
            seeds = tuple(int(s) for s in opts["seeds"].split(",") if s)
            for spec in opts["policies"] or ():
                policy_from_spec(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if opts["sessions"] < 1 or opts["baseline_sessions"] < 1 or not seeds:
            raise CommandError("need at least one session and one seed")
        try:
            doc = run_suite(
                sessions=opts["sessions"],
                baseline_sessions=opts["baseline_sessions"],
                seeds=seeds,
                profiles=opts["profiles"],
                policies=opts["policies"],
                world=opts["world"],
                webhooks=opts["webhooks"],
                jobs=opts["jobs"],
                log=lambda line: self.stdout.write(line),
                parts_dir=Path(opts["out_dir"]) / "parts" if opts["keep_parts"] or opts["kept_only"] else None,
                kept_only=opts["kept_only"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        command = "python manage.py fleet_suite " + shlex.join(sys.argv[2:])
        for path in write(doc, Path(opts["out_dir"]), command=command.strip()):
            self.stdout.write(f"wrote {path}")
