"""Data safety: tonesweep never deletes or overwrites a file it did not write, names never escape
their folders, what it starts listens on loopback and dies with its driver, and what it writes
keeps the user's umask."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from cli.main import main
from support.sweeps import SPACE, Driver, make_datasets, session_pids, stub_manifest
from support.trials import make_trial
from common.errors import UserError
from common.paths import check_apart, check_name, contained

PREPARE_FAST = ["--frame-rates", "50", "--workers", "1"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tonesweep: error: ") and "Traceback" not in err, err
    return lines[0]


def modes(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def bundle(small_bundle) -> Path:
    """The run's small bundle (exported under umask 022): what transfer and re-export meet. Read only."""
    return small_bundle


# ---------------------------------------------------------------------------- outputs apart from inputs


def test_transfer_never_overwrites_its_input(bundle, tmp_path, make_tone, capsys):
    recording = make_tone(tmp_path / "take.wav", 3.0)
    before = recording.read_bytes()
    assert main(["transfer", "--model", str(bundle), str(recording), str(recording)]) == 2
    line = one_line_error(capsys)
    assert str(recording) in line and "is the input" in line
    assert recording.read_bytes() == before


def test_prepare_never_removes_an_input_inside_its_output(tmp_path, make_tone, capsys):
    dataset = tmp_path / "D"
    dataset.mkdir()
    take = make_tone(dataset / "take.wav", 9.0)
    assert main(["prepare", "--instrument", "tone", *PREPARE_FAST, "--out", str(dataset), str(take)]) == 2
    assert "contains the input" in one_line_error(capsys)
    assert take.is_file() and not (dataset / "manifest.json").exists()


def test_rebuilding_a_dataset_keeps_other_files_or_refuses(tmp_path, make_tone, capsys):
    take = make_tone(tmp_path / "take.wav", 9.0)
    dataset = tmp_path / "dataset"
    args = ["prepare", "--instrument", "tone", *PREPARE_FAST, "--out", str(dataset), str(take)]
    assert main(args) == 0
    capsys.readouterr()
    (dataset / "NOTES.txt").write_text("my notes")
    assert main([*args, "--seed", "1"]) == 2  # a rebuild (other options) into a folder with NOTES.txt
    assert "NOTES.txt" in one_line_error(capsys) and (dataset / "NOTES.txt").is_file()
    assert main([*args, "--seed", "1", "--force"]) == 0
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["seed"] == 1 and (dataset / "NOTES.txt").read_text() == "my notes"
    shards = {name for split in manifest["splits"].values() for name in split["shards"]}
    assert {p.name for p in dataset.iterdir()} == shards | {"manifest.json", "NOTES.txt"}


def test_re_export_keeps_a_page_beside_the_bundle_or_refuses(bundle, tmp_path, capsys):
    trial = make_trial(tmp_path / "trial", seed=4, decoder="cnn", frame_rate=50, conv_channels=8, conv_layers=2,
                       conv_stacks=1, n_harmonics=16, n_noise_bands=16)
    out = tmp_path / "site"
    args = ["export", "--instrument", "bansuri", "--out", str(out), "--run-id", str(trial), "--precision", "float32",
            "--skip-js-parity"]
    assert main(args) == 0
    capsys.readouterr()
    card = json.loads((out / "model-card.json").read_text())
    assert "tfjs/model.json" in card["files"] and "model-card.json" in card["files"]
    (out / "index.html").write_text("<html>my page</html>")
    assert main(args) == 2
    assert "index.html" in one_line_error(capsys)
    assert main([*args, "--force"]) == 0
    assert (out / "index.html").read_text() == "<html>my page</html>" and (out / "tfjs" / "model.json").is_file()


def test_demo_data_never_overwrites_or_removes_files_it_did_not_render(tmp_path):
    from trainers.data.demo import render_demo

    folder = tmp_path / "shehnai"
    folder.mkdir()
    (folder / "shehnai-0.wav").write_bytes(b"a recording of mine")
    with pytest.raises(UserError, match="not rendered by demo-data"):
        render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=1)
    assert (folder / "shehnai-0.wav").read_bytes() == b"a recording of mine"
    (folder / "shehnai-0.wav").rename(folder / "shehnai-7.wav")
    render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=1)
    render_demo(tmp_path, minutes=0.1, instruments=["shehnai"], seed=2)  # a re-render replaces only its own takes
    assert (folder / "shehnai-7.wav").read_bytes() == b"a recording of mine"


