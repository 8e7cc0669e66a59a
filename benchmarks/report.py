"""Markdown tables and PNG plots of a fleet benchmark document (the JSON of `run_fleet`)."""

from __future__ import annotations

from pathlib import Path


def _fmt(value, suffix: str = "") -> str:
    return "–" if value is None else f"{value:g}{suffix}"


def _world_line(cfg: dict) -> str:
    knobs = cfg.get("world_knobs") or {}
    if not knobs:
        return ""
    power = (
        f"actual power {cfg['actual_power_kw'][0]:g}–{cfg['actual_power_kw'][1]:g} kW"
        if cfg.get("actual_power_kw")
        else f"actual power {knobs['actual_power_fraction'][0]:g}–{knobs['actual_power_fraction'][1]:g} × nominal"
    )
    parts = [
        f"world `{cfg.get('world', 'ideal')}`: {power}",
        f"power drops in {cfg['power_drop_rate']:g} of sessions",
        f"usable capacity {100 - cfg['capacity_error_pct']:g}–100 % of nominal",
        f"SoC {cfg['soc_rounding']}",
        f"START {cfg['start_latency_s'][0]:g}–{cfg['start_latency_s'][1]:g} s, "
        f"STOP {cfg['stop_latency_s'][0]:g}–{cfg['stop_latency_s'][1]:g} s",
        f"answers {cfg['answer_latency_s'][0]:g}–{cfg['answer_latency_s'][1]:g} s",
        f"rate limits {'on' if cfg['rate_limits'] else 'off'}",
    ]
    if cfg.get("ambient_c"):
        parts.append(f"ambient {cfg['ambient_c'][0]:g}–{cfg['ambient_c'][1]:g} °C")
    if cfg.get("voltage_slope"):
        parts.append(f"voltage slope {cfg['voltage_slope']:g}")
    return "; ".join(parts) + "."


