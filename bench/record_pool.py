"""Record the pool of trials the search benchmark replays (search/replay/pool.py says what a pool holds).

    .venv/bin/python bench/record_pool.py --dataset demo/datasets/bansuri --configs 150
        [--steps 150] [--report-every 5] [--min-rtf 5] [--seed 100] [--out bench/data/pool-bansuri.json.gz]

One live sweep of the built-in space: random search, no scheduler (every trial to the end), the
default sweep's speed bar (``--min-rtf``; refused configurations are drawn again and counted), a
report every ``--report-every`` steps so that a replay can place (MO-)ASHA's rungs anywhere on a
multiple of it, and every precision evaluated (``evaluation_in_proportion=False``: a replayed front
needs them all). The sweep lives under ``bench/.cache/pool/<instrument>-...``; an interrupted
recording resumes from there when run again. Two trials at a time on this 2-core machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from search.replay.pool import Pool, Record, write_pool


def read_records(uri: str, experiment_id: str, parent_run_id: str) -> list[Record]:
    """Every finished trial of one instrument's sweep, as a pool record."""
    from mlflow import MlflowClient

    from common.constants import PRECISIONS
    from results.layout import trial_metrics
    from results.tracking import child_runs
    from results.warm_start import parse_param

    client, records = MlflowClient(uri), []
    for run in child_runs(client, experiment_id, parent_run_id):
        if run.data.tags.get("tonesweep.status") != "FINISHED":
            continue
        metrics = trial_metrics(run.data.metrics)
        curve = {int(m.step): m.value for m in client.get_metric_history(run.info.run_id, "val_loss")}
        precisions = {p: {"bytes": metrics[f"bytes_{p}"], "quality": metrics[f"quality_{p}"],
                          "pitch_error_cents": metrics.get(f"pitch_error_cents_{p}")}
                      for p in PRECISIONS if math.isfinite(metrics.get(f"quality_{p}", math.nan))}
        steps = max(1.0, metrics["steps"])
        records.append(Record(
            config={k: parse_param(v) for k, v in run.data.params.items()}, model_bytes=metrics["model_bytes"],
            curve=curve, candidates=[(c["bytes"], c["quality"]) for c in precisions.values()],
            seconds_per_step=metrics["train_time_s"] / steps,
            eval_s=metrics.get("eval_time_s", 0.0) + metrics.get("examples_time_s", 0.0),
            startup_s=metrics.get("startup_s", 0.0), rtf_wasm=metrics.get("rtf_wasm"), precisions=precisions))
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a prepared dataset (tonesweep prepare)")
    parser.add_argument("--configs", type=int, default=150, help="trials that train to the end")
    parser.add_argument("--steps", type=int, default=150, help="each trial's budget (the demo's)")
    parser.add_argument("--report-every", type=int, default=5)
    parser.add_argument("--min-rtf", type=float, default=5.0, help="the default sweep's speed bar")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--out", help="default: bench/data/pool-<instrument>.json.gz")
    parser.add_argument("--cache", default=str(REPO / "bench" / ".cache" / "pool"))
    args = parser.parse_args()

    from search.settings import SweepSettings
    from search.sweep import run_sweep
    from trainers.data.dataset import read_manifest

    manifest = read_manifest(args.dataset)
    instrument, key = manifest["instrument"], str(manifest["cache_key"])[:12]
    folder = Path(args.cache) / f"{instrument}-{key}-c{args.configs}-s{args.steps}-r{args.report_every}-seed{args.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    settings = SweepSettings(datasets=[args.dataset], trials=args.configs, algorithm="random", scheduler="none",
                             steps=args.steps, report_every=args.report_every, min_rtf=args.min_rtf,
                             seed=args.seed, name="pool", storage=str(folder / "runs"), tracking_uri=uri,
                             evaluation_in_proportion=False, resume=(folder / "runs" / "pool" / "sweep.json").is_file())
    from cli.main import quiet_libraries

    start = time.perf_counter()
    with quiet_libraries("sweep"):  # as the CLI: no library chatter
        [result] = run_sweep(settings, say=lambda line: print(f"  {line}", flush=True))
    wall = time.perf_counter() - start
    records = read_records(uri, result.experiment_id, result.parent_run_id)
    from mlflow import MlflowClient

    parent = MlflowClient(uri).get_run(result.parent_run_id).data.metrics
    out = Path(args.out or REPO / "bench" / "data" / f"pool-{instrument}.json.gz")
    meta = {"dataset_key": key, "seed": args.seed, "min_rtf": args.min_rtf, "recorded": dt.date.today().isoformat(),
            "command": "bench/record_pool.py " + shlex.join(sys.argv[1:]), "wall_s": round(wall, 1),
            "refused": int(parent.get("trials_refused", 0)), "failed": int(parent.get("trials_failed", 0))}
    write_pool(out, Pool(instrument, args.steps, args.report_every, records, meta))
    print(f"{instrument}: {len(records)} finished trials recorded ({meta['refused']} refused, {meta['failed']} failed, "
          f"{wall:.0f} s) -> {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
