"""Hundreds of trials hold: one instrument, short trials, the real trainer, the default search.

Runs ``tonesweep sweep`` as a user would (its own process, local Ray, MLflow on SQLite), samples the
driver's resident memory every second, then reads the sweep back with ``tonesweep pareto`` and the
results table. Prints wall time, trials per minute, the driver's peak RSS (and its peak in each
quarter of the sweep, which shows whether it grows with the trial count), the trials' outcomes,
and whether every trial is a child run that the table reads.

    .venv/bin/python bench/many_trials.py --dataset demo/datasets/bansuri --trials 200 --steps 30

Everything it writes goes to a temporary folder (``--keep`` keeps it and prints where).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TONESWEEP = [sys.executable, "-m", "cli"]


def sample_rss(pid: int, samples: list[tuple[float, int]], done: threading.Event) -> None:
    """(seconds since start, RSS bytes) of ``pid`` every second until ``done``."""
    import psutil

    process, start = psutil.Process(pid), time.monotonic()
    while not done.wait(1.0):
        try:
            samples.append((time.monotonic() - start, process.memory_info().rss))
        except psutil.Error:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--scheduler", default="moasha")
    parser.add_argument("--algorithm", default="random")
    parser.add_argument("--keep", action="store_true", help="keep the sweep's folder")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tonesweep-many-"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    command = [*TONESWEEP, "sweep", "--dataset", args.dataset, "--trials", str(args.trials), "--steps",
               str(args.steps), "--scheduler", args.scheduler, "--algorithm", args.algorithm, "--name", "many",
               "--storage", str(root / "runs")]
    print(" ".join(command[2:]), flush=True)
    samples: list[tuple[float, int]] = []
    done = threading.Event()
    start = time.perf_counter()
    with open(root / "sweep.log", "w") as log:
        sweep = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = threading.Thread(target=sample_rss, args=(sweep.pid, samples, done), daemon=True)
        sampler.start()
        code = sweep.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    lines = (root / "sweep.log").read_text().splitlines()
    print("\n".join(f"    {line}" for line in lines[-6:]))
    if code != 0:
        print(f"sweep exited {code}; its log: {root / 'sweep.log'}")
        return 1

    report(args, root, uri, wall, samples, lines)
    if args.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def report(args, root: Path, uri: str, wall: float, samples: list[tuple[float, int]], lines: list[str]) -> None:
    from results.layout import SWEEP_TAG
    from results.table import load_table
    from results.tracking import make_client
    from trainers.data.dataset import read_manifest

    instrument = read_manifest(args.dataset)["instrument"]
    client = make_client(uri)
    sweep, table = load_table(client, instrument, "many")
    trials = table.drop_duplicates("run_id")
    statuses = collections.Counter(trials["status"])
    parent = client.get_run(sweep.parent_run_id)
    pareto = subprocess.run([*TONESWEEP, "pareto", "--instrument", instrument, "--sweep", "many", "--no-register",
                             "--min-rtf", "0", "--plot", str(root / "pareto.png")], check=False, cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "MLFLOW_TRACKING_URI": uri})
    longest = max(len(line) for line in lines) if lines else 0
    quarters = [max((rss for t, rss in samples if q * wall / 4 <= t < (q + 1) * wall / 4), default=0)
                for q in range(4)]
    mib = 1024 * 1024
    metrics = parent.data.metrics
    print(f"\ntrials: {args.trials} asked, {len(trials)} child runs read back by the results table "
          f"({len(table)} rows, one per precision); outcomes: {dict(statuses)}")
    print(f"wall: {wall:.0f} s = {wall / 60:.1f} min; {60 * len(trials) / wall:.1f} trials per minute "
          f"on {os.cpu_count()} cores")
    print(f"driver peak RSS: {max(rss for _, rss in samples) / mib:.0f} MiB; peak per quarter of the sweep: "
          + ", ".join(f"{q / mib:.0f}" for q in quarters) + " MiB")
    print(f"progress output: {len(lines)} lines, the longest {longest} characters")
    print_worker_memory(client, parent)
    print(f"parent run {parent.info.run_id} ({parent.data.tags.get(SWEEP_TAG)}): hypervolume "
          f"{metrics.get('hypervolume', float('nan')):.2f}, trial_steps_used {metrics.get('trial_steps_used', 0):.0f} "
          f"of {args.trials * args.steps} (every trial to the end)")
    print(f"tonesweep pareto: exit {pareto.returncode}; its last lines:")
    print("\n".join(f"    {line}" for line in (pareto.stdout + pareto.stderr).strip().splitlines()[-4:]))


def print_worker_memory(client, parent) -> None:
    """The trial workers' memory across the sweep, from the trials' own metrics (``peak_rss_mib``: a worker's
    peak while the trial ran; ``rss_at_start_mib``: what the worker held when it began), in quarters of the
    trials in start order, and how many workers the sweep recycled (``--worker-memory-mib``)."""
    from results.layout import trial_metrics
    from results.tracking import child_runs

    runs = sorted(child_runs(client, parent.info.experiment_id, parent.info.run_id), key=lambda r: r.info.start_time)
    logged = [trial_metrics(r.data.metrics) for r in runs]

    def quarter(name: str, q: int) -> str:
        values = [m[name] for m in logged[q * len(logged) // 4:(q + 1) * len(logged) // 4] if name in m]
        return f"{max(values):,.0f}" if values else "-"

    for name, label in (("peak_rss_mib", "peak while a trial ran"), ("rss_at_start_mib", "held at a trial's start")):
        print(f"trial workers' RSS, {label}, max per quarter of the trials: "
              + ", ".join(quarter(name, q) for q in range(4)) + " MiB")
    print(f"trial workers recycled: {parent.data.metrics.get('workers_recycled', 0):.0f}")


if __name__ == "__main__":
    sys.exit(main())
