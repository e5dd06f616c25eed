"""Benchmark: load and reduce 1,000 trial runs from a temporary SQLite MLflow store.

    .venv/bin/python bench/results_table.py [--runs 1000] [--seed 0]

Writes a synthetic sweep following docs/architecture.md §3 (parent run, one child run per trial
with every config key as a param and every metrics.json key as a metric), then times
``results.table.load_table`` (MLflow query + reduction to the tidy table) and the front,
hypervolume and selection on top of it. The target is <= 5 s for 1,000 runs.

``log_sweep`` and ``synthetic_trial`` are also the fixtures of tests/test_table.py and friends,
so the benchmark and the tests exercise the same layout.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere inside the checkout

# MLflow run status for each tonesweep trial status (docs/architecture.md §3)
RUN_STATUS = {"FINISHED": "FINISHED", "STOPPED": "FINISHED", "FAILED": "FAILED", "REJECTED": "FAILED"}
PRECISION_BYTES = {"float32": 4, "float16": 2, "uint8": 1}


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


def _ensure_experiment(client: MlflowClient, instrument: str) -> str:
    existing = client.get_experiment_by_name(f"tonesweep-{instrument}")
    return existing.experiment_id if existing else client.create_experiment(f"tonesweep-{instrument}")


def log_sweep(client: MlflowClient, instrument: str, sweep: str, trials: list[dict],
              parent_status: str = "FINISHED") -> str:
    """Write one sweep in the §3 layout and return the parent run id.

    A trial with status "RUNNING" gets no tonesweep.status tag and stays RUNNING in MLflow, like
    a trial of a sweep still in progress. ``trial["metrics"]`` values may be NaN.
    """
    experiment_id = _ensure_experiment(client, instrument)
    parent = client.create_run(experiment_id, run_name=sweep, tags={
        "tonesweep.role": "sweep", "tonesweep.sweep": sweep, "tonesweep.instrument": instrument,
        "tonesweep.dataset": f"/data/{instrument}", "tonesweep.algorithm": "random"})
    parent_id = parent.info.run_id
    for number, trial in enumerate(trials):
        tags = {"mlflow.parentRunId": parent_id, "tonesweep.role": "trial", "tonesweep.sweep": sweep,
                "tonesweep.trial_id": f"{sweep}_{number:05d}"}
        if trial["status"] != "RUNNING":
            tags.update({"tonesweep.status": trial["status"], "tonesweep.failure_reason": trial.get("reason", "")})
        run = client.create_run(experiment_id, run_name=f"trial-{number}", tags=tags)
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id,
                         metrics=[Metric(k, float(v), now, 0) for k, v in trial["metrics"].items()],
                         params=[Param(k, str(v)) for k, v in trial["config"].items()],
                         tags=[RunTag("mlflow.runName", f"trial-{number}")])
        if trial["status"] != "RUNNING":
            client.set_terminated(run.info.run_id, RUN_STATUS[trial["status"]])
    if parent_status != "RUNNING":
        client.set_terminated(parent_id, parent_status)
    return parent_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from results.pareto import hypervolume, pareto_mask
    from results.select import select_smallest
    from results.table import load_table

    rng = random.Random(args.seed)
    statuses = ["FINISHED"] * 85 + ["STOPPED"] * 8 + ["FAILED"] * 4 + ["REJECTED"] * 3
    trials = [synthetic_trial(rng, rng.choice(statuses)) for _ in range(args.runs)]
    with tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
        started = time.perf_counter()
        log_sweep(client, "bench", "bench-sweep", trials)
        print(f"wrote {args.runs} runs in {time.perf_counter() - started:.1f} s (setup, not timed)")

        started = time.perf_counter()
        _, table = load_table(client, "bench")
        loaded = time.perf_counter()
        candidates = table[table["candidate"]]
        front = pareto_mask(candidates["bytes"], candidates["quality"])
        volume = hypervolume(candidates["bytes"], candidates["quality"])
        selection = select_smallest(table)
        done = time.perf_counter()
    print(f"load {args.runs} runs -> {len(table)} rows: {loaded - started:.2f} s; "
          f"front ({int(front.sum())} points), hypervolume {volume:.2f}, selection: {done - loaded:.3f} s; "
          f"total {done - started:.2f} s (target <= 5 s)")
    print(f"winner: {selection.reason}")


if __name__ == "__main__":
    main()
