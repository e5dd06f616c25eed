"""A Ray Tune searcher that takes its suggestions from a KerasTuner oracle (``random``, ``bayesian``).

KerasTuner splits search into an *oracle* (decides the next values: random search, Bayesian
optimization) and a *tuner* (runs the trial). Here Ray Tune is the tuner and this adapter feeds the
oracle; the bookkeeping every searcher shares (budget, concurrency, ids, state) is
``search.algorithms.base``'s:

================================  ==========================================================
``TrialSearcher`` hook            KerasTuner oracle
================================  ==========================================================
``_ask(ray_id)``                  ``create_trial(tuner_id="ray-<ray_id>")``: RUNNING -> values,
                                  IDLE -> ``None`` (ask again later), STOPPED -> ``FINISHED``
``_ask_given``                    the same, its ``populate_space`` answering with the values
``_observe``                      ``update_trial(kt_id, {val_loss}, step)`` (the learning curve)
``_tell``                         ``end_trial``: COMPLETED with its best ``val_loss``, or FAILED
``_engine_state``                 ``oracle.get_state()`` + every KerasTuner trial's state + id map
================================  ==========================================================

Design choices, and why:

* **One searcher per instrument.** The sweep runs one Tune experiment per instrument, because
  ASHA compares ``val_loss`` across the trials of an experiment, and spectral losses of different
  instruments are not comparable. So one adapter wraps exactly one oracle.
* **Objective = ``val_loss``**, the metric ASHA also uses: early-stopped trials then score on the
  same scale as finished ones (their best ``val_loss`` so far), which Bayesian optimization needs.
* **Failures never stop the search.** KerasTuner aborts after 3 consecutive failed trials by
  default; a sweep records failures and goes on, so that limit is lifted.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine import trial as kt_trial_module

from common.constants import FAILED, REJECTED
from common.files import private_tempdir, remove_stale_tempdirs
from common.values import finite
from search.algorithms import KERASTUNER_ALGORITHMS
from search.algorithms.base import FINISHED, TrialSearcher, jsonable
from spaces.translate import SearchSpace, values_to_config

# Terminal results whose trial ran no training that the oracle could learn from.
_FAILED_STATUSES = (FAILED, REJECTED)


class KerasTunerSearcher(TrialSearcher):
    """Ray Tune searcher backed by one KerasTuner oracle (random search or Bayesian optimization),
    minimising ``metric`` (``val_loss`` in tonesweep)."""

    STATE_FORMAT = "tonesweep-searcher/1"
    ALGORITHMS = KERASTUNER_ALGORITHMS

    def __init__(self, space: SearchSpace, algorithm: str = "random", max_trials: int = 10, seed: int = 0,
                 overrides: dict[str, Any] | None = None, max_concurrent: int = 0, metric: str = "val_loss",
                 mode: str = "min", ledger_path: str | None = None, refuse=None, warm_start: list[dict] | None = None,
                 out_of_time=None):
        self._ray_to_kt: dict[str, str] = {}   # Ray trial id -> KerasTuner trial id
        self._given: dict | None = None        # values the next oracle trial takes instead of drawing (a warm start)
        super().__init__(space, algorithm, max_trials, seed, overrides, max_concurrent, ledger_path, metric, mode,
                         refuse, warm_start, out_of_time)

    # ---- the engine ----

    def _new_engine(self) -> None:
        objective = kt.Objective(self.metric, direction=self.mode)
        # No max_trials for the oracle: the budget counts configurations that train (the base's rule),
        # and the oracle's own count would include refused draws.
        common = dict(objective=objective, max_trials=None, seed=self.seed + 1,
                      hyperparameters=self.space.hyperparameters.copy(),
                      allow_new_entries=False, tune_new_entries=False,
                      max_consecutive_failed_trials=10**9)
        if self.algorithm == "bayesian":
            # KerasTuner's default is 3 random points per dimension (~40 here), more than a small
            # sweep has; a third of the budget (3..10) lets the Gaussian process take over in time.
            initial = min(10, max(3, self.max_trials // 3))
            oracle = kt.oracles.BayesianOptimizationOracle(num_initial_points=initial, **common)
        else:
            oracle = kt.oracles.RandomSearchOracle(**common)
        oracle.verbose = 0
        # The oracle writes its own oracle.json / trial.json files on every change; they go to a
        # scratch folder, because the state that counts is the JSON this adapter saves with Ray's.
        oracle._set_project_dir(tempfile.mkdtemp(dir=_scratch_dir()), "oracle")  # noqa: SLF001 - no public setter
        drawn = oracle.populate_space
        # An oracle has no queue of given trials: its hook answers with the warm start's values when given.
        oracle.populate_space = lambda kt_id: self._populate_given() if self._given is not None else drawn(kt_id)
        self._oracle = oracle

    def _ask(self, trial_id: str) -> dict | str | None:
        trial = self._oracle.create_trial(tuner_id=_tuner_id(trial_id))
        if trial.status == kt_trial_module.TrialStatus.STOPPED:
            return FINISHED
        if trial.status != kt_trial_module.TrialStatus.RUNNING:  # IDLE: the oracle waits on results
            return None
        self._ray_to_kt[trial_id] = trial.trial_id
        return trial.hyperparameters.values

    def _ask_given(self, trial_id: str, values: dict) -> dict | str | None:
        self._given = values
        try:
            return self._ask(trial_id)
        finally:
            self._given = None

    def _populate_given(self) -> dict:
        """``populate_space``'s answer for a warm start: the given values, defaults for any active
        hyperparameter they lack."""
        hps = self.space.hyperparameters.copy()
        hps.values.update(self._given)
        return {"status": kt_trial_module.TrialStatus.RUNNING,
                "values": {hp.name: hps.values[hp.name] for hp in hps.space if hps.is_active(hp)}}

    def _decline(self, trial_id: str, refusal) -> None:
        """End the refused draw's KerasTuner trial. Random search never draws the same values twice; the
        Gaussian process, which learns from completed trials only, would propose the same optimum again,
        so once it has taken over a refused draw completes with a penalty (twice the worst score)."""
        kt_trial = self._oracle.get_trial(self._ray_to_kt.pop(trial_id))
        penalty = self._penalty() if self.algorithm == "bayesian" else None
        if penalty is None:
            kt_trial.status = kt_trial_module.TrialStatus.FAILED
        else:
            self._oracle.update_trial(kt_trial.trial_id, {self.metric: penalty}, step=0)
            kt_trial.status = kt_trial_module.TrialStatus.COMPLETED
        kt_trial.message = f"refused: {refusal.reason}"
        self._oracle.end_trial(kt_trial)

    def _penalty(self) -> float | None:
        scores = [t.score for t in self._oracle.trials.values()
                  if t.status == kt_trial_module.TrialStatus.COMPLETED and t.score is not None]
        if not scores:
            return None
        worst = max(scores) if self.mode == "min" else min(scores)
        return worst + abs(worst) if self.mode == "min" else worst - abs(worst)

    def _observe(self, trial_id: str, result: dict) -> None:
        """Record an intermediate objective value (the oracle keeps the learning curve)."""
        value = finite(result.get(self.metric))
        if value is not None:
            self._oracle.update_trial(self._ray_to_kt[trial_id], {self.metric: value}, step=_step(result))

    def _tell(self, trial_id: str, result: dict, error: bool) -> None:
        kt_trial = self._oracle.get_trial(self._ray_to_kt[trial_id])
        kt_trial.status, kt_trial.message = self._judge(kt_trial, result, error)
        self._oracle.end_trial(kt_trial)

    def _engine_state(self) -> dict:
        return {"oracle": jsonable(self._oracle.get_state()), "oracle_rng": _rng_state(self._oracle),
                "trials": {tid: jsonable(t.get_state()) for tid, t in self._oracle.trials.items()},
                "ray_to_kt": self._ray_to_kt}

    def _load_engine(self, state: dict) -> None:
        # The oracle's set_state looks its ongoing trials up in .trials, so trials come first.
        self._oracle.trials = {tid: kt_trial_module.Trial.from_state(s) for tid, s in state["trials"].items()}
        self._oracle.set_state(state["oracle"])
        self._oracle.verbose = 0  # set_state restores the display; keep KerasTuner's tables quiet
        _set_rng_state(self._oracle, state.get("oracle_rng"))
        self._ray_to_kt = dict(state["ray_to_kt"])

    def _settings(self, state: dict) -> dict[str, Any]:
        return {**super()._settings(state), "metric": state["metric"], "mode": state["mode"]}

    # ---- queries used by the tests ----

    @property
    def oracle(self) -> kt.Oracle:
        return self._oracle

    def best_config(self) -> dict | None:
        """Config of the oracle's best completed trial (lowest objective), or None."""
        best = [t for t in self._oracle.get_best_trials(1) if t.status == "COMPLETED"]
        if not best:
            return None
        return values_to_config(best[0].hyperparameters.values, self.space.fixed, self.overrides)

    # ---- internals ----

    def _judge(self, kt_trial, result: dict, error: bool) -> tuple[str, str | None]:
        """KerasTuner status and message for a trial that Ray reports as complete."""
        if error:
            return kt_trial_module.TrialStatus.FAILED, "trial raised an error (see its Ray error file)"
        status = result.get("status")
        if status in _FAILED_STATUSES:
            return kt_trial_module.TrialStatus.FAILED, str(result.get("failure_reason") or status)
        # Finished or stopped early by ASHA: the best val_loss it reached is its score.
        value = finite(result.get(self.metric))  # the final result may carry the last val_loss
        if value is not None:
            self._oracle.update_trial(kt_trial.trial_id, {self.metric: value}, step=_step(result))
        if not kt_trial.metrics.exists(self.metric):
            return kt_trial_module.TrialStatus.FAILED, f"no finite {self.metric} was reported"
        return kt_trial_module.TrialStatus.COMPLETED, None


