"""A synthetic sweep in MLflow, laid out as tonesweep's tracking writes one (results.layout).

For the results side's benchmarks and tests (bench/results_table.py, tests/test_table.py and
friends): plausible configs and metrics.json-style metrics, with every trial status, without
training anything. Seeded by the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from results import layout
from results.tracking import ensure_experiment, log_in_batches
from common.constants import BYTES_PER_WEIGHT as PRECISION_BYTES


def synthetic_trial(rng: random.Random, status: str = "FINISHED") -> dict:
    """A plausible trial: config, metrics.json-style metrics (quality worse at lower precision)."""
    decoder = rng.choice(["gru", "cnn"])
    config = {"decoder": decoder, "feature": rng.choice(["loudness", "rms"]), "frame_rate": rng.choice([250, 50]),
              "hidden": rng.choice([16, 32, 64, 128, 256]), "fc_layers": rng.randint(1, 3),
              "gru_units": rng.choice([16, 64, 256]), "conv_channels": rng.choice([8, 16, 64]),
              "n_harmonics": rng.choice([20, 40, 60]), "n_noise_bands": rng.choice([16, 32, 65]),
              "reverb": rng.choice([True, False]), "learning_rate": rng.choice([1e-3, 3e-4]), "seed": 0}
    params = config["hidden"] * (1 + config["n_harmonics"] + config["n_noise_bands"]) * rng.randint(2, 40)
    metrics = {"params": params, "train_time_s": rng.uniform(5, 300), "steps": 300}
    if status == "REJECTED":
        metrics.update({f"bytes_{p}": params * b for p, b in PRECISION_BYTES.items()})
        return {"config": config, "metrics": metrics, "status": status, "reason": "params over --max-params"}
    if status in ("FINISHED", "STOPPED"):
        base = 3.0 + 40.0 / (params ** 0.35) + rng.uniform(0, 0.5)
        for penalty, (p, b) in zip((0.0, 0.01, 0.15), PRECISION_BYTES.items()):
            metrics[f"bytes_{p}"] = params * b + (8 * 12 if p == "uint8" else 0)
            metrics[f"quality_{p}"] = base * (1 + penalty * rng.uniform(0.5, 1.5))
            metrics[f"pitch_error_cents_{p}"] = rng.uniform(5, 60)
            metrics[f"loudness_error_db_{p}"] = rng.uniform(0.5, 6)
    reason = "loss became NaN at step 120" if status == "FAILED" else ""
    return {"config": config, "metrics": metrics, "status": status, "reason": reason}


def log_sweep(client: MlflowClient, instrument: str, sweep: str, trials: list[dict],
              parent_status: str = "FINISHED", flat_metrics: bool = True) -> str:
    """Write one sweep in the §3 layout and return the parent run id.

    A trial with status "RUNNING" gets no tonesweep.status tag and stays RUNNING in MLflow, like
    a trial of a sweep still in progress. ``trial["metrics"]`` values may be NaN. ``flat_metrics``:
    every metric under its metrics.json name, as sweeps before ``layout.trial_metric_key`` logged them;
    False logs them as a sweep does now.
    """
    key = (lambda name: name) if flat_metrics else layout.trial_metric_key
    experiment_id = ensure_experiment(client, instrument)  # artifacts beside a SQLite store, as a sweep's
    parent = client.create_run(experiment_id, run_name=sweep, tags={
        layout.ROLE_TAG: layout.ROLE_SWEEP, layout.SWEEP_TAG: sweep, layout.INSTRUMENT_TAG: instrument,
        layout.DATASET_TAG: f"/data/{instrument}", layout.ALGORITHM_TAG: "random"})
    parent_id = parent.info.run_id
    for number, trial in enumerate(trials):
        tags = {layout.PARENT_TAG: parent_id, layout.ROLE_TAG: layout.ROLE_TRIAL, layout.SWEEP_TAG: sweep,
                layout.TRIAL_ID_TAG: f"{sweep}_{number:05d}"}
        if trial["status"] != "RUNNING":
            tags.update({layout.STATUS_TAG: trial["status"], layout.FAILURE_TAG: trial.get("reason", "")})
        run = client.create_run(experiment_id, run_name=f"trial-{number}", tags=tags)
        now = int(time.time() * 1000)
        log_in_batches(client, run.info.run_id,
                       metrics=[Metric(key(k), float(v), now, 0) for k, v in trial["metrics"].items()],
                       params=[Param(k, str(v)) for k, v in trial["config"].items()],
                       tags=[RunTag("mlflow.runName", f"trial-{number}")])
        if trial["status"] != "RUNNING":
            client.set_terminated(run.info.run_id, layout.mlflow_status(trial["status"]))
    if parent_status != "RUNNING":
        client.set_terminated(parent_id, parent_status)
    return parent_id