# ---------------------------------------------------------------------------- names and paths


@pytest.mark.parametrize("name", ["../../x", "..", ".hidden", "a/b", "", "x" * 65, "tab\tname", "/abs"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(UserError, match="--name"):
        check_name(name, "--name")


def test_safe_names_pass_and_paths_stay_inside(tmp_path):
    assert check_name("bansuri_v2.1-take", "--instrument") == "bansuri_v2.1-take"
    assert contained(tmp_path, "a/b.tfrecord", "shard") == tmp_path / "a" / "b.tfrecord"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    for escape in ("../x", "/etc/passwd", "link/x"):
        with pytest.raises(UserError, match="leads outside"):
            contained(tmp_path, escape, "shard")
    with pytest.raises(UserError, match="is inside the input"):
        check_apart(tmp_path / "in" / "out", [tmp_path / "in"], "--out")


def test_prepare_refuses_an_instrument_that_is_a_path(tmp_path, make_tone, capsys):
    take = make_tone(tmp_path / "take.wav", 9.0)
    code = main(["prepare", "--instrument", "../../x", *PREPARE_FAST, "--out", str(tmp_path / "d"), str(take)])
    assert code == 2 and "--instrument '../../x'" in one_line_error(capsys)
    assert not (tmp_path / "d").exists()


def test_sweep_refuses_names_that_are_paths(tmp_path, capsys):
    storage, db = tmp_path / "runs", tmp_path / "m.db"
    [dataset] = make_datasets(tmp_path, ["bansuri"])
    base = ["sweep", "--trials", "1", "--storage", str(storage), "--tracking-uri", f"sqlite:///{db}"]
    assert main([*base, "--dataset", dataset, "--name", "../escaped"]) == 2
    assert "--name '../escaped'" in one_line_error(capsys)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "manifest.json").write_text(json.dumps(stub_manifest("../../x")))
    assert main([*base, "--dataset", str(evil), "--name", "ok"]) == 2
    assert "instrument '../../x'" in one_line_error(capsys)
    assert not storage.exists() and not db.exists() and not (tmp_path / "escaped").exists()


# ---------------------------------------------------------------------------- services: loopback, no orphans


def listening(pids) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket of these processes."""
    names = {}
    for pid in pids:
        try:
            names[pid] = psutil.Process(pid).name()
        except psutil.Error:
            pass
    return [(names[c.pid], c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in names]


def is_loopback(address: str) -> bool:
    return address in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or address.startswith("127.")


def sweep_driver(tmp_path: Path, trials: int = 4, sleep: str = "0.5") -> Driver:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    settings = {"datasets": make_datasets(tmp_path, ["sarangi"]), "trials": trials, "space": str(space),
                "steps": 40, "report_every": 10, "name": "net", "storage": str(tmp_path / "runs"),
                "scheduler": "none", "max_params": 60_000}
    return Driver(tmp_path, settings, env={"FAKE_SLEEP": sleep})


def wait_for(predicate, timeout: float, driver: Driver, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if driver.process.poll() is not None:
            pytest.fail(f"driver exited before {what}:\n{driver.output()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"no {what} within {timeout} s:\n{driver.output()[-3000:]}")


def test_the_ray_a_sweep_starts_listens_on_loopback_and_dies_with_its_driver(tmp_path):
    """A sweep that starts its own Ray: every socket of its processes on loopback; after a SIGKILL of
    the driver, the reaper stops every Ray process within seconds."""
    driver = sweep_driver(tmp_path, trials=6, sleep="1.0")
    session = driver.process.pid
    try:
        wait_for(lambda: "sweep net:" in driver.output(), 180, driver, "Ray started")
        time.sleep(4)  # trial workers and Ray's agents up, the reaper told about them
        seen = listening(session_pids(session))
        names = {name for name, _, _ in seen}
        assert any("gcs" in n or "raylet" in n for n in names), seen  # Ray's own servers were looked at
        exposed = [s for s in seen if not is_loopback(s[1])]
        assert not exposed, exposed
        print(f"{len(seen)} listening sockets of the sweep's processes, all on loopback")
        assert len(session_pids(session)) > 3
        driver.process.kill()
        driver.process.wait()
        killed = time.monotonic()
        while session_pids(session) and time.monotonic() - killed < 10:
            time.sleep(0.2)
        left = [(pid, psutil.Process(pid).name()) for pid in session_pids(session) if psutil.pid_exists(pid)]
        assert not left, f"still running {time.monotonic() - killed:.1f} s after the driver's SIGKILL: {left}"
        print(f"every Ray process gone {time.monotonic() - killed:.1f} s after the driver's SIGKILL")
    finally:
        driver.stop()


# ---------------------------------------------------------------------------- interrupted work, modes


def test_stale_temporaries_are_removed_by_the_next_run_even_on_a_cache_hit(tmp_path, make_tone):
    from search.algorithms.kerastuner_searcher import SCRATCH_PREFIX, _scratch_dir
    from trainers.data.prepare import PrepareOptions, prepare_dataset
    from trainers.data.features import FeatureParams

    take = make_tone(tmp_path / "take.wav", 9.0)
    options = PrepareOptions(instrument="tone", features=FeatureParams(frame_rates=(50,)))
    prepare_dataset([take], tmp_path / "dataset", options, workers=1)
    debris = tmp_path / ".dataset.tmp-999999999-deadbeef"  # a SIGKILLed prepare's staging folder
    debris.mkdir()
    assert prepare_dataset([take], tmp_path / "dataset", options, workers=1)["cache_hit"]
    assert not debris.exists()

    scratch = Path(tempfile.gettempdir()) / f"{SCRATCH_PREFIX}999999999-dead"
    scratch.mkdir(exist_ok=True)
    import search.algorithms.kerastuner_searcher as searcher_module

    searcher_module._SCRATCH = None
    _scratch_dir()
    assert not scratch.exists()


def test_export_removes_what_a_killed_export_left(tmp_path):
    from trainers.export import bundle as export

    trial = make_trial(tmp_path / "trial", seed=5, decoder="cnn", frame_rate=50, conv_channels=8, conv_layers=2,
                       conv_stacks=1, n_harmonics=16, n_noise_bands=16)
    debris = tmp_path / ".bundle.tmp-999999999-cafe"
    debris.mkdir()
    (debris / "model.json").write_text("{}")
    export.export_bundle(export.local_trial(trial), tmp_path / "bundle", "bansuri", "float16", js_parity=False)
    assert not debris.exists()


def test_datasets_and_bundles_get_the_users_umask(bundle, tmp_path, make_tone):
    from trainers.data.prepare import PrepareOptions, prepare_dataset
    from trainers.data.features import FeatureParams

    old = os.umask(0o022)
    try:
        take = make_tone(tmp_path / "take.wav", 9.0)
        options = PrepareOptions(instrument="tone", features=FeatureParams(frame_rates=(50,)))
        prepare_dataset([take], tmp_path / "dataset", options, workers=1)
    finally:
        os.umask(old)
    assert modes(tmp_path / "dataset") == 0o755 and modes(tmp_path / "dataset" / "manifest.json") == 0o644
    assert {modes(p) for p in (tmp_path / "dataset").iterdir()} == {0o644}
    assert modes(bundle) == 0o755 and modes(bundle / "model-card.json") == 0o644  # exported under umask 022
    assert modes(bundle / "tfjs") == 0o755 and modes(bundle / "tfjs" / "model.json") == 0o644


# Modules and calls that turn file bytes into Python objects (and so can run code): tonesweep reads
# datasets, spaces, bundles, trial folders and object-store files as JSON, TOML, WAV, TFRecord and
# TensorFlow checkpoints only. (Ray's own Tuner.restore loads the experiment state Ray pickled, read back
# only once the driver's key has checked it:
# docs/architecture.md, "Shared storage".)
UNPICKLERS = {"pickle", "cloudpickle", "dill", "joblib", "marshal", "shelve", "jsonpickle"}
UNPICKLING_CALLS = {"read_pickle", "load_pickle"}


def unpickling_in(path: Path) -> list[str]:
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in UNPICKLERS]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in UNPICKLERS:
            found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr in UNPICKLING_CALLS:
            found.append(node.attr)
        elif isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "safe_mode"):
            found.append(f"{node.arg}=")  # np.load(allow_pickle=...), keras load_model(safe_mode=...)
    return found


def test_nothing_a_user_hands_in_is_unpickled():
    root = Path(__file__).resolve().parents[1]
    offenders = {str(p.relative_to(root)): unpickling_in(p)
                 for package in ("cli", "common", "cluster", "server", "web", "search", "spaces", "trainers", "results")
                 for p in (root / package).rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}, offenders
