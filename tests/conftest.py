"""Shared fixtures. What is costly to start or build is made once per test run and shared, unless
its start is the test's subject (those tests make their own):

- ``rendered_audio``: folder from `demo-data` with ``bansuri/`` and ``voice/`` (one ~20 s take each,
  seed 7), WAVs beside their ground-truth ``.f0.csv``.
- ``tiny_dataset``: a prepared bansuri dataset (36 s of rendered audio, frame rates 250 and 50,
  4 s examples, hop 1 s; >= 2 validation examples).
- ``trained_trial`` / ``trained_cnn_trial``: trials the real trainer ran on ``tiny_dataset``.
- ``small_bundle``: a small exported bundle (seeded CNN weights, float32, with the page).
- ``ray_head``: one Ray head on 127.0.0.1 (the machine's cores, no dashboard) that stand-in sweeps
  join (``support.sweeps.Driver(cluster=ray_head)``); tests about the Ray a sweep starts itself do not.
- ``tracking_server``: one `tonesweep tracking-server` on its own PostgreSQL (``support.servers``).
- ``object_store``: one S3-compatible object store (moto); ``store``: it, with a bucket name of the
  test's own (``support.object_store``).
- ``make_tone``: writes a synthetic harmonic tone with vibrato to a file (any rate/channels/format).

A new SQLite tracking store is a copy of one MLflow made earlier in the run (``support.stores``).

Tiers: ``make test`` runs everything not marked ``system`` or ``slow``; ``make test-system`` the
system tier (real-trainer sweeps beyond the one in the default tier, the two-node cluster, Chromium,
server restarts); ``make test-slow`` the longer checks.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from support.audio import synth_tone
from support.object_store import object_store, store  # noqa: F401 - fixtures: an S3-compatible store, stopped by PID
from support.servers import reachable_dir, servers  # noqa: F401 - fixtures: team servers, stopped by PID

# Tracking failures raise under the tests instead of being logged as warnings (results/tracking.py);
# subprocess drivers started by the tests inherit this.
os.environ.setdefault("TONESWEEP_TESTING", "1")
# Sweeps in an object store sign Ray's state with the account's sweep key (search/ray_state.py), kept
# under XDG_CONFIG_HOME: the tests' key lives in a folder of their own, not in the user's ~/.config.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="tonesweep-tests-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)

RENDER_SEED = 7
TINY_SECONDS = 36.0


@pytest.fixture(scope="session")
def rendered_audio(tmp_path_factory) -> Path:
    """Demo audio: OUT/bansuri/bansuri-0.wav (+ .f0.csv) and OUT/voice/voice-0.wav, ~20 s each."""
    from trainers.data.demo import render_demo

    out = tmp_path_factory.mktemp("rendered_audio")
    render_demo(out, minutes=20 / 60, instruments=["bansuri", "voice"], seed=RENDER_SEED)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A prepared bansuri dataset folder (frame rates 250 and 50) built from 36 s of audio."""
    from trainers.data.prepare import PrepareOptions, prepare_dataset
    from trainers.data.demo import render_demo
    from trainers.data.features import FeatureParams

    audio = tmp_path_factory.mktemp("tiny_audio")
    render_demo(audio, minutes=TINY_SECONDS / 60, instruments=["bansuri"], seed=RENDER_SEED + 1)
    out = tmp_path_factory.mktemp("tiny_dataset") / "bansuri"
    options = PrepareOptions(instrument="bansuri", features=FeatureParams(frame_rates=(250, 50)))
    # the folder also holds .f0.csv files and render.json: they are not audio and must not warn
    manifest = prepare_dataset([audio / "bansuri"], out, options, workers=1,
                               warn=lambda message: pytest.fail(f"unexpected warning: {message}"))
    assert manifest["splits"]["validation"]["examples"] >= 2, manifest["splits"]
    return out


# The services a run shares, started in the background as the run begins when a selected test needs
# one: their start (seconds of waiting on Ray's and PostgreSQL's processes) overlaps the first tests.
_EARLY: dict[str, Future] = {}


def _start_ray_head(env: dict):
    from support.cluster import RayCluster

    return RayCluster(cpus_per_node=os.cpu_count() or 2, env=env, nodes=1, dashboard=False).start()


def _start_tracking_server():
    from support.servers import TrackingServer

    return TrackingServer().start()


@pytest.fixture(scope="session", autouse=True)
def shared_services_started_early(request):
    """Start ``ray_head`` and ``tracking_server`` in the background now if a selected test uses them;
    whatever no test then claimed is stopped at the end."""
    used = {name for item in request.session.items for name in item.fixturenames}
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shared-service")
    if "tracking_server" in used:
        _EARLY["tracking_server"] = pool.submit(_start_tracking_server)
    if "ray_head" in used:
        _EARLY["ray_head"] = pool.submit(_start_ray_head, request.getfixturevalue("object_store").env)
    try:
        yield
    finally:
        pool.shutdown(wait=True)
        for future in _EARLY.values():  # started, never claimed (its tests were skipped)
            if future.exception() is None:
                future.result().stop()
        _EARLY.clear()


