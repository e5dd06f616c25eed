"""`--storage s3://bucket/prefix`: a sweep whose state, trial folders and bookkeeping live in an
S3-compatible object store (moto's server on 127.0.0.1), resumed from there after its driver was
killed, tracked by a `tonesweep tracking-server`; and the object-store mistakes a user can make.

Every server and driver a test starts is stopped by PID at the end, also on failure.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cli.main import main
from support.servers import START_S
from results import layout
from support.sweeps import (SPACE, TERMINAL, Driver, make_datasets, run_driver, starts_per_trial, sweep_runs,
                            wait_for_ended_trials)
from common.net import free_port


TRIALS = 9


def stand_in_settings(tmp_path: Path, storage: str, name: str, trials: int) -> dict:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return {"datasets": make_datasets(tmp_path, ["sarangi"]), "trials": trials, "space": str(space),
            "steps": 60, "report_every": 10, "name": name, "storage": storage, "max_params": 60_000,
            "seed": 5, "scheduler": "none"}


def test_a_sweep_in_the_object_store_keeps_its_files_there_and_resumes_from_there(
        store, tracking_server, tmp_path, ray_head):
    """NSGA-II + MO-ASHA with ``--storage s3://...`` and the run's tracking server: SIGKILL the driver
    mid-sweep, plant a run the searcher never saw, wipe nothing by hand, ``--resume`` in a new driver.

    It reads Ray's state and its own bookkeeping back from the bucket: trials that ended before the
    kill are neither duplicated nor trained again, MO-ASHA judges no trial twice, the planted run
    counts against the budget once and ends FAILED. In the end Ray's state, every trial's folder and
    the driver's bookkeeping are in the bucket, finished trials' artifacts were logged from there,
    and nothing is left on the local disk: no ``runs/``, no scratch folder of a trial or a download.
    """
    from mlflow import MlflowClient

    store.make_bucket()
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("tonesweep-trial-*")) | set(scratch.glob("tonesweep-fetch-*"))
    settings = {**stand_in_settings(tmp_path, f"s3://{store.bucket}/team/sweeps", "crash", trials=TRIALS),
                "algorithm": "nsga2", "scheduler": "moasha", "seed": 2}
    sweep = "team/sweeps/crash"
    env = {**store.env, "MLFLOW_TRACKING_URI": tracking_server.uri}

    driver = Driver(tmp_path, settings, env={**env, "FAKE_SLEEP": "0.3"}, cluster=ray_head)  # ~2 s a trial
    try:
        wait_for_ended_trials(driver, 3, timeout=240)
        time.sleep(3)  # > the 1 s of Ray's state saving and of the bookkeeping upload
        decided = json.loads(store.read(f"{sweep}/sarangi/moasha-state.json"))["decisions"]
        killed_at_ms = time.time() * 1000
        driver.process.kill()
        driver.process.wait()
    finally:
        driver.stop()
    assert decided, "MO-ASHA decided nothing before the kill"

    client = MlflowClient(tracking_server.uri)
    parent, runs_before = sweep_runs(client, "sarangi", "crash")
    saved_done = {r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in runs_before
                  if r.info.status != "RUNNING" and r.info.end_time and r.info.end_time < killed_at_ms - 2000}
    assert len(saved_done) >= 2, [(r.data.tags, r.info.status) for r in runs_before]
    # A trial started in the second before the kill is in MLflow (RUNNING) but not in Ray's saved
    # state (it may happen for real too): it used budget, and the resumed sweep ends it as failed.
    client.create_run(parent.info.experiment_id, run_name="crash-lost0001",
                      tags={layout.PARENT_TAG: parent.info.run_id, layout.ROLE_TAG: layout.ROLE_TRIAL,
                            layout.SWEEP_TAG: "crash", layout.TRIAL_ID_TAG: "lost0001", layout.STATUS_TAG: "RUNNING"})
    snapshot = json.loads(ray_state_file(store, f"{sweep}/sarangi", "searcher-state-"))  # as Ray last saved it
    _, runs_before = sweep_runs(client, "sarangi", "crash")
    unknown = {r.data.tags["tonesweep.trial_id"] for r in runs_before} - set(snapshot["configs"])  # lost0001 at least

    # Pickles planted where the store's Ray state was kept before it was signed, and among the signed
    # objects: the resumed driver reads only what its key signed, so none of them is unpickled.
    marker = tmp_path / "planted-pickle-ran"
    planted = malicious_pickle(marker)
    for key in (f"{sweep}/sarangi/tuner.pkl", f"{sweep}/sarangi/experiment_state-2099-01-01_00-00-00.json",
                f"{sweep}/sarangi/ray-state/{hashlib.sha256(planted).hexdigest()}"):
        store.client().put_object(Bucket=store.bucket, Key=key, Body=planted)
    output = run_driver(tmp_path, {**settings, "resume": True}, timeout=300, env={**env, "FAKE_SLEEP": "0.02"},
                        cluster=ray_head)
    assert not marker.exists(), "a pickle planted in the store was unpickled"
    assert f"resuming from s3://{store.bucket}/{sweep}/sarangi" in output and f"done {TRIALS}/{TRIALS}" in output \
        and "left RUNNING" in output, output[-3000:]

    # resumed: nothing duplicated, re-trained or re-judged; the budget counted what the searcher never saw
    parent, runs = sweep_runs(client, "sarangi", "crash")
    ids = [r.data.tags["tonesweep.trial_id"] for r in runs]
    print(f"driver killed with {len(saved_done)} trials done; after --resume: {len(runs)} runs, "
          f"{len(ids) - len(set(ids))} duplicates")
    assert "lost0001" in unknown and "lost0001" in ids
    assert len(ids) == len(set(ids)) == max(TRIALS, snapshot["asked"] + len(unknown)), \
        (ids, snapshot["asked"], unknown)
    assert not [r for r in runs if r.info.status == "RUNNING"] and parent.info.status == "FINISHED"
    assert {r.data.tags["tonesweep.status"] for r in runs} <= TERMINAL
    assert [r.data.tags["tonesweep.status"] for r in runs if r.data.tags["tonesweep.trial_id"] == "lost0001"] == ["FAILED"]
    run_ids = {r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in runs}
    starts = starts_per_trial((tmp_path / "fake.log").read_text())
    for trial_id, run_id in saved_done.items():
        assert run_ids[trial_id] == run_id
        assert starts.get(trial_id, 0) <= 1, f"trial {trial_id}, ended before the kill, was trained again"
    after = json.loads(store.read(f"{sweep}/sarangi/moasha-state.json"))["decisions"]
    for trial_id, verdicts in decided.items():
        assert {m: v for m, v in after[trial_id].items() if m in verdicts} == verdicts, trial_id  # none re-judged

    # every file where it belongs: in the bucket, none on this disk
    keys = store.listing(prefix=f"{sweep}/")
    assert json.loads(store.read(f"{sweep}/sweep.json"))["name"] == "crash"
    assert json.loads(ray_state_file(store, f"{sweep}/sarangi", "experiment_state-"))["trial_data"], keys
    finished = [r for r in runs if r.data.tags["tonesweep.status"] == "FINISHED"]
    assert finished, [r.data.tags["tonesweep.status"] for r in runs]
    for run in finished:
        prefix = f"{sweep}/trials/{run.data.tags['tonesweep.trial_id']}/"
        assert {prefix + "metrics.json", prefix + "audio/original.wav"} <= set(keys), prefix
        assert "trial/metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id, "trial")}
        stored = json.loads(store.read(prefix + "metrics.json"))
        assert run.data.metrics["quality_float32"] == pytest.approx(stored["quality_float32"])
    assert not (tmp_path / "runs").exists()  # the default folder untouched
    left = (set(scratch.glob("tonesweep-trial-*")) | set(scratch.glob("tonesweep-fetch-*"))) - before
    assert not left, f"scratch folders left behind: {sorted(p.name for p in left)}"


def ray_state_file(store, experiment: str, prefix: str) -> bytes:
    """The newest of Ray's files named ``prefix...`` in an experiment's signed state in the store."""
    manifest = json.loads(store.read(f"{experiment}/ray-state/manifest.json"))
    name = sorted(n for n in manifest["files"] if n.startswith(prefix))[-1]
    return store.client().get_object(Bucket=store.bucket,
                                     Key=f"{experiment}/ray-state/{manifest['files'][name]}")["Body"].read()


class _Planted:
    """Unpickled, it creates the file it names: what an attacker with write access to the store would
    plant, made harmless."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious_pickle(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(_Planted(marker))


