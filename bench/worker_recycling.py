"""Worker recycling: what bounding a reused trial worker's memory costs, at the demo's settings.

    .venv/bin/python bench/worker_recycling.py --dataset demo/datasets/bansuri [--limits 0,2048,1536]

Runs the demo's sweep of one instrument (``bench/finished_per_hour.py``'s: 24 trials x 150 steps,
random search, MO-ASHA with one rung at ``--grace-period`` 60 and ``--reduction-factor`` 2.5, the
Makefile's DEMO_GRACE and DEMO_ETA (55 and 2.75 until 2026-12-07), ``--min-rtf`` 5, 1-second windows) once per
``--worker-memory-mib`` limit, in one run, the same seed (the same suggestions). Per sweep, from the
trials' own metrics: the Tuner's wall time, workers recycled, the workers' memory at each trial's
start (``rss_at_start_mib``: what a reused worker carried in) and peak (``peak_rss_mib``), and the
trials' start-up (``startup_s``: a recycled worker's next trial pays the fresh process's imports).
0 is Ray Tune's plain reuse. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finished_per_hour import run_demo_sweep  # noqa: E402 - bench/ is this script's folder


def figures(sweep: dict) -> dict:
    trials = list(sweep["trials"].values())

    def column(key):
        return [m[key] for m in trials if key in m]

    start, peak, startup = column("rss_at_start_mib"), column("peak_rss_mib"), column("startup_s")
    finished = sum(status == "FINISHED" for status in sweep["outcomes"].values())
    return {"tune_s": sweep["tune_s"], "finished": finished, "trials": len(sweep["outcomes"]),
            "workers_recycled": sweep["workers_recycled"], "rss_at_start_max_mib": max(start, default=None),
            "rss_at_start_median_mib": statistics.median(start) if start else None,
            "peak_max_mib": max(peak, default=None), "peak_median_mib": statistics.median(peak) if peak else None,
            "startup_s_total": sum(startup), "front": sweep["front"], "winner": sweep["winner"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo/datasets/bansuri", help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--limits", default="0,2048,1536", help="--worker-memory-mib values, comma-separated (0: no recycling)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--grace-period", type=int, default=60)
    parser.add_argument("--reduction-factor", type=float, default=2.5)
    args = parser.parse_args()
    slots = os.cpu_count() or 1
    print(f"the demo's sweep of one instrument: {args.trials} trials x {args.steps} steps, MO-ASHA "
          f"{args.grace_period} / {args.reduction_factor:g}, {slots} trial slots")
    results = {}
    with tempfile.TemporaryDirectory(prefix="tonesweep-bench-") as tmp:
        for limit in (int(x) for x in args.limits.split(",")):
            folder = Path(tmp) / f"limit{limit}"
            folder.mkdir()
            sweep = run_demo_sweep(str(Path(args.dataset).resolve()), args.trials, args.steps, 1.0, folder,
                                   args.grace_period, args.reduction_factor, worker_memory_mib=limit)
            line = results[limit] = figures(sweep)
            print(f"  --worker-memory-mib {limit}: {line['tune_s']:.0f} s, {line['finished']} finished of "
                  f"{line['trials']}, {line['workers_recycled']} workers recycled; RSS at a trial's start max "
                  f"{line['rss_at_start_max_mib']:,.0f} MiB (median {line['rss_at_start_median_mib']:,.0f}); peak max "
                  f"{line['peak_max_mib']:,.0f} (median {line['peak_median_mib']:,.0f}); start-up {line['startup_s_total']:.0f} s "
                  f"in all; front of {line['front']}, winner {line['winner']}", flush=True)
    print("RESULT " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
