"""Evaluation in proportion, checked on a recorded sweep: the front and the winner equal full evaluation's.

    .venv/bin/python bench/evaluation_proportion.py --sweep demo [--instruments bansuri,shehnai,sarangi]
        [--tracking-uri sqlite:///mlflow.db]

A sweep evaluates a finished trial's float16 and uint8 candidates only when they could matter
(docs/architecture.md, "Evaluation in proportion"). This benchmark takes a recorded sweep, evaluates
every candidate the sweep skipped after the fact (the trial's saved weights from MLflow, the
dataset's validation split, the trainer's own evaluation code), and compares the sweep's front and
winner (``results.report.front_rows``, ``results.select.select_smallest`` with the default criteria
and ``--min-rtf``) with those of the fully evaluated table. It prints, per instrument: the finished
trials, the candidates skipped, whether the front and the winner are equal, and the evaluation time
the sweep saved (the after-the-fact evaluation of the skipped candidates, timed here, against the
sweep's own ``eval_time_s``). ``--replay`` does the same for a sweep recorded before evaluation in
proportion (everything evaluated): it replays the record on the finished trials in the order they
ended, drops what the record would have skipped, and compares. The replay skips at least as much as
a live sweep: there a trial asks after its float32 evaluation, before a trial running beside it may
have added its candidates (a demo sweep's shehnai: 2 skipped in the replay, 0 live). Exits 1 when a front or a winner differs.

Needs the datasets the sweep trained on at the paths its trials' runs name (a tag), as after
`make demo`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def finished_runs(client, table) -> list:
    """The sweep's finished trial runs, in the order they ended (the order their records filled)."""
    from common.constants import FINISHED

    ids = table.loc[table["status"] == FINISHED, "run_id"].unique()
    return sorted((client.get_run(run_id) for run_id in ids), key=lambda r: (r.info.end_time or 0, r.info.run_id))


def replay_skips(table, runs) -> None:
    """For a fully evaluated sweep: blank the quantised qualities the sweep's record would have skipped,
    by replaying ``search.front.MeasuredCandidates`` on the finished trials in the order they ended."""
    from results.layout import trial_metrics
    from search.front import MeasuredCandidates

    record = MeasuredCandidates()
    for run in runs:
        metrics = trial_metrics(run.data.metrics)
        wanted = set(record.matter(metrics))
        for precision in ("float16", "uint8"):
            if precision not in wanted:
                for key in ("quality", "pitch_error_cents", "loudness_error_db"):
                    metrics.pop(f"{key}_{precision}", None)
                rows = (table["run_id"] == run.info.run_id) & (table["precision"] == precision)
                table.loc[rows, ["quality", "pitch_error_cents", "loudness_error_db"]] = np.nan
        record.add(metrics)
    _mark_candidates(table)


def skipped_rows(table):
    """Rows of finished trials whose quantised quality was not measured (the precisions the sweep skipped)."""
    from common.constants import FINISHED

    return table[(table["status"] == FINISHED) & ~np.isfinite(table["quality"].astype(float))]


def dataset_folder(run, datasets: Path) -> str:
    """The trial's dataset: ``DATASETS/<instrument>`` (sweeps name datasets by instrument and content
    key), or the path an older sweep's tag held."""
    from results.layout import DATASET_TAG, INSTRUMENT_TAG

    tagged = run.data.tags.get(DATASET_TAG, "")
    if tagged.startswith("/") and Path(tagged).is_dir():
        return tagged
    return str(datasets / run.data.tags[INSTRUMENT_TAG])


def evaluate_skipped(client, table, rows, download_dir: Path, datasets: Path) -> float:
    """Evaluate each skipped (trial, precision) into ``table`` in place; returns the seconds it took."""
    from results.layout import TRIAL_ARTIFACTS
    from trainers.model.trained import load_trained
    from trainers.training.evaluate import evaluate_precisions
    from trainers.training.train import load_frames

    seconds = 0.0
    for run_id, group in rows.groupby("run_id"):
        run = client.get_run(run_id)
        local = Path(client.download_artifacts(run_id, TRIAL_ARTIFACTS, str(download_dir / run_id)))
        config, model = load_trained(local)
        val = load_frames(dataset_folder(run, datasets), "validation", config)
        started = time.perf_counter()
        measured = evaluate_precisions(model, val, list(group["precision"]))
        seconds += time.perf_counter() - started
        for index, precision in zip(group.index, group["precision"]):
            for key in ("quality", "pitch_error_cents", "loudness_error_db"):
                table.loc[index, key] = measured[f"{key}_{precision}"]
    _mark_candidates(table)
    return seconds


def _mark_candidates(table) -> None:
    from results.table import candidate_mask

    table["candidate"] = candidate_mask(table)


def _keys(rows) -> list[tuple[str, str]]:
    return [(r.run_id, r.precision) for r in rows.itertuples()]


def compare(instrument: str, sweep_name: str | None, client, criteria, replay: bool, datasets: Path) -> bool:
    """Print one instrument's comparison; True when front and winner are equal."""
    from results.layout import trial_metrics
    from results.report import front_rows
    from results.select import select_smallest
    from results.table import load_table

    sweep, recorded = load_table(client, instrument, sweep_name)
    runs = finished_runs(client, recorded)
    full = recorded.copy()
    if replay:
        replay_skips(recorded, runs)
    skipped = skipped_rows(recorded)
    with tempfile.TemporaryDirectory() as tmp:
        after = 0.0 if replay else evaluate_skipped(client, full, skipped, Path(tmp), datasets)

    front, front_full = _keys(front_rows(recorded)), _keys(front_rows(full))
    won, won_full = select_smallest(recorded, criteria).winner, select_smallest(full, criteria).winner
    winner, winner_full = [None if w is None else (w["run_id"], w["precision"]) for w in (won, won_full)]
    eval_s = sum(trial_metrics(r.data.metrics).get("eval_time_s", 0.0) for r in runs)
    named = "none" if won_full is None else f"{won_full['trial_id']} {won_full['precision']}"
    print(f"{instrument} / {sweep.name}: {len(runs)} finished trials, {2 * len(runs)} quantised candidates, "
          f"{len(skipped)} skipped{' (replayed)' if replay else ''}; front of {len(front_full)} "
          f"{'equal' if front == front_full else 'DIFFERS'}, winner {named} "
          f"{'equal' if winner == winner_full else 'DIFFERS'}; evaluation {eval_s:.1f} s in the sweep"
          + ("" if replay else f", the skipped ones {after:.1f} s here"))
    return front == front_full and winner == winner_full


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=None, help="the sweep's name (default: each instrument's latest)")
    parser.add_argument("--instruments", default="bansuri,shehnai,sarangi")
    parser.add_argument("--tracking-uri", default=None, help="default: tonesweep's ($MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--min-rtf", type=float, default=5.0, help="the selector's speed bar, as `pareto --min-rtf`")
    parser.add_argument("--replay", action="store_true",
                        help="the sweep evaluated everything (before evaluation in proportion): replay which "
                             "candidates its record would have skipped, and compare without them")
    parser.add_argument("--datasets", default="demo/datasets",
                        help="folder of the sweep's datasets, one per instrument (default: demo/datasets)")
    args = parser.parse_args(argv)

    from mlflow import MlflowClient

    from results.criteria import Criteria
    from results.layout import resolve_tracking_uri

    client = MlflowClient(tracking_uri=resolve_tracking_uri(args.tracking_uri))
    criteria = Criteria(min_rtf=args.min_rtf)
    results = [compare(name, args.sweep, client, criteria, args.replay, Path(args.datasets))
               for name in args.instruments.split(",") if name]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
