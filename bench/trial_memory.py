"""Trial memory and start-up: what one trial worker holds, and how long a trial takes to start.

    .venv/bin/python bench/trial_memory.py --dataset demo/datasets/bansuri [--steps 100] [--reused 10]

Each case runs in a fresh Python process (as a Ray worker is one), through the same
``search.trainable.execute_trial`` a sweep runs, so the figures are the sweep's own metrics
(``peak_rss_mib``, ``startup_s``):

- ``tf-alone``: the process after ``import tensorflow`` (the floor any trial worker pays);
- ``cnn-smallest`` / ``gru-largest``: one trial of the smallest CNN and of the largest GRU of the
  built-in space, ``--steps`` steps: peak RSS, and start-up (process start to the end of the first
  training step: imports, dataset, model, tracing, XLA compilation) against the trial's wall time;
- ``reused``: ``--reused`` small-CNN trials (one architecture, a seed each) one after another in one
  process (a reused Ray worker), with XLA on and then off: RSS after each trial, the growth per trial,
  and each trial's first call of the training step (the first trial traces and compiles it; the later
  ones reuse it, ``trainers.training.train.ArchitectureKit``);
- ``reused-mixed``: ``--reused`` trials of as many different CNNs of the built-in space (channels, layers,
  harmonics, frame rate; a fixed draw) in one process, as a sweep's worker meets them: every trial
  traces its own step, and what TensorFlow keeps of each shows as growth.

Every trial runs as a sweep runs it: the built-in space's training windows (``crop_seconds``), the
trainer's default batch, XLA as ``use_xla`` decides unless a case forces it. (Before 2026-12-07 the cases
trained whole 4-s examples in batches of 4, with XLA from 50 steps: not what a sweep ran.)

Ratios are against ``tf-alone`` measured in the same run. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SMALLEST_CNN = {"decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 8, "conv_layers": 2,
                "conv_stacks": 1, "conv_kernel": 3, "causal": True, "n_harmonics": 16, "n_noise_bands": 16}
LARGEST_GRU = {"decoder": "gru", "feature": "loudness", "frame_rate": 250, "hidden": 64, "fc_layers": 2,
               "gru_units": 192, "n_harmonics": 60, "n_noise_bands": 65, "reverb": True}
PROCESS_START = time.perf_counter()  # as early as this process can know; imports below count as start-up


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def case_tf_alone() -> dict:
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime initialised, as a trial's first op does
    return {"rss_mib": rss_mib()}


def run_one(dataset: str, config: dict, steps: int, out: Path, jit: bool | None = None) -> dict:
    from search.trainable import TrialSpec, execute_trial

    if jit is not None:
        import trainers.training.train as train

        train_fn = lambda *a, **k: train.train_trial(*a, jit_compile=jit, **k)  # noqa: E731
    else:
        train_fn = "trainers.training.train:train_trial"
    from spaces.default import TRAINING_WINDOW_SECONDS  # what the built-in space fixes for every trial

    spec = TrialSpec(dataset_dir=dataset, trials_dir=str(out), threads=1, report_every=max(1, steps // 2),
                     train_fn=train_fn)
    start = time.perf_counter()
    result = execute_trial({"crop_seconds": TRAINING_WINDOW_SECONDS, **config, "steps": steps}, spec, out,
                           report=lambda m: None)
    wall = time.perf_counter() - start
    keep = ("status", "failure_reason", "peak_rss_mib", "rss_at_start_mib", "startup_s", "first_step_s",
            "first_call_s", "train_time_s", "params")
    return {**{k: result.get(k) for k in keep}, "trial_wall_s": wall, "rss_after_mib": rss_mib()}


def case_trial(dataset: str, config: dict, steps: int, out: Path) -> dict:
    result = run_one(dataset, config, steps, out)
    result["since_process_start_s"] = result["startup_s"] + (time.perf_counter() - PROCESS_START
                                                              - result["trial_wall_s"])
    return result


def mixed_cnns(count: int) -> list[dict]:
    """``count`` different CNNs of the built-in space, the same draw every run."""
    grid = [{**SMALLEST_CNN, "conv_channels": c, "conv_layers": n, "n_harmonics": h, "frame_rate": rate}
            for c in (8, 16, 32) for n in (2, 3, 4) for h in (16, 32, 60) for rate in (50, 250)]
    if count > len(grid):
        raise SystemExit(f"--reused: at most {len(grid)} for the different CNNs of reused-mixed")
    random.Random(0).shuffle(grid)
    return grid[:count]


def case_reused(dataset: str, steps: int, count: int, out: Path, jit: bool | None, mixed: bool = False) -> dict:
    configs = mixed_cnns(count) if mixed else [SMALLEST_CNN] * count
    trials = [run_one(dataset, {**config, "seed": i}, steps, out / f"t{i}", jit=jit) for i, config in enumerate(configs)]
    return {"rss_after_mib": [t["rss_after_mib"] for t in trials], "peak_rss_mib": [t["peak_rss_mib"] for t in trials],
            "first_call_s": [t["first_call_s"] for t in trials], "status": [t["status"] for t in trials]}


def child(args) -> None:
    out = Path(args.tmp)
    if args.case == "tf-alone":
        result = case_tf_alone()
    elif args.case == "cnn-smallest":
        result = case_trial(args.dataset, SMALLEST_CNN, args.steps, out / "cnn")
    elif args.case == "gru-largest":
        result = case_trial(args.dataset, LARGEST_GRU, args.steps, out / "gru")
    elif args.case == "reused-mixed":
        result = case_reused(args.dataset, args.reused_steps, args.reused, out / args.case, jit=None, mixed=True)
    else:
        result = case_reused(args.dataset, args.reused_steps, args.reused, out / args.case, jit=args.case == "reused-xla")
    print("RESULT " + json.dumps(result))


def run_case(case: str, args, tmp: str) -> dict:
    command = [sys.executable, __file__, "--child", case, "--tmp", tmp, "--dataset", args.dataset,
               "--steps", str(args.steps), "--reused", str(args.reused), "--reused-steps", str(args.reused_steps)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{case} failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo/datasets/bansuri", help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the single-trial cases (default: 100)")
    parser.add_argument("--reused", type=int, default=10, help="trials in the reused-worker cases (default: 10)")
    parser.add_argument("--reused-steps", type=int, default=20, help="steps of each reused-worker trial (default: 20)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(argparse.Namespace(**{**vars(args), "case": args.child}))
        return 0
    with tempfile.TemporaryDirectory(prefix="tonesweep-bench-memory-") as tmp:
        results = {case: run_case(case, args, tmp)
                   for case in ("tf-alone", "cnn-smallest", "gru-largest", "reused-xla", "reused-no-xla", "reused-mixed")}
    base = results["tf-alone"]["rss_mib"]
    print(f"TensorFlow alone: {base:,.0f} MiB resident")
    for case in ("cnn-smallest", "gru-largest"):
        r = results[case]
        share = r["startup_s"] / r["trial_wall_s"]
        print(f"{case:<13} {r['params']:>8,} params, {args.steps} steps: peak {r['peak_rss_mib']:,.0f} MiB "
              f"({r['peak_rss_mib'] / base:.2f}x TF alone, {r['peak_rss_mib'] - base:+,.0f} MiB); start-up "
              f"{r['startup_s']:.1f} s of which first step {r['first_step_s']:.1f} s (process start to first step "
              f"{r['since_process_start_s']:.1f} s), training {r['train_time_s']:.1f} s, trial wall "
              f"{r['trial_wall_s']:.1f} s: start-up = {share:.0%} of the trial  [{r['status']}]")
    for case in ("reused-xla", "reused-no-xla", "reused-mixed"):
        after = results[case]["rss_after_mib"]
        growth = (after[-1] - after[0]) / max(1, len(after) - 1)
        print(f"{case:<13} {len(after)} trials x {args.reused_steps} steps in one process: RSS after each "
              f"{', '.join(f'{x:,.0f}' for x in after)} MiB; growth {growth:+.1f} MiB per trial after the first; "
              f"peak {max(results[case]['peak_rss_mib']):,.0f} MiB ({max(results[case]['peak_rss_mib']) / base:.2f}x TF alone); "
              f"the training step's first call {', '.join(f'{x:.2f}' for x in results[case]['first_call_s'])} s "
              + ("(a different architecture each: each traces its own step)" if case == "reused-mixed" else
                 "(one architecture, a seed each: from the second trial on, no tracing or compiling)"))
    print("RESULTS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
