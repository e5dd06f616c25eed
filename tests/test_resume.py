"""Kill the sweep driver (SIGKILL), then ``--resume``: finished trials stay, nothing is duplicated.

The driver runs in its own session; after the kill every process Ray left behind (raylet, GCS,
workers, the agents that survive a driver SIGKILL) is stopped by PID before resuming.
"""

from __future__ import annotations

import time

from support.sweeps import (SPACE, TERMINAL, Driver, make_datasets, mlflow_client, run_driver, starts_per_trial,
                            sweep_runs, wait_for_ended_trials)

TRIALS = 6


def test_kill_driver_then_resume(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    datasets = make_datasets(tmp_path, ["sarangi"])
    settings = {"datasets": datasets, "trials": TRIALS, "space": str(space), "steps": 60, "report_every": 10,
                "name": "crash", "storage": str(tmp_path / "runs"), "max_params": 60_000, "seed": 5,
                "scheduler": "none"}
    slow = {"FAKE_SLEEP": "0.4"}  # ~2.4 s of "training" per trial: the kill lands mid-sweep

    driver = Driver(tmp_path, settings, env=slow)
    try:
        wait_for_ended_trials(driver, 2, timeout=180)
        time.sleep(2.5)  # > TUNE_GLOBAL_CHECKPOINT_S: the ended trials are in Ray's saved state
        killed_at_ms = time.time() * 1000
        driver.process.kill()
        driver.process.wait()
    finally:
        driver.stop()  # the driver's whole session, Ray's surviving agents included

    client = mlflow_client(tmp_path)
    _, before = sweep_runs(client, "sarangi", "crash")
    saved_done = {r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in before
                  if r.info.status != "RUNNING" and r.info.end_time and r.info.end_time < killed_at_ms - 1500}
    assert len(saved_done) >= 2, [(r.data.tags, r.info.status) for r in before]
    assert any(r.info.status == "RUNNING" for r in before), "the kill should leave a trial running"

    settings["resume"] = True
    output = run_driver(tmp_path, settings, env={"FAKE_SLEEP": "0.02"})
    assert "resuming from" in output and f"done {TRIALS}/{TRIALS}" in output, output[-3000:]

    parent, after = sweep_runs(client, "sarangi", "crash")
    trial_ids = [r.data.tags["tonesweep.trial_id"] for r in after]
    assert len(trial_ids) == len(set(trial_ids)), "duplicate MLflow runs for one trial"
    assert not [r for r in after if r.info.status == "RUNNING"], "runs left RUNNING after the resume"
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["tonesweep.status"] for r in after} <= TERMINAL
    # trials finished before the kill: same run, not trained again
    run_ids = {r.data.tags["tonesweep.trial_id"]: r.info.run_id for r in after}
    starts = starts_per_trial((tmp_path / "fake.log").read_text())
    for trial_id, run_id in saved_done.items():
        assert run_ids[trial_id] == run_id
        assert starts.get(trial_id, 0) <= 1, f"finished trial {trial_id} was trained again"
    # the sweep reached its budget: every trial the searcher created has a terminal run
    finished_ray = [r for r in after if r.data.tags["tonesweep.failure_reason"].startswith("lost when")]
    assert len(after) - len(finished_ray) == TRIALS
