"""Whole sweeps in a subprocess driver, and what the tests read back from MLflow.

The driver runs in its own session, so a test can stop every process Ray started (raylet, GCS,
workers, agents that outlive a killed driver) by PID at the end, whatever happened. ``DRIVER``
sweeps with a stand-in trainer (fast, able to fail on purpose).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

from common.constants import FAILED, FINISHED, REJECTED, STOPPED
from support.stores import sqlite_store


def stub_manifest(instrument: str, frame_rates=(250, 50)) -> dict:
    """A dataset manifest with what the sweep's pre-flight checks read (no shards: stand-in trainers)."""
    return {"format": "tonesweep-dataset/1", "instrument": instrument, "frame_rates": list(frame_rates)}


REPO = Path(__file__).resolve().parents[2]
TERMINAL = {FINISHED, FAILED, REJECTED, STOPPED}  # how a trial of an uninterrupted sweep ends

# ------------------------------------------------------------------ a stand-in trainer + driver

DRIVER = textwrap.dedent('''
    """Subprocess sweep driver with a stand-in trainer (defined here, so Ray ships it by value, with
    the values of the globals it reads: the workers of a shared Ray cluster do not see this
    process's environment)."""
    import json, math, os, sys, time
    from pathlib import Path

    FAKE_LOG = os.environ["FAKE_LOG"]
    FAKE_SLEEP = float(os.environ.get("FAKE_SLEEP", "0.02"))

    def fake_size(config):
        from trainers.model.size import size_report
        return size_report(config)

    def fake_reference(dataset_dir):
        return {"log10_bytes": 7.0, "quality": 10.0}

    def fake_train(dataset_dir, config, out_dir, report=None, report_every=50, threads=None, judge=None,
                   deadline=None):
        from trainers.model.config import validate_config
        cfg = validate_config(config)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(FAKE_LOG, "a") as log:
            log.write(f"start {out.name} threads={threads} pid={os.getpid()}\\n")
        if cfg["decoder"] == "cnn" and cfg["n_harmonics"] == 20:
            raise RuntimeError("simulated trainer crash")
        base = 1.0 + 100 * cfg["learning_rate"] + (0.5 if cfg["feature"] == "rms" else 0.0)
        watch = deadline is not None  # as the real trainer: the first step after it reports at once
        for step in range(1, cfg["steps"] + 1):
            time.sleep(FAKE_SLEEP / report_every)
            ran_out = watch and time.time() >= deadline
            watch = watch and not ran_out
            if ran_out:
                with open(FAKE_LOG, "a") as log:
                    log.write(f"ran-out {out.name} {step}\\n")
            if step % report_every == 0 or ran_out:
                report({"step": step, "train_loss": base / step, "val_loss": base / math.sqrt(step),
                        "elapsed_s": 0.0})
        import numpy as np, soundfile as sf
        (out / "audio").mkdir(exist_ok=True)
        t = np.arange(8000) / 16000
        sf.write(out / "audio" / "original.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
        sf.write(out / "audio" / "resynth.wav", 0.3 * np.sin(2 * np.pi * 441 * t), 16000)
        metrics = {"status": "FINISHED", "failure_reason": None, "steps": cfg["steps"],
                   "train_time_s": 0.1, "final_train_loss": base / cfg["steps"], **fake_size(cfg)}
        for i, precision in enumerate(("float32", "float16", "uint8")):
            metrics[f"quality_{precision}"] = base / math.sqrt(cfg["steps"]) * (1 + 0.02 * i)
            metrics[f"pitch_error_cents_{precision}"] = 10.0 + i
            metrics[f"loudness_error_db_{precision}"] = 1.0 + i
        if judge is not None:  # asked like the real trainer; every precision is still written
            with open(FAKE_LOG, "a") as log:
                log.write(f"judged {out.name} {','.join(judge(metrics)) or '-'}\\n")
        (out / "metrics.json").write_text(json.dumps(metrics))
        (out / "config.json").write_text(json.dumps(cfg))
        (out / "weights.weights.h5").write_bytes(b"w" * 64)
        (out / "checkpoint").mkdir(exist_ok=True)
        with open(FAKE_LOG, "a") as log:
            log.write(f"end {out.name}\\n")
        return metrics

    if __name__ == "__main__":
        from search.settings import SweepSettings
        from search.summary import format_summary
        from search.sweep import run_sweep
        settings = SweepSettings(**json.loads(sys.argv[1]), train_fn=fake_train, size_fn=fake_size,
                                 reference_fn=fake_reference)
        results = run_sweep(settings, say=lambda text: print(text, flush=True))
        print(format_summary(results, settings.name, os.environ["MLFLOW_TRACKING_URI"]), flush=True)
        print("RESULTS " + json.dumps([{"instrument": r.instrument, "outcomes": r.outcomes,
                                        "run_ids": r.run_ids, "wall_s": r.wall_s,
                                        "tracking_s_per_trial": r.tracking_s_per_trial} for r in results]),
              flush=True)
''')

