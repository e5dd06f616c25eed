"""The dataset format (docs/architecture.md, section 1): names, TFRecord examples, and the reading API.

    DATASET/manifest.json                                 written last; its presence means "complete"
    DATASET/{train,validation}-SSSSS-of-NNNNN.tfrecord   tf.train.Example shards

Reading (what trials, the sweep's checks and export need)::

    read_manifest(dataset_dir) -> dict
    load_split(dataset_dir, split, frame_rate) -> {audio [N, n], f0_hz / f0_confidence / loudness_db / rms_db [N, T]}
    tf_dataset(dataset_dir, split, frame_rate) -> tf.data.Dataset of single examples

This module imports only numpy at the top; TensorFlow is imported inside the functions that
parse or write records, so reading a manifest (e.g. the sweep driver checking its datasets) is
cheap. Building a dataset is ``trainers.data.prepare``'s job.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from common.errors import UserError
from common.files import damaged_files
from common.paths import contained

FORMAT = "tonesweep-dataset/1"
MANIFEST = "manifest.json"
SHARD_DIGESTS = "shard_sha256"  # manifest key: {shard name: sha256 of its bytes} (datasets before it lack it)
SPLITS = ("train", "validation")
FEATURE_NAMES = ("f0_hz", "f0_confidence", "f0_voiced", "loudness_db", "rms_db")  # f0_voiced: 1.0 or 0.0
EXAMPLES_PER_SHARD = 128  # ~35 MB per shard with 4 s examples at 16 kHz


# ----------------------------------------------------------------------------------------------
# writing records

def _example_proto(example: dict[str, np.ndarray]) -> bytes:
    import tensorflow as tf

    feature = {
        key: tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(value, dtype=np.float32)))
        for key, value in example.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def shard_names(split: str, n_examples: int) -> list[str]:
    count = max(1, math.ceil(n_examples / EXAMPLES_PER_SHARD))
    return [f"{split}-{i:05d}-of-{count:05d}.tfrecord" for i in range(count)]


def write_split(folder: Path, split: str, examples: list[dict[str, np.ndarray]]) -> list[str]:
    """Write ``examples`` in order into TFRecord shards in ``folder``; returns the shard names."""
    import tensorflow as tf

    names = shard_names(split, len(examples))
    for index, name in enumerate(names):
        with tf.io.TFRecordWriter(str(folder / name)) as writer:
            for example in examples[index * EXAMPLES_PER_SHARD:(index + 1) * EXAMPLES_PER_SHARD]:
                writer.write(_example_proto(example))
    return names



# ----------------------------------------------------------------------------------------------
# reading


def read_manifest(dataset_dir: str | os.PathLike) -> dict:
    """The dataset's manifest; UserError if the folder is missing, incomplete or another format."""
    folder = Path(dataset_dir)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise UserError(f"{folder}: no such dataset folder; run `tonesweep prepare --out {folder} ...` first")
    if not path.is_file():
        raise UserError(f"{folder}: incomplete dataset (no {MANIFEST}); run `tonesweep prepare` again")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: unreadable manifest ({err}); run `tonesweep prepare` again") from None
    if manifest.get("format") != FORMAT:
        raise UserError(
            f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}; run `tonesweep prepare` again"
        )
    return manifest


def dataset_files(dataset_dir: str | os.PathLike, manifest: dict) -> list[str]:
    """The files the dataset owns, as relative POSIX names, each checked to stay inside its folder:
    every split's shards, then ``manifest.json`` (last: the file that marks the dataset complete)."""
    shards = [name for split in SPLITS for name in manifest.get("splits", {}).get(split, {}).get("shards", [])]
    field = f"{Path(dataset_dir) / MANIFEST}: shard"
    return [contained(dataset_dir, name, field).relative_to(dataset_dir).as_posix() for name in shards] + [MANIFEST]


