"""The smallest acceptable candidate: the selector behind `tonesweep pareto` and the registry.

Acceptable means (quality is a loss, lower is better):
- quality <= bar, where bar = best + tolerance·|best| (``best`` = lowest quality among the finished
  candidates), or bar = ``max_loss`` when an absolute bar is given (the tolerance is then unused);
- and, when ``max_pitch_error`` is given, pitch error (cents) <= that bar (a NaN pitch error fails).

Among acceptable candidates the winner is the first by (bytes, quality, start time, run id,
precision float32 < float16 < uint8): fewer bytes, then better quality, then the earlier run; the
last two keys only make the order total. Since a larger tolerance only widens the acceptable set,
the winner never grows when the tolerance grows.

When nothing qualifies the result says why (``Selection.reason``); it never raises for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from results.table import PRECISIONS
from trainers.errors import UserError

TIE_BREAK = ["bytes", "quality", "start_time", "run_id", "_precision_rank"]


@dataclass(frozen=True)
class Criteria:
    """What "acceptable" means for one selection; recorded with the registered version."""

    tolerance: float = 0.05
    max_loss: float | None = None
    max_pitch_error: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise UserError(f"--tolerance {self.tolerance}: must be a number >= 0 (e.g. 0.05 for 5%)")
        if self.max_loss is not None and not math.isfinite(self.max_loss):
            raise UserError(f"--max-loss {self.max_loss}: must be a finite number (a spectral loss)")
        if self.max_pitch_error is not None and not (math.isfinite(self.max_pitch_error) and self.max_pitch_error >= 0):
            raise UserError(f"--max-pitch-error {self.max_pitch_error}: must be a number of cents >= 0")

    def quality_bar(self, best_quality: float) -> float:
        if self.max_loss is not None:
            return float(self.max_loss)
        return float(best_quality + self.tolerance * abs(best_quality))

    def describe_bar(self, best_quality: float) -> str:
        bar = self.quality_bar(best_quality)
        if self.max_loss is not None:
            text = f"quality <= {bar:.6g} (--max-loss)"
        else:
            text = f"quality <= {bar:.6g} (best {best_quality:.6g} + {self.tolerance:.4g} relative)"
        if self.max_pitch_error is not None:
            text += f" and pitch error <= {self.max_pitch_error:.4g} cents"
        return text


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
    acceptable = candidates["quality"] <= bar
    within_quality = int(acceptable.sum())
    if criteria.max_pitch_error is not None:
        acceptable &= candidates["pitch_error_cents"] <= criteria.max_pitch_error  # NaN compares False
    n_ok = int(acceptable.sum())
    rule = criteria.describe_bar(best["quality"])

    if n_ok == 0:
        if within_quality == 0:  # only possible with --max-loss below the best
            reason = f"no candidate has quality <= {bar:.6g}; the best of {len(candidates)} is {best['quality']:.6g}"
        else:
            pitches = candidates.loc[candidates["quality"] <= bar, "pitch_error_cents"]
            lowest = f"{np.nanmin(pitches):.4g}" if pitches.notna().any() else "unknown"
            reason = (f"{within_quality} candidates meet the quality bar {bar:.6g} but none has pitch error <= "
                      f"{criteria.max_pitch_error:.4g} cents (lowest among them: {lowest})")
        return Selection(criteria, best, None, bar, len(candidates), 0, reason)

    winner = candidates[acceptable].iloc[0]
    reason = (f"smallest of {n_ok} acceptable candidates: {int(winner['bytes']):,} bytes at {winner['precision']}, "
              f"quality {winner['quality']:.6g}; bar: {rule}")
    return Selection(criteria, best, winner, bar, len(candidates), n_ok, reason)
