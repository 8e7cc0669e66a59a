"""The fleet suite: every make profile and the README's profiles A and B, several seeds, the
predictive policy against the fixed-interval and naive baselines, pooled into one table.

Each (profile, seed) is two `fleet_benchmark` runs in their own processes (their own throwaway
databases), `jobs` at a time: the predictive policy on `sessions` cars, the baselines on the first
`baseline_sessions` of the same cars (a seed's first k cars are the same whatever the count; a
30-s poller costs ~20 times the steps of the predictive policy, and the machine's time is what
bounds the suite). The per-session results of a profile's seeds are pooled and aggregated with the
same `stats.aggregate` as a single run, so the pooled p95 is over every session of every seed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from benchmarks import stats
from vehicle_sim.profiles import OEM_PROFILES

POLICIES = ("predictive", "fixed:30", "fixed:60", "fixed:300", "naive")
SEEDS = (1, 2, 3)

# The README's profiles: the generic car (Tesla-like, data every 60 s, 1 % levels, 11 kW, 75 kWh)
# with its energy counter (A) and without it (B, battery level only).
README_PROFILES = {
    "A": ("generic", ["--telemetry-age-s", "60", "--soc-step", "1", "--energy-step-kwh", "0.01"]),
    "B": ("generic", ["--telemetry-age-s", "60", "--soc-step", "1", "--energy-step-kwh", "0"]),
}
# The scenarios where the naive reader used to win: the power drops (to 40–80 %, in every
# session instead of the world's 20 %) on A and on B, and an SoC-only car charging at 7.4 kW while
# the product expects 11 kW (the world's own draw is 55–100 % of nominal).
SCENARIOS = {
    "A-drop": ("generic", [*README_PROFILES["A"][1], "--power-drop-rate", "1"]),
    "B-drop": ("generic", [*README_PROFILES["B"][1], "--power-drop-rate", "1"]),
    "B-7kW": ("generic", [*README_PROFILES["B"][1], "--actual-power-kw", "7.4:7.4"]),
}


@dataclass(frozen=True)
class Part:
    name: str  # suite profile name: A, B or a make profile
    seed: int
    policies: tuple[str, ...]
    sessions: int


def suite_profiles() -> dict[str, tuple[str, list[str]]]:
    return {**README_PROFILES, **SCENARIOS, **{name: (name, []) for name in OEM_PROFILES}}


def _command(part: Part, *, world: str, out: Path, webhooks: bool = False) -> list[str]:
    profile, extra = suite_profiles()[part.name]
    args = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "fleet_benchmark"]
    args += ["--profile", profile, "--seed", str(part.seed), "--sessions", str(part.sessions), "--world", world]
    if webhooks:
        args.append("--webhooks")
    for spec in part.policies:
        args += ["--policy", spec]
    return [*args, *extra, "--keep-sessions", "--tables-from-models", "--json", str(out)]


def run_suite(
    *,
    sessions: int = 6,
    baseline_sessions: int = 2,
    seeds: tuple[int, ...] = SEEDS,
    profiles: list[str] | None = None,
    policies: list[str] | None = None,
    world: str = "realistic",
    webhooks: bool = False,
    jobs: int = 2,
    log=print,
    parts_dir: Path | None = None,
    kept_only: bool = False,
) -> dict:
    """Run every part, `jobs` processes at a time; the suite document (pooled and per seed).

    `parts_dir`: each part's `fleet_benchmark` JSON (per-session results included) is kept there
    as it finishes, so a long run's sessions can be studied, and are not lost if a later part fails.
    `kept_only`: measure nothing, build the table from the parts kept in `parts_dir`; a seed with
    no kept part is left out of its profile's pooling and listed under `missing`.
    `webhooks`: the cars send their readings by webhook (`fleet_benchmark --webhooks`); the table
    then counts billed reads and webhook readings apart.
    """
    if kept_only and parts_dir is None:
        raise ValueError("kept_only needs parts_dir")
    names = profiles or list(suite_profiles())
    unknown = set(names) - set(suite_profiles())
    if unknown:
        raise ValueError(f"unknown suite profile(s): {', '.join(sorted(unknown))}")
    specs = list(policies or POLICIES)
    groups = [
        (tuple(p for p in specs if p == "predictive"), sessions),
        (tuple(p for p in specs if p != "predictive"), baseline_sessions),
    ]
    # The slow baselines first: the last processes to finish are then the short ones.
    parts = [Part(name, seed, group, n) for group, n in reversed(groups) if group for name in names for seed in seeds]
    started = time.monotonic()
    docs: dict[tuple[str, int], dict] = {}
    missing: list[str] = []
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-suite-") as tmp:

        def run(part: Part) -> None:
            label = f"{part.name}-{part.seed}-{'+'.join(part.policies).replace(':', '')}"
            out = Path(tmp) / f"{label}.json"
            t0 = time.monotonic()
            kept = _kept_part(parts_dir, label, part, world, webhooks) if parts_dir is not None else None
            if kept is not None:
                # A part an interrupted run already measured with the same arguments: reused.
                out.write_text(kept)
            elif kept_only:
                missing.append(label)
                return
            else:
                done = subprocess.run(  # noqa: S603 - our own command
                    _command(part, world=world, out=out, webhooks=webhooks),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{part}: fleet_benchmark failed:\n{done.stderr[-2000:]}")
            doc = json.loads(out.read_text())
            if parts_dir is not None:
                parts_dir.mkdir(parents=True, exist_ok=True)
                (parts_dir / out.name).write_text(out.read_text())
            merged = docs.setdefault((part.name, part.seed), {"config": doc["config"], "sessions": {}})
            merged["sessions"].update(doc["sessions"])
            seconds[label] = round(time.monotonic() - t0, 1)
            log(f"{label}: {seconds[label]:.0f} s")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(run, parts))
    return {
        "config": {
            "world": world,
            "webhooks": webhooks,
            "sessions_per_seed": sessions,
            "baseline_sessions_per_seed": baseline_sessions,
            "seeds": list(seeds),
            "policies": specs,
            "jobs": jobs,
            "wall_s": round(time.monotonic() - started, 1),
        },
        "profiles": {
            name: _pooled(name, [docs[(name, s)] for s in seeds if (name, s) in docs], specs)
            for name in names
            if any((name, s) in docs for s in seeds)
        },
        "missing": sorted(missing),
        "seconds": seconds,
    }


def _kept_part(parts_dir: Path, label: str, part: Part, world: str, webhooks: bool = False) -> str | None:
    """The kept JSON of this part if one exists for the same profile, seed, sessions, policies,
    world and source of readings."""
    path = parts_dir / f"{label}.json"
    if not path.exists():
        return None
    text = path.read_text()
    try:
        doc = json.loads(text)
        config = doc["config"]
        same = (
            config["seed"] == part.seed
            and config["sessions"] == part.sessions
            and config["world"] == world
            and bool(config.get("webhooks")) == webhooks
            and set(doc["sessions"]) == set(part.policies)
        )
    except (ValueError, KeyError, TypeError):
        return None
    return text if same else None


def _pooled(name: str, docs: list[dict], specs: list[str]) -> dict:
    first = docs[0]["config"]
    present = [spec for spec in specs if any(spec in doc["sessions"] for doc in docs)]
    pooled = {spec: stats.aggregate([r for doc in docs for r in doc["sessions"].get(spec, [])]) for spec in present}
    per_seed = {
        str(doc["config"]["seed"]): {
            spec: stats.aggregate(doc["sessions"][spec]) for spec in present if spec in doc["sessions"]
        }
        for doc in docs
    }
    config = {k: v for k, v in first.items() if k not in ("seed", "sessions")}
    return {"config": config, "pooled": pooled, "per_seed": per_seed, "paired": _paired(docs, present)}


def _paired(docs: list[dict], specs: list[str], policy: str = "predictive") -> dict:
    """For each baseline: the policy on the baseline's own cars (the same seed and car index, so
    the same draws), and on how many of those cars the policy ended closer to the purchase.

    The baselines run on a seed's first cars only; comparing their p95 with the policy's p95 over
    every car would compare different draws (and a p95 over 3 sessions is nearly their worst one).
    """
    out: dict = {}
    for spec in specs:
        if spec == policy:
            continue
        mine, theirs = [], []
        for doc in docs:
            by_index = {r["index"]: r for r in doc["sessions"].get(policy, [])}
            for other in doc["sessions"].get(spec, []):
                if other["index"] in by_index:
                    mine.append(by_index[other["index"]])
                    theirs.append(other)
        if not mine:
            continue
        both = [(a, b) for a, b in zip(mine, theirs, strict=True) if a["charged"] and b["charged"]]
        out[spec] = {
            "cars": len(mine),
            policy: stats.aggregate(mine),
            spec: stats.aggregate(theirs),
            "closer": sum(1 for a, b in both if a["error_pct"] < b["error_pct"]),
            "tied": sum(1 for a, b in both if a["error_pct"] == b["error_pct"]),
            "both_charged": len(both),
        }
    return out


# --- targets (issue 16) -------------------------------------------------------------------------


def targets(profile: dict, *, policy: str = "predictive") -> dict[str, tuple[bool, str]] | None:
    """Each target of issue 16 for one profile's pooled figures: (met, what was measured)."""
    pooled = profile["pooled"]
    p = pooled.get(policy)
    if p is None or not p["charged"]:
        return None
    out: dict[str, tuple[bool, str]] = {}
    ratio = p["ratio_to_floor"]
    measured = f"{_fmt(ratio)} ×"
    blind = p.get("floor_blind_pct_p95")
    if blind and p["error_pct_p95"] is not None and blind != p["floor_pct_p95"]:
        # SoC-only cars: the usable capacity is as hidden from the API as the STOP's latency; the
        # ratio to the oracle that lacks it too is shown beside (the target stays on the floor).
        measured += f" ({_fmt(round(p['error_pct_p95'] / blind, 2))} × blind)"
    out["p95 ≤ 1.3 × floor"] = (ratio is not None and ratio <= 1.3, measured)
    beaten = []
    paired = profile.get("paired", {})
    for spec, other in pooled.items():
        if spec == policy or other["error_pct_p95"] is None:
            continue
        # On the baseline's own cars where the suite paired them (the same draws); a table built
        # before the pairing compares the pooled figures.
        mine = paired[spec][policy] if spec in paired else p
        if mine["error_pct_p95"] is None:
            continue
        ok = mine["error_pct_p95"] < other["error_pct_p95"] and mine["calls_p50"] < other["calls_p50"]
        if not ok:
            beaten.append(
                f"{spec} ({_fmt(other['error_pct_p95'])} % at {_fmt(other['calls_p50'])} calls"
                + (
                    f"; {policy} {_fmt(mine['error_pct_p95'])} % at {_fmt(mine['calls_p50'])} on its cars"
                    if spec in paired
                    else ""
                )
                + ")"
            )
    out["beats every baseline"] = (not beaten, "; ".join(beaten) or "yes")
    share = p["billed_above_delivered"] / max(1, p["sessions"]) * 100
    out["billed > delivered ≤ 1 % of sessions, ≤ 0.5 % of purchase"] = (
        share <= 1 and p["billed_above_delivered_max_pct"] <= 0.5,
        f"{p['billed_above_delivered']}/{p['sessions']}, max {_fmt(p['billed_above_delivered_max_pct'])} %",
    )
    out["unbilled ≤ 2 % of delivered"] = (p["unbilled_delivered_pct"] <= 2, f"{_fmt(p['unbilled_delivered_pct'])} %")
    out["0 billed > purchase, all terminal, drift 0"] = (
        p["billed_above_purchase"] == 0 and p["terminal"] == p["sessions"] and p["ledger_drift"] == 0,
        f"{p['billed_above_purchase']}, {p['terminal']}/{p['sessions']}, {p['ledger_drift']}",
    )
    return out


