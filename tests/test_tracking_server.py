"""Team mode: `tonesweep tracking-server` on its own PostgreSQL, end to end, and what it refuses;
`tonesweep ui`'s links to the runs tables.

The servers run as `tonesweep` subprocesses in their own session (``support.servers``): the
``servers`` fixture records every process of their trees while a test runs and kills what is left
by PID at the end, also when the test fails.
"""

from __future__ import annotations

import random
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

from results.registry import champion
from common.net import free_port
from results.synthetic import log_sweep, synthetic_trial
from results.tracking import (MAX_PARAM_CHARS, TrialTracker, child_runs, ensure_experiment, make_client,
                              start_parent_run)
from cli.main import main
from support.servers import START_S, Server, is_loopback, port_is_free
from support.stores import sqlite_store
from support.sweeps import SPACE, Driver, make_datasets


def stop_and_check_nothing_is_left(server: Server, ports: list[int]) -> None:
    processes = server.tree()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, server.output()[-3000:]
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert all(port_is_free(port) for port in ports), ports


def postgres_port(server: Server) -> int:
    """From the line ``tracking-server: PostgreSQL 15 on 127.0.0.1:PORT, data ...``."""
    return int(server.wait_for("tracking-server: PostgreSQL ", 1).split("127.0.0.1:")[1].split(",")[0])


def listening(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    names = {p.pid: p.name() for p in processes if p.is_running()}
    return [(names[c.pid], c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in names]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tonesweep:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


# ---------------------------------------------------------------------------- end to end


def test_a_team_server_on_its_own_postgres(servers, reachable_dir, tmp_path, capsys):
    port, pg_data, artifacts = free_port(), reachable_dir / "postgres", tmp_path / "artifacts"
    args = ["tracking-server", "--port", str(port), "--pg-data", str(pg_data), "--artifact-root", str(artifacts)]
    uri = f"http://127.0.0.1:{port}"

    first = servers(*args, cwd=tmp_path)
    first.wait_for("no tonesweep experiments yet", START_S)
    assert f"MLFLOW_TRACKING_URI={uri}" in first.output() and f"--tracking-uri {uri}" in first.output()
    pg_port = postgres_port(first)

    client = MlflowClient(tracking_uri=uri)
    log_sweep(client, "sitar", "team", [synthetic_trial(random.Random(5)) for _ in range(12)])
    assert main(["pareto", "--instrument", "sitar", "--sweep", "team", "--min-rtf", "0", "--tracking-uri", uri,
                 "--plot", str(tmp_path / "pareto.png")]) == 0, capsys.readouterr()
    assert "models:/tonesweep-sitar@champion" in capsys.readouterr().out
    assert champion(client, "sitar") is not None
    assert list(artifacts.rglob("pareto.png")), "the plot was not stored through the server"
    stop_and_check_nothing_is_left(first, [port, pg_port])

    second = servers(*args, cwd=tmp_path)  # the same data folder: reused, the sweep and champion kept
    line = second.wait_for("runs of sitar: ", START_S)
    experiment_id = client.get_experiment_by_name("tonesweep-sitar").experiment_id
    assert line == (f"runs of sitar: {uri}/#/experiments/{experiment_id}/runs"
                    "?workflowType=machine_learning&viewStateShareKey=tonesweep")
    assert list(artifacts.rglob("size-vs-quality.html")), "the interactive view was not stored through the server"
    assert client.search_logged_models([experiment_id]), "the front was not logged as models through the server"
    assert champion(client, "sitar") is not None
    seen = listening(second.tree())
    pg_port = postgres_port(second)
    assert {p for _, _, p in seen} >= {port, pg_port} and "postgres" in {name for name, _, _ in seen}, seen
    assert not [s for s in seen if not is_loopback(s[1])], seen
    stop_and_check_nothing_is_left(second, [port, pg_port])


def test_a_long_param_is_stored_and_a_hundred_trials_log_at_once(tracking_server, tmp_path):
    """On the run's PostgreSQL-backed server (PostgreSQL enforces MLflow's limits where SQLite does not)."""
    check_a_long_param_is_stored(MlflowClient(tracking_uri=tracking_server.uri), tmp_path)
    check_a_hundred_trials_log_at_once(tracking_server.uri, tmp_path)


def check_a_long_param_is_stored(client: MlflowClient, dataset: Path) -> None:
    """A param beyond MLflow's limit: cut to the limit, and whole as an artifact."""
    long_space = "/data/" + "deep/" * 3000 + "space.toml"
    experiment_id = ensure_experiment(client, "sitar")
    run_id = start_parent_run(client, experiment_id, "long-param", "sitar", str(dataset), "random",
                              {"space": long_space, "trials": 3})
    params = client.get_run(run_id).data.params
    assert params["trials"] == "3" and len(params["space"]) == MAX_PARAM_CHARS
    assert long_space.startswith(params["space"].split("...[truncated")[0])
    full = client.download_artifacts(run_id, "params/space.txt", str(dataset))
    assert Path(full).read_text() == long_space


def check_a_hundred_trials_log_at_once(uri: str, dataset: Path) -> None:
    """100 trials, 16 at a time, each through its own driver-side tracker: 0 lost, 0 duplicated."""
    from concurrent.futures import ThreadPoolExecutor

    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "tabla")
    parent = start_parent_run(client, experiment_id, "crowd", "tabla", str(dataset), "random", {"trials": 100})

    def one_trial(i: int) -> None:
        tracker = TrialTracker(uri, experiment_id, parent, "crowd", "tabla", artifacts=False)
        trial_id, config = f"t{i:03d}", {"decoder": "cnn", "learning_rate": 1e-4 * (i + 1)}
        tracker.open(trial_id, config)
        for step in (10, 20):
            tracker.curve(trial_id, config, {"step": step, "val_loss": 1 / step, "train_loss": 2 / step})
        tracker.close(trial_id, config, {"step": 20, "val_loss": 0.05, "status": "FINISHED", "quality_float32": i},
                      errored=False)

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one_trial, range(100)))  # re-raises any tracking error (raised under tests)
    runs = child_runs(client, experiment_id, parent)
    ids = sorted(r.data.tags["tonesweep.trial_id"] for r in runs)
    assert ids == [f"t{i:03d}" for i in range(100)]  # none lost, none twice
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["quality_float32"] for r in runs) == list(range(100))
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")] == [10, 20]
    print(f"100 trials logged 16 at a time to the PostgreSQL-backed server in {time.perf_counter() - start:.1f} s")