def markdown(doc: dict, *, title: str = "Fleet benchmark") -> str:
    cfg = doc["config"]
    n = cfg["sessions"]
    per = ", ".join(f"{k} {v}" for k, v in n.items()) if isinstance(n, dict) else None
    lines = [
        f"## {title}",
        "",
        (f"Sessions per policy: {per}; seed" if per else f"{n} sessions per policy, seed")
        + f" {cfg['seed']}, profile `{cfg['profile']}` ({cfg['make']}): "
        f"telemetry refresh {cfg['telemetry_age_s']:g} s, "
        f"SoC step {cfg['soc_step_pct']:g} %, energy step {cfg['energy_step_kwh']:g} kWh, "
        f"nominal {cfg['power_kw']:g} kW, {cfg['capacity_kwh']:g} kWh, purchases {cfg['purchase_kwh'][0]:g}–"
        f"{cfg['purchase_kwh'][1]:g} kWh, failure rate {cfg['failure_rate']:g}, ignore-STOP rate "
        f"{cfg['ignore_stop_rate']:g}. " + _world_line(cfg),
        "",
        "Error = |delivered − purchased| over every session that charged (backstop-ended ones included); "
        "floor = the same percentile of an oracle replayed on each session's own charge and latency draws "
        "(`benchmarks/floor.py`); blind floor = that oracle without the usable capacity.",
        "",
        "| policy | error % p50 | p95 | max | floor p95 | ×floor | blind floor | calls p50 | p95 "
        "| under-delivered | backstop | billed > delivered (max % of purchase) | unbilled % | billed > purchase "
        "| terminal | ended |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec, p in doc["policies"].items():
        ended = ", ".join(f"{k} {v}" for k, v in p["statuses"].items())
        lines.append(
            f"| `{spec}` | {_fmt(p['error_pct_p50'])} | {_fmt(p['error_pct_p95'])} | {_fmt(p['error_pct_max'])} "
            f"| {_fmt(p['floor_pct_p95'])} | {_fmt(p['ratio_to_floor'])} | {_fmt(p['floor_blind_pct_p95'])} "
            f"| {_fmt(p['calls_p50'])} | {_fmt(p['calls_p95'])} | {p['under_delivered']}/{p['charged']} "
            f"| {p['backstop_stopped']} | {p['billed_above_delivered']} ({_fmt(p['billed_above_delivered_max_pct'])}) "
            f"| {_fmt(p['unbilled_delivered_pct'])} | {p['billed_above_purchase']} "
            f"| {p['terminal']}/{p['sessions']} | {ended} |"
        )
    kinds = sorted({k for p in doc["policies"].values() for k in p["calls_by_kind_per_session"]})
    lines += [
        "",
        "Billed vehicle API calls per session by purpose (mean):",
        "",
        "| policy | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    for spec, p in doc["policies"].items():
        per = p["calls_by_kind_per_session"]
        lines.append(f"| `{spec}` | " + " | ".join(_fmt(per.get(k, 0)) for k in kinds) + " |")
    lines.append("")
    return "\n".join(lines)


def plots(doc: dict, out_dir: Path, *, stem: str) -> list[Path]:
    """Error vs calls per policy (scatter of medians/p95) and the error distribution per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for spec, p in doc["policies"].items():
        if p["error_pct_p95"] is None:
            continue
        ax.scatter(p["calls_p50"], p["error_pct_p95"], s=40)
        ax.annotate(spec, (p["calls_p50"], p["error_pct_p95"]), textcoords="offset points", xytext=(5, 4))
    floors = [p["floor_pct_p95"] for p in doc["policies"].values() if p.get("floor_pct_p95") is not None]
    if floors:
        ax.axhline(max(floors), ls="--", c="grey", label="oracle floor (p95)")
    ax.set_xlabel("vehicle API calls per session (median)")
    ax.set_ylabel("|delivered − purchased| p95, % of purchase")
    ax.set_title(f"Stop accuracy vs calls — {stem}")
    written.append(_save(fig, ax, out_dir / f"{stem}-error-vs-calls.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for spec, results in doc.get("sessions", {}).items():
        errors = sorted(r["error_pct"] for r in results if r["charged"])
        if errors:
            ax.plot(errors, [(i + 1) / len(errors) for i in range(len(errors))], label=spec)
    ax.set_xlabel("|delivered − purchased|, % of purchase")
    ax.set_ylabel("share of sessions")
    ax.set_title(f"Error distribution (CDF) — {stem}")
    written.append(_save(fig, ax, out_dir / f"{stem}-error-cdf.png"))
    return written


def _save(fig, ax, path: Path) -> Path:
    """Legend (when something is labelled), layout, PNG; the figure is closed."""
    import matplotlib.pyplot as plt

    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def merge(docs: list[dict], *, common_subset: bool = False) -> dict:
    """One document from runs of different policies on the same seeded fleet (same seed and
    realism, possibly different --sessions: the first k cars of a seed are the same cars).

    With `common_subset`, every policy is re-aggregated on the cars all runs share, so the
    comparison is on identical sessions.
    """
    from benchmarks import stats

    base = dict(docs[0]["config"])
    for doc in docs[1:]:
        other = {k: v for k, v in doc["config"].items() if k != "sessions"}
        mine = {k: v for k, v in base.items() if k != "sessions"}
        if other != mine:
            raise ValueError("runs differ in more than --sessions; they are not the same fleet")
    sessions = {spec: results for doc in docs for spec, results in doc["sessions"].items()}
    n = min(len(r) for r in sessions.values())
    if common_subset:
        sessions = {spec: [r for r in results if r["index"] < n] for spec, results in sessions.items()}
    policies = {spec: stats.aggregate(results) for spec, results in sessions.items()}
    base["sessions"] = n if common_subset else {spec: len(r) for spec, r in sessions.items()}
    return {"policies": policies, "sessions": sessions, "config": base}


def main(argv: list[str] | None = None) -> None:
    """python -m benchmarks.report OUT_DIR NAME part.json... (parts need --keep-sessions)."""
    import json
    import sys

    args = argv if argv is not None else sys.argv[1:]
    out_dir, name, parts = Path(args[0]), args[1], args[2:]
    docs = [json.loads(Path(p).read_text()) for p in parts]
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix, common in (("", False), ("-common", True)):
        doc = merge(docs, common_subset=common)
        title = f"Fleet benchmark {name}" + (f" (common first {doc['config']['sessions']} cars)" if common else "")
        (out_dir / f"{name}{suffix}.md").write_text(markdown(doc, title=title))
        slim = {"policies": doc["policies"], "config": doc["config"]}
        (out_dir / f"{name}{suffix}.json").write_text(json.dumps(slim, indent=2, default=str) + "\n")
        plots(doc, out_dir, stem=f"{name}{suffix}")


if __name__ == "__main__":
    main()