def _fmt(value) -> str:
    return "–" if value is None else f"{value:g}"


WEBHOOK_COLUMNS = " Reads = billed signal reads per session (p50); webhook = readings that came by webhook (p50)."


def markdown(doc: dict, *, command: str = "") -> str:
    cfg = doc["config"]
    seeds = len(cfg["seeds"])
    baseline = cfg.get("baseline_sessions_per_seed", cfg["sessions_per_seed"])
    webhooks = cfg.get("webhooks", False)
    lines = [
        f"# Fleet suite — world `{cfg['world']}`" + (", readings by webhook" if webhooks else ""),
        "",
        f"Seeds {', '.join(map(str, cfg['seeds']))}, pooled: the predictive policy on {cfg['sessions_per_seed']} "
        f"sessions per profile and seed ({cfg['sessions_per_seed'] * seeds} per profile)"
        + (
            f", the baselines on the first {baseline} of the same cars ({baseline * seeds} per profile)"
            if any(p != "predictive" for p in cfg.get("policies", ["naive"]))
            else " (no baselines)"
        )
        + f"; {cfg['wall_s']:.0f} s wall time with {cfg['jobs']} processes.",
    ]
    if command:
        lines += ["", "```sh", command, "```"]
    lines += [
        "",
        "Error = |delivered − purchased| in % of the purchase over every session that charged (the backstop's "
        "included); floor = p95 of an oracle replayed on each session's own charge and latency draws "
        "(`benchmarks/floor.py`); blind floor = the same oracle without the usable capacity "
        "(what an SoC-only car cannot tell). Calls = billed vehicle API calls per session. "
        '"billed > delivered" counts sessions billed above the true delivery (max in % of the purchase); '
        "unbilled = delivered energy up to the purchase that was not billed, % of all delivered."
        + (WEBHOOK_COLUMNS if webhooks else ""),
        "",
        "| profile | policy | charged | error % p50 | p95 | floor p95 | ×floor | blind floor | calls p50 | p95 "
        + ("| reads p50 | webhook p50 " if webhooks else "")
        + "| under | backstop | billed > delivered (max %) | unbilled % | billed > purchase | terminal | drift |",
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if webhooks else "") + "---|---|---|---|---|---|---|",
    ]
    for name, profile in doc["profiles"].items():
        for spec, p in profile["pooled"].items():
            reads = f"| {_fmt(p.get('billed_reads_p50'))} | {_fmt(p.get('webhook_readings_p50'))} " if webhooks else ""
            lines.append(
                f"| {name} | `{spec}` | {p['charged']}/{p['sessions']} | {_fmt(p['error_pct_p50'])} "
                f"| {_fmt(p['error_pct_p95'])} | {_fmt(p['floor_pct_p95'])} | {_fmt(p['ratio_to_floor'])} "
                f"| {_fmt(p['floor_blind_pct_p95'])} | {_fmt(p['calls_p50'])} | {_fmt(p['calls_p95'])} "
                + reads
                + f"| {p['under_delivered']} | {p['backstop_stopped']} | {p['billed_above_delivered']} "
                f"({_fmt(p['billed_above_delivered_max_pct'])}) | {_fmt(p['unbilled_delivered_pct'])} "
                f"| {p['billed_above_purchase']} | {p['terminal']}/{p['sessions']} | {p['ledger_drift']} |"
            )
    lines += ["", "## Targets (predictive, pooled)", ""]
    names = None
    for name, profile in doc["profiles"].items():
        checks = targets(profile)
        if checks is None:
            continue
        if names is None:
            names = list(checks)
            lines += ["| profile | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        cells = [("✓ " if ok else "✗ ") + text for ok, text in checks.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    not_charged = {
        name: profile["pooled"]["predictive"]["statuses"]
        for name, profile in doc["profiles"].items()
        if "predictive" in profile["pooled"] and not profile["pooled"]["predictive"]["charged"]
    }
    for name, statuses in not_charged.items():
        lines.append(f"\n{name}: no session charged ({', '.join(f'{k} {v}' for k, v in statuses.items())}).")
    lines += _paired_table(doc)
    if doc.get("missing"):
        lines.append(
            "\nNot measured (no kept part when the table was built; each pooled figure is over the seeds "
            f"that were): {', '.join(doc['missing'])}."
        )
    lines.append("")
    return "\n".join(lines)


