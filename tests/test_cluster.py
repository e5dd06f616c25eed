"""Multi-node: a real `tonesweep sweep`, submitted with `ray job submit` to a two-node Ray cluster
(`ray start --head` + `ray start --address`, separate processes on 127.0.0.1), runs its trials on
both nodes (each trial's node id is an MLflow tag), and survives losing the second node mid-sweep:
Ray retries the trials it lost, the sweep finishes, and no MLflow run is left RUNNING.

``--storage`` is an object store (moto's S3 server on 127.0.0.1): the nodes share no folder with the
driver for Ray's state, the dataset or the trials' outputs; each node reads its AWS environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from support.cluster import RAY, RayCluster
from support.stores import sqlite_store

pytestmark = pytest.mark.system
TONESWEEP = str(Path(sys.executable).parent / "tonesweep")
SPACE = textwrap.dedent("""
    [hyperparameters.feature]
    type = "choice"
    values = ["loudness", "rms"]
    [hyperparameters.learning_rate]
    type = "float"
    min = 3e-4
    max = 3e-3
    sampling = "log"
    [fixed]
    decoder = "cnn"
    conv_channels = 8
    conv_layers = 2
    conv_stacks = 1
    n_harmonics = 16
    n_noise_bands = 16
    frame_rate = 50
    batch_size = 2
""")


@pytest.fixture
def cluster(store):
    store.make_bucket()
    ray_cluster = RayCluster(cpus_per_node=1, env=store.env)
    try:
        yield ray_cluster.start()
    finally:
        ray_cluster.stop()
        assert not ray_cluster.pids(), "a Ray process of the test cluster outlived stop()"


def trial_runs(uri: str) -> list:
    """The sweep's trial runs so far (none before the driver has created the experiment)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tonesweep-bansuri")
    if experiment is None:
        return []
    query = "tags.`tonesweep.sweep` = 'multi' and tags.`tonesweep.role` = 'trial'"
    return client.search_runs([experiment.experiment_id], query, max_results=1000)


def test_a_submitted_sweep_runs_on_both_nodes_and_survives_losing_one(cluster, store, tiny_dataset, tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    uri = sqlite_store(tmp_path / "mlflow.db")
    sweep = [TONESWEEP, "sweep", "--dataset", str(tiny_dataset), "--trials", "6", "--steps", "10",
             "--space", str(space), "--scheduler", "none", "--name", "multi", "--storage", f"s3://{store.bucket}/team",
             "--tracking-uri", uri]
    job = subprocess.Popen([RAY, "job", "submit", "--address", cluster.dashboard, "--", *sweep],
                           env=cluster.env, cwd=tmp_path, stdout=open(tmp_path / "job.log", "w"),
                           stderr=subprocess.STDOUT)
    try:
        # Wait until both nodes have run a trial to its end, then kill the second node's raylet
        # (its trial workers die with it) while the sweep still has trials to run.
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and job.poll() is None:
            finished = [r for r in trial_runs(uri) if r.data.tags.get("tonesweep.status") == "FINISHED"]
            if len({r.data.tags.get("tonesweep.node_id") for r in finished}) >= 2:
                break
            time.sleep(2)
        nodes_before = {r.data.tags["tonesweep.node_id"] for r in trial_runs(uri) if "tonesweep.node_id" in r.data.tags}
        assert len(nodes_before) == 2, (tmp_path / "job.log").read_text()[-3000:]
        head_raylet, second_raylet = cluster.raylet_pids()
        killed_at = time.monotonic()
        os.kill(second_raylet, signal.SIGKILL)
        code = job.wait(timeout=900)
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    log = (tmp_path / "job.log").read_text()
    assert code == 0 and "Job 'raysubmit_" in log and "succeeded" in log, log[-4000:]
    runs = trial_runs(uri)
    statuses = [r.data.tags["tonesweep.status"] for r in runs]
    assert len(runs) == 6 and len({r.data.tags["tonesweep.trial_id"] for r in runs}) == 6, statuses
    assert all(r.info.status in ("FINISHED", "FAILED") for r in runs), [r.info.status for r in runs]
    assert statuses == ["FINISHED"] * 6, statuses  # a trial lost with the node was retried, not failed
    keys = store.listing(prefix="team/multi/trials/")
    for run in runs:  # every trial's outputs reached the store from whichever node ran it
        assert f"team/multi/trials/{run.data.tags['tonesweep.trial_id']}/metrics.json" in keys, keys
    assert not (tmp_path / "runs").exists()
    print(f"two-node sweep: trials on {len(nodes_before)} nodes before the kill; the sweep ended "
          f"{time.monotonic() - killed_at:.0f} s after the second node's raylet was killed; outcomes {statuses}")
