"""Calibrate and check the bundle cost model: shipped bytes and wasm speed of an architecture.

    .venv/bin/python bench/bundle_cost.py [--configs 24] [--seed 0] [--fit] [--repeat 5]

Samples architectures from the built-in space (plus the corners: smallest and largest of each
decoder, with and without reverb), exports each model (seeded weights that look trained) as
``tonesweep export`` does (the real converter, the lean model.json), and measures per precision the bundle bytes (model.json +
shards) and, in Node with TF.js's wasm backend, the milliseconds one call (one second of audio)
takes. It then compares ``trainers.model.size.size_report`` (the cost model sweeps use before a
trial starts) with the measurements and prints the error; with ``--fit`` it prints the least-squares
coefficients to paste into ``trainers/model/cost.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def sample_configs(n: int, seed: int) -> list[dict]:
    import keras_tuner as kt

    from spaces import default_space
    from spaces.translate import values_to_config

    space = default_space()
    corners = [
        {"decoder": "cnn", "conv_channels": 8, "conv_layers": 2, "conv_stacks": 1, "n_harmonics": 16,
         "n_noise_bands": 16, "frame_rate": 50, "causal": True},
        {"decoder": "cnn", "conv_channels": 64, "conv_layers": 5, "conv_stacks": 2, "n_harmonics": 60,
         "n_noise_bands": 65, "frame_rate": 250, "reverb": True},
        {"decoder": "gru", "hidden": 16, "fc_layers": 0, "gru_units": 16, "n_harmonics": 16, "n_noise_bands": 16,
         "frame_rate": 50},
        {"decoder": "gru", "hidden": 64, "fc_layers": 2, "gru_units": 192, "n_harmonics": 60, "n_noise_bands": 65,
         "frame_rate": 250, "reverb": True},
    ]
    oracle = kt.oracles.RandomSearchOracle(hyperparameters=space.hyperparameters.copy(), max_trials=n, seed=seed)
    configs = list(corners)
    rng = np.random.default_rng(seed)
    while len(configs) < n:
        values = oracle.populate_space(f"t{len(configs)}")["values"]
        config = values_to_config(values)
        config["reverb"] = bool(rng.random() < 0.25)
        configs.append(config)
    return configs


def measure(config: dict, root: Path, repeat: int) -> dict:
    """Export the untrained model at every precision: bytes per precision and wasm ms per call."""
    from common.constants import PRECISIONS
    from trainers.export import bundle, graph, tfjs
    from trainers.model.config import validate_config
    from trainers.model.trained import build_model

    from trainers.model.size import reverb_length, size_report

    config = validate_config(config)
    report = size_report(config)
    model = build_model(config)
    # weights as training leaves them (no zero biases, no unit gains), so the quantized weights'
    # min/scale numbers and which constants are identical look like a trained model's
    rng = np.random.default_rng(0)
    for var in model.trainable_variables:
        var.assign(var.numpy() + rng.normal(0, 0.05, var.shape).astype(np.float32))
    module = graph.ExportedSynth(config, model, config["frame_rate"])
    bundle.write_saved_model(module, root / "saved_model")
    out = {"config": config, "params": report["params"], "weight_tensors": report["weight_tensors"],
           "reverb_taps": reverb_length(config)}
    for precision in PRECISIONS:
        sizes = tfjs.convert(root / "saved_model", root / f"tfjs-{precision}", precision)
        out[precision] = sizes
    inputs = graph.random_inputs(module.layout, seed=0)
    _, info = tfjs.run_node(root / "tfjs-float32", inputs, backend="wasm", repeat=repeat)
    out["ms_per_call"] = float(np.median(info["timings_ms"][1:]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=5, help="wasm calls timed per architecture (first dropped)")
    parser.add_argument("--fit", action="store_true", help="print fitted coefficients for trainers/model/cost.py")
    parser.add_argument("--cache", default=str(REPO / "bench" / ".cache" / "bundle_cost.json"))
    args = parser.parse_args()

    from common.constants import PRECISIONS
    from trainers.model import cost
    from trainers.model.size import size_report

    cache = Path(args.cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    rows = json.loads(cache.read_text()) if cache.is_file() else []
    configs = sample_configs(args.configs, args.seed)
    for config in configs[len(rows):]:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(config, Path(tmp), args.repeat))
        cache.write_text(json.dumps(rows))
        print(f"  measured {len(rows)}/{len(configs)} in {time.perf_counter() - started:.0f} s", flush=True)

    if args.fit:
        print(json.dumps(cost.fit(rows), indent=1))
        return 0
    errors = {p: [] for p in PRECISIONS}
    speed = []
    for row in rows:
        report = size_report(row["config"])
        for p in PRECISIONS:
            errors[p].append(report[f"bytes_{p}"] / row[p]["total"] - 1)
        speed.append(report["rtf_wasm"] / (1000.0 / row["ms_per_call"]) - 1)
    print(f"{len(rows)} architectures; cost model vs measured (relative error):")
    for p in PRECISIONS:
        e = np.abs(errors[p])
        print(f"  bytes_{p}: median {100 * statistics.median(e):.2f} %, max {100 * e.max():.2f} %")
    s = np.abs(speed)
    print(f"  rtf_wasm: median {100 * statistics.median(s):.1f} %, max {100 * s.max():.1f} % "
          f"(measured RTF {min(1000 / r['ms_per_call'] for r in rows):.1f}x .. {max(1000 / r['ms_per_call'] for r in rows):.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