def test_ray_state_in_a_store_is_signed_and_nothing_unsigned_is_read_back(store, tmp_path, monkeypatch):
    """Ray's state goes up signed under the account's key; ``--resume``'s download checks the signature
    and every object before writing anything: a forged manifest, an object swapped for a pickle, a
    manifest another key signed, and state saved unsigned are each one line and nothing is written.
    (Nothing here unpickles: the planted pickle's marker proves it stays that way.)"""
    from cluster.object_store import Remote
    from common.errors import UserError
    from search.ray_state import RayStateUpload, download_ray_state

    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    remote = Remote(f"s3://{store.bucket}/runs/s")
    experiment = tmp_path / "scratch" / "bansuri"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"\x80\x05K\x01.")  # pickle of 1
    (experiment / "experiment_state-x.json").write_text('{"trial_data": []}')
    (experiment / "moasha-state.json").write_text("{}")  # tonesweep's own bookkeeping: not Ray's state
    (experiment / "searcher-state-x.pkl").write_bytes(b"\x80\x05K")  # cut short while Ray writes it
    upload = RayStateUpload(experiment.parent, remote, {"moasha-state.json"})
    upload()
    (experiment / "searcher-state-x.pkl").write_bytes(b"\x80\x05K\x02.")
    upload()

    back = tmp_path / "back"
    assert download_ray_state(remote, "bansuri", back)
    assert sorted(p.name for p in back.iterdir()) == ["experiment_state-x.json", "searcher-state-x.pkl", "tuner.pkl"]
    assert (back / "searcher-state-x.pkl").read_bytes() == b"\x80\x05K\x02."
    state = "runs/s/bansuri/ray-state"
    assert len(store.listing(prefix=f"{state}/")) == 4  # the manifest and three objects: the replaced one deleted

    marker = tmp_path / "planted-pickle-ran"
    planted = malicious_pickle(marker)
    digest = hashlib.sha256(planted).hexdigest()
    store.client().put_object(Bucket=store.bucket, Key=f"{state}/{digest}", Body=planted)
    manifest = json.loads(store.read(f"{state}/manifest.json"))
    honest = json.dumps(manifest).encode()

    def refused(match: str) -> None:
        target = tmp_path / "refused"
        with pytest.raises(UserError, match=match) as caught:
            download_ray_state(remote, "bansuri", target)
        assert "\n" not in str(caught.value) and not target.exists() and not marker.exists()

    forged = {**manifest, "files": {**manifest["files"], "tuner.pkl": digest}}
    store.client().put_object(Bucket=store.bucket, Key=f"{state}/manifest.json", Body=json.dumps(forged).encode())
    refused("signature does not match")
    swapped = manifest["files"]["tuner.pkl"]
    store.client().put_object(Bucket=store.bucket, Key=f"{state}/manifest.json", Body=honest)
    store.client().put_object(Bucket=store.bucket, Key=f"{state}/{swapped}", Body=planted)
    refused("not what the signed manifest names")
    monkeypatch.setenv("TONESWEEP_STATE_KEY", "ab" * 32)
    refused("signed with another sweep key")
    monkeypatch.delenv("TONESWEEP_STATE_KEY")
    for key in store.listing(prefix=f"{state}/"):
        store.client().delete_object(Bucket=store.bucket, Key=key)
    store.client().put_object(Bucket=store.bucket, Key="runs/s/bansuri/tuner.pkl", Body=planted)
    refused("saved unsigned")
    store.client().delete_object(Bucket=store.bucket, Key="runs/s/bansuri/tuner.pkl")
    assert not download_ray_state(remote, "bansuri", tmp_path / "none")  # no state saved yet: a new Tuner


