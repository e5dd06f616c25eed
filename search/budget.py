"""A wall-clock budget per instrument (``tonesweep sweep --time-budget SECONDS``).

What Ray Tune's ``TuneConfig(time_budget_s=...)`` offers a cluster user, ended the way tonesweep ends
trials: once an instrument's search has run for its budget, its searcher starts no more trials
(``OutOfTime``, asked by ``TrialSearcher.suggest``) and every running trial is stopped at its next
report (``BudgetStopper``, Ray's per-trial stopper), so it is recorded as a STOPPED trial with its
checkpoint and audio example, as a scheduler's stop would be. (Ray's own budget ends the experiment at
once: running trials end TERMINATED with no completion callback, and their MLflow runs would be left
open.) On 128 simulated workers a budget instead of a trial count keeps every worker busy to the end
(bench/README.md, "Which search decides the default": the drain).

The clock lives in the driver process, one per instrument, started by ``start`` when the instrument's
Tuner is built; the searcher and the stopper hold only the instrument's name, so Ray can pickle them
with its experiment state. A resumed sweep (``--resume``, which must repeat the same
``--time-budget``) starts the instrument's count again.
"""

from __future__ import annotations

import time

from ray.tune import Stopper

_DEADLINES: dict[str, float] = {}   # instrument -> time.monotonic() when its budget runs out
_STOPPED: dict[str, int] = {}       # instrument -> running trials stopped by it


def start(instrument: str, seconds: float | None) -> None:
    """Start (or restart) the instrument's budget; None: no budget."""
    _STOPPED[instrument] = 0
    if seconds is None:
        _DEADLINES.pop(instrument, None)
    else:
        _DEADLINES[instrument] = time.monotonic() + float(seconds)


def spent(instrument: str) -> bool:
    """Whether the instrument's budget has run out (never, without one)."""
    deadline = _DEADLINES.get(instrument)
    return deadline is not None and time.monotonic() >= deadline


def note_stopped(instrument: str) -> None:
    _STOPPED[instrument] = _STOPPED.get(instrument, 0) + 1


def stopped(instrument: str) -> int:
    """Running trials the instrument's budget stopped at their next report."""
    return _STOPPED.get(instrument, 0)


def cut(instrument: str, last_result: dict) -> bool:
    """Whether a trial that ended with ``last_result`` was stopped by the instrument's budget: it ended at a
    report, not with its final result, after the budget ran out (from then on Ray asks the stopper before
    the scheduler, so every such stop is the budget's)."""
    return not last_result.get("final") and spent(instrument)


def stop_reason(step) -> str:
    """A budget-stopped trial's failure_reason (as the scheduler's is "stopped early ... at step N")."""
    return f"stopped at step {step}: the sweep's time budget ran out" if step is not None else \
        "stopped: the sweep's time budget ran out"


class OutOfTime:
    """The searcher's question "may I start another trial?" (picklable: the instrument's name only)."""

    def __init__(self, instrument: str):
        self.instrument = instrument

    def __call__(self) -> bool:
        return spent(self.instrument)


class BudgetStopper(Stopper):
    """Stops a running trial at its first report after the instrument's budget ran out; never a trial's
    final result (its evaluation is done by then: it finishes)."""

    def __init__(self, instrument: str):
        self.instrument = instrument

    def __call__(self, trial_id: str, result: dict) -> bool:
        return not result.get("final") and spent(self.instrument)

    def stop_all(self) -> bool:
        return False
