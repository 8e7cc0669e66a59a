"""Pool the heater-signal runs per make: `.venv/bin/python docs/benchmarks/heater-signal/pool.py`.

Heated sessions: the battery got under 90.5 % of the wall's energy (the charger's 92 % less a heater).
"""

import json
from pathlib import Path

from benchmarks.stats import aggregate, percentile

HERE = Path(__file__).parent


def load(make, mode):
    out = []
    for seed in (1, 2, 3):
        path = HERE / f"{make}-{seed}-{mode}.json"
        if path.exists():
            out += json.loads(path.read_text())["sessions"]["predictive"]
    return out


def row(rs):
    a = aggregate(rs)
    charged = [r for r in rs if r["charged"]]
    heated = [r for r in charged if r["delivered_wall_wh"] and r["delivered_wh"] / r["delivered_wall_wh"] < 0.905]
    warm = [r for r in charged if r not in heated]

    def p95(group):
        v = percentile([r["error_pct"] for r in group], 95)
        return None if v is None else round(v, 2)

    signed = [100 * (r["delivered_wh"] - r["purchased_wh"]) / r["purchased_wh"] for r in heated]
    return {
        "n": len(rs),
        "p50": a["error_pct_p50"],
        "p95": a["error_pct_p95"],
        "warm_p95": p95(warm),
        "heated_p95": p95(heated),
        "heated": len(heated),
        "heated_under": sum(1 for r in heated if r["delivered_wh"] < r["purchased_wh"]),
        "heated_worst_signed": round(min(signed), 1) if signed else None,
        "under": a["under_delivered"],
        "billed_above_delivered": a["billed_above_delivered"],
        "unbilled_pct": a["unbilled_delivered_pct"],
        "calls_p50": a["calls_p50"],
    }


if __name__ == "__main__":
    cols = list(row(load("vw_group", "without")).keys())
    print("| make | run | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for make in ("vw_group", "bmw_mini", "mercedes_eq_eu"):
        for mode in ("without", "with"):
            rs = load(make, mode)
            if rs:
                r = row(rs)
                print(f"| {make} | {mode} | " + " | ".join(str(r[c]) for c in cols) + " |")