def _step(result: dict) -> int:
    return int(result.get("step") or result.get("training_iteration") or 0)


def _tuner_id(ray_trial_id: str) -> str:
    """A distinct KerasTuner tuner id per concurrent Ray trial."""
    return f"ray-{ray_trial_id}"


def _rng_state(oracle) -> list | None:
    """The Bayesian oracle's numpy RNG (it seeds the acquisition optimizer's restarts).

    KerasTuner's own oracle state leaves it out, so a restored oracle would start those restarts
    from a fresh RNG and could suggest something else than the uninterrupted search would have.
    """
    rng = getattr(oracle, "_random_state", None)
    if rng is None:
        return None
    name, keys, pos, has_gauss, gauss = rng.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)]


def _set_rng_state(oracle, state: list | None) -> None:
    if state is not None and getattr(oracle, "_random_state", None) is not None:
        name, keys, pos, has_gauss, gauss = state
        oracle._random_state.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


_SCRATCH: str | None = None


SCRATCH_PREFIX = "tonesweep-oracle-"


def _scratch_dir() -> str:
    """One per-process scratch folder for the oracles' own bookkeeping files (removed at exit; the
    folders of killed processes are removed by the next process that needs one)."""
    global _SCRATCH
    if _SCRATCH is None or not os.path.isdir(_SCRATCH):
        remove_stale_tempdirs(SCRATCH_PREFIX)
        _SCRATCH = str(private_tempdir(SCRATCH_PREFIX))
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return _SCRATCH
