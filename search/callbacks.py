"""Thin Ray Tune callbacks: Ray's trial hooks in, calls on plain objects out.

- ``MLflowCallback`` forwards to ``results.tracking.TrialTracker`` (one MLflow child run per trial);
- ``SweepProgress`` feeds ``search.progress.InstrumentTally`` and prints its status line;
- ``StorageSync`` uploads the driver's bookkeeping to the object store (``search.place.BookkeepingUpload``).

Ray pickles callbacks with the RunConfig (and brings them back with ``Tuner.restore``), so each
pickles only what rebuilds it; live clients and terminal streams are recreated.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ray.tune import Callback

from results.tracking import TrialTracker, trial_outcome
from search import budget
from search.progress import InstrumentTally
from cluster.object_store import Remote, download, local_copy, store_problem
from search.place import BookkeepingUpload
from common.constants import FAILED, FINISHED, REJECTED, STOPPED
from common.files import scratch_dir
from common.paths import is_uri

Say = Callable[[str], None]


class MLflowCallback(Callback):
    """Driver-side MLflow tracking of every trial (see ``results.tracking.TrialTracker``)."""

    def __init__(self, tracker: TrialTracker):
        self.tracker = tracker

    def __getstate__(self) -> dict:
        return {"args": self.tracker.init_args()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(TrialTracker(*state["args"]))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tracker.open(trial.trial_id, trial.config)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self.tracker.open(trial.trial_id, trial.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.tracker.curve(trial.trial_id, trial.config, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        stopped_by_budget = {}
        if budget.stopped_by_budget(self.tracker.instrument, trial.trial_id):
            stopped_by_budget = {"status": STOPPED, "error_text": budget.stop_reason(result.get("step"))}
        with finished_outputs(result) as out_dir:
            self.tracker.close(trial.trial_id, trial.config, {**result, "out_dir": out_dir}, errored=False,
                               **stopped_by_budget)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tracker.close(trial.trial_id, trial.config, trial.last_result, errored=True,
                           error_text=error_text(trial))

    def on_experiment_end(self, trials, **info):
        self.tracker.flush_all()


@contextmanager
def finished_outputs(result: dict) -> Iterator[str | None]:
    """A finished trial's output folder on this machine (downloaded from the object store when the
    trial kept it there), for the tracker to log as artifacts; None when there is nothing to log. Of a
    trial stopped by the scheduler only ``audio/`` is fetched: it is all the tracker logs of one."""
    out_dir = result.get("out_dir")
    outcome = trial_outcome(result, False)[0]
    if out_dir and outcome == STOPPED and is_uri(out_dir):  # only its audio example is logged: no checkpoint
        with scratch_dir("tonesweep-fetch-") as folder:
            download(Remote(f"{out_dir.rstrip('/')}/audio"), folder / "audio")
            yield str(folder)
        return
    if not out_dir or outcome != FINISHED:
        yield out_dir
        return
    with local_copy(out_dir) as folder:
        yield str(folder)


class StorageSync(Callback):
    """Uploads the driver's bookkeeping (``sweep.json``, ledgers, MO-ASHA rungs, Ray's state signed) from
    its scratch folder to the object store: at most every ``every_s`` seconds while files change, when a trial
    ends, and at the end, so a driver killed on any machine loses about as much as Ray's own state
    (saved every second, ``search.tuner.DRIVER_ENVIRONMENT``) and ``--resume`` finds the rest in the store.

    A store that stops answering (an upload fails, or a trial failed and the bucket does not answer a
    quick HEAD) stops the sweep the way Ctrl-C does (``lost`` says why), instead of failing every
    trial after it; ``search.sweep`` then says how to resume."""

    def __init__(self, local: Path, remote: Remote, own: list[str], every_s: float = 1.0):
        self.local, self.remote, self.own, self.every_s = Path(local), remote, list(own), every_s
        self.upload = BookkeepingUpload(self.local, remote, self.own)
        self._last = 0.0
        self.lost: str | None = None

    def __getstate__(self) -> dict:  # no key, no client: Ray pickles it into the state it keeps
        return {"local": str(self.local), "remote": self.remote.uri, "own": self.own, "every_s": self.every_s}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Path(state["local"]), Remote(state["remote"]), state.get("own", []), state["every_s"])

    def on_step_end(self, iteration, trials, **info):
        if time.monotonic() - self._last >= self.every_s:
            self.sync()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.sync()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.sync(probe=True)

    def on_experiment_end(self, trials, **info):
        self.sync()

    def sync(self, probe: bool = False) -> None:
        self._last = time.monotonic()
        if self.lost is not None:
            return
        try:
            self.upload()
            problem = store_problem(self.remote) if probe else None
        except OSError as err:
            problem = " ".join(str(err).split())[:300]
        if problem is not None:
            self.lost = problem
            if callable(signal.getsignal(signal.SIGUSR1)):  # Ray's own stop (as on Ctrl-C): trials stopped, state saved
                os.kill(os.getpid(), signal.SIGUSR1)


class SweepProgress(Callback):
    """Prints a status line when a trial ends (and at most every ``every_s`` seconds otherwise)."""

    def __init__(self, tally: InstrumentTally, say: Say | None = None, every_s: float = 15.0,
                 on_trial_end: Callable[[InstrumentTally], None] | None = None):
        self.tally = tally
        self.say = say or (lambda text: None)
        self.every_s = every_s
        self.on_trial_end = on_trial_end  # e.g. log the front's hypervolume to the sweep's parent run
        self._last_print = 0.0
        self._last_line = ""

    def __getstate__(self) -> dict:
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
        note = f" ({reason})" if status in (FAILED, REJECTED) and reason else ""
        if budget.stopped_by_budget(self.tally.instrument, trial.trial_id):
            note = " (the time budget ran out)"
        self._print(f"  trial {trial.trial_id} {status}{note}")
        self._print(self.tally.line())
        if self.on_trial_end is not None:
            self.on_trial_end(self.tally)

    def _maybe_print(self) -> None:
        """The status line when it changed (at most every ``every_s``), or as a heartbeat every minute."""
        line = self.tally.line()
        since = time.monotonic() - self._last_print
        if (line != self._last_line and since >= self.every_s) or since >= max(60.0, self.every_s):
            self._print(line)

    def _print(self, text: str) -> None:
        self.say(text)
        self._last_print = time.monotonic()
        if not text.startswith(" "):
            self._last_line = text


def error_text(trial) -> str:
    """Last line of a trial's Ray error file (the exception message), or a generic reason."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1][:2000]
    return "the trial process raised an error"
