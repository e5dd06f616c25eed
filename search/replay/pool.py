"""The recorded pool of trials a search benchmark replays: its one reader and writer.

A pool file (``bench/data/pool-<instrument>.json.gz``, written by ``bench/record_pool.py``) holds what
one live random sweep measured, every trial run to the end: each trial's configuration, its learning
curve (``val_loss`` at every report), its model bytes before training, the estimated wasm real-time
factor the sweep filters on, its times (start-up, seconds per step, evaluation) and its final
candidates (bytes, quality and pitch error per precision). Replays read nothing else, so anyone can
rerun ``bench/search_efficiency.py`` in minutes without training.

Format (version 1): ``{"version": 1, "instrument", "dataset_key", "steps", "report_every", "seed",
"min_rtf", "recorded" (ISO date), "command", "wall_s", "refused", "records": [Record as a dict]}``.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass, field
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
