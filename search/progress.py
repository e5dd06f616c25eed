"""Terminal progress of a sweep: counts per instrument, best quality and smallest acceptable size.

``InstrumentTally`` is plain Python (tested without Ray); ``search.callbacks.SweepProgress`` feeds it
from Ray Tune's callback hooks. "Acceptable" is the selector's own rule (``results.criteria``):
quality within the default tolerance of the best so far, over every finished trial × precision.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from results.criteria import Criteria
from results.pareto import ReferencePoint, hypervolume
from search.limits import read_refusals
from common.constants import FAILED, FINISHED, PRECISIONS, REJECTED, STOPPED
from common.values import finite


@dataclass
class Candidate:
    """One finished trial at one weight precision."""

    trial_id: str
    precision: str
    quality: float
    bytes: int


@dataclass(frozen=True)
class TrialTime:
    """Where one trial's time on its worker went, in seconds, from its own metrics (``trial_time``)."""

    wall: float        # start to end, as this driver saw them
    training: float    # training after the step's first call (steps, validation passes, checkpoints)
    startup: float     # the trial's start to the end of its first step: imports, data, model, tracing
    evaluation: float  # held-out evaluation and audio examples of a finished trial


@dataclass(frozen=True)
class TimeSplit:
    """Shares of the trials' time on their workers (``InstrumentTally.time_split``), and that time in seconds."""

    trial_s: float
    training: float
    startup: float
    evaluation: float

    @property
    def rest(self) -> float:
        """Scheduling, reports, the trainable's own work, and the whole of trials that raised before reporting."""
        return max(0.0, 1.0 - self.training - self.startup - self.evaluation)

    def describe(self, decimals: int = 0) -> str:
        """``training 72%, start-up 16%, evaluation 11%, the rest 1%`` (the one wording of the split)."""
        parts = (("training", self.training), ("start-up", self.startup), ("evaluation", self.evaluation),
                 ("the rest", self.rest))
        return ", ".join(f"{name} {share:.{decimals}%}" for name, share in parts)


@dataclass
class InstrumentTally:
    """What one instrument's sweep has done so far."""

    instrument: str
    total: int
    criteria: Criteria = field(default_factory=Criteria)
    reference: ReferencePoint | None = None                  # the sweep's hypervolume reference
    running: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)   # trial id -> FINISHED/FAILED/REJECTED/STOPPED
    candidates: list[Candidate] = field(default_factory=list)
    steps_used: dict[str, int] = field(default_factory=dict)  # trial id -> training steps it ran
    refusals_path: str | None = None  # the searcher's count of refused draws (search.limits)
    started_at: dict[str, float] = field(default_factory=dict)  # trial id -> when this driver saw it start (monotonic)
    times: dict[str, TrialTime] = field(default_factory=dict)   # trials started and ended under this driver

    def preload(self, outcomes: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
        """Trials that ended before this driver started (a resumed sweep): id -> (status, metrics)."""
        for trial_id, (status, metrics) in outcomes.items():
            self.end(trial_id, status, metrics)

    def start(self, trial_id: str, now: float | None = None) -> None:
        self.running.add(trial_id)
        self.started_at[trial_id] = time.monotonic() if now is None else now

    def end(self, trial_id: str, status: str, result: Mapping[str, Any], now: float | None = None) -> None:
        self.running.discard(trial_id)
        began = self.started_at.pop(trial_id, None)  # None: it ended before this driver started (preload)
        if began is not None:
            self.times[trial_id] = trial_time(result, (time.monotonic() if now is None else now) - began)
        self.outcomes[trial_id] = status
        self.steps_used[trial_id] = int(finite(result.get("step", result.get("steps"))) or 0)
        self.candidates = [c for c in self.candidates if c.trial_id != trial_id]  # ended twice: keep the last
        if status == FINISHED:
            self.candidates.extend(candidates_of(trial_id, result))

    def trial_steps_used(self) -> int:
        """Training steps all ended trials ran together (what a search spends)."""
        return sum(self.steps_used.values())

    def hypervolume(self) -> float | None:
        """Hypervolume of the candidates so far against the sweep's reference (None without one)."""
        if self.reference is None:
            return None
        return hypervolume([c.bytes for c in self.candidates], [c.quality for c in self.candidates], self.reference)

    def time_split(self) -> TimeSplit | None:
        """Where the time of the trials that started and ended under this driver went; None before one did."""
        times = self.times.values()
        total = sum(t.wall for t in times)
        if total <= 0:
            return None
        return TimeSplit(trial_s=total, training=sum(t.training for t in times) / total,
                         startup=sum(t.startup for t in times) / total,
                         evaluation=sum(t.evaluation for t in times) / total)

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.outcomes.values() if s in statuses)

    def refused(self) -> int:
        """Configurations the searcher drew and refused before training (too large or too slow)."""
        return read_refusals(self.refusals_path)["refused"]

    def best(self) -> Candidate | None:
        return min(self.candidates, key=lambda c: (c.quality, c.bytes), default=None)

    def smallest_acceptable(self) -> Candidate | None:
        best = self.best()
        if best is None:
            return None
        acceptable = [c for c in self.candidates if self.criteria.accepts(c.quality, best.quality)]
        return min(acceptable, key=lambda c: (c.bytes, c.quality))

    def line(self) -> str:
        """One status line, e.g. ``bansuri  done 5/8 (failed 1, stopped 2) running 2 | best ...``."""
        done = len(self.outcomes)
        text = (f"{self.instrument:<10} done {done}/{self.total} running {len(self.running)} "
                f"finished {self.count(FINISHED)} failed {self.count(FAILED)} stopped {self.count(STOPPED)}")
        if self.count(REJECTED):  # trials refused before training by an older sweep: not a failure
            text += f" rejected {self.count(REJECTED)}"
        refused = self.refused()
        if refused:  # draws refused before they became trials (too large or too slow), drawn again
            text += f" refused {refused}"
        best, small = self.best(), self.smallest_acceptable()
        volume = self.hypervolume()
        if volume is not None:
            text += f" | hv {volume:.4g}"
        if best is not None:
            text += f" | best quality {best.quality:.4f} ({best.trial_id} {best.precision}, {human_bytes(best.bytes)})"
            text += (f" | smallest within {self.criteria.tolerance:.0%}: {human_bytes(small.bytes)} "
                     f"({small.trial_id} {small.precision}, quality {small.quality:.4f})")
        return text


def trial_time(result: Mapping[str, Any], wall: float) -> TrialTime:
    """A trial's time from its last result: a finished trial's ``train_time_s``, a stopped one's last
    report's ``elapsed_s`` (both count the first step call, which is start-up), ``startup_s``,
    ``eval_time_s`` + ``examples_time_s``; each part capped by what the wall leaves (a resumed trial's
    training time also counts what it trained before the interruption, so it can fill the wall and leave
    its start-up under this driver uncounted)."""
    def seconds(*keys: str) -> float:
        return sum(max(0.0, finite(result.get(key)) or 0.0) for key in keys)

    wall = max(0.0, wall)
    trained = finite(result.get("train_time_s"))
    trained = finite(result.get("elapsed_s")) if trained is None else trained
    training = min(wall, max(0.0, (trained or 0.0) - seconds("first_call_s")))
    startup = min(wall - training, seconds("startup_s"))
    evaluation = min(wall - training - startup, seconds("eval_time_s", "examples_time_s"))
    return TrialTime(wall, training, startup, evaluation)


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
