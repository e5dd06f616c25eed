"""Finished trials per CPU-hour at the demo's settings: whole-example training against 1-second windows.

    .venv/bin/python bench/finished_per_hour.py --dataset demo/datasets/bansuri [--trials 24] [--steps 150]

Runs the demo's sweep of one instrument twice in one run (``search.sweep.run_sweep``: local Ray,
the real trainer, MLflow on a temporary SQLite store; random search, MO-ASHA with one rung at
``--grace-period`` 60 and ``--reduction-factor`` 2.5 (the Makefile's DEMO_GRACE, DEMO_ETA; 55 and 2.75
until 2026-12-07), ``--min-rtf`` 5, one CPU per trial, as many trials at once as the machine
has cores), the same seed, so the same suggestions:

- ``whole examples``: the built-in space with ``crop_seconds`` = 0, the training path before
  training windows (every step synthesises whole 4-second examples; XLA for the whole step from 50 steps
  until 2026-12-08, without it since: ``trainers.training.train.use_xla``);
- ``1-second windows``: the built-in space as it ships.

Evaluation in proportion is on in both (it has no switch). Figures per sweep: trials ended and
finished, the Tuner's wall time, finished trials per CPU-hour (CPU-hours = slots x wall), the
trial-steps spent, the sweep's own split of its trials' time (``search.progress.InstrumentTally.time_split``:
training, start-up, evaluation, the rest, stopped trials included), the workers' peak RSS from the
trials' own metrics, and the front and winner ``pareto`` would pick (size, quality). (The overhead line of
``bench/sweep_overhead.py``'s ``summarize`` is printed too, but it counts the training of trials whose MLflow
metrics carry it, the finished ones: under MO-ASHA the stopped trials' training lands in its "rest".) Nothing
is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sweep_overhead import summarize  # noqa: E402 - bench/ is this script's folder


def run_demo_sweep(dataset: str, trials: int, steps: int, window: float, tmp: Path, grace: int, eta: float,
                   **more_settings) -> dict:
    import spaces.default
    from results.layout import trial_metrics
    from results.report import front_rows
    from results.select import select_smallest
    from results.table import load_table
    from results.tracking import child_runs, make_client
    from search.settings import SweepSettings
    from search.sweep import run_sweep

    spaces.default.TRAINING_WINDOW_SECONDS = window  # the switch: the built-in space, windows or not
    uri = f"sqlite:///{tmp}/mlflow.db"
    settings = SweepSettings(datasets=[dataset], trials=trials, steps=steps, scheduler="moasha", grace_period=grace,
                             reduction_factor=eta, min_rtf=5.0, name="throughput", storage=str(tmp / "runs"),
                             tracking_uri=uri, xla_cache="off", **more_settings)
    start = time.perf_counter()
    [result] = run_sweep(settings)
    total = time.perf_counter() - start
    client = make_client(uri)
    runs = child_runs(client, result.experiment_id, result.parent_run_id)
    _, table = load_table(client, result.instrument, "throughput")
    selection = select_smallest(table)
    winner = selection.winner
    return {"total_s": total, "tune_s": result.wall_s, "tracking_s_per_trial": result.tracking_s_per_trial,
            "outcomes": result.outcomes, "trial_steps": result.trial_steps_used, "quantised": result.quantised,
            "workers_recycled": result.workers_recycled, "time_split": result.time_split,
            "trials": {run.info.run_id: trial_metrics(run.data.metrics) for run in runs},
            "front": len(front_rows(table)),
            "winner": None if winner is None else {"bytes": int(winner["bytes"]), "quality": float(winner["quality"]),
                                                   "precision": winner["precision"]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo/datasets/bansuri", help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--grace-period", type=int, default=60)
    parser.add_argument("--reduction-factor", type=float, default=2.5)
    args = parser.parse_args()
    slots = os.cpu_count() or 1
    print(f"the demo's sweep of one instrument: {args.trials} trials x {args.steps} steps, {slots} trial slots")
    results = {}
    from cli.main import quiet_libraries

    with quiet_libraries("sweep"), tempfile.TemporaryDirectory(prefix="tonesweep-bench-") as tmp:  # as the CLI: no chatter
        for label, window in (("whole examples", 0.0), ("1-second windows", 1.0)):
            folder = Path(tmp) / f"w{window:g}"
            folder.mkdir()
            sweep = run_demo_sweep(str(Path(args.dataset).resolve()), args.trials, args.steps, window, folder,
                                   args.grace_period, args.reduction_factor)
            line = summarize(label, sweep, slots)
            finished = line["finished"]
            per_hour = finished / (slots * sweep["tune_s"] / 3600)
            peaks = [m["peak_rss_mib"] for m in sweep["trials"].values() if "peak_rss_mib" in m]
            judged, skipped = sweep["quantised"]
            split = sweep["time_split"]
            print(f"    the sweep's own split of its trials' time ({split.trial_s:,.0f} s): {split.describe(1)}")
            print(f"    {finished} finished of {line['trials']} in {sweep['tune_s']:.0f} s: {per_hour:.1f} finished trials "
                  f"per CPU-hour; {sweep['trial_steps']:,} trial-steps; worker peak RSS max {max(peaks, default=0):,.0f} MiB "
                  f"(median {sorted(peaks)[len(peaks) // 2] if peaks else 0:,.0f}); front of {sweep['front']}, winner "
                  f"{sweep['winner']}; quantised candidates evaluated {judged - skipped} of {judged}")
            results[label] = {**line, "per_cpu_hour": per_hour, "trial_steps": sweep["trial_steps"],
                              "trial_time_s": split.trial_s, "trial_training_share": split.training,
                              "trial_startup_share": split.startup, "trial_evaluation_share": split.evaluation,
                              "peak_rss_max_mib": max(peaks, default=None), "front": sweep["front"],
                              "winner": sweep["winner"], "quantised": sweep["quantised"]}
    whole, windows = results.values()
    ratio = windows["per_cpu_hour"] / whole["per_cpu_hour"] if whole["per_cpu_hour"] else float("inf")
    print(f"  finished trials per CPU-hour, 1-second windows / whole examples: {ratio:.2f}x")
    print("RESULT " + json.dumps({"whole": whole, "windows": windows, "ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