@pytest.mark.parametrize("planted", ["forged manifest", "unsigned state"])
def test_resume_refuses_ray_state_it_did_not_sign_in_one_line(store, tmp_path, capsys, monkeypatch, planted):
    """``sweep --resume`` of a sweep in a store whose Ray state was planted there: one line, exit 2, the
    planted pickle never unpickled, no scratch copy left on this machine."""
    from cluster.object_store import Remote
    from search.place import driver_folder_path
    from search.ray_state import RayStateUpload

    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    [dataset] = make_datasets(tmp_path, ["sarangi"])
    marker = tmp_path / "planted-pickle-ran"
    planted_bytes = malicious_pickle(marker)
    store.client().put_object(Bucket=store.bucket, Key="runs/s/sweep.json", Body=b'{"name": "s"}')
    if planted == "forged manifest":  # a signed manifest, then its tuner.pkl swapped for the planted pickle
        experiment = tmp_path / "scratch" / "sarangi"
        experiment.mkdir(parents=True)
        (experiment / "tuner.pkl").write_bytes(b"\x80\x05K\x01.")
        RayStateUpload(experiment.parent, Remote(f"s3://{store.bucket}/runs/s"), set())()
        state = "runs/s/sarangi/ray-state"
        manifest = json.loads(store.read(f"{state}/manifest.json"))
        digest = hashlib.sha256(planted_bytes).hexdigest()
        store.client().put_object(Bucket=store.bucket, Key=f"{state}/{digest}", Body=planted_bytes)
        manifest["files"]["tuner.pkl"] = digest
        store.client().put_object(Bucket=store.bucket, Key=f"{state}/manifest.json", Body=json.dumps(manifest).encode())
        named = "signature does not match"
    else:
        store.client().put_object(Bucket=store.bucket, Key="runs/s/sarangi/tuner.pkl", Body=planted_bytes)
        named = "saved unsigned"
    code = main(["sweep", "--dataset", dataset, "--trials", "2", "--storage", f"s3://{store.bucket}/runs",
                 "--name", "s", "--resume"])
    line = one_line(capsys)
    assert code == 2 and named in line and "not resumed" in line, line
    assert not marker.exists(), "the planted pickle was unpickled"
    assert not driver_folder_path(Remote(f"s3://{store.bucket}/runs/s")).exists()


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case, storage, named", [
    ("no credentials", "s3://BUCKET/p", "no AWS credentials"),
    ("no bucket", "s3://no-such-bucket/p", "no bucket 'no-such-bucket'"),
    ("unreachable", "s3://BUCKET/p", "did not answer"),
    ("wrong scheme", "gs://bucket/p", "gs:// is not supported"),
    ("bad bucket name", "s3://Bad_Bucket/p", "not a bucket name"),
    ("escaping prefix", "s3://BUCKET/p/../q", "prefix part"),
])
def test_object_store_mistakes_are_one_line_and_write_nothing(store, tmp_path, capsys, monkeypatch,
                                                             case, storage, named):
    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    if case == "no credentials":
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    if case == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.chdir(tmp_path)
    datasets = make_datasets(tmp_path, ["sarangi"])
    storage = storage.replace("BUCKET", store.bucket)  # the test's own bucket
    code = main(["sweep", "--dataset", datasets[0], "--trials", "2", "--storage", storage, "--name", "x"])
    line = one_line(capsys)
    assert code == 2 and named in line and "--storage" in line, (code, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets"], "something was written"
    assert store.listing() == []


def test_a_tracking_server_refuses_an_artifact_root_in_a_missing_bucket_before_it_starts(store, tmp_path, capsys,
                                                                                        monkeypatch):
    """``--artifact-root s3://...`` is checked as ``--storage`` is: no server (and no PostgreSQL) starts
    on a bucket that is not there."""
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    code = main(["tracking-server", "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}",
                 "--artifact-root", f"s3://{store.bucket}/artifacts", "--port", str(free_port())])
    line = one_line(capsys)
    assert code == 2 and "--artifact-root" in line and f"no bucket '{store.bucket}'" in line, line
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_in_the_store_is_locked_there(store, tmp_path, capsys, monkeypatch):
    """One driver per sweep name in a store: a lock object written with a conditional write; a live
    holder refuses the second driver in one line, a holder that has ended is taken over, said so."""
    import os
    import socket
    import subprocess

    from cluster.object_store import Remote, object_lock
    from common.errors import UserError

    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    key = "runs/same.lock"
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "command": "tonesweep sweep ...", "since": "now"}
    store.client().put_object(Bucket=store.bucket, Key=key, Body=json.dumps(holder).encode())
    [dataset] = make_datasets(tmp_path, ["sarangi"])
    code = main(["sweep", "--dataset", dataset, "--trials", "2", "--storage", f"s3://{store.bucket}/runs", "--name", "same"])
    line = one_line(capsys)
    assert code == 2 and f"PID {os.getppid()}" in line and f"s3://{store.bucket}/{key}" in line, line
    assert store.listing() == [key]  # the holder's lock is left alone

    ended = subprocess.Popen(["true"])
    ended.wait()  # a PID that no longer runs: a driver that was killed
    store.client().put_object(Bucket=store.bucket, Key=key, Body=json.dumps({**holder, "pid": ended.pid}).encode())
    said, remote = [], Remote(f"s3://{store.bucket}/runs/same")
    with object_lock(remote, "sweep same", "--name", took_over=said.append):
        assert json.loads(store.read(key))["pid"] == os.getpid()
        with pytest.raises(UserError, match=f"PID {os.getpid()}"):  # and now it holds against a second one
            with object_lock(remote, "sweep same", "--name"):
                pass
    assert len(said) == 1 and f"PID {ended.pid}" in said[0]
    assert store.listing() == []  # released


