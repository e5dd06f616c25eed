"""Benchmark: load and reduce 1,000 trial runs from a temporary SQLite MLflow store.

    .venv/bin/python bench/results_table.py [--runs 1000] [--seed 0]

Writes a synthetic sweep following docs/architecture.md §3 (parent run, one child run per trial
with every config key as a param and every metrics.json key as a metric), then times
``results.table.load_table`` (MLflow query + reduction to the tidy table) and the front,
hypervolume and selection on top of it. The target is <= 5 s for 1,000 runs.

The synthetic sweep comes from ``results.synthetic`` (``log_sweep``, ``synthetic_trial``), the same
one tests/test_table.py and friends use, so the benchmark and the tests exercise the same layout.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere inside the checkout
from results.synthetic import log_sweep, synthetic_trial  # noqa: E402


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
