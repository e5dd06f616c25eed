"""The loss an untrained decoder reaches on a dataset: the quality end of a sweep's hypervolume box.

A sweep's hypervolume (results/pareto.py) is measured against a reference point that is fixed per
dataset, so that sweeps of one instrument stay comparable and progress shows: bytes of ddsp's
``solo_instrument`` (the usual tone-transfer model, about 4.8 M float32 weights) and the validation
loss of the trainer's default decoder before its first step (a model that has learned nothing). Both
are deterministic: the same dataset gives the same point, whatever sweep asks.

The loss is computed as one traced graph with TensorFlow's graph rewrites (Grappler) off: the graph then
runs the ops eager execution ran, so the point equals the one earlier sweeps recorded bit for bit, in
half the time (2.1-2.5 s instead of 4.6-5.7 s on a demo dataset: the untrained GRU's 1,000 frames ran as a
Python loop eagerly; a sweep computes it for each instrument before its first trial).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import tensorflow as tf

from common.constants import VAL_NOISE_SEED
from trainers.data.dataset import read_manifest
from trainers.model import synth
from trainers.model.config import validate_config
from trainers.model.trained import build_model, make_loss
from trainers.training.train import VAL_SUBSET, load_frames

SOLO_INSTRUMENT_BYTES = 4_800_000 * 4  # ddsp solo_instrument.gin: ~4.80 M parameters at float32 (docs/references.md)


def untrained_loss(dataset_dir: str | Path, seed: int = 0) -> float:
    """Spectral loss of the default decoder, untrained (seeded), on the first validation examples."""
    rates = read_manifest(dataset_dir).get("frame_rates") or [validate_config({})["frame_rate"]]
    config = validate_config({"frame_rate": int(max(rates)), "seed": seed})
    val = load_frames(dataset_dir, "validation", config)
    n = min(VAL_SUBSET, len(val["audio"]))
    tf.keras.utils.set_random_seed(seed)
    model = build_model(config)
    loss_fn = make_loss()

    @tf.function(autograph=False)
    def loss(f0_hz, feature_db, target, noise):
        return loss_fn(target, model.synthesize(f0_hz, feature_db, noise))

    noise = synth.white_noise(n, val["audio"].shape[1], (VAL_NOISE_SEED, 0))
    with _graph_rewrites_off():
        return float(loss(*(tf.constant(val[key][:n]) for key in ("f0_hz", "feature_db", "audio")), noise))


@contextlib.contextmanager
def _graph_rewrites_off():
    """Grappler off for the functions first run inside (the module docstring says why), then as it was."""
    before = tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": before})


def reference_point(dataset_dir: str | Path) -> dict[str, float]:
    """{"log10_bytes", "quality"}: the hypervolume reference for sweeps of this dataset."""
    return {"log10_bytes": math.log10(SOLO_INSTRUMENT_BYTES), "quality": untrained_loss(dataset_dir)}
