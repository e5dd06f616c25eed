"""Sweep overhead: how much of a real sweep's wall time is training, and where the rest goes.

    .venv/bin/python bench/sweep_overhead.py --dataset demo/datasets/bansuri [--trials 32] [--steps 20]

Runs the same real sweep twice in one run (``search.sweep.run_sweep``: local Ray, the real trainer,
MLflow on a temporary SQLite store, scheduler none so every trial trains to the end, one CPU per
trial, so as many trials at once as the machine has cores):

- ``xla-cache off``: every trial compiles its training step;
- ``xla-cache on``: XLA's persistent compilation cache (``--xla-cache``) in a fresh (cold) folder,
  shared by all trials: it saves compiling only where a trial's compiled step equals an earlier
  one's (the number of cache entries written shows how many differed).

The space is small CNNs with 8 architectures (so a 32-trial sweep repeats each about 4 times, as
any sweep of more trials than architectures does). Figures per sweep, from the trials' own MLflow
metrics:

    overhead = (slots x Tune wall - sum of in-trial training time) / (slots x Tune wall)

("(wall - training) / wall" with the wall counted once per trial slot, since two trials train at
once on 2 cores; training is the steps after the first), and how it divides: trial start-up
(imports, dataset, model, tracing and XLA compilation, to the end of the first step:
``startup_s``), evaluation after training (``eval_time_s`` + ``examples_time_s``: held-out quality
at three precisions, audio examples), and the rest (Ray scheduling and worker start, reports and
checkpoints, MLflow logging in the driver, idle slots at the end). Held-out quality of each trial is compared between the two sweeps (same
seed, same suggestions): the cache must not change results. Nothing is written outside a
temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPACE = """
[hyperparameters.feature]
type = "choice"
values = ["loudness", "rms"]

[hyperparameters.conv_channels]
type = "choice"
values = [8, 16]

[hyperparameters.n_harmonics]
type = "choice"
values = [16, 32]

[hyperparameters.learning_rate]
type = "float"
min = 1e-4
max = 1e-2
sampling = "log"

[fixed]
decoder = "cnn"
frame_rate = 50
conv_layers = 2
conv_stacks = 1
conv_kernel = 3
n_noise_bands = 16
batch_size = 4
"""


def run_one_sweep(dataset: str, trials: int, steps: int, xla_cache: str, tmp: Path) -> dict:
    from results.layout import trial_metrics
    from results.tracking import child_runs, make_client
    from search.settings import SweepSettings
    from search.sweep import run_sweep

    space = tmp / "space.toml"
    space.write_text(SPACE)
    uri = f"sqlite:///{tmp}/mlflow.db"
    settings = SweepSettings(datasets=[dataset], trials=trials, steps=steps, space=str(space), scheduler="none",
                             name="overhead", storage=str(tmp / "runs"), tracking_uri=uri, xla_cache=xla_cache)
    start = time.perf_counter()
    [result] = run_sweep(settings)
    total = time.perf_counter() - start
    runs = child_runs(make_client(uri), result.experiment_id, result.parent_run_id)
    # keyed by the trial's config (its params): Ray's trial ids differ between the two sweeps
    per_trial = {json.dumps(run.data.params, sort_keys=True): trial_metrics(run.data.metrics) for run in runs}
    return {"total_s": total, "tune_s": result.wall_s, "tracking_s_per_trial": result.tracking_s_per_trial,
            "outcomes": result.outcomes, "trials": per_trial}


def trial_parts(metrics: dict) -> dict:
    """One trial's seconds: start-up (to the end of its first step), training (the steps after the
    first: train_time_s counts the first call, which start-up already has; a trial stopped at a rung
    has its last report's elapsed_s instead), and after training."""
    trained = metrics.get("train_time_s", metrics.get("elapsed_s", 0.0))
    return {"startup": metrics.get("startup_s", 0.0),
            "training": trained - metrics.get("first_call_s", 0.0),
            "after": metrics.get("eval_time_s", 0.0) + metrics.get("examples_time_s", 0.0)}


def summarize(label: str, sweep: dict, slots: int) -> dict:
    trials = [m for m in sweep["trials"].values() if "train_time_s" in m or "elapsed_s" in m]
    capacity = slots * sweep["tune_s"]
    parts = {key: sum(trial_parts(m)[key] for m in trials) for key in ("startup", "training", "after")}
    finished = sum(status == "FINISHED" for status in sweep["outcomes"].values())
    line = {
        "label": label, "finished": finished, "trials": len(sweep["outcomes"]),
        "total_s": sweep["total_s"], "tune_s": sweep["tune_s"],
        "overhead": 1 - parts["training"] / capacity,
        **{f"{key}_share": value / capacity for key, value in parts.items()},
        "rest_share": 1 - sum(parts.values()) / capacity,
        "startup_median_s": statistics.median(m["startup_s"] for m in trials) if trials else None,
        "first_call_median_s": statistics.median(m["first_call_s"] for m in trials) if trials else None,
        "tracking_s_per_trial": sweep["tracking_s_per_trial"],
    }
    print(f"  {label}: {finished}/{line['trials']} finished; sweep {line['total_s']:.0f} s (Tune {line['tune_s']:.0f} s, "
          f"{slots} slots); overhead {line['overhead']:.1%} = start-up {line['startup_share']:.1%} "
          f"(median {line['startup_median_s']:.1f} s, of it the first step call {line['first_call_median_s']:.1f} s) "
          f"+ evaluation and audio examples {line['after_share']:.1%} + Ray, MLflow and the rest "
          f"{line['rest_share']:.1%}; MLflow {line['tracking_s_per_trial']:.2f} s/trial (driver)")
    return line


def quality_pairs(a: dict, b: dict) -> list[float]:
    """Relative difference of quality_float32 per config trained in both sweeps."""
    out = []
    for trial_id, metrics in a["trials"].items():
        other = b["trials"].get(trial_id, {})
        if "quality_float32" in metrics and "quality_float32" in other:
            out.append(abs(metrics["quality_float32"] - other["quality_float32"]) / abs(metrics["quality_float32"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo/datasets/bansuri", help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    slots = os.cpu_count() or 1
    print(f"{args.trials} trials x {args.steps} steps, small CNNs (8 architectures), {slots} trial slots")
    sweeps = {}
    from cli.main import quiet_libraries

    with quiet_libraries("sweep"), tempfile.TemporaryDirectory(prefix="tonesweep-bench-") as tmp:  # as the CLI: no chatter
        for label, cache in (("xla-cache off", "off"), ("xla-cache on (cold at start)", f"{tmp}/xla")):
            folder = Path(tmp) / label.split()[1]
            folder.mkdir()
            sweeps[label] = run_one_sweep(str(Path(args.dataset).resolve()), args.trials, args.steps, cache, folder)
            sweeps[label]["summary"] = summarize(label, sweeps[label], slots)
        cached = len(list(Path(tmp, "xla").glob("*"))) if Path(tmp, "xla").is_dir() else 0
    off, on = sweeps.values()
    diffs = quality_pairs(off, on)
    print(f"  XLA cache entries written: {cached}")
    print(f"  sweep wall with the cache / without: {on['total_s'] / off['total_s']:.2f}")
    if diffs:
        print(f"  held-out quality (float32), {len(diffs)} trials paired by config: max relative difference "
              f"{max(diffs):.2e}, median {statistics.median(diffs):.2e}")
    print("RESULT " + json.dumps({"off": off["summary"], "on": on["summary"],
                                  "quality_max_rel_diff": max(diffs) if diffs else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
