"""Every failure a user can cause is one line, quickly: a battery over the commands.

Each case runs ``tonesweep`` in-process and asserts: the exit code, exactly one line on stderr that
starts with ``tonesweep:`` and names the path or field, no traceback, nothing created that was not
there before (no partial output), and a bounded time. Families: where output goes, services,
spaces, bundles, empty results, names, pitch, flags. Interrupts and pitch behaviour follow.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.main import main
from common.errors import UserError
from support.stores import sqlite_store
from support.sweeps import DRIVER, SPACE, TERMINAL, Driver, make_datasets, mlflow_client, run_driver, sweep_runs

BOUND_S = 60.0  # no case may take longer (the service checks are shortened to 2 s below)
FAST_PREPARE = ["--frame-rates", "50", "--workers", "1"]


@pytest.fixture(autouse=True)
def short_service_waits(monkeypatch):
    import results.tracking
    import cluster.local_ray

    monkeypatch.setattr(results.tracking, "REACH_TIMEOUT_S", 2.0)
    monkeypatch.setattr(cluster.local_ray, "ADDRESS_TIMEOUT_S", 2.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_tone_module, small_bundle):
    """What the cases point at: a recording, a bundle and its trial (copies of the run's small bundle),
    stub datasets, a store with sweeps."""
    from results.synthetic import log_sweep, synthetic_trial
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("world")
    make_tone_module(root / "take.wav", 9.0)
    sf.write(str(root / "silence.wav"), np.zeros(16000 * 3), 16000)
    (root / "notes.wav").write_text("not audio")
    (root / "a-file").write_text("a file where a folder is expected")
    shutil.copytree(small_bundle.parent / "trial", root / "trial")
    shutil.copytree(small_bundle, root / "bundle")
    make_datasets(root, ["bansuri"])
    (root / "runs-damaged" / "broken").mkdir(parents=True)
    (root / "runs-damaged" / "broken" / "sweep.json").write_text('{"name": "broken", "tri')  # cut short
    (root / "runs-recorded" / "old").mkdir(parents=True)  # a sweep started on the built-in space, 2 trials
    (root / "runs-recorded" / "old" / "sweep.json").write_text(json.dumps(
        {"name": "old", "instruments": {"bansuri": "elsewhere"}, "trials": 2, "algorithm": "random",
         "scheduler": "moasha", "space": None, "space_sha256": None, "steps": None, "seed": 0}))
    (root / "runs-recorded" / "recent").mkdir(parents=True)  # ... and one that also recorded its MO-ASHA settings
    (root / "runs-recorded" / "recent" / "sweep.json").write_text(json.dumps(
        {"name": "recent", "instruments": {"bansuri": "elsewhere"}, "trials": 2, "algorithm": "random",
         "scheduler": "moasha", "space": None, "space_sha256": None, "steps": None, "seed": 0,
         "grace_period": None, "reduction_factor": 4.0, "keep_front": True}))
    (root / "loop").symlink_to(root / "loop")  # a symbolic link to itself
    sf.write(str(root / "noise.wav"), np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 4), 16000)
    uri = sqlite_store(root / "mlflow.db")
    client = MlflowClient(uri)
    rng = random.Random(1)
    log_sweep(client, "sitar", "empty", [])
    log_sweep(client, "sitar", "failed", [synthetic_trial(rng, "FAILED"), synthetic_trial(rng, "REJECTED")])
    return {"root": root, "uri": uri}


@pytest.fixture(scope="module")
def make_tone_module():
    from support.audio import synth_tone

    def write(path, seconds):
        sf.write(str(path), synth_tone(seconds), 16000)
        return Path(path)

    return write


def bad(root: Path, name: str) -> Path:
    """A private copy of a bundle to spoil."""
    copy = root / f"spoiled-{name}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root / "bundle", copy)
    return copy


def space_file(root: Path, body: str) -> str:
    path = root / f"space-{abs(hash(body))}.toml"
    path.write_text(body)
    return str(path)


SWEEP = ["sweep", "--trials", "2"]

# (case id, argv built from the world's root and uri, exit code, text the line must contain)
CASES = [
    # ---- where output goes
    ("prepare-out-is-file", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{r}/a-file", f"{r}/take.wav"], 2, "a-file"),
    ("prepare-out-under-file", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{r}/a-file/ds", f"{r}/take.wav"], 2, "is a file"),
    ("prepare-out-is-input", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{r}/take.wav", f"{r}/take.wav"], 2, "is the input"),
    ("export-out-under-file", lambda r, u: ["export", "--instrument", "bansuri", "--out", f"{r}/a-file/b", "--run-id", f"{r}/trial", "--precision", "float32", "--skip-js-parity"], 2, "is a file"),
    ("export-out-is-trial", lambda r, u: ["export", "--instrument", "bansuri", "--out", f"{r}/trial", "--run-id", f"{r}/trial", "--skip-js-parity"], 2, "is the input"),
    ("transfer-output-mp3", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/take.wav", f"{r}/out.mp3"], 2, "out.mp3"),
    ("transfer-output-is-folder", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/take.wav", f"{r}/trial"], 2, "is a folder"),
    ("transfer-output-under-file", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/take.wav", f"{r}/a-file/x.wav"], 2, "is a file"),
    ("transfer-output-in-bundle", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/take.wav", f"{r}/bundle/x.wav"], 2, "is inside the input"),
    ("pareto-plot-jpg", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--plot", f"{r}/p.jpg"], 2, "p.jpg"),
    ("pareto-plot-under-file", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--plot", f"{r}/a-file/p.png"], 2, "is a file"),
    ("sweep-storage-is-file", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/a-file", "--tracking-uri", u], 2, "--storage"),
    ("sweep-xla-cache-is-file", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--xla-cache", f"{r}/a-file", "--tracking-uri", u], 2, "--xla-cache"),
    ("sweep-storage-in-dataset", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--storage"),
    ("demo-data-out-is-file", lambda r, u: ["demo-data", "--out", f"{r}/a-file", "--instruments", "voice", "--minutes", "0.1"], 2, "a-file"),
    # ---- services
    ("sweep-tracking-unreachable", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", "http://127.0.0.1:9"], 2, "127.0.0.1:9"),
    ("sweep-tracking-unknown-scheme", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", "ftp://x/y"], 2, "unknown scheme"),
    ("sweep-tracking-empty-sqlite", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", "sqlite://"], 2, "--tracking-uri"),
    ("sweep-tracking-postgres-down", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", "postgresql://u@127.0.0.1:9/db"], 2, "127.0.0.1:9"),
    ("sweep-address-unreachable", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--address", "127.0.0.1:9"], 2, "--address"),
    ("sweep-warm-start-from-unknown", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--warm-start-from", "no-such-sweep"], 2, "--warm-start-from no-such-sweep"),
    ("sweep-address-garbage", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--address", "nowhere"], 2, "--address"),
    ("pareto-tracking-unreachable", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", "http://127.0.0.1:9"], 2, "127.0.0.1:9"),
    ("export-tracking-unknown-scheme", lambda r, u: ["export", "--instrument", "sitar", "--out", f"{r}/e", "--tracking-uri", "gopher://x"], 2, "unknown scheme"),
    # ---- spaces: every value a space can produce, before fan-out
    ("space-learning-rate-5-10", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--space", space_file(r, '[hyperparameters.learning_rate]\ntype = "float"\nmin = 5.0\nmax = 10.0\n')], 2, "learning_rate"),
    ("space-decoder-lstm", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--space", space_file(r, '[hyperparameters.decoder]\ntype = "choice"\nvalues = ["gru", "lstm"]\n')], 2, "lstm"),
    ("space-conv-layers-0", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--space", space_file(r, '[hyperparameters.conv_layers]\ntype = "int"\nmin = 0\nmax = 3\n')], 2, "conv_layers"),
    ("space-frame-rate-not-prepared", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--space", space_file(r, '[hyperparameters.frame_rate]\ntype = "choice"\nvalues = [250, 100]\n')], 2, "frame_rate"),
    # ---- bundles
    ("transfer-card-from-another-model", lambda r, u: ["transfer", "--model", str(_swap_card(r)), f"{r}/take.wav", f"{r}/o1.wav"], 2, "does not match"),
    ("transfer-shard-truncated", lambda r, u: ["transfer", "--model", str(_truncate_shard(r)), f"{r}/take.wav", f"{r}/o2.wav"], 2, "damaged"),
    # ---- damaged files are named as damaged (the card's sha256 of every file)
    ("transfer-shard-bit-flipped", lambda r, u: ["transfer", "--model", str(_spoil(r, "flip", "tfjs/*.bin")), f"{r}/take.wav", f"{r}/o7.wav"], 2, ".bin: damaged"),
    ("transfer-model-json-cut-short", lambda r, u: ["transfer", "--model", str(_spoil(r, "cut", "tfjs/model.json")), f"{r}/take.wav", f"{r}/o8.wav"], 2, "model.json: damaged"),
    ("transfer-saved-model-variables-damaged", lambda r, u: ["transfer", "--model", str(_spoil(r, "flip", "saved_model/variables/variables.data-*")), f"{r}/take.wav", f"{r}/o9.wav"], 2, "damaged"),
    ("transfer-shard-missing", lambda r, u: ["transfer", "--model", str(_spoil(r, "remove", "tfjs/*.bin")), f"{r}/take.wav", f"{r}/o10.wav"], 2, "missing"),
    ("export-trial-weights-bit-flipped", lambda r, u: ["export", "--instrument", "bansuri", "--out", f"{r}/e1", "--run-id", str(_spoil_trial(r, "flip")), "--skip-js-parity"], 2, "weights.weights.h5: damaged"),
    ("export-older-trial-weights-cut-short", lambda r, u: ["export", "--instrument", "bansuri", "--out", f"{r}/e2", "--run-id", str(_spoil_trial(r, "cut-undigested")), "--skip-js-parity"], 2, "weights.weights.h5: cannot be read"),
    ("serve-shard-bit-flipped", lambda r, u: ["serve", "--models", str(_spoil(r, "flip", "tfjs/*.bin")), "--port", "0"], 2, ".bin: damaged"),
    ("transfer-card-layout-missing", lambda r, u: ["transfer", "--model", str(_no_layout(r)), f"{r}/take.wav", f"{r}/o3.wav"], 2, "layout"),
    ("export-instrument-differs", lambda r, u: ["export", "--instrument", "tuba", "--out", f"{r}/tuba", "--run-id", f"{r}/trial", "--skip-js-parity"], 2, "trained on bansuri"),
    ("transfer-input-not-audio", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/notes.wav", f"{r}/o4.wav"], 2, "notes.wav"),
    ("transfer-input-silent", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/silence.wav", f"{r}/o5.wav"], 2, "silent"),
    # ---- empty and odd results
    ("pareto-sweep-without-trials", lambda r, u: ["pareto", "--instrument", "sitar", "--sweep", "empty", "--tracking-uri", u, "--plot", f"{r}/e.png", "--format", "json"], 1, "no trials"),
    ("pareto-only-failed-trials", lambda r, u: ["pareto", "--instrument", "sitar", "--sweep", "failed", "--tracking-uri", u, "--plot", f"{r}/f.png", "--format", "json"], 1, "1 FAILED"),
    ("pareto-unknown-instrument", lambda r, u: ["pareto", "--instrument", "oboe", "--tracking-uri", u], 2, "oboe"),
    ("export-no-champion", lambda r, u: ["export", "--instrument", "sitar", "--out", f"{r}/x", "--tracking-uri", u], 2, "@champion"),
    ("export-unknown-run", lambda r, u: ["export", "--instrument", "sitar", "--out", f"{r}/x", "--tracking-uri", u, "--run-id", "0" * 32], 2, "no such run"),
    # ---- names
    ("prepare-instrument-path", lambda r, u: ["prepare", "--instrument", "../x", *FAST_PREPARE, "--out", f"{r}/d", f"{r}/take.wav"], 2, "--instrument"),
    ("sweep-name-path", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--name", "../x"], 2, "--name"),
    ("pareto-sweep-path", lambda r, u: ["pareto", "--instrument", "sitar", "--sweep", "a/b", "--tracking-uri", u], 2, "--sweep"),
    ("export-instrument-path", lambda r, u: ["export", "--instrument", "a/b", "--out", f"{r}/x", "--run-id", f"{r}/trial"], 2, "--instrument"),
    # ---- pitch range
    ("prepare-fmin-not-a-note", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--fmin", "abc", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--fmin"),
    ("prepare-fmin-above-fmax", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--fmin", "C6", "--fmax", "C3", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--fmin"),
    # ---- flags
    ("sweep-trials-0", lambda r, u: ["sweep", "--trials", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--trials"),
    ("sweep-steps-0", lambda r, u: [*SWEEP, "--steps", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--steps"),
    ("sweep-resume-damaged-sweep-file", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-damaged", "--name", "broken", "--resume", "--tracking-uri", u], 2, "sweep.json"),
    ("sweep-resume-without-name", lambda r, u: [*SWEEP, "--resume", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--resume"),
    ("sweep-resume-unknown", lambda r, u: [*SWEEP, "--resume", "--name", "nope", "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u], 2, "--name nope"),
    ("sweep-dataset-missing", lambda r, u: [*SWEEP, "--dataset", f"{r}/no-such", "--tracking-uri", u], 2, "manifest.json"),
    ("pareto-min-rtf-negative", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--min-rtf", "-1"], 2, "--min-rtf"),
    ("pareto-tolerance-negative", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--tolerance", "-1"], 2, "--tolerance"),
    ("prepare-workers-0", lambda r, u: ["prepare", "--instrument", "t", "--frame-rates", "50", "--workers", "0", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--workers"),
    ("train-config-missing", lambda r, u: ["train", "--dataset", f"{r}/datasets/bansuri", "--config", f"{r}/nope.toml", "--out", f"{r}/t"], 2, "nope.toml"),
    ("demo-data-minutes-0", lambda r, u: ["demo-data", "--out", f"{r}/demo", "--minutes", "0"], 2, "--minutes"),
    # ---- values are checked when the command line is read, by one rule per kind (common.bounds)
    ("sweep-max-bytes-negative", lambda r, u: [*SWEEP, "--max-bytes", "-1", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--max-bytes: -1"),
    ("sweep-max-bytes-0", lambda r, u: [*SWEEP, "--max-bytes", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--max-bytes: 0"),
    ("sweep-min-rtf-negative", lambda r, u: [*SWEEP, "--min-rtf", "-5", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--min-rtf: -5"),
    ("sweep-min-rtf-nan", lambda r, u: [*SWEEP, "--min-rtf", "nan", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--min-rtf: nan"),
    ("sweep-max-params-text", lambda r, u: [*SWEEP, "--max-params", "lots", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--max-params"),
    ("sweep-reduction-factor-1", lambda r, u: [*SWEEP, "--reduction-factor", "1", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--reduction-factor"),
    ("sweep-grace-period-0", lambda r, u: [*SWEEP, "--grace-period", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--grace-period"),
    ("sweep-worker-memory-negative", lambda r, u: [*SWEEP, "--worker-memory-mib", "-1", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--worker-memory-mib"),
    ("sweep-worker-memory-fraction", lambda r, u: [*SWEEP, "--worker-memory-mib", "1.5", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--worker-memory-mib"),
    ("sweep-time-budget-0", lambda r, u: [*SWEEP, "--time-budget", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--time-budget"),
    ("sweep-time-budget-text", lambda r, u: [*SWEEP, "--time-budget", "1h", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--time-budget"),
    ("sweep-cpus-per-trial-0", lambda r, u: [*SWEEP, "--cpus-per-trial", "0", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--cpus-per-trial"),
    ("sweep-trials-inf", lambda r, u: ["sweep", "--trials", "inf", "--dataset", f"{r}/datasets/bansuri", "--tracking-uri", u], 2, "--trials"),
    ("serve-port-70000", lambda r, u: ["serve", "--models", f"{r}/bundle", "--port", "70000"], 2, "--port: 70000"),
    ("serve-port-negative", lambda r, u: ["serve", "--models", f"{r}/bundle", "--port", "-1"], 2, "--port: -1"),
    ("ui-port-0", lambda r, u: ["ui", "--port", "0", "--tracking-uri", u], 2, "--port: 0"),
    ("tracking-server-pg-port-big", lambda r, u: ["tracking-server", "--pg-port", "99999"], 2, "--pg-port"),
    ("pareto-max-loss-inf", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--max-loss", "inf"], 2, "--max-loss"),
    ("pareto-max-bytes-0", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", u, "--max-bytes", "0"], 2, "--max-bytes"),
    ("prepare-validation-fraction-1", lambda r, u: ["prepare", "--instrument", "t", "--validation-fraction", "1", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--validation-fraction"),
    ("prepare-frame-rates-text", lambda r, u: ["prepare", "--instrument", "t", "--frame-rates", "fast", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--frame-rates"),
    ("prepare-example-seconds-negative", lambda r, u: ["prepare", "--instrument", "t", "--example-seconds=-4", "--out", f"{r}/d", f"{r}/take.wav"], 2, "--example-seconds"),
    ("sweep-space-with-one-configuration", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs", "--tracking-uri", u, "--space", space_file(r, '[hyperparameters.decoder]\ntype = "choice"\nvalues = ["cnn"]\n')], 2, "1 distinct configuration"),
    ("sweep-resume-with-another-space", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-recorded", "--name", "old", "--resume", "--tracking-uri", u, "--space", space_file(r, SPACE)], 2, "--space"),
    ("sweep-resume-with-other-trials", lambda r, u: ["sweep", "--trials", "5", "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-recorded", "--name", "old", "--resume", "--tracking-uri", u], 2, "--trials 2"),
    ("sweep-resume-without-keep-front", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-recorded", "--name", "recent", "--resume", "--tracking-uri", u, "--no-keep-front"], 2, "--keep-front on, not off"),
    ("sweep-resume-with-a-time-budget", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-recorded", "--name", "recent", "--resume", "--tracking-uri", u, "--time-budget", "60"], 2, "--time-budget none, not 60"),
    ("sweep-resume-with-another-eta", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", f"{r}/runs-recorded", "--name", "recent", "--resume", "--tracking-uri", u, "--reduction-factor", "3"], 2, "--reduction-factor 4, not 3"),
    ("sweep-storage-bucket-double-dot", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", "s3://my..bucket/x", "--tracking-uri", u], 2, "not a bucket name"),
    ("sweep-storage-bucket-ip", lambda r, u: [*SWEEP, "--dataset", f"{r}/datasets/bansuri", "--storage", "s3://192.168.1.10/x", "--tracking-uri", u], 2, "IP address"),
    ("tracking-server-artifact-root-bad-bucket", lambda r, u: ["tracking-server", "--backend-store-uri", u, "--artifact-root", "s3://xn--bucket/a"], 2, "--artifact-root"),
    # ---- unusual input is named for what it is
    ("prepare-out-symlink-loop", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{r}/loop", f"{r}/take.wav"], 2, "leads back to itself"),
    ("prepare-input-symlink-loop", lambda r, u: ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{r}/d", f"{r}/loop"], 2, "loop"),
    ("transfer-white-noise", lambda r, u: ["transfer", "--model", f"{r}/bundle", f"{r}/noise.wav", f"{r}/o6.wav"], 2, "no pitched content"),
    ("serve-host-not-here", lambda r, u: ["serve", "--models", f"{r}/bundle", "--host", "8.8.8.8", "--port", "0"], 2, "--host 8.8.8.8"),
    ("serve-host-unknown", lambda r, u: ["serve", "--models", f"{r}/bundle", "--host", "no-such-host.invalid", "--port", "0"], 2, "--host no-such-host.invalid"),
    ("pareto-sqlite-typo", lambda r, u: ["pareto", "--instrument", "sitar", "--tracking-uri", f"sqlite:///{r}/mlfow.db"], 2, "mlfow.db"),
]


def _swap_card(root: Path) -> Path:
    """A bundle whose card came from another model (20 harmonics instead of the graph's 16)."""
    spoiled = bad(root, "card")
    card = json.loads((spoiled / "model-card.json").read_text())
    card["layout"]["n_harmonics"] = 20
    (spoiled / "model-card.json").write_text(json.dumps(card))
    return spoiled


def _truncate_shard(root: Path) -> Path:
    spoiled = bad(root, "shard")
    shard = next((spoiled / "tfjs").glob("*.bin"))
    shard.write_bytes(shard.read_bytes()[:-8])
    return spoiled


def _spoil(root: Path, how: str, pattern: str) -> Path:
    """A copy of the bundle with one file (the first ``pattern`` matches) bit-flipped, cut short or removed."""
    spoiled = bad(root, f"{how}-{abs(hash(pattern))}")
    target = sorted(spoiled.glob(pattern))[0]
    data = bytearray(target.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif how == "cut":
        target.write_bytes(bytes(data[: len(data) // 2]))
    else:
        target.unlink()
    return spoiled


def _spoil_trial(root: Path, how: str) -> Path:
    """A copy of the trial with its weights bit-flipped, or cut short in a trial from before the
    weights' digest (its metrics.json without ``weights_sha256``)."""
    spoiled = root / f"spoiled-trial-{how}"
    shutil.rmtree(spoiled, ignore_errors=True)
    shutil.copytree(root / "trial", spoiled)
    weights = spoiled / "weights.weights.h5"
    data = bytearray(weights.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        weights.write_bytes(bytes(data))
    else:
        metrics = json.loads((spoiled / "metrics.json").read_text())
        metrics.pop("weights_sha256", None)
        (spoiled / "metrics.json").write_text(json.dumps(metrics))
        weights.write_bytes(bytes(data[: len(data) // 2]))
    return spoiled


def _no_layout(root: Path) -> Path:
    spoiled = bad(root, "layout")
    card = json.loads((spoiled / "model-card.json").read_text())
    card["layout"].pop("hop")
    (spoiled / "model-card.json").write_text(json.dumps(card))
    return spoiled


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "spoiled" not in p.parts[len(root.parts)]}


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("case,argv,code,needle", CASES, ids=[c[0] for c in CASES])
def test_failure_is_one_line(case, argv, code, needle, world, capsys):
    root, uri = world["root"], world["uri"]
    args = argv(root, uri)
    before = snapshot(root)
    started = time.monotonic()
    result = main(args)
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tonesweep:")]
    assert result == code, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    assert len(lines) == 1 and needle in lines[0], err[-2000:]
    made = {p for p in snapshot(root) - before if not p.endswith((".png",)) or code != 1}
    assert not made - {"mlruns", *[p for p in made if p.startswith("mlruns")]}, made  # nothing partial left
    assert elapsed < BOUND_S, f"{case} took {elapsed:.1f} s"


def _get(url: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no normalising, as a browser or a prober may send it)."""
    import http.client
    from urllib.parse import urlsplit

    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_serve_answers_odd_paths_and_a_removed_models_folder_without_raising(world, tmp_path, capfd):
    from web.server import start_server

    models = tmp_path / "models"
    shutil.copytree(world["root"] / "bundle", models / "bansuri")
    server = start_server(models, "127.0.0.1", 0)
    try:
        assert _get(server.url, "/models/bansuri/model-card.json")[0] == 200
        assert _get(server.url, "/models/bansuri/%00")[0] == 404
        assert _get(server.url, "/models/bansuri/model-card.json%00.png")[0] == 404
        shutil.rmtree(models)  # the folder goes away while the page is served
        assert _get(server.url, "/models/bansuri/model-card.json")[0] == 404
        status, body = _get(server.url, "/models.json")
        assert status == 200 and json.loads(body) == {"models": []}
        assert _get(server.url, "/")[0] == 200  # and it goes on serving
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("how", ["flip", "cut", "remove-validation"])
def test_a_damaged_dataset_shard_is_named_by_train_and_by_sweep(how, tiny_dataset, tmp_path, capsys):
    dataset = tmp_path / "bansuri"
    shutil.copytree(tiny_dataset, dataset)
    shard = sorted(dataset.glob("validation-*.tfrecord" if how == "remove-validation" else "train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
        shard.write_bytes(bytes(data))
    elif how == "cut":
        shard.write_bytes(bytes(data[:-100]))
    else:
        shard.unlink()
    config = tmp_path / "c.toml"
    config.write_text('decoder = "cnn"\nframe_rate = 50\nsteps = 2\n')
    commands = [["train", "--dataset", str(dataset), "--config", str(config), "--out", str(tmp_path / "t")],
                [*SWEEP, "--dataset", str(dataset), "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]]
    for argv in commands:
        assert main(argv) == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("tonesweep:")]
        assert len(lines) == 1 and shard.name in lines[0] and "Traceback" not in err, err
        assert ("missing" if how == "remove-validation" else "damaged") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bansuri", "c.toml"]


# ---------------------------------------------------------------------------- one writer at a time


class HeldLock:
    """Another process holding a writer lock (``common.locks``), as a running `prepare`, `export` or
    `sweep` would; stopped by PID."""

    def __init__(self, path: Path):
        import subprocess
        import sys

        code = ("import sys, time; from pathlib import Path; from common.locks import writer_lock\n"
                "with writer_lock(Path(sys.argv[1]), 'x', 'x'):\n    print('held', flush=True); time.sleep(600)")
        self.process = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                                        cwd=Path(__file__).parents[1])
        assert self.process.stdout.readline().strip() == "held"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def held():
    locks: list[HeldLock] = []

    def hold(path: Path) -> HeldLock:
        locks.append(HeldLock(path))
        return locks[-1]

    yield hold
    for lock in locks:
        lock.kill()


def test_a_second_writer_is_told_who_writes_and_a_dead_writers_lock_is_taken_over(tmp_path, held):
    from common.locks import writer_lock

    path = tmp_path / ".ds.lock"
    other = held(path)
    with pytest.raises(UserError) as refused:
        with writer_lock(path, "dataset ds", "--out"):
            pass
    assert f"PID {other.process.pid} on {socket.gethostname()}" in str(refused.value) and "--out" in str(refused.value)
    other.kill()  # killed: the kernel drops its lock, its record stays behind
    said = []
    with writer_lock(path, "dataset ds", "--out", took_over=said.append):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert len(said) == 1 and f"PID {other.process.pid}" in said[0] and "has ended" in said[0]
    assert not path.exists()  # released: nothing left beside the folder


@pytest.mark.parametrize("command", ["prepare", "export", "sweep"])
def test_a_command_writing_where_another_writes_is_one_line_and_writes_nothing(command, world, tmp_path, held,
                                                                                capsys):
    root, uri = world["root"], world["uri"]
    target = {"prepare": tmp_path / "ds", "export": tmp_path / "bundle", "sweep": tmp_path / "runs" / "same"}[command]
    from common.locks import sibling_lock

    other = held(sibling_lock(target))
    argv = {"prepare": ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", str(target), f"{root}/take.wav"],
            "export": ["export", "--instrument", "bansuri", "--out", str(target), "--run-id", f"{root}/trial",
                       "--skip-js-parity"],
            "sweep": [*SWEEP, "--dataset", f"{root}/datasets/bansuri", "--storage", str(tmp_path / "runs"),
                      "--name", "same", "--tracking-uri", uri]}[command]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tonesweep:")]
    assert len(lines) == 1 and f"PID {other.process.pid}" in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_read_only_output_folder_is_refused_before_work(tmp_path, make_tone, capsys, monkeypatch):
    """The machine's tests run as root, which may write anywhere: the permission answer is faked."""
    take = make_tone(tmp_path / "take.wav", 9.0)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    assert main(["prepare", "--instrument", "t", *FAST_PREPARE, "--out", str(locked / "ds"), str(take)]) == 2
    assert "is not writable" in capsys.readouterr().err and not (locked / "ds").exists()


def test_a_full_disk_while_writing_is_one_line_and_leaves_nothing(tmp_path, make_tone, capsys, monkeypatch):
    from trainers.data import prepare

    take = make_tone(tmp_path / "take.wav", 9.0)

    def full_disk(folder, split, examples):
        raise OSError(28, "No space left on device", str(folder / f"{split}-00000-of-00001.tfrecord"))

    monkeypatch.setattr(prepare, "write_split", full_disk)
    assert main(["prepare", "--instrument", "t", *FAST_PREPARE, "--out", str(tmp_path / "ds"), str(take)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("tonesweep:")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and ".tfrecord" in errors[0], err
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds.*"))


@pytest.fixture
def full_disk(tmp_path):
    """A 200 KB tmpfs: a disk that fills up. Mounting needs root (as on this project's machines and CI)."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("command", ["prepare", "export", "transfer"])
def test_a_full_disk_is_one_line_and_leaves_nothing(command, world, full_disk, capsys):
    root = world["root"]
    argv = {"prepare": ["prepare", "--instrument", "t", *FAST_PREPARE, "--out", f"{full_disk}/ds", f"{root}/take.wav"],
            "export": ["export", "--instrument", "bansuri", "--out", f"{full_disk}/b", "--run-id", f"{root}/trial",
                       "--skip-js-parity"],
            "transfer": ["transfer", "--model", f"{root}/bundle", f"{root}/take.wav", f"{full_disk}/out.wav"]}[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tonesweep:")]
    assert len(lines) == 1 and "No space left on device" in lines[0] and str(full_disk) in lines[0], err
    assert "Traceback" not in err and list(full_disk.iterdir()) == []


def test_tensorflow_s_file_errors_become_the_operating_system_s_line():
    import tensorflow as tf

    from cli.main import library_refusal

    full = tf.errors.ResourceExhaustedError(None, None, "/data/b/.tmp/saved_model.pb.tmp1; No space left on device")
    assert library_refusal(full) == ("/data/b/.tmp/saved_model.pb.tmp1: No space left on device; free some space "
                                     "there and run the command again")
    denied = tf.errors.PermissionDeniedError(None, None, "/data/b/x; Permission denied")
    assert library_refusal(denied).startswith("/data/b/x: Permission denied; check the permissions")
    assert library_refusal(tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")) is None
    assert library_refusal(ValueError("x")) is None


def test_a_trial_larger_than_the_cluster_is_refused_before_anything_is_created(tmp_path, capsys):
    [dataset] = make_datasets(tmp_path, ["bansuri"])
    db = tmp_path / "m.db"
    code = main(["sweep", "--trials", "1", "--dataset", dataset, "--storage", str(tmp_path / "runs"),
                 "--tracking-uri", f"sqlite:///{db}", "--cpus-per-trial", "64"])
    err = capsys.readouterr().err
    assert code == 2 and "--cpus-per-trial 64" in err and err.count("tonesweep:") == 1
    assert not (tmp_path / "runs").exists() and not db.exists()


# ---------------------------------------------------------------------------- interrupts


@pytest.mark.parametrize("signal_number,exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_sweep_says_so_and_how_to_resume(tmp_path, signal_number, exit_code, ray_head):
    import sys

    command = cli_sweep(tmp_path, ["sarangi"], "--trials", "6", "--steps", "200", "--name", "stop",
                        "--storage", str(tmp_path / "runs"), "--scheduler", "none", "--address", ray_head.address)
    script = command[1]
    driver = Driver(tmp_path, {}, env={"FAKE_SLEEP": "0.2"}, module_args=command, cluster=ray_head)
    try:
        deadline = time.monotonic() + 180
        while not re.search(r"running [1-9]", driver.output()) and time.monotonic() < deadline:
            assert driver.process.poll() is None, driver.output()[-3000:]
            time.sleep(0.1)
        time.sleep(1)  # trials are training (each takes ~4 s)
        driver.process.send_signal(signal_number)
        code = driver.process.wait(timeout=120)
        output = driver.output()
    finally:
        driver.stop()
    assert code == exit_code, output[-3000:]
    assert "interrupted" in output and "Traceback" not in output and "Tuner.restore" not in output, output[-3000:]
    assert "--resume" in output and "--name stop" in output
    _, runs = sweep_runs(mlflow_client(tmp_path), "sarangi", "stop")
    statuses = {r.data.tags["tonesweep.status"] for r in runs}
    assert "INTERRUPTED" in statuses and "RUNNING" not in statuses, statuses
    if signal_number != signal.SIGINT:
        return
    # the printed command continues it (a sweep on a local folder): the interrupted trials go on in
    # their own runs, and the sweep ends with every trial done once
    interrupted = {r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in runs
                   if r.data.tags["tonesweep.status"] == "INTERRUPTED"}
    again = shlex.split(re.search(r"continue with: (.*)$", output, re.M).group(1))
    assert again[:2] == ["tonesweep", "sweep"] and again[-1] == "--resume" and "--name" in again, again
    resumed = run_driver(tmp_path, {}, env={"FAKE_SLEEP": "0.01"}, module_args=[sys.executable, str(script), *again[1:]],
                         cluster=ray_head)
    assert "resuming from" in resumed and "done 6/6" in resumed, resumed[-3000:]
    parent, runs = sweep_runs(mlflow_client(tmp_path), "sarangi", "stop")
    ids = [r.data.tags["tonesweep.trial_id"] for r in runs]
    assert len(ids) == len(set(ids)) == 6 and parent.info.status == "FINISHED", ids
    assert {r.data.tags["tonesweep.status"] for r in runs} <= TERMINAL and "RUNNING" not in {r.info.status for r in runs}
    assert all({r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in runs}[t] == run_id
               for t, run_id in interrupted.items())


@pytest.mark.parametrize("moment", [  # the moments whose printed command is run to the end: system tier (~25 s each)
    "cluster.local_ray:start", *[pytest.param(m, marks=pytest.mark.system) for m in
                                 ("search.sweep:Sweep.open_experiment", "search.sweep:InstrumentSweep.run", "banner")]])
def test_an_interruption_at_any_moment_leaves_no_running_run_and_says_how_to_resume(tmp_path, moment, ray_head):
    """Ctrl-C while the sweep starts (joining Ray, its parent runs opening, before the first Tuner) or
    at its banner: exit 130 and, once a parent run exists, the `--resume` command, which then runs
    the sweep to its end; no run RUNNING. The driver pauses where the signal is to land."""
    import sys

    command = cli_sweep(tmp_path, ["sarangi", "tabla"], "--trials", "3", "--steps", "200", "--name", "early",
                        "--storage", str(tmp_path / "runs"), "--scheduler", "none", "--address", ray_head.address)
    script = command[1]
    pause = {} if moment == "banner" else {"PAUSE_AT": moment}
    driver = Driver(tmp_path, {}, env={"FAKE_SLEEP": "0.2", **pause}, module_args=command, cluster=ray_head)
    try:
        marker = "sweep early:" if moment == "banner" else "PAUSED at"
        deadline = time.monotonic() + 120
        while marker not in driver.output() and time.monotonic() < deadline:
            assert driver.process.poll() is None, driver.output()[-3000:]
            time.sleep(0.02)
        driver.process.send_signal(signal.SIGINT)
        code = driver.process.wait(timeout=120)
        output = driver.output()
    finally:
        driver.stop()
    assert code == 130 and "Traceback" not in output, output[-3000:]
    client = mlflow_client(tmp_path)
    parents = [run for experiment in client.search_experiments()
               for run in client.search_runs([experiment.experiment_id])]
    assert all(run.info.status != "RUNNING" for run in parents), [(r.info.run_name, r.info.status) for r in parents]
    if parents:  # the sweep got as far as its runs: it says how to go on
        assert "continue with:" in output and "--resume" in output and "--name early" in output, output[-3000:]
    assert not (tmp_path / "runs" / ".early.lock").exists()
    if "continue with:" in output:  # and what it says works: every trial of both instruments, once
        again = shlex.split(re.search(r"continue with: (.*)$", output, re.M).group(1))
        resumed = run_driver(tmp_path, {}, env={"FAKE_SLEEP": "0.01"}, module_args=[sys.executable, str(script), *again[1:]],
                             cluster=ray_head)
        assert resumed.count("done 3/3") >= 2 and "Traceback" not in resumed, resumed[-3000:]
        for instrument in ("sarangi", "tabla"):
            parent, runs = sweep_runs(client, instrument, "early")
            assert parent.info.status == "FINISHED" and len({r.data.tags["tonesweep.trial_id"] for r in runs}) == 3


@pytest.mark.system
def test_a_store_that_dies_mid_sweep_is_one_line_with_the_resume_command(tmp_path):
    """The object store stops answering mid-sweep (its own moto server, killed): the driver ends with
    one line that names the store and how to resume, no library traceback, and no run left RUNNING."""
    import sys

    from support.object_store import ObjectStore
    from support.sweeps import wait_for_ended_trials

    dying = ObjectStore(tmp_path, bucket="dying-store")
    driver = None
    try:
        dying.make_bucket()
        command = cli_sweep(tmp_path, ["sarangi"], "--trials", "12", "--steps", "60", "--name", "gone",
                            "--storage", f"s3://{dying.bucket}/runs", "--scheduler", "none")
        driver = Driver(tmp_path, {}, env={**dying.env, "FAKE_SLEEP": "0.3"}, module_args=command)
        wait_for_ended_trials(driver, 2, timeout=240)
        dying.stop()
        code = driver.wait(300)
        output = driver.output()
    finally:
        if driver is not None:
            driver.stop()
        dying.stop()
    errors = [line for line in output.splitlines() if line.startswith("tonesweep:")]
    assert code == 2 and "Traceback" not in output, output[-4000:]
    assert len(errors) == 1 and dying.endpoint in errors[0] and "--resume" in errors[0], errors
    _, runs = sweep_runs(mlflow_client(tmp_path), "sarangi", "gone")
    assert "RUNNING" not in {r.info.status for r in runs}


def cli_sweep(tmp_path: Path, instruments: list[str], *flags: str) -> list[str]:
    """The command line of `tonesweep sweep` on stub datasets of ``instruments`` and the test space,
    run by the CLI with the stand-in trainer (``_DRIVER``), plus ``flags``."""
    import sys

    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    datasets = make_datasets(tmp_path, instruments)
    script = tmp_path / "cli_driver.py"
    script.write_text(_DRIVER)
    return [sys.executable, str(script), "sweep", *[x for d in datasets for x in ("--dataset", d)],
            "--space", str(space), *flags]


# The CLI with the stand-in trainer of tests/support/sweeps.py (defined in __main__, so Ray ships it by value).
_DRIVER = DRIVER.split('if __name__ == "__main__":')[0] + """
if __name__ == "__main__":
    from dataclasses import dataclass
    import search.settings as settings

    @dataclass
    class WithStandIns(settings.SweepSettings):
        def __post_init__(self):
            self.train_fn, self.size_fn, self.reference_fn = fake_train, fake_size, fake_reference

    settings.SweepSettings = WithStandIns
    pause_at = os.environ.get("PAUSE_AT")  # "module:Object.attribute": say so there and wait, for a signal to land
    if pause_at:
        import importlib

        module_name, _, dotted = pause_at.partition(":")
        owner = importlib.import_module(module_name)
        *parents, name = dotted.split(".")
        for part in parents:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def paused(*args, **kwargs):
            print(f"PAUSED at {pause_at}", flush=True)
            time.sleep(5)
            return original(*args, **kwargs)

        setattr(owner, name, paused)
    from cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


# ---------------------------------------------------------------------------- pitch that real recordings need


def bass(path: Path, f0: float = 49.0, seconds: float = 9.0, breath: float = 0.0) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    noise = np.random.default_rng(0).normal(0, 1, t.size)
    audio = 0.3 * tone / np.max(np.abs(tone)) + breath * noise
    sf.write(str(path), audio / max(1.0, np.max(np.abs(audio))), 16000)
    return path


def test_a_low_note_is_voiced_and_tracked_at_its_pitch_with_a_lower_fmin(tmp_path):
    low = bass(tmp_path / "bass.wav")  # G1 (49 Hz), below the default fmin C2
    args = ["prepare", "--instrument", "bass", *FAST_PREPARE, str(low)]
    # pYIN's decoder calls it voiced (the old rule, probability >= 0.5, called it 0 % voiced and refused it) ...
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    default = json.loads((tmp_path / "default" / "manifest.json").read_text())
    assert abs(default["stats"]["50"]["f0_midi"]["p50"] - 31.0) > 3  # ... but C2 and up cannot hold its pitch
    assert main([*args, "--out", str(tmp_path / "low"), "--fmin", "C1"]) == 0
    manifest = json.loads((tmp_path / "low" / "manifest.json").read_text())
    assert math.isclose(manifest["features"]["f0_min_hz"], 32.703, rel_tol=1e-3)
    assert manifest["stats"]["50"]["f0_midi"]["p50"] == pytest.approx(31.0, abs=0.3)  # G1 = midi 31
    assert manifest["cache_key"] != default["cache_key"]


def test_a_breathy_note_is_voiced_by_pyins_own_decoder(tmp_path):
    from trainers.data.audio import load_audio
    from trainers.data.features import FeatureParams, f0_voicing

    breathy = load_audio(bass(tmp_path / "breathy.wav", f0=330.0, breath=0.08))
    f0, confidence, voiced = f0_voicing(breathy, FeatureParams(frame_rates=(50,)))[50]
    assert voiced.mean() > 0.9, (voiced.mean(), confidence.mean())
    assert np.median(np.abs(1200 * np.log2(f0[voiced] / 330.0))) < 20
