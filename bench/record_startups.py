"""Measure again how long each configuration of a recorded pool takes to start, with today's trainer.

    .venv/bin/python bench/record_startups.py --pool bench/data/pool-bansuri.json.gz --dataset demo/datasets/bansuri
        [--workers 2] [--out bench/data/startups-bansuri.json.gz]

A pool's ``startup_s`` (a trial's start to the end of its first step: the trainer's imports in a fresh
worker, loading, building, tracing the step) was recorded with the trainer of its day (before the loss was
traced once per process, docs/engines.md "Start-up") and while tests and benchmarks shared the machine for part
of the time. The wall-clock replays (``bench/search_efficiency.py --studies scale,budget``) turn start-ups into
idle or wasted worker time, so they read today's, measured here; ``--startups recorded`` keeps the pool's.

Each record's configuration is started the way a sweep's worker starts a trial
(``search.trainable.execute_trial``: its size check, the trainer's import, ``train_trial``) and ended at its
first report, as a scheduler's stop at a first rung would end it. ``--workers`` processes run side by side
(the sweep's two trials on this machine's two cores), each reused trial after trial and replaced when it holds
more than the sweep's default worker memory after a trial, as a sweep recycles Ray's reused actors
(``search.recycling``). Records are dealt to the workers in the pool's order. A fresh worker's first trial
imports the trainer: that record is measured again later in a reused worker, so every record has a reused
worker's start-up, and the difference (``fresh_worker_s``) is what a replay adds to each simulated worker's
first trial and to the first after each recycling (every ``trials_per_worker`` trials, as measured here).
Nothing else should run meanwhile. Format and reader: ``search/replay/pool.py`` (``read_startups``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search.replay.pool import Startup, fresh_worker_s, read_pool, write_startups  # noqa: E402


class _FirstReport(Exception):
    """Ends a measured trial at its first report."""


def measure(dataset: str, config: dict, report_every: int) -> dict:
    """Start one trial as a sweep's worker would and end it at its first report; what that report said."""
    import psutil

    from search.trainable import TrialSpec, execute_trial

    seen: dict = {}

    def report(metrics: dict) -> None:
        seen.update(metrics, reported_at=time.perf_counter())
        raise _FirstReport

    spec = TrialSpec(dataset_dir=dataset, trials_dir="", threads=1, report_every=report_every)
    with tempfile.TemporaryDirectory(prefix="tonesweep-startup-") as out_dir:
        started = time.perf_counter()
        execute_trial(config, spec, Path(out_dir), report=report)  # ends FAILED by _FirstReport: not read
    if "startup_s" not in seen:
        raise RuntimeError(f"no first report (config {config})")
    return {"startup_s": seen["startup_s"], "first_call_s": seen.get("first_call_s"),
            "to_first_report_s": seen["reported_at"] - started,
            "rss_mib": psutil.Process().memory_info().rss / 2**20}


def serve(tasks, results, dataset: str, report_every: int, limit_mib: float) -> None:
    """A worker process: measures tasks until told to stop (None), or until it holds more than ``limit_mib``
    after a trial (then it says "recycled", with how many trials it ran, and leaves)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    ran = 0
    while (task := tasks.get()) is not None:
        index, config = task
        out = measure(dataset, config, report_every)
        results.put((index, {**out, "fresh": ran == 0}))
        ran += 1
        if out["rss_mib"] > limit_mib:
            results.put(("recycled", ran))
            return


def measure_pool(pool, dataset: str, workers: int, limit_mib: float) -> tuple[list[Startup], list[int]]:
    """Every record's start-up in a reused worker, and as a fresh worker's first trial where it was one (such a
    record is measured again, later, in a reused worker); the trials each recycled worker ran."""
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()

    def worker():
        process = ctx.Process(target=serve, args=(tasks, results, dataset, pool.report_every, limit_mib), daemon=True)
        process.start()
        return process

    for index, record in enumerate(pool.records):
        tasks.put((index, record.config))
    processes = [worker() for _ in range(workers)]
    reused: dict[int, dict] = {}
    fresh: dict[int, float] = {}
    lifetimes: list[int] = []
    while len(reused) < len(pool.records):
        message = results.get()
        if message[0] == "recycled":
            lifetimes.append(message[1])
            processes.append(worker())  # in the place of the one that left
            continue
        index, out = message
        if out["fresh"]:
            fresh[index] = out["startup_s"]
            tasks.put((index, pool.records[index].config))  # and again, later, in a reused worker
        else:
            reused[index] = out
        print(f"  {len(reused):3d}/{len(pool.records)} record {index}: start-up {out['startup_s']:.2f} s "
              f"(recorded {pool.records[index].startup_s:.2f} s){' as a fresh worker' if out['fresh'] else ''}",
              flush=True)
    for _ in range(sum(p.is_alive() for p in processes)):
        tasks.put(None)
    for process in processes:
        process.join()
    startups = [Startup(index=i, startup_s=round(reused[i]["startup_s"], 4),
                        first_call_s=round(reused[i]["first_call_s"], 4),
                        to_first_report_s=round(reused[i]["to_first_report_s"], 4),
                        fresh_startup_s=round(fresh[i], 4) if i in fresh else None) for i in sorted(reused)]
    return startups, lifetimes


def main() -> int:
    from search.recycling import DEFAULT_WORKER_MEMORY_MIB

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", required=True, help="a recorded pool (bench/record_pool.py)")
    parser.add_argument("--dataset", required=True, help="the prepared dataset the pool was recorded on")
    parser.add_argument("--workers", type=int, default=2, help="processes side by side (a sweep's trials at once)")
    parser.add_argument("--out", help="default: bench/data/startups-<instrument>.json.gz")
    args = parser.parse_args()

    from trainers.data.dataset import read_manifest

    pool = read_pool(Path(args.pool))
    key = str(read_manifest(args.dataset)["cache_key"])[:12]
    if key != pool.meta.get("dataset_key"):
        print(f"{args.dataset}: dataset {key}, but the pool was recorded on {pool.meta.get('dataset_key')}",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    startups, lifetimes = measure_pool(pool, args.dataset, args.workers, DEFAULT_WORKER_MEMORY_MIB)
    wall = time.perf_counter() - started
    out_path = Path(args.out or REPO / "bench" / "data" / f"startups-{pool.instrument}.json.gz")
    meta = {"instrument": pool.instrument, "dataset_key": key, "pool_recorded": pool.meta.get("recorded"),
            "recorded": dt.date.today().isoformat(), "workers": args.workers,
            "worker_memory_mib": DEFAULT_WORKER_MEMORY_MIB, "trials_per_worker": lifetimes, "wall_s": round(wall, 1),
            "command": "bench/record_startups.py " + shlex.join(sys.argv[1:])}
    write_startups(out_path, startups, meta)
    now, before = [s.startup_s for s in startups], [r.startup_s for r in pool.records]
    print(f"{pool.instrument}: {len(startups)} start-ups in {wall:.0f} s -> {out_path}; in a reused worker median "
          f"{statistics.median(now):.2f} s, longest {max(now):.2f} s (as recorded in the pool: median "
          f"{statistics.median(before):.2f} s, longest {max(before):.2f} s); a fresh worker adds "
          f"{fresh_worker_s(startups):.1f} s; recycled workers ran {lifetimes} trials")
    return 0


if __name__ == "__main__":
    sys.exit(main())