SPACE = """
[hyperparameters.decoder]
type = "choice"
values = ["gru", "cnn"]

[hyperparameters.feature]
type = "choice"
values = ["loudness", "rms"]

[hyperparameters.hidden]
type = "choice"
values = [16, 256]
when = { decoder = ["gru"] }

[hyperparameters.n_harmonics]
type = "choice"
values = [20, 40]

[hyperparameters.learning_rate]
type = "float"
min = 1e-4
max = 1e-2
sampling = "log"

[fixed]
fc_layers = 1
gru_units = 32
conv_channels = 8
conv_layers = 2
conv_stacks = 1
n_noise_bands = 16
frame_rate = 50
"""


def make_datasets(root: Path, instruments) -> list[str]:
    """Dataset folders with just a manifest (the stand-in trainer reads no data)."""
    paths = []
    for instrument in instruments:
        folder = root / "datasets" / instrument
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(stub_manifest(instrument)))
        paths.append(str(folder))
    return paths


def session_pids(session_id: int) -> list[int]:
    """PIDs of every live process in a session (the driver and whatever Ray started from it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def kill_until_gone(list_pids: Callable[[], list[int]], tries: int = 50) -> None:
    """SIGKILL every PID ``list_pids()`` names, again until it names none (at most tries x 0.2 s)."""
    for _ in range(tries):
        pids = list_pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)


def kill_session(session_id: int) -> None:
    """SIGKILL every process of the session by PID, and wait until none is left (max ~10 s)."""
    kill_until_gone(lambda: session_pids(session_id))


class Driver:
    """A sweep driver subprocess in its own session; ``stop()`` leaves no process behind.

    With ``cluster`` (the test run's shared Ray head, ``ray_head``), the sweep joins it instead of
    starting a Ray of its own: settings get its address, the environment its token.
    """

    def __init__(self, workdir: Path, settings: dict, env: dict | None = None, module_args=None, cluster=None):
        script = workdir / "driver.py"
        script.write_text(DRIVER)
        if cluster is not None:
            settings = {**settings, "address": cluster.address}
            env = {**cluster.client_env, **(env or {})}
        env = env or {}
        tracking = env.get("MLFLOW_TRACKING_URI") or sqlite_store(workdir / "mlflow.db")
        full_env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_LOG": str(workdir / "fake.log"), **env,
                    "MLFLOW_TRACKING_URI": tracking}
        command = module_args or [sys.executable, str(script), json.dumps(settings)]
        self.stdout_path = workdir / f"driver-{time.monotonic_ns()}.out"
        self._out = open(self.stdout_path, "w")
        self.process = subprocess.Popen(command, cwd=workdir, env=full_env, stdout=self._out,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"sweep driver did not finish in {timeout} s:\n{self.output()[-4000:]}")

    def stop(self) -> None:
        kill_session(self.process.pid)
        self.process.wait()
        self._out.close()


def run_driver(workdir: Path, settings: dict, timeout: float = 240, **kwargs) -> str:
    driver = Driver(workdir, settings, **kwargs)
    try:
        code = driver.wait(timeout)
        output = driver.output()
        assert code == 0, output[-4000:]
        return output
    finally:
        driver.stop()


def results_of(output: str) -> list[dict]:
    line = [line for line in output.splitlines() if line.startswith("RESULTS ")][-1]
    return json.loads(line[len("RESULTS "):])


def mlflow_client(workdir: Path):
    from mlflow import MlflowClient

    return MlflowClient(sqlite_store(workdir / "mlflow.db"))


def sweep_runs(client, instrument: str, sweep: str):
    """(parent run, child runs) of one sweep of one instrument."""
    experiment = client.get_experiment_by_name(f"tonesweep-{instrument}")
    assert experiment is not None, f"no experiment for {instrument}"
    runs = client.search_runs([experiment.experiment_id], f"tags.`tonesweep.sweep` = '{sweep}'", max_results=1000)
    parents = [r for r in runs if r.data.tags.get("tonesweep.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("tonesweep.role") == "trial"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    return parents[0], children


def wait_for_ended_trials(driver: Driver, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(r"^  trial \S+ (FINISHED|FAILED|REJECTED|STOPPED)", driver.output(), re.M)) >= count:
            return
        if driver.process.poll() is not None:
            pytest.fail(f"driver exited before the kill:\n{driver.output()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"fewer than {count} trials ended in {timeout} s:\n{driver.output()[-3000:]}")


def starts_per_trial(log_text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial_id in re.findall(r"^start (\S+)", log_text, re.M):
        counts[trial_id] = counts.get(trial_id, 0) + 1
    return counts