def test_a_trial_folder_in_the_store_resumes_and_mirrors(store, monkeypatch):
    """TrialFolder: a resumed trial gets what an earlier attempt uploaded; each report mirrors the
    checkpoint (stale checkpoint files removed from the store); finish uploads the folder; close
    removes the node's scratch."""
    from search.trial_folder import TrialFolder

    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    s3 = store.client()
    s3.put_object(Bucket=store.bucket, Key="s/trials/t1/checkpoint/ckpt-10.index", Body=b"old")
    s3.put_object(Bucket=store.bucket, Key="s/trials/t1/checkpoint/checkpoint", Body=b"ckpt-10")

    folder = TrialFolder(f"s3://{store.bucket}/s/trials", "t1")
    assert (folder.local / "checkpoint" / "checkpoint").read_bytes() == b"ckpt-10"
    assert folder.location == f"s3://{store.bucket}/s/trials/t1"
    (folder.local / "checkpoint" / "ckpt-10.index").unlink()  # the trainer keeps one checkpoint
    (folder.local / "checkpoint" / "ckpt-20.index").write_bytes(b"new")
    (folder.local / "checkpoint" / "checkpoint").write_bytes(b"ckpt-20")
    folder.report()
    assert sorted(store.listing(prefix="s/trials/t1/")) == ["s/trials/t1/checkpoint/checkpoint",
                                                            "s/trials/t1/checkpoint/ckpt-20.index"]
    (folder.local / "metrics.json").write_text("{}")
    folder.finish()
    assert "s/trials/t1/metrics.json" in store.listing(prefix="s/trials/t1/")
    scratch = folder.local.parent
    folder.close()
    assert not scratch.exists()
    with pytest.raises(Exception, match="trial id"):
        TrialFolder(f"s3://{store.bucket}/s/trials", "../escape")


