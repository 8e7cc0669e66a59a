"""Pool the fleet_suite parts of each run (docs/benchmarks/power-metering.md).

    python docs/benchmarks/power-metering/pool.py NAME=DIR [NAME=DIR ...] > pooled.json

DIR is a fleet_suite --out-dir with --keep-parts. Per profile and all profiles together: error
p50/p95 (|delivered − purchased| % of the purchase), under-delivered sessions, billed above the
battery's energy (count, max % of the purchase), unbilled % of delivered, billed calls p50/p95,
webhook readings p50; and the sessions whose wall energy at the charger's 0.92 lies above what
the battery got by more than 0.5 % of the purchase (a cold pack's heater: what billing the
wattage's energy would have over-billed). Error percentiles by that split too.
"""

import glob
import json
import os
import sys

HEATER_MARGIN = 0.005  # of the purchase: the issue-16 limit on billing above the delivered energy


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return round(xs[f] + (xs[c] - xs[f]) * (k - f), 3)


def heated(s):
    return s["delivered_wall_wh"] * 0.92 - s["delivered_wh"] > HEATER_MARGIN * s["purchased_wh"]


def pool(sessions):
    ch = [s for s in sessions if s["charged"]]
    err = [s["error_pct"] for s in ch]
    above = [s for s in ch if s["billed_wh"] > s["delivered_wh"]]
    delivered = sum(s["delivered_wh"] for s in ch)
    unbilled = sum(s["unbilled_wh"] for s in ch)
    calls = [s["api_calls"] for s in sessions]
    return {
        "sessions": len(sessions),
        "charged": len(ch),
        "error_pct_p50": pct(err, 0.5),
        "error_pct_p95": pct(err, 0.95),
        "under_delivered": sum(1 for s in ch if s["delivered_wh"] < s["purchased_wh"]),
        "billed_above_delivered": len(above),
        "billed_above_delivered_max_pct": round(
            max([(s["billed_wh"] - s["delivered_wh"]) / s["purchased_wh"] * 100 for s in above], default=0), 3
        ),
        "unbilled_delivered_pct": round(unbilled / delivered * 100, 3) if delivered else 0,
        "calls_p50": pct(calls, 0.5),
        "calls_p95": pct(calls, 0.95),
        "webhook_readings_p50": pct([s["webhook_readings"] for s in sessions], 0.5),
        "heated_sessions": sum(1 for s in ch if heated(s)),
        "error_pct_p95_warm": pct([s["error_pct"] for s in ch if not heated(s)], 0.95),
        "error_pct_p95_heated": pct([s["error_pct"] for s in ch if heated(s)], 0.95),
    }


def main(runs):
    out = {}
    for run in runs:
        name, path = run.split("=", 1)
        by = {}
        for part in sorted(glob.glob(os.path.join(path, "parts", "*-predictive.json"))):
            profile = os.path.basename(part).rsplit("-", 2)[0]
            with open(part) as f:
                by.setdefault(profile, []).extend(json.load(f)["sessions"]["predictive"])
        res = {profile: pool(ss) for profile, ss in sorted(by.items())}
        res["pooled"] = pool([s for ss in by.values() for s in ss])
        out[name] = res
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
