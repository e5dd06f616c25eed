"""What the sweep engine itself costs per trial: Ray Tune bookkeeping and MLflow tracking.

Runs a real sweep (``search.sweep.run_sweep``: Ray, the KerasTuner searcher, ASHA, the MLflow
tracker with artifacts and spectrograms) over a stand-in trainer that takes ``--train-s`` seconds
per trial, then prints wall time per trial, the engine's overhead per trial beyond the training
itself, and the driver time spent on MLflow per trial.

    .venv/bin/python bench/ray_overhead.py --trials 16 --train-s 0.5

Everything it writes goes to a temporary folder, removed at the end.
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
TRAIN_S = 0.5  # seconds of stand-in training per trial (set from --train-s)


def stand_in_train(dataset_dir, config, out_dir, report=None, report_every=50, threads=None, judge=None):
    """Sleeps like a short trial, reports a curve, writes the files a real trial writes."""
    import math

    import numpy as np
    import soundfile as sf

    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    steps = int(config["steps"])
    for step in range(report_every, steps + 1, report_every):
        time.sleep(TRAIN_S * report_every / steps)
        report({"step": step, "train_loss": 1 / step, "val_loss": 1 / math.sqrt(step), "elapsed_s": 0.0})
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)
    for name in ("original", "resynth"):
        sf.write(out / "audio" / f"{name}.wav", tone, 16000)
    from trainers.model.size import size_report

    metrics = {"status": "FINISHED", "failure_reason": None, "steps": steps, "train_time_s": TRAIN_S,
               **size_report(config)}
    for precision in ("float32", "float16", "uint8"):
        metrics[f"quality_{precision}"] = 1 / math.sqrt(steps)
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "config.json").write_text(json.dumps(config))
    (out / "weights.weights.h5").write_bytes(b"w" * 40_000)
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--train-s", type=float, default=0.5, help="seconds of stand-in training per trial")
    args = parser.parse_args()
    global TRAIN_S
    TRAIN_S = args.train_s  # captured by value when Ray pickles stand_in_train

    from search.settings import SweepSettings
    from search.sweep import run_sweep

    from cli.main import quiet_libraries

    with quiet_libraries("sweep"), tempfile.TemporaryDirectory(prefix="tonesweep-bench-") as tmp:  # as the CLI: no chatter
        dataset = Path(tmp) / "bench"
        dataset.mkdir()
        (dataset / "manifest.json").write_text(json.dumps({"format": "tonesweep-dataset/1", "instrument": "bench",
                                                           "frame_rates": [250, 50]}))
        settings = SweepSettings(datasets=[str(dataset)], trials=args.trials, steps=100, report_every=10,
                                 scheduler="none", name="bench", storage=f"{tmp}/runs",
                                 tracking_uri=f"sqlite:///{tmp}/mlflow.db", train_fn=stand_in_train,
                                 reference_fn=lambda dataset: {"log10_bytes": 7.0, "quality": 10.0})
        start = time.perf_counter()
        [result] = run_sweep(settings)
        total = time.perf_counter() - start
    cpus = os.cpu_count() or 1
    ideal = args.trials * args.train_s / cpus
    print(f"\n{args.trials} trials of {args.train_s:.2f} s on {cpus} CPUs")
    print(f"  sweep wall (Ray start, experiments, all trials): {total:.1f} s; Tune part {result.wall_s:.1f} s")
    print(f"  per trial: {result.wall_s / args.trials:.2f} s wall; engine overhead beyond ideal "
          f"{(result.wall_s - ideal) / args.trials:.2f} s/trial")
    print(f"  MLflow tracking (driver, incl. artifacts + spectrogram): {result.tracking_s_per_trial:.3f} s/trial")
    return 0


if __name__ == "__main__":
    sys.exit(main())
