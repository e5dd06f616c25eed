"""Trial folders made without training: the layout `tonesweep train` writes, with seeded weights.

For tests that need many or odd models quickly (export parity does not depend on how well a
model sounds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.files import sha256_file

STATS = {"f0_midi": {"mean": 67.0, "std": 4.0, "min": 55.0, "max": 80.0, "p5": 60.0, "p50": 67.0, "p95": 75.0},
         "loudness_db": {"mean": -30.0, "std": 8.0, "min": -80.0, "max": -5.0, "p5": -50.0, "p50": -28.0, "p95": -15.0},
         "rms_db": {"mean": -28.0, "std": 8.0, "min": -80.0, "max": -4.0, "p5": -48.0, "p50": -26.0, "p95": -12.0}}


def make_trial(out_dir: Path, seed: int = 0, harmonic_tilt: float = 0.0, **overrides) -> Path:
    """A trial folder as `tonesweep train` writes it, with seeded random (non-trivial) weights.

    harmonic_tilt: subtracted from the head's bias per harmonic number, so the harmonic
    distribution falls off like an instrument's (0.05 ~ -1 dB per harmonic) instead of spreading
    evenly up to Nyquist.
    """
    import tensorflow as tf

    from trainers.model.config import validate_config
    from trainers.model.size import size_report
    from trainers.model.trained import build_model

    config = validate_config({"seed": seed, **overrides})
    tf.keras.utils.set_random_seed(seed)
    model = build_model(config)
    rng = np.random.default_rng(seed)
    for var in model.trainable_variables:  # larger than the initializer so every weight matters
        var.assign(var.numpy() + rng.normal(0, 0.05, var.shape).astype(np.float32))
    head_bias = model.decoder.get_layer("head").bias
    tilt = np.zeros(head_bias.shape, np.float32)
    tilt[1:1 + config["n_harmonics"]] = harmonic_tilt * np.arange(config["n_harmonics"])
    head_bias.assign(head_bias.numpy() - tilt)
    if model.reverb is not None:
        decay = np.exp(-np.arange(model.reverb.ir.shape[0]) / 800.0)
        model.reverb.ir.assign((rng.normal(0, 0.05, decay.shape) * decay).astype(np.float32))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out_dir / "weights.weights.h5"))
    (out_dir / "config.json").write_text(json.dumps(config))
    sizes = size_report(config)
    metrics = {"status": "FINISHED", **sizes, "quality_float32": 5.0, "quality_float16": 5.001, "quality_uint8": 5.2,
               "weights_sha256": sha256_file(out_dir / "weights.weights.h5")}
    (out_dir / "metrics.json").write_text(json.dumps(metrics))
    manifest = {"format": "tonesweep-dataset/1", "instrument": "bansuri", "sample_rate": 16000,
                "frame_rates": [250, 50], "stats": {"250": STATS, "50": STATS}}
    (out_dir / "dataset_manifest.json").write_text(json.dumps(manifest))
    return out_dir
