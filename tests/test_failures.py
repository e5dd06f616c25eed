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
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.main import main
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
    uri = f"sqlite:///{root / 'mlflow.db'}"
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
    ("transfer-shard-truncated", lambda r, u: ["transfer", "--model", str(_truncate_shard(r)), f"{r}/take.wav", f"{r}/o2.wav"], 2, "shards do not match"),
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

    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    [dataset] = make_datasets(tmp_path, ["sarangi"])
    script = tmp_path / "cli_driver.py"
    script.write_text(_DRIVER)
    command = [sys.executable, str(script), "sweep", "--dataset", dataset, "--trials", "6", "--space", str(space),
               "--steps", "200", "--name", "stop", "--storage", str(tmp_path / "runs"), "--scheduler", "none",
               "--address", ray_head.address]
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