def check_dataset_files(dataset_dir: str | os.PathLike, manifest: dict, contents: bool = True) -> None:
    """Every shard the manifest lists is there and, with ``contents``, where the manifest records their
    sha256 (``SHARD_DIGESTS``; datasets prepared before it do not), holds the bytes `prepare` wrote: a
    missing or damaged shard is one line naming it, not a TensorFlow traceback mid-training. Hashing
    reads the whole dataset, so it is done where a dataset enters (`train`'s and the sweep's checks),
    not again by every trial of a sweep (``contents=False``: presence only)."""
    folder = Path(dataset_dir)
    shards = dataset_files(folder, manifest)[:-1]
    digests = manifest.get(SHARD_DIGESTS) if contents else None
    recorded = {name: digests[name] for name in shards if isinstance(digests, dict) and name in digests}
    missing, changed = damaged_files(folder, {**dict.fromkeys(shards, ""), **recorded})
    changed = [name for name in changed if name in recorded]  # a shard without a recorded digest: presence only
    if missing:
        raise UserError(f"{folder / missing[0]}: missing (the dataset is incomplete); run `tonesweep prepare` again")
    if changed:
        raise UserError(f"{folder / changed[0]}: damaged (its bytes differ from those `prepare` wrote); "
                        "run `tonesweep prepare` again")


def _parse_spec(manifest: dict, frame_rate: int) -> dict:
    import tensorflow as tf

    n_samples = round(manifest["example_seconds"] * manifest["sample_rate"])
    n_frames_r = round(manifest["example_seconds"] * frame_rate)
    spec = {"audio": tf.io.FixedLenFeature([n_samples], tf.float32)}
    for name in stored_features(manifest):
        spec[f"{name}_{frame_rate}"] = tf.io.FixedLenFeature([n_frames_r], tf.float32)
    return spec


def stored_features(manifest: dict) -> tuple[str, ...]:
    """The per-frame features a dataset holds (datasets before voiced flags lack ``f0_voiced``)."""
    keys = manifest.get("feature_keys") or []
    return tuple(n for n in FEATURE_NAMES if not keys or any(k.startswith(f"{n}_") for k in keys))


def _with_voicing(features: dict, manifest: dict):
    """Add ``f0_voiced`` from the confidence threshold for a dataset prepared before it was stored."""
    if "f0_voiced" not in features:
        threshold = float(manifest.get("features", {}).get("voiced_threshold", 0.5))
        features["f0_voiced"] = (features["f0_confidence"] >= threshold) * 1.0
    return features


def _shard_paths(dataset_dir: str | os.PathLike, manifest: dict, split: str, frame_rate: int) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if frame_rate not in manifest["frame_rates"]:
        raise UserError(
            f"{dataset_dir}: no features at {frame_rate} Hz (dataset has {manifest['frame_rates']}); "
            f"prepare it with --frame-rates including {frame_rate}"
        )
    field = f"{Path(dataset_dir) / MANIFEST}: shard"
    return [str(contained(dataset_dir, name, field)) for name in manifest["splits"][split]["shards"]]


def _rename(parsed: dict, frame_rate: int) -> dict:
    return {key.removesuffix(f"_{frame_rate}"): value for key, value in parsed.items()}


def load_split(dataset_dir: str | os.PathLike, split: str, frame_rate: int) -> dict[str, np.ndarray]:
    """The whole split in memory, in stored order (source file, then time).

    Returns float32 arrays: audio [N, n_samples], f0_hz / f0_confidence / f0_voiced (1 or 0) /
    loudness_db / rms_db [N, T] with T = example_seconds * frame_rate.
    """
    import tensorflow as tf

    manifest = read_manifest(dataset_dir)
    paths = _shard_paths(dataset_dir, manifest, split, frame_rate)
    count = manifest["splits"][split]["examples"]
    spec = _parse_spec(manifest, frame_rate)
    records = tf.data.TFRecordDataset(paths).batch(max(1, count))
    try:
        batch = tf.io.parse_example(next(iter(records)), spec)
    except (tf.errors.OpError, StopIteration) as err:  # a shard cut short or changed after the checks
        reason = str(getattr(err, "message", "") or "no records").splitlines()[0][:200]
        raise UserError(f"{dataset_dir}: the {split} shards cannot be read ({reason}); "
                        "run `tonesweep prepare` again") from None
    arrays = {key: value.numpy() for key, value in _rename(batch, frame_rate).items()}
    return _with_voicing(arrays, manifest)


def tf_dataset(dataset_dir: str | os.PathLike, split: str, frame_rate: int):
    """A streaming ``tf.data.Dataset`` of single examples (same keys and shapes as load_split rows).

    For splits too large for memory; shards are read in order (shuffle/batch downstream).
    """
    import tensorflow as tf

    manifest = read_manifest(dataset_dir)
    paths = _shard_paths(dataset_dir, manifest, split, frame_rate)
    spec = _parse_spec(manifest, frame_rate)
    return tf.data.TFRecordDataset(paths).map(
        lambda record: _with_voicing(_rename(tf.io.parse_single_example(record, spec), frame_rate), manifest),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
    )