def _claim(name: str, start):
    future = _EARLY.pop(name, None)
    return future.result() if future is not None else start()


@pytest.fixture(scope="session")
def ray_head(shared_services_started_early, object_store):
    """The test run's shared Ray head: one node with the machine's cores, stopped by PID at the end.
    Its processes have the object store's AWS environment (trials on it reach the store)."""
    cluster = _claim("ray_head", lambda: _start_ray_head(object_store.env))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def tracking_server(shared_services_started_early):
    """The test run's one team tracking server (``support.servers.TrackingServer``), for tests whose
    subject is not its start (those that start, stop or restart one run their own through
    ``servers``); stopped by PID at the end."""
    server = _claim("tracking_server", _start_tracking_server)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory) -> Path:
    """A small exported bundle carrying the page (seeded CNN weights at 50 Hz, float32, no Node check),
    written under umask 022: what transfer, re-export and the failure battery meet."""
    from support.trials import make_trial
    from trainers.export.bundle import export_bundle, local_trial
    from web.assets import page_files

    root = tmp_path_factory.mktemp("small_bundle")
    trial = make_trial(root / "trial", seed=3, decoder="cnn", frame_rate=50, conv_channels=8, conv_layers=2,
                       conv_stacks=1, n_harmonics=16, n_noise_bands=16)
    old = os.umask(0o022)
    try:
        export_bundle(local_trial(trial), root / "bundle", "bansuri", "float32", js_parity=False,
                      extra_files=page_files())
    finally:
        os.umask(old)
    return root / "bundle"


@pytest.fixture(scope="session")
def make_tone():
    """``make_tone(path, seconds, sample_rate=16000, channels=1, subtype="PCM_16", **synth_tone kwargs)``."""
    import soundfile as sf

    def write(path, seconds, sample_rate=16000, channels=1, subtype="PCM_16", **kwargs) -> Path:
        tone = synth_tone(seconds, sample_rate, **kwargs)
        data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
        sf.write(str(path), data, sample_rate, subtype=subtype)
        return Path(path)

    return write


# ===================================================================================== trainer
# Section owned by the trainer (issue 3). Tiny trained trials for tests of the sweep and export.

TRAINED_GRU_CONFIG = {
    "decoder": "gru", "feature": "loudness", "frame_rate": 250, "hidden": 32, "fc_layers": 1, "gru_units": 32,
    "n_harmonics": 30, "n_noise_bands": 24, "learning_rate": 3e-3, "batch_size": 4, "steps": 40, "seed": 0,
    "crop_seconds": 1.0,
}
TRAINED_CNN_CONFIG = {
    "decoder": "cnn", "feature": "rms", "frame_rate": 50, "conv_channels": 16, "conv_layers": 2, "conv_stacks": 1,
    "conv_kernel": 3, "causal": True, "n_harmonics": 20, "n_noise_bands": 16, "reverb": True, "reverb_seconds": 0.1,
    "learning_rate": 3e-3, "batch_size": 4, "steps": 20, "seed": 1,
}


@pytest.fixture(scope="session")
def trained_trial(tiny_dataset, tmp_path_factory) -> Path:
    """out_dir of a finished `train_trial` on ``tiny_dataset``: GRU, loudness, 250 Hz, 40 steps on 1-s windows (~20 s).

    Holds metrics.json, config.json, weights.weights.h5, dataset_manifest.json, audio/, checkpoint/;
    rebuild the model with ``trainers.model.trained.load_trained(out_dir)``.
    """
    from trainers.training.train import train_trial

    out = tmp_path_factory.mktemp("trained_gru")
    train_trial(tiny_dataset, TRAINED_GRU_CONFIG, out, report_every=20)
    return out


@pytest.fixture(scope="session")
def trained_cnn_trial(tiny_dataset, tmp_path_factory) -> Path:
    """Like ``trained_trial`` but a causal CNN on RMS at 50 Hz with a trainable reverb, 20 steps, XLA."""
    from trainers.training.train import train_trial

    out = tmp_path_factory.mktemp("trained_cnn")
    # XLA although 20 steps of whole examples never use it (use_xla): the compiled step, which long trials
    # on short windows use, is then trained and reloaded in the default tier too
    train_trial(tiny_dataset, TRAINED_CNN_CONFIG, out, report_every=10, jit_compile=True)
    return out
# ================================================================================= end trainer