def _paired_table(doc: dict, policy: str = "predictive") -> list[str]:
    rows = [
        f"| {name} | `{spec}` | {pair['cars']} | {_fmt(pair[spec]['error_pct_p95'])} | {_fmt(pair[spec]['calls_p50'])} "
        f"| {_fmt(pair[policy]['error_pct_p95'])} | {_fmt(pair[policy]['calls_p50'])} "
        f"| {pair['closer']}/{pair['both_charged']}" + (f" ({pair['tied']} tied)" if pair["tied"] else "") + " |"
        for name, profile in doc["profiles"].items()
        for spec, pair in profile.get("paired", {}).items()
        if pair["both_charged"]
    ]
    if not rows:
        return []
    return [
        "",
        f"## The {policy} policy and each baseline on the same cars",
        "",
        f"The baselines run on each seed's first cars; here the {policy} policy is taken on exactly those cars "
        '(the same draws), which is what "beats every baseline" above compares. Closer = cars on which it '
        "ended nearer the purchase than the baseline.",
        "",
        f"| profile | baseline | cars | baseline p95 % | calls p50 | {policy} p95 % | calls p50 | closer |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]


def plot(doc: dict, path: Path) -> Path:
    """Error p95 against calls p50 per policy, one panel per profile, the floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, p in doc["profiles"].items() if any(x["charged"] for x in p["pooled"].values())]
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        pooled = doc["profiles"][name]["pooled"]
        for spec, p in pooled.items():
            if p["error_pct_p95"] is None:
                continue
            ax.scatter(p["calls_p50"], p["error_pct_p95"], s=30)
            ax.annotate(spec, (p["calls_p50"], p["error_pct_p95"]), textcoords="offset points", xytext=(4, 3))
        floor = pooled.get("predictive", {}).get("floor_pct_p95")
        if floor:
            ax.axhline(floor, ls="--", c="grey", lw=1)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel("calls per session (p50)")
        ax.set_ylabel("error p95, % of purchase")
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"Stop error vs calls, world {doc['config']['world']} (dashed: oracle floor p95)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(doc: dict, out_dir: Path, *, command: str = "") -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "suite.md"
    md.write_text(markdown(doc, command=command))
    js = out_dir / "suite.json"
    js.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    return [md, js, plot(doc, out_dir / "suite-error-vs-calls.png")]
