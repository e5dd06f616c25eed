"""A Ray Tune ``Searcher`` that takes its suggestions from a KerasTuner oracle.

KerasTuner splits search into an *oracle* (decides the next values: random search, Bayesian
optimization) and a *tuner* (runs the trial). Here Ray Tune is the tuner and this adapter feeds
the oracle:

================================  ==========================================================
Ray Tune                          KerasTuner oracle
================================  ==========================================================
``suggest(ray_id)``               ``create_trial(tuner_id="ray-<ray_id>")``: RUNNING → config,
                                  IDLE → ``None`` (ask again later), STOPPED → ``FINISHED``
``on_trial_result``               ``update_trial(kt_id, {val_loss}, step)`` (the learning curve)
``on_trial_complete``             ``end_trial``: COMPLETED with its best ``val_loss``, or FAILED
``save`` / ``restore``            JSON of ``oracle.get_state()`` + every trial's state + id maps
================================  ==========================================================

Design choices, and why:

* **One searcher per instrument.** The sweep runs one Tune experiment per instrument, because
  ASHA compares ``val_loss`` across the trials of an experiment, and spectral losses of different
  instruments are not comparable. So one adapter wraps exactly one oracle.
* **Objective = ``val_loss``**, the metric ASHA also uses: early-stopped trials then score on the
  same scale as finished ones (their best ``val_loss`` so far), which Bayesian optimization needs.
* **Concurrency is limited here, not by Ray's ``ConcurrencyLimiter``**, because that wrapper does
  not save its live-trial set: after ``Tuner.restore`` it silently drops the completion of every
  trial that was running at the crash, and the oracle would never hear about them.
* **Failures never stop the search.** KerasTuner aborts after 3 consecutive failed trials by
  default; a sweep records failures and goes on, so that limit is lifted.
* **State is JSON**, written atomically; pickling (Ray pickles the searcher inside its Tuner) goes
  through the same JSON state, never through the oracle object's ``__dict__``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import keras_tuner as kt
import numpy as np
from keras_tuner.engine import trial as kt_trial_module
from ray.tune.search import Searcher

from search.ledger import unknown_ended
from spaces.translate import SearchSpace, values_to_config
from trainers.files import private_tempdir, remove_stale_tempdirs, write_json_atomic
from trainers.values import finite

STATE_FORMAT = "tonesweep-searcher/1"
ALGORITHMS = ("random", "bayesian")
# Terminal results whose trial ran no training that the oracle could learn from.
_FAILED_STATUSES = ("FAILED", "REJECTED")


class KerasTunerSearcher(Searcher):
    """Ray Tune searcher backed by one KerasTuner oracle (random search or Bayesian optimization).

    Args:
        space: the search space (tuned ``HyperParameters`` + fixed values).
        algorithm: ``"random"`` or ``"bayesian"``.
        max_trials: trials the oracle creates before it answers STOPPED (→ ``Searcher.FINISHED``).
        seed: oracle seed (same seed, same space → same first suggestions).
        overrides: config values forced onto every suggestion (e.g. ``steps`` from ``--steps``).
        max_concurrent: suggestions running at once (0 = no limit).
        metric, mode: the objective reported by trials; ``val_loss``/``min`` in tonesweep.
    """

    def __init__(
        self,
        space: SearchSpace,
        algorithm: str = "random",
        max_trials: int = 10,
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
        max_concurrent: int = 0,
        metric: str = "val_loss",
        mode: str = "min",
        ledger_path: str | None = None,
    ):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.algorithm = algorithm
        self.max_trials = int(max_trials)
        self.seed = int(seed)
        self.overrides = dict(overrides or {})
        self.max_concurrent = int(max_concurrent)
        self.ledger_path = ledger_path  # search/ledger.py: trials that ended after Ray's last snapshot
        self._oracle = self._make_oracle()
        self._ray_to_kt: dict[str, str] = {}   # Ray trial id -> KerasTuner trial id
        self._configs: dict[str, dict] = {}    # Ray trial id -> config handed to Ray
        self._live: set[str] = set()           # Ray trial ids suggested and not yet completed
        self._completed: set[str] = set()      # Ray trial ids whose completion reached the oracle

    # ---- the Ray Tune Searcher contract -------------------------------------------------------

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit concurrency ourselves (see the module docstring for why not ConcurrencyLimiter)."""
        self.max_concurrent = int(max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        """Config for Ray trial ``trial_id``; ``None`` = ask again later; ``FINISHED`` = done."""
        if trial_id in self._configs:  # asked twice for the same trial: same answer
            return dict(self._configs[trial_id])
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        trial = self._oracle.create_trial(tuner_id=_tuner_id(trial_id))
        if trial.status == kt_trial_module.TrialStatus.STOPPED:
            return Searcher.FINISHED
        if trial.status != kt_trial_module.TrialStatus.RUNNING:  # IDLE: the oracle waits on results
            return None
        config = values_to_config(trial.hyperparameters.values, self.space.fixed, self.overrides)
        self._ray_to_kt[trial_id] = trial.trial_id
        self._configs[trial_id] = config
        self._live.add(trial_id)
        return dict(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Record an intermediate objective value (the oracle keeps the learning curve)."""
        value = finite(result.get(self.metric))
        if trial_id in self._live and value is not None:
            step = int(result.get("step") or result.get("training_iteration") or 0)
            self._oracle.update_trial(self._ray_to_kt[trial_id], {self.metric: value}, step=step)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """End the oracle's trial. Safe to call twice and for ids this searcher never suggested."""
        if trial_id not in self._live:
            return
        kt_trial = self._oracle.get_trial(self._ray_to_kt[trial_id])
        status, message = self._judge(kt_trial, result or {}, error)
        kt_trial.status = status
        kt_trial.message = message
        self._oracle.end_trial(kt_trial)
        self._live.discard(trial_id)
        self._completed.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher state as JSON, atomically (temp file + rename)."""
        path = Path(checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.get_state(), indent=None)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state written by ``save`` (replaces this searcher's whole state), then count the
        trials that ended after that state was saved against the budget (search/ledger.py)."""
        self.set_state(json.loads(Path(checkpoint_path).read_text()))
        unknown = unknown_ended(self.ledger_path, self._ray_to_kt)
        self.max_trials -= len(unknown)
        self._oracle.max_trials = self.max_trials

    # ---- state -----------------------------------------------------------------------------

    def get_state(self) -> dict:
        """JSON-safe state: settings, the oracle's own state and every KerasTuner trial."""
        return {
            "format": STATE_FORMAT,
            "metric": self.metric,
            "mode": self.mode,
            "space": self.space.to_json(),
            "algorithm": self.algorithm,
            "max_trials": self.max_trials,
            "seed": self.seed,
            "overrides": self.overrides,
            "max_concurrent": self.max_concurrent,
            "ledger_path": self.ledger_path,
            "oracle": _jsonable(self._oracle.get_state()),
            "oracle_rng": _rng_state(self._oracle),
            "trials": {tid: _jsonable(t.get_state()) for tid, t in self._oracle.trials.items()},
            "ray_to_kt": self._ray_to_kt,
            "configs": self._configs,
            "live": sorted(self._live),
            "completed": sorted(self._completed),
        }

    def set_state(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a tonesweep searcher state (format {state.get('format')!r})")
        self._metric, self._mode = state["metric"], state["mode"]
        self.space = SearchSpace.from_json(state["space"])
        self.algorithm = state["algorithm"]
        self.max_trials = state["max_trials"]
        self.seed = state["seed"]
        self.overrides = state["overrides"]
        self.max_concurrent = state["max_concurrent"]
        self.ledger_path = state.get("ledger_path")
        self._oracle = self._make_oracle()
        # The oracle's set_state looks its ongoing trials up in .trials, so trials come first.
        self._oracle.trials = {tid: kt_trial_module.Trial.from_state(s) for tid, s in state["trials"].items()}
        self._oracle.set_state(state["oracle"])
        self._oracle.verbose = 0  # set_state restores the display; keep KerasTuner's tables quiet
        _set_rng_state(self._oracle, state.get("oracle_rng"))
        self._ray_to_kt = dict(state["ray_to_kt"])
        self._configs = {k: dict(v) for k, v in state["configs"].items()}
        self._live = set(state["live"])
        self._completed = set(state["completed"])

    def __getstate__(self) -> dict:
        # Ray pickles the searcher inside its Tuner; pickle the JSON state, not the oracle object.
        return self.get_state()

    def __setstate__(self, state: dict) -> None:
        self.__init__(SearchSpace.from_json(state["space"]), state["algorithm"], state["max_trials"],
                      state["seed"], state["overrides"], state["max_concurrent"], state["metric"], state["mode"],
                      state.get("ledger_path"))
        self.set_state(state)

    # ---- queries used by the sweep and the tests ---------------------------------------------

    @property
    def oracle(self) -> kt.Oracle:
        return self._oracle

    def live_trials(self) -> set[str]:
        return set(self._live)

    def best_config(self) -> dict | None:
        """Config of the oracle's best completed trial (lowest objective), or None."""
        best = [t for t in self._oracle.get_best_trials(1) if t.status == "COMPLETED"]
        if not best:
            return None
        return values_to_config(best[0].hyperparameters.values, self.space.fixed, self.overrides)

    # ---- internals ---------------------------------------------------------------------------

    def _make_oracle(self) -> kt.Oracle:
        objective = kt.Objective(self.metric, direction=self.mode)
        common = dict(objective=objective, max_trials=self.max_trials, seed=self.seed + 1,
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
        return oracle

    def _judge(self, kt_trial, result: dict, error: bool) -> tuple[str, str | None]:
        """KerasTuner status and message for a trial that Ray reports as complete."""
        if error:
            return kt_trial_module.TrialStatus.FAILED, "trial raised an error (see its Ray error file)"
        status = result.get("status")
        if status in _FAILED_STATUSES:
            return kt_trial_module.TrialStatus.FAILED, str(result.get("failure_reason") or status)
        # Finished or stopped early by ASHA: the best val_loss it reached is its score.
        self._record_final(kt_trial, result)
        if not kt_trial.metrics.exists(self.metric):
            return kt_trial_module.TrialStatus.FAILED, f"no finite {self.metric} was reported"
        return kt_trial_module.TrialStatus.COMPLETED, None

    def _record_final(self, kt_trial, result: dict) -> None:
        """Feed the final result's objective value (it may carry the last val_loss)."""
        value = finite(result.get(self.metric))
        if value is not None:
            step = int(result.get("step") or result.get("training_iteration") or 0)
            self._oracle.update_trial(kt_trial.trial_id, {self.metric: value}, step=step)


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


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON (numpy scalars → Python), failing loudly on anything else."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


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
