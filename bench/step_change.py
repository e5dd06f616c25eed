"""A change to the training step, before and after: each trial's time and its held-out quality.

    .venv/bin/python bench/step_change.py --before REV [--dataset demo/datasets/bansuri] [--steps 150]
        [--seeds 0,1,2] [--control]

Checks out REV (a commit, e.g. the one before the change) in a temporary git worktree and runs the same
trials there and in this checkout: ``trainers.training.train.train_trial`` for each architecture below and
each seed, the built-in space's 1-second windows, one thread, each in a fresh Python process (so every first
call traces and compiles from cold, as in a new trial worker), the two checkouts alternating so the
machine's load falls on both alike. It prints, per trial, the training time (first call included), the
first call alone, the mean step after it, and the float32 held-out quality with its relative change: a
faster step must train the same model, to float32 rounding and what Adam makes of it over the steps.
``--control`` also trains each trial in REV with XLA over its whole step, which reorders float32 arithmetic
and nothing else: how far rounding alone moves quality, the tolerance a change of the same kind is held to.
The worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Four points of the built-in space (spaces/default.py): the small CNNs the demo's fronts keep, one with
# 60 harmonics, and the GRUs at both frame rates.
CONFIGS = {
    "cnn32-h32": {"decoder": "cnn", "feature": "loudness", "frame_rate": 50, "conv_channels": 32, "conv_layers": 3,
                  "conv_stacks": 2, "conv_kernel": 3, "causal": False, "n_harmonics": 32, "n_noise_bands": 32},
    "cnn16-h60": {"decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 16, "conv_layers": 4,
                  "conv_stacks": 1, "conv_kernel": 5, "causal": True, "n_harmonics": 60, "n_noise_bands": 65},
    "gru64-250hz": {"decoder": "gru", "feature": "loudness", "frame_rate": 250, "hidden": 32, "fc_layers": 1,
                    "gru_units": 64, "n_harmonics": 32, "n_noise_bands": 32},
    "gru16-50hz": {"decoder": "gru", "feature": "rms", "frame_rate": 50, "hidden": 16, "fc_layers": 0,
                   "gru_units": 16, "n_harmonics": 16, "n_noise_bands": 16},
}
TRIAL = {"crop_seconds": 1.0, "batch_size": 8, "learning_rate": 1e-3}

CHILD = """
import json, sys, tempfile
from pathlib import Path
from trainers.training.train import train_trial
dataset, config, jit = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
with tempfile.TemporaryDirectory() as out:
    m = train_trial(dataset, config, Path(out) / "trial", threads=1, report_every=10**6, judge=lambda metrics: [],
                    jit_compile=jit)
print(json.dumps({k: m.get(k) for k in ("train_time_s", "first_call_s", "quality_float32", "steps")}))
"""


def run_trial(checkout: Path, dataset: str, config: dict, jit: bool | None = None) -> dict:
    """``jit``: XLA for the whole step; None: the trial's own rule (``use_xla``)."""
    python = REPO / ".venv" / "bin" / "python"
    done = subprocess.run([str(python), "-c", CHILD, dataset, json.dumps(config), json.dumps(jit)],
                          capture_output=True, text=True, cwd=checkout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(checkout)})
    if done.returncode != 0:
        raise SystemExit(f"step_change: a trial failed in {checkout}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def step_ms(result: dict) -> float:
    return 1000 * (result["train_time_s"] - result["first_call_s"]) / max(1, result["steps"] - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--dataset", default="demo/datasets/bansuri",
                        help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per trial (default: the demo's 150)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"architectures (default: {','.join(CONFIGS)})")
    parser.add_argument("--seeds", default="0",
                        help="seeds, comma-separated: each architecture trains once per seed (default: 0)")
    parser.add_argument("--control", action="store_true",
                        help="also train each in REV with XLA over the whole step: how far float32 rounding "
                             "alone moves quality")
    args = parser.parse_args()
    dataset = str(Path(args.dataset).resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(before), args.before],
                       cwd=REPO, check=True)
        try:
            for name, seed in ((n, int(s)) for s in args.seeds.split(",") for n in args.configs.split(",")):
                config = {**CONFIGS[name], **TRIAL, "seed": seed, "steps": args.steps}
                row = {"before": run_trial(before, dataset, config), "after": run_trial(REPO, dataset, config)}
                if args.control:
                    row["control"] = run_trial(before, dataset, config, jit=True)
                rows.append((f"{name}, seed {seed}", row))
                print(f"{name}, seed {seed}: {json.dumps(row)}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, check=False)
    print_table(rows, args.steps)
    return 0


def quality_change(row: dict, which: str) -> float:
    return (row[which]["quality_float32"] - row["before"]["quality_float32"]) / row["before"]["quality_float32"]


def print_table(rows: list[tuple[str, dict]], steps: int) -> None:
    control = "control" in rows[0][1]
    print(f"\n| trial ({steps} steps) | training s, before / after | first call s | step ms | "
          "quality float32, before / after | change |"
          + (" control: before with XLA | its change |" if control else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if control else ""))
    for name, row in rows:
        old, new = row["before"], row["after"]
        line = (f"| {name} | {old['train_time_s']:.1f} / {new['train_time_s']:.1f} | {old['first_call_s']:.2f} / "
                f"{new['first_call_s']:.2f} | {step_ms(old):.0f} / {step_ms(new):.0f} | {old['quality_float32']:.5f} / "
                f"{new['quality_float32']:.5f} | {100 * quality_change(row, 'after'):+.2f} % |")
        if control:
            line += f" {row['control']['quality_float32']:.5f} | {100 * quality_change(row, 'control'):+.2f} % |"
        print(line)
    for which in ("after", "control") if control else ("after",):
        changes = sorted(100 * quality_change(row, which) for _, row in rows)
        absolute = sorted(abs(c) for c in changes)
        print(f"{which}: quality change mean {sum(changes) / len(changes):+.2f} %, median |change| "
              f"{absolute[len(absolute) // 2]:.2f} %, largest {absolute[-1]:.2f} %")


if __name__ == "__main__":
    sys.exit(main())
