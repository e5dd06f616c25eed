"""When XLA pays for itself: a trial's training time with and without XLA, at several lengths.

    .venv/bin/python bench/xla_break_even.py --dataset demo/datasets/bansuri [--steps 20,60,150] [--window 1]

XLA compiles the training step once per trial (seconds of CPU, in the step's first call) and then
runs each step faster; below some number of steps the compile costs more than it saves. Each case
runs ``trainers.training.train.train_trial`` once in a fresh Python process (so the compile is cold,
as in a new trial), one thread, for two architectures of the built-in space: a small CNN at 50 Hz
(the kind the demo's selector keeps) and a GRU-64 at 250 Hz (the kind the old defaults favoured).
For each it prints the training time (first call included) with and without XLA, the first call
alone, the held-out quality of both (the numerics change: reassociated float32 arithmetic), and the
break-even number of steps fitted from the per-step times. Cases run one at a time, alternating
XLA on and off, so the machine's load falls on both alike. ``--window``: train on random windows of that
many seconds (``crop_seconds``, as the built-in space's 1 s) instead of whole 4-second examples.
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
sys.path.insert(0, str(REPO))

CONFIGS = {
    "cnn-50hz": {"decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 16, "conv_layers": 2,
                 "conv_stacks": 1, "conv_kernel": 3, "causal": True, "n_harmonics": 32, "n_noise_bands": 32},
    "gru-250hz": {"decoder": "gru", "feature": "loudness", "frame_rate": 250, "hidden": 64, "fc_layers": 1,
                  "gru_units": 64, "n_harmonics": 60, "n_noise_bands": 65},
}


def child(dataset: str, config: dict, jit: bool) -> None:
    from trainers.training.train import train_trial

    with tempfile.TemporaryDirectory() as out:
        metrics = train_trial(dataset, {**config, "seed": 0}, Path(out) / "trial", threads=1, jit_compile=jit,
                              report_every=10**6)
    print(json.dumps({k: metrics.get(k) for k in ("train_time_s", "first_call_s", "quality_float32", "steps")}))


def run(dataset: str, config: dict, jit: bool) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps({"dataset": dataset, "config": config,
                                                                              "jit": jit})],
                          capture_output=True, text=True, check=True, cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo/datasets/bansuri", help="a prepared dataset (default: the demo's bansuri)")
    parser.add_argument("--steps", default="20,60,150", help="trial lengths, comma-separated (default: 20,60,150)")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"architectures (default: {','.join(CONFIGS)})")
    parser.add_argument("--window", type=float, default=0.0,
                        help="seconds of each example a step trains on (crop_seconds; default 0: whole examples)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        child(job["dataset"], job["config"], job["jit"])
        return 0
    steps = [int(s) for s in args.steps.split(",")]
    print(f"{'config':<10} {'steps':>5} {'train s XLA':>11} {'no XLA':>7} {'ratio':>6} {'1st call XLA':>12} "
          f"{'no XLA':>7} {'quality XLA':>11} {'no XLA':>9} {'rel diff':>8}")
    for name in args.configs.split(","):
        rows = []
        for n in steps:
            config = {**CONFIGS[name], "steps": n, "crop_seconds": args.window}
            on = run(args.dataset, config, True)
            off = run(args.dataset, config, False)
            rows.append((n, on, off))
            diff = abs(on["quality_float32"] - off["quality_float32"]) / off["quality_float32"]
            print(f"{name:<10} {n:>5} {on['train_time_s']:>11.1f} {off['train_time_s']:>7.1f} "
                  f"{on['train_time_s'] / off['train_time_s']:>6.2f} {on['first_call_s']:>12.1f} "
                  f"{off['first_call_s']:>7.1f} {on['quality_float32']:>11.4f} {off['quality_float32']:>9.4f} "
                  f"{diff:>8.2%}", flush=True)
        # per-step cost after the first call, from the longest and shortest runs; compile = the first-call gap
        (n0, on0, off0), (n1, on1, off1) = rows[0], rows[-1]
        step_on = ((on1["train_time_s"] - on1["first_call_s"]) - (on0["train_time_s"] - on0["first_call_s"])) / (n1 - n0)
        step_off = ((off1["train_time_s"] - off1["first_call_s"]) - (off0["train_time_s"] - off0["first_call_s"])) / (n1 - n0)
        extra = on0["first_call_s"] - off0["first_call_s"]
        saved = step_off - step_on
        even = f"{extra / saved:.0f} steps" if saved > 0 else "never (XLA is not faster per step)"
        print(f"{name:<10} per step {step_on * 1000:.0f} ms with XLA, {step_off * 1000:.0f} ms without; "
              f"compiling costs {extra:.1f} s more in the first call: break-even {even}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