@pytest.mark.system
def test_a_server_restart_mid_sweep_loses_nothing(servers, reachable_dir, tmp_path, ray_head):
    """The tracking server stops and comes back while a sweep logs to it: the driver's MLflow client
    retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES, exponential backoff) until it is back, so every trial
    that finished has its metrics, curves and artifacts, and no run is left RUNNING."""
    port = free_port()
    args = ["tracking-server", "--port", str(port), "--pg-data", str(reachable_dir / "postgres"),
            "--artifact-root", str(tmp_path / "artifacts")]
    uri = f"http://127.0.0.1:{port}"
    server = servers(*args, cwd=tmp_path)
    server.wait_for("no tonesweep experiments yet", START_S)
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    settings = {"datasets": make_datasets(tmp_path, ["bansuri"]), "trials": 8, "space": str(space), "steps": 40,
                "report_every": 10, "name": "restart", "storage": str(tmp_path / "runs"), "scheduler": "none"}
    driver = Driver(tmp_path, settings, env={"MLFLOW_TRACKING_URI": uri, "FAKE_SLEEP": "1.0"}, cluster=ray_head)
    try:
        client = MlflowClient(uri)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and driver.process.poll() is None and len(finished_runs(client)) < 2:
            time.sleep(1)
        assert len(finished_runs(client)) >= 2, driver.output()[-3000:]
        stop_and_check_nothing_is_left(server, [port])  # the server is gone while trials end
        down_at = time.monotonic()
        time.sleep(5)
        server = servers(*args, cwd=tmp_path)
        server.wait_for("runs of bansuri: ", START_S)
        print(f"tracking server down for {time.monotonic() - down_at:.1f} s mid-sweep")
        assert driver.wait(600) == 0, driver.output()[-4000:]
    finally:
        driver.stop()
    runs = [r for r in all_trial_runs(client)]
    statuses = [r.data.tags["tonesweep.status"] for r in runs]
    assert len(runs) == 8 and {r.info.status for r in runs} <= {"FINISHED", "FAILED"}, statuses
    assert "FINISHED" in statuses and set(statuses) <= {"FINISHED", "FAILED"}, statuses
    for run in runs:
        if run.data.tags["tonesweep.status"] == "FINISHED":
            assert "quality_float32" in run.data.metrics, run.data.tags["tonesweep.trial_id"]
            assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [10, 20, 30, 40]
            files = {a.path for a in client.list_artifacts(run.info.run_id, "trial")}
            assert "trial/metrics.json" in files, files
    stop_and_check_nothing_is_left(server, [port])


def all_trial_runs(client: MlflowClient) -> list:
    experiment = client.get_experiment_by_name("tonesweep-bansuri")
    if experiment is None:
        return []
    query = "tags.`tonesweep.sweep` = 'restart' and tags.`tonesweep.role` = 'trial'"
    return client.search_runs([experiment.experiment_id], query, max_results=1000)


def finished_runs(client: MlflowClient) -> list:
    return [r for r in all_trial_runs(client) if r.data.tags.get("tonesweep.status") == "FINISHED"]