@pytest.mark.system
def test_team_path_sweep_pareto_export_on_the_server_and_the_store(store, servers, reachable_dir, tmp_path,
                                                                   request, monkeypatch, capsys):
    """The real trainer end to end in team mode: `tracking-server` with its artifact root in the
    bucket, `sweep --storage s3://...` (dataset published to the store, trials read it from there),
    `pareto` sets the champion, `export` builds the bundle from the server's artifacts."""
    dataset = request.getfixturevalue("tiny_dataset")
    store.make_bucket()
    for key, value in store.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # pareto writes its plot to the working folder
    port = free_port()
    server = servers("tracking-server", "--port", str(port), "--pg-data", str(reachable_dir / "postgres"),
                     "--artifact-root", f"s3://{store.bucket}/mlflow", cwd=tmp_path)
    server.wait_for("no tonesweep experiments yet", START_S)
    uri = f"http://127.0.0.1:{port}"
    space = tmp_path / "space.toml"
    space.write_text('[hyperparameters.n_harmonics]\ntype = "choice"\nvalues = [8, 16]\n'
                     '[fixed]\ndecoder = "cnn"\nfeature = "rms"\nconv_channels = 8\nconv_layers = 2\n'
                     'conv_stacks = 1\nn_noise_bands = 8\nframe_rate = 50\nbatch_size = 2\n')
    command = [sys.executable, "-m", "cli", "sweep", "--dataset", str(dataset), "--trials", "2",
               "--space", str(space), "--steps", "10", "--name", "team", "--scheduler", "none",
               "--storage", f"s3://{store.bucket}/sweeps", "--tracking-uri", uri]
    output = run_driver(tmp_path, {}, timeout=900, env={"MLFLOW_TRACKING_URI": uri}, module_args=command)
    assert "done 2/2" in output, output[-3000:]
    keys = store.listing()
    assert [k for k in keys if k.startswith("sweeps/datasets/bansuri-") and k.endswith("/manifest.json")], keys
    assert [k for k in keys if k.startswith("mlflow/") and k.endswith("/trial/metrics.json")], keys
    assert not (tmp_path / "runs").exists()

    assert main(["pareto", "--instrument", "bansuri", "--sweep", "team", "--min-rtf", "0",
                 "--tracking-uri", uri]) == 0, capsys.readouterr()
    bundle = tmp_path / "bundle"
    assert main(["export", "--instrument", "bansuri", "--out", str(bundle), "--tracking-uri", uri]) == 0, \
        capsys.readouterr()
    card = json.loads((bundle / "model-card.json").read_text())
    assert card["parity"]["tfjs_node_wasm"]["snr_db"] >= 40, card["parity"]
    assert (bundle / "tfjs" / "model.json").is_file()
