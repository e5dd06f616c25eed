"""A wall-clock budget per instrument (``tonesweep sweep --time-budget SECONDS``).

What Ray Tune's ``TuneConfig(time_budget_s=...)`` offers a cluster user, ended the way tonesweep ends
trials: once an instrument's search has run for its budget, its searcher starts no more trials
(``OutOfTime``, asked by ``TrialSearcher.suggest``) and every running trial is stopped at its next
report (``BudgetStopper``, Ray's per-trial stopper), so it is recorded as a STOPPED trial with its
checkpoint and audio example, as a scheduler's stop would be. The trials know the deadline too
(``deadline``, in ``TrialSpec``): the trainer reports at once at the first step it ends after it, so
that next report is not up to ``report_every`` steps away, and a trial still starting ends after its
first step. (Ray's own budget ends the experiment at once: running trials end TERMINATED with no
completion callback, and their MLflow runs would be left open.) Not to the second: a trial Ray had
already taken from the searcher may still start after the deadline, a trial ends only once its step
(or its start-up's imports and tracing) is done, and the workers read the deadline on their own clocks
(a cluster's nodes keep theirs in step). What it buys on many workers: bench/README.md, "A wall-clock
budget instead of a trial count".

The clock lives in the driver process, one per instrument, started by ``start`` when the instrument's
Tuner is built; the searcher and the stopper hold only the instrument's name, so Ray can pickle them
with its experiment state. A ``--resume`` (which must repeat the same ``--time-budget``) starts the
instrument's clock again; but once its searcher has said it is finished, Ray keeps that in its saved
state, so a sweep interrupted after its budget ran out only finishes the trials that were running.
"""

from __future__ import annotations

import time

from ray.tune import Stopper

_DEADLINES: dict[str, float] = {}         # instrument -> time.monotonic() when its budget runs out
_WALL_DEADLINES: dict[str, float] = {}    # the same moment as time.time(), what the trial workers compare with
_STOPPED: dict[str, set[str]] = {}        # instrument -> ids of the trials its budget stopped
_HELD_BACK: dict[str, bool] = {}          # instrument -> the searcher was refused a start by the budget


def start(instrument: str, seconds: float | None) -> None:
    """Start (or restart) the instrument's budget; None: no budget."""
    _STOPPED[instrument], _HELD_BACK[instrument] = set(), False
    if seconds is None:
        _DEADLINES.pop(instrument, None)
        _WALL_DEADLINES.pop(instrument, None)
    else:
        _DEADLINES[instrument] = time.monotonic() + float(seconds)
        _WALL_DEADLINES[instrument] = time.time() + float(seconds)


def deadline(instrument: str) -> float | None:
    """When the instrument's budget runs out, in seconds since the epoch (for the trial workers, which may be
    other processes and nodes); None without one."""
    return _WALL_DEADLINES.get(instrument)


def spent(instrument: str) -> bool:
    """Whether the instrument's budget has run out (never, without one)."""
    ends = _DEADLINES.get(instrument)
    return ends is not None and time.monotonic() >= ends


def stopped_by_budget(instrument: str, trial_id: str) -> bool:
    """Whether the instrument's budget stopped this trial (this driver's ``BudgetStopper`` did)."""
    return trial_id in _STOPPED.get(instrument, ())


def stopped(instrument: str) -> int:
    """Running trials the instrument's budget stopped at their next report, in this driver."""
    return len(_STOPPED.get(instrument, ()))


def held_back(instrument: str) -> bool:
    """Whether the budget kept the instrument's searcher from starting a trial."""
    return _HELD_BACK.get(instrument, False)


def stop_reason(step) -> str:
    """A budget-stopped trial's failure_reason (as the scheduler's is "stopped early ... at step N")."""
    return f"stopped at step {step}: the sweep's time budget ran out" if step is not None else \
        "stopped: the sweep's time budget ran out"


class OutOfTime:
    """The searcher's question "is the budget spent?" (picklable: the instrument's name only)."""

    def __init__(self, instrument: str):
        self.instrument = instrument

    def __call__(self) -> bool:
        if not spent(self.instrument):
            return False
        _HELD_BACK[self.instrument] = True
        return True


class BudgetStopper(Stopper):
    """Stops a running trial at its first report after the instrument's budget ran out, and records that it
    did; never a trial's final result (its evaluation is done by then: it finishes). Ray asks it before the
    scheduler."""

    def __init__(self, instrument: str):
        self.instrument = instrument

    def __call__(self, trial_id: str, result: dict) -> bool:
        if result.get("final") or not spent(self.instrument):
            return False
        _STOPPED.setdefault(self.instrument, set()).add(trial_id)
        return True

    def stop_all(self) -> bool:
        return False
