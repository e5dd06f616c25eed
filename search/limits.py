"""What may train: the sweep's limits (``--max-params``, ``--max-bytes``, ``--min-rtf``), checked on a
configuration's size report (``trainers.model.size.size_report``: exact parameters and bytes, the
cost model's wasm speed) before anything trains.

One rule for two places: the searcher refuses a drawn configuration and draws again
(``Feasibility``, so ``--trials N`` counts trials that trained), and the trainable keeps the same
check as a guard for trials created before refusals existed (a resumed older sweep). Refusals are
counted in ``refusals.json`` beside the instrument's other bookkeeping, which the progress line and
the parent run read (``read_refusals``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from common.files import write_json_atomic
from common.values import finite
from search.algorithms import OBJECTIVE_SIZE
from search.algorithms.refusal import Refusal

REFUSALS = "refusals.json"
SIZE_METRIC, SIZE_KEY = "model_bytes", "bytes_float32"   # a trial's size as shown, and what --max-bytes limits


def size_metrics(sizes: Mapping[str, Any]) -> dict[str, float]:
    """What every result of a trial reports of its size (known before training): ``SIZE_METRIC`` and
    ``OBJECTIVE_SIZE``, those the size report has."""
    named = {SIZE_METRIC: sizes.get(SIZE_KEY), OBJECTIVE_SIZE: sizes.get(OBJECTIVE_SIZE)}
    return {name: float(value) for name, value in named.items() if finite(value) is not None}


@dataclass(frozen=True)
class Limits:
    max_params: int | None = None
    max_bytes: int | None = None
    min_rtf: float | None = None

    def refusal(self, sizes: Mapping[str, Any]) -> Refusal | None:
        """Why a configuration of these sizes may not train, or None when it fits."""
        objectives = size_metrics(sizes)
        params, size, rtf = sizes.get("params", 0), sizes.get(SIZE_KEY, 0), finite(sizes.get("rtf_wasm"))
        if self.max_params is not None and params > self.max_params:
            return Refusal(f"too large: {params} parameters > --max-params {self.max_params}",
                           params / self.max_params - 1, objectives)
        if self.max_bytes is not None and size > self.max_bytes:
            return Refusal(f"too large: {size} float32 bytes > --max-bytes {self.max_bytes}",
                           size / self.max_bytes - 1, objectives)
        if self.min_rtf and rtf is not None and rtf < self.min_rtf:
            return Refusal(f"too slow: wasm real-time factor {rtf:.3g} < --min-rtf {self.min_rtf:g} "
                           "(estimated before training)", self.min_rtf / max(rtf, 1e-9) - 1, objectives)
        return None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_bytes, self.min_rtf))


class Feasibility:
    """The searcher's check of a drawn configuration: its size report against the limits. Counts each
    refusal in ``log_path`` (JSON). Pickles by value (Ray pickles the searcher that holds it)."""

    def __init__(self, limits: Limits, size_fn: Callable[[dict], Mapping[str, Any]], log_path: str | None = None):
        self.limits, self.size_fn, self.log_path = limits, size_fn, log_path

    def __call__(self, config: Mapping[str, Any]) -> Refusal | None:
        refusal = self.limits.refusal(self.size_fn(dict(config)))
        if refusal is not None and self.log_path:
            record_refusal(Path(self.log_path), refusal.reason)
        return refusal


def record_refusal(path: Path, reason: str) -> None:
    counts = read_refusals(path)
    kind = reason.split(":", 1)[0]  # "too large", "too slow"
    counts["refused"] += 1
    counts["reasons"][kind] = counts["reasons"].get(kind, 0) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, counts, indent=None)


def read_refusals(path: str | Path | None) -> dict:
    """{"refused": n, "reasons": {kind: n}} of an instrument (zeros when nothing was refused)."""
    empty = {"refused": 0, "reasons": {}}
    if not path:
        return empty
    try:
        counts = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return empty
    if not isinstance(counts, dict) or not isinstance(counts.get("refused"), int):
        return empty
    return {"refused": counts["refused"], "reasons": dict(counts.get("reasons") or {})}
