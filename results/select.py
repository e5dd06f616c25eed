"""The smallest acceptable candidate: the selector behind `tonesweep pareto` and the registry.

Acceptable is ``results.criteria.Criteria`` (the rule the progress display and export share):
quality <= best + tolerance·|best| (``best`` = lowest quality among the finished candidates) or
<= ``max_loss``; and, with ``max_pitch_error``, pitch error (cents) <= it (NaN fails).

Among acceptable candidates the winner is the first by (bytes, quality, start time, run id,
precision float32 < float16 < uint8): fewer bytes, then better quality, then the earlier run; the
last two keys only make the order total. Since a larger tolerance only widens the acceptable set,
the winner never grows when the tolerance grows.

When nothing qualifies the result says why (``Selection.reason``); it never raises for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from results.criteria import Criteria
from common.constants import PRECISIONS

TIE_BREAK = ["bytes", "quality", "start_time", "run_id", "_precision_rank"]


@dataclass(frozen=True)
class Selection:
    """The outcome of one selection. ``best``/``winner`` are table rows (None when absent)."""

    criteria: Criteria
    best: pd.Series | None
    winner: pd.Series | None
    bar: float | None          # the quality bar used (None when there was no finished candidate)
    n_candidates: int          # finished candidates (trial × precision) considered
    n_acceptable: int
    reason: str                # why the winner won, or why nothing qualified


def _ordered(candidates: pd.DataFrame) -> pd.DataFrame:
    ranked = candidates.assign(_precision_rank=candidates["precision"].map(
        lambda p: PRECISIONS.index(p) if p in PRECISIONS else len(PRECISIONS)))
    return ranked.sort_values(TIE_BREAK, kind="stable").drop(columns="_precision_rank")


def _status_summary(table: pd.DataFrame) -> str:
    counts = table.drop_duplicates("run_id")["status"].value_counts()
    return ", ".join(f"{n} {status}" for status, n in counts.sort_index().items()) or "no trials"


def select_smallest(table: pd.DataFrame, criteria: Criteria = Criteria()) -> Selection:
    """Pick the smallest acceptable candidate from the candidate table (``results.table``)."""
    candidates = _ordered(table[table["candidate"]])
    if candidates.empty:
        reason = f"no finished trial with bytes and quality to choose from ({_status_summary(table)})"
        return Selection(criteria, None, None, None, 0, 0, reason)

    by_quality = candidates.sort_values(["quality", "bytes", "start_time", "run_id"], kind="stable")
    best = by_quality.iloc[0]
    bar = criteria.quality_bar(best["quality"])
    rule = criteria.describe_bar(best["quality"])
    passed, reason = _apply_bars(candidates, criteria, bar)
    if not passed.any():
        return Selection(criteria, best, None, bar, len(candidates), 0, reason)
    winner = candidates[passed].iloc[0]
    reason = (f"smallest of {int(passed.sum())} acceptable candidates: {int(winner['bytes']):,} bytes at "
              f"{winner['precision']}, quality {winner['quality']:.6g}; bar: {rule}")
    slow = _column(candidates, "rtf_wasm")
    faster = (candidates["bytes"] < winner["bytes"]) & (candidates["quality"] <= bar) & slow.lt(criteria.min_rtf or 0)
    if faster.any():
        reason += (f"; {int(faster.sum())} smaller candidate(s) within the quality bar run below the speed bar "
                   f"(wasm real-time factor {slow[faster].max():.3g} < {criteria.min_rtf:.4g})")
    return Selection(criteria, best, winner, bar, len(candidates), int(passed.sum()), reason)


def _column(candidates: pd.DataFrame, name: str) -> pd.Series:
    return candidates[name].astype(float) if name in candidates else pd.Series(np.nan, index=candidates.index)


def _apply_bars(candidates: pd.DataFrame, criteria: Criteria, bar: float) -> tuple[pd.Series, str]:
    """(mask of candidates meeting every bar, why none does when the mask is empty). The bars apply
    in order (quality, pitch, speed, size); the reason names the first one nothing gets past."""
    pitch, rtf, size = (_column(candidates, c) for c in ("pitch_error_cents", "rtf_wasm", "bytes"))
    bars = [
        ("quality", candidates["quality"] <= bar, f"quality <= {bar:.6g}", candidates["quality"], min),
        ("pitch", pitch.map(criteria.pitch_ok).astype(bool), f"pitch error <= {criteria.max_pitch_error} cents",
         pitch, min),
        ("speed", rtf.map(criteria.speed_ok).astype(bool), f"wasm real-time factor >= {criteria.min_rtf}", rtf, max),
        ("size", size.map(criteria.size_ok).astype(bool), f"bundle <= {criteria.max_bytes} bytes", size, min),
    ]
    passed = pd.Series(True, index=candidates.index)
    met: list[str] = []
    for name, mask, text, values, closest in bars:
        survivors = passed & mask
        if not survivors.any():
            remaining = values[passed].dropna()
            nearest = f"{closest(remaining):.4g}" if len(remaining) else "unknown"
            if not met:
                return survivors, (f"no candidate has {text}; the best of {int(passed.sum())} is "
                                   f"{candidates['quality'].min():.6g}")
            return survivors, (f"{int(passed.sum())} candidates meet {' and '.join(met)} but none has {text} "
                               f"(closest among them: {nearest})")
        passed = survivors
        met.append(text)
    return passed, ""
