"""The recorded pool of trials a search benchmark replays: its one reader and writer.

A pool file (``bench/data/pool-<instrument>.json.gz``, written by ``bench/record_pool.py``) holds what
one live random sweep measured, every trial run to the end: each trial's configuration, its learning
curve (``val_loss`` at every report), its model bytes before training, the estimated wasm real-time
factor the sweep filters on, its times (start-up, seconds per step, evaluation) and its final
candidates (bytes, quality and pitch error per precision). Replays read nothing else, so anyone can
rerun ``bench/search_efficiency.py`` in minutes without training.

Format (version 1): ``{"version": 1, "instrument", "dataset_key", "steps", "report_every", "seed",
"min_rtf", "recorded" (ISO date), "command", "wall_s", "refused", "records": [Record as a dict]}``.

A start-ups file (``bench/data/startups-<instrument>.json.gz``, written by ``bench/record_startups.py``) holds
each record's start-up measured again with a later trainer: ``{"version": 1, "instrument", "dataset_key",
"pool_recorded", "recorded", "command", "workers", "worker_memory_mib", "trials_per_worker" (trials each
recycled worker ran before it was replaced), "wall_s", "startups": [Startup as a dict, one per record, in the
pool's order]}``. ``with_startups`` puts the reused workers' in a pool's place, with what a fresh worker adds
(``fresh_worker_s``).
"""

from __future__ import annotations

import gzip
import json
import statistics
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from common.errors import UserError

VERSION = 1


@dataclass
class Record:
    """One recorded trial: what a replay needs."""

    config: dict
    model_bytes: float
    curve: dict[int, float]                 # step -> val_loss
    candidates: list[tuple[float, float]]   # (bytes, quality) per precision, as the front counts them
    seconds_per_step: float
    eval_s: float
    startup_s: float = 0.0                  # trial start to the first step (imports, tracing)
    rtf_wasm: float | None = None           # the cost model's estimate, what --min-rtf filters on
    precisions: dict[str, dict] = field(default_factory=dict)  # precision -> {bytes, quality, pitch_error_cents}

    @property
    def smallest_bytes(self) -> float:
        """Bytes of its smallest bundle, at uint8: the search's size objective (``search.algorithms.OBJECTIVE_SIZE``)."""
        return float(self.precisions.get("uint8", {}).get("bytes") or min(b for b, _ in self.candidates))

    def loss_at(self, step: int) -> float:
        """val_loss at the recorded report nearest ``step`` (the earlier one on a tie)."""
        steps = sorted(self.curve)
        return self.curve[min(steps, key=lambda s: (abs(s - step), s))]

    def seconds(self, steps: int) -> float:
        """Worker time of this trial run for ``steps`` steps: start-up and training (evaluation apart)."""
        return self.startup_s + steps * self.seconds_per_step


@dataclass
class Pool:
    instrument: str
    steps: int
    report_every: int
    records: list[Record]
    meta: dict = field(default_factory=dict)
    # a replay's workers (set by ``with_startups``, not in the pool's file): what a fresh worker adds to a trial's
    # start-up, and after how many trials a worker is recycled (None: never)
    fresh_worker_s: float = 0.0
    trials_per_worker: int | None = None


@dataclass
class Startup:
    """One record's start-up measured again (``bench/record_startups.py``)."""

    index: int                          # the record's place in its pool
    startup_s: float                    # as Record.startup_s (trial start to the end of its first step), in a reused
                                        # worker: one that has run other trials (a sweep's usual case)
    first_call_s: float | None = None   # of which the step's first call (tracing, compiling, one step)
    to_first_report_s: float = 0.0      # trial start to its first report
    fresh_startup_s: float | None = None  # the same, where it was also measured as a fresh worker's first trial
                                          # (which imports the trainer first)


def write_pool(path: Path, pool: Pool) -> None:
    body = {"version": VERSION, "instrument": pool.instrument, "steps": pool.steps,
            "report_every": pool.report_every, **pool.meta, "records": [asdict(r) for r in pool.records]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as out:
        json.dump(body, out, separators=(",", ":"))


def read_pool(path: Path) -> Pool:
    with gzip.open(path, "rt", encoding="utf-8") as src:
        body = json.load(src)
    if body.get("version") != VERSION:
        raise UserError(f"{path}: pool version {body.get('version')!r}, this reader knows {VERSION}; record it again "
                        f"with bench/record_pool.py")
    records = [Record(**{**r, "curve": {int(k): v for k, v in r["curve"].items()},
                         "candidates": [tuple(c) for c in r["candidates"]]}) for r in body.pop("records")]
    return Pool(body.pop("instrument"), body.pop("steps"), body.pop("report_every"), records, body)


def write_startups(path: Path, startups: list[Startup], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as out:
        json.dump({"version": VERSION, **meta, "startups": [asdict(s) for s in startups]}, out,
                  separators=(",", ":"))


def read_startups(path: Path, pool: Pool) -> tuple[list[Startup], dict]:
    """The start-ups measured again for ``pool``'s records (checked to be for this pool), and the file's meta."""
    with gzip.open(path, "rt", encoding="utf-8") as src:
        body = json.load(src)
    if body.get("version") != VERSION:
        raise UserError(f"{path}: start-ups version {body.get('version')!r}, this reader knows {VERSION}; measure "
                        f"them again with bench/record_startups.py")
    startups = [Startup(**s) for s in body["startups"]]
    if (body.get("instrument"), body.get("dataset_key")) != (pool.instrument, pool.meta.get("dataset_key")) or \
            [s.index for s in startups] != list(range(len(pool.records))):
        raise UserError(f"{path}: not measured for this pool of {pool.instrument} ({len(pool.records)} records); "
                        f"measure them again with bench/record_startups.py")
    return startups, body


def fresh_worker_s(startups: list[Startup]) -> float:
    """What a fresh worker adds to a trial's start-up (importing the trainer): the median over the records measured
    both ways."""
    extra = [s.fresh_startup_s - s.startup_s for s in startups if s.fresh_startup_s is not None]
    return statistics.median(extra) if extra else 0.0


def with_startups(pool: Pool, startups: list[Startup], trials_per_worker: list[int] = ()) -> Pool:
    """The pool with each record's start-up replaced by the one measured again in a reused worker, and its
    workers' model: what a fresh worker adds, and after how many trials one was recycled (the higher median of
    those measured; None: none was)."""
    records = [replace(r, startup_s=s.startup_s) for r, s in zip(pool.records, startups)]
    recycled_after = statistics.median_high(trials_per_worker) if trials_per_worker else None
    return replace(pool, records=records, fresh_worker_s=fresh_worker_s(startups), trials_per_worker=recycled_after)
