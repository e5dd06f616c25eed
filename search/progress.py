"""Terminal progress for a sweep: counts per instrument, best quality and smallest acceptable size.

``SweepProgress`` is a driver-side Ray Tune callback (one per instrument); the bookkeeping lives in
``InstrumentTally``, plain Python tested without Ray. "Acceptable" follows the results selector:
quality (held-out spectral loss, lower is better) within ``tolerance`` (5%) of the best so far,
over every finished trial × weight precision.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, TextIO

from ray.tune import Callback

from results.tracking import trial_outcome

PRECISIONS = ("float32", "float16", "uint8")
TOLERANCE = 0.05


@dataclass
class Candidate:
    """One finished trial at one weight precision."""

    trial_id: str
    precision: str
    quality: float
    bytes: int


@dataclass
class InstrumentTally:
    """What one instrument's sweep has done so far."""

    instrument: str
    total: int
    running: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)   # trial id -> FINISHED/FAILED/REJECTED/STOPPED
    candidates: list[Candidate] = field(default_factory=list)

    def preload(self, outcomes: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        """Trials that ended before this driver started (a resumed sweep): id -> (status, metrics)."""
        for trial_id, (status, metrics) in outcomes.items():
            self.end(trial_id, status, metrics)

    def start(self, trial_id: str) -> None:
        self.running.add(trial_id)

    def end(self, trial_id: str, status: str, result: Mapping[str, Any]) -> None:
        self.running.discard(trial_id)
        self.outcomes[trial_id] = status
        self.candidates = [c for c in self.candidates if c.trial_id != trial_id]  # ended twice: keep the last
        if status == "FINISHED":
            self.candidates.extend(candidates_of(trial_id, result))

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.outcomes.values() if s in statuses)

    def best(self) -> Candidate | None:
        return min(self.candidates, key=lambda c: (c.quality, c.bytes), default=None)

    def smallest_acceptable(self, tolerance: float = TOLERANCE) -> Candidate | None:
        best = self.best()
        if best is None:
            return None
        bar = best.quality * (1 + tolerance) if best.quality >= 0 else best.quality * (1 - tolerance)
        acceptable = [c for c in self.candidates if c.quality <= bar]
        return min(acceptable, key=lambda c: (c.bytes, c.quality))

    def line(self) -> str:
        """One status line, e.g. ``bansuri  done 5/8 (failed 1, stopped 2) running 2 | best ...``."""
        done = len(self.outcomes)
        text = (f"{self.instrument:<10} done {done}/{self.total} running {len(self.running)} "
                f"finished {self.count('FINISHED')} failed {self.count('FAILED', 'REJECTED')} "
                f"stopped {self.count('STOPPED')}")
        best, small = self.best(), self.smallest_acceptable()
        if best is not None:
            text += f" | best quality {best.quality:.4f} ({best.trial_id} {best.precision}, {human_bytes(best.bytes)})"
            text += f" | smallest within {TOLERANCE:.0%}: {human_bytes(small.bytes)} ({small.trial_id} {small.precision}, quality {small.quality:.4f})"
        return text


def candidates_of(trial_id: str, result: Mapping[str, Any]) -> list[Candidate]:
    """A finished trial's candidates: one per precision with a finite quality and a size."""
    out = []
    for precision in PRECISIONS:
        quality, size = result.get(f"quality_{precision}"), result.get(f"bytes_{precision}")
        if quality is None or size is None:
            continue
        quality = float(quality)
        if math.isfinite(quality):
            out.append(Candidate(trial_id, precision, quality, int(size)))
    return out


def human_bytes(n: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


class SweepProgress(Callback):
    """Prints a status line when a trial ends (and at most every ``every_s`` seconds otherwise)."""

    def __init__(self, tally: InstrumentTally, stream: TextIO | None = None, every_s: float = 15.0):
        self.tally = tally
        self.stream = stream or sys.stdout
        self.every_s = every_s
        self._last_print = 0.0
        self._last_line = ""

    def __getstate__(self) -> dict:
        # Ray pickles callbacks with its RunConfig; a terminal stream cannot be pickled.
        return {"tally": self.tally, "every_s": self.every_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["tally"], None, state["every_s"])

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tally.start(trial.trial_id)
        self._maybe_print()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._maybe_print()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, errored=True)

    def _end(self, trial, errored: bool) -> None:
        result = trial.last_result or {}
        status, reason = trial_outcome(result, errored)
        self.tally.end(trial.trial_id, status, result)
        if len(reason) > 160:  # tracebacks stay in MLflow's failure_reason tag, not the terminal
            reason = reason[:157] + "..."
        note = f" ({reason})" if status in ("FAILED", "REJECTED") and reason else ""
        self._print(f"  trial {trial.trial_id} {status}{note}")
        self._print(self.tally.line())

    def _maybe_print(self) -> None:
        """The status line when it changed (at most every ``every_s``), or as a heartbeat every minute."""
        line = self.tally.line()
        since = time.monotonic() - self._last_print
        if (line != self._last_line and since >= self.every_s) or since >= max(60.0, self.every_s):
            self._print(line)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self._last_print = time.monotonic()
        if not text.startswith(" "):
            self._last_line = text