def test_ui_serves_the_store_on_loopback_prints_the_links_and_stops_cleanly(servers, tmp_path):
    import urllib.request

    from server.mlflow_server import ui_command

    command = ui_command("sqlite:///x.db", 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    store = sqlite_store(tmp_path / "mlflow.db")
    experiment_id = ensure_experiment(make_client(store), "bansuri")
    port = free_port()
    ui = servers("ui", "--port", str(port), "--tracking-uri", store, cwd=tmp_path)
    line = ui.wait_for("runs of bansuri: ", START_S)
    assert line == (f"runs of bansuri: http://127.0.0.1:{port}/#/experiments/{experiment_id}/runs"
                    "?workflowType=machine_learning&viewStateShareKey=tonesweep")
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"
    assert "tonesweep-bansuri" in urllib.request.urlopen(url, timeout=10).read().decode()  # it serves the store
    seen = listening(ui.tree())
    assert seen and not [s for s in seen if not is_loopback(s[1])], seen
    stop_and_check_nothing_is_left(ui, [port])


@pytest.mark.system
def test_the_printed_link_opens_mlflow_in_model_training_mode_in_a_fresh_browser(servers, tmp_path):
    """MLflow 3.17 keeps its UI mode per browser, GenAI by default: the link `tonesweep ui` prints opens
    the runs table with the model-training sidebar (Runs, Models, Model registry) in a fresh profile."""
    import json
    import subprocess

    from common.node import PROJECT_ROOT, node_binary
    from support.browser import CHROMIUM, HARNESS

    store = sqlite_store(tmp_path / "mlflow.db")
    ensure_experiment(make_client(store), "bansuri")
    ui = servers("ui", "--port", str(free_port()), "--tracking-uri", store, cwd=tmp_path)
    link = ui.wait_for("runs of bansuri: ", START_S).split(": ", 1)[1]
    shown = subprocess.run([node_binary(), str(HARNESS / "mlflow_ui_check.mjs"), link, "--chromium", CHROMIUM],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    page = json.loads(shown.stdout.strip().splitlines()[-1])
    assert page["modelRegistryLink"] and not page["genaiSidebar"] and page["runsHeading"], page


def test_a_killed_server_command_takes_its_children_with_it(servers, reachable_dir, tmp_path):
    """SIGKILL leaves tonesweep no time to stop what it started: its reaper (common.reaper) does, so
    no PostgreSQL, mlflow server or uvicorn is left serving and the ports are free again."""
    port = free_port()
    server = servers("tracking-server", "--port", str(port), "--pg-data", str(reachable_dir / "killed-pg"),
                     "--artifact-root", str(tmp_path / "artifacts"), cwd=tmp_path)
    server.wait_for("MLflow tracking server at", START_S)
    pg_port = postgres_port(server)
    processes = [p for p in server.tree() if p.pid != server.process.pid]
    assert len(processes) >= 3, processes  # the reaper, PostgreSQL and its helpers, mlflow server, uvicorn
    server.process.kill()
    server.process.wait(timeout=10)
    _, alive = psutil.wait_procs(processes, timeout=20)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert port_is_free(port) and port_is_free(pg_port)


# ---------------------------------------------------------------- refusals: one line, exit 2, nothing written


def test_a_port_in_use_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["tracking-server", "--port", str(port)]) == 2
        assert f"--port {port}" in one_error_line(capsys)
        assert main(["ui", "--port", str(port)]) == 2
        assert f"--port {port}" in one_error_line(capsys)
    assert not any(tmp_path.iterdir())


def test_a_folder_that_is_not_a_postgres_data_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    before = snapshot(tmp_path)
    assert main(["tracking-server", "--port", str(free_port()), "--pg-data", str(mine)]) == 2
    line = one_error_line(capsys)
    assert "--pg-data" in line and "not a PostgreSQL data folder" in line, line
    assert snapshot(tmp_path) == before


def test_an_unreachable_backend_store_is_refused(tmp_path, capsys, monkeypatch):
    import results.tracking

    monkeypatch.setattr(results.tracking, "REACH_TIMEOUT_S", 2.0)
    monkeypatch.chdir(tmp_path)
    backend = f"postgresql+psycopg://mlflow@127.0.0.1:{free_port()}/mlflow"
    assert main(["tracking-server", "--port", str(free_port()), "--backend-store-uri", backend]) == 2
    assert "--backend-store-uri" in one_error_line(capsys)
    assert not any(tmp_path.iterdir())


def test_missing_postgres_binaries_name_the_package(tmp_path, capsys, monkeypatch):
    import server.postgres

    monkeypatch.setattr(server.postgres, "POSTGRES_ROOT", tmp_path / "no-postgres")
    monkeypatch.chdir(tmp_path)
    assert main(["tracking-server", "--port", str(free_port())]) == 2
    assert "apt package postgresql" in one_error_line(capsys)
    assert not any(tmp_path.iterdir())
