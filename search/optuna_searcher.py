"""A Ray Tune ``Searcher`` that takes multi-objective suggestions from an Optuna sampler.

Objectives: ``model_bytes`` (the trainable reports it, known before training) and ``val_loss``,
both minimised. Samplers: NSGA-II (``nsga2``, Optuna's ``NSGAIISampler``) and multi-objective TPE
(``motpe``, ``TPESampler`` given two objectives).

Why an adapter of ours rather than Ray's ``OptunaSearch``: Ray pickles the searcher inside its
Tuner, and an NSGA-II study does not pickle (``cannot pickle '_thread.lock' object``); and Ray's
adapter pickles its whole ``__dict__`` as the saved state. This one has the shape of
``search/searcher.py``'s KerasTuner adapter:

================================  ==========================================================
Ray Tune                          Optuna (ask/tell)
================================  ==========================================================
``suggest(ray_id)``               ``study.ask()`` + ``spaces.optuna_space.sample`` -> config;
                                  ``FINISHED`` once ``max_trials`` were asked
``on_trial_complete``             ``study.tell(values=[bytes, loss])``, or FAIL for failed /
                                  rejected trials and missing objectives
``save`` / ``restore``            JSON: every told trial (params, distributions, values, the
                                  sampler's system attributes) + id maps; a restore rebuilds the
                                  study with ``add_trials``
================================  ==========================================================

Multi-objective Optuna studies cannot take intermediate values (``trial.report`` raises for them),
so a trial stopped early by the scheduler is told the objectives of its last report: it was stopped
for being dominated at that rung, and its loss at that rung is what is known of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState, create_trial
from ray.tune.search import Searcher

from search.ledger import unknown_ended
from spaces.optuna_space import sample, to_optuna
from spaces.translate import SearchSpace, values_to_config
from trainers.constants import FAILED, REJECTED
from trainers.files import write_json_atomic
from trainers.values import finite

STATE_FORMAT = "tonesweep-optuna-searcher/1"
ALGORITHMS = ("nsga2", "motpe")
OBJECTIVES = ("model_bytes", "val_loss")


def make_sampler(algorithm: str, seed: int, max_trials: int) -> optuna.samplers.BaseSampler:
    """NSGA-II with a population a quarter of the budget (4..50), or TPE with a startup of a quarter
    of the budget (4..10), so that small sweeps still get past the random start."""
    quarter = max(4, max_trials // 4)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=min(50, quarter), seed=seed)
    if algorithm == "motpe":
        return optuna.samplers.TPESampler(n_startup_trials=min(10, quarter), seed=seed, multivariate=True)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")


class OptunaSearcher(Searcher):
    """Ray Tune searcher backed by an Optuna study over (``model_bytes``, ``val_loss``)."""

    def __init__(self, space: SearchSpace, algorithm: str = "nsga2", max_trials: int = 10, seed: int = 0,
                 overrides: dict[str, Any] | None = None, max_concurrent: int = 0,
                 objectives: tuple[str, ...] = OBJECTIVES, ledger_path: str | None = None):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        super().__init__(metric=objectives[-1], mode="min")
        # Optuna logs every told trial at INFO; those lines would interleave with the sweep's progress.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space, self.algorithm, self.max_trials, self.seed = space, algorithm, int(max_trials), int(seed)
        self.overrides = dict(overrides or {})
        self.max_concurrent = int(max_concurrent)
        self.objectives = tuple(objectives)
        self.ledger_path = ledger_path  # search/ledger.py: trials that ended after Ray's last snapshot
        self._params, self._constants = to_optuna(space)
        self._study = self._new_study()
        self._asked = 0
        self._live_trials: dict[str, optuna.trial.Trial] = {}  # Ray id -> asked Optuna trial (this process)
        self._configs: dict[str, dict] = {}      # Ray id -> config handed to Ray
        self._values: dict[str, dict] = {}       # Ray id -> the sampled values (to re-add after a restore)
        self._live: set[str] = set()
        self._told: list[dict] = []              # every told trial, JSON-ready

    # ---- the Ray Tune Searcher contract -------------------------------------------------------

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = int(max_concurrent)
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if trial_id in self._configs:
            return dict(self._configs[trial_id])
        if self._asked >= self.max_trials:
            return Searcher.FINISHED
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        trial = self._study.ask()
        values = sample(trial, self._params)
        config = values_to_config(values, self._constants, self.overrides)
        self._asked += 1
        self._live_trials[trial_id] = trial
        self._values[trial_id] = values
        self._configs[trial_id] = config
        self._live.add(trial_id)
        return dict(config)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass  # multi-objective studies take no intermediate values (see the module docstring)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell the study. Safe to call twice and for ids this searcher never suggested."""
        if trial_id not in self._live:
            return
        result = result or {}
        values = None if error or result.get("status") in (FAILED, REJECTED) else self._objective_values(result)
        trial = self._live_trials.pop(trial_id, None)
        if trial is not None:
            state = TrialState.COMPLETE if values else TrialState.FAIL
            self._study.tell(trial, values=values if values else None, state=state)
            record = self._study.trials[trial.number]
        else:  # asked before a restore: the study never saw it, add it whole
            record = create_trial(params=self._values[trial_id], distributions=self._distributions(trial_id),
                                  values=values, state=TrialState.COMPLETE if values else TrialState.FAIL)
            self._study.add_trial(record)
        self._told.append(_trial_json(record))
        self._live.discard(trial_id)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(checkpoint_path, self.get_state(), indent=None)

    def restore(self, checkpoint_path: str) -> None:
        """Load the state written by ``save``, then count trials that ended after it against the budget."""
        self.set_state(json.loads(Path(checkpoint_path).read_text()))
        self._asked += len(unknown_ended(self.ledger_path, self._configs))

    # ---- state -------------------------------------------------------------------------------

    def get_state(self) -> dict:
        return {"format": STATE_FORMAT, "space": self.space.to_json(), "algorithm": self.algorithm,
                "max_trials": self.max_trials, "seed": self.seed, "overrides": self.overrides,
                "max_concurrent": self.max_concurrent, "objectives": list(self.objectives),
                "ledger_path": self.ledger_path,
                "asked": self._asked, "told": self._told, "configs": self._configs, "values": self._values,
                "live": sorted(self._live)}

    def set_state(self, state: dict) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a tonesweep Optuna searcher state (format {state.get('format')!r})")
        self.__init__(SearchSpace.from_json(state["space"]), state["algorithm"], state["max_trials"], state["seed"],
                      state["overrides"], state["max_concurrent"], tuple(state["objectives"]), state.get("ledger_path"))
        self._study.add_trials([_trial_from_json(t) for t in state["told"]])
        self._told = list(state["told"])
        self._asked = state["asked"]
        self._configs = {k: dict(v) for k, v in state["configs"].items()}
        self._values = {k: dict(v) for k, v in state["values"].items()}
        self._live = set(state["live"])

    def __getstate__(self) -> dict:
        return self.get_state()  # an Optuna study does not pickle (NSGA-II holds a lock)

    def __setstate__(self, state: dict) -> None:
        self.set_state(state)

    # ---- queries ----

    @property
    def study(self) -> optuna.Study:
        return self._study

    def live_trials(self) -> set[str]:
        return set(self._live)

    # ---- internals ---------------------------------------------------------------------------

    def _new_study(self) -> optuna.Study:
        return optuna.create_study(directions=["minimize"] * len(self.objectives),
                                   sampler=make_sampler(self.algorithm, self.seed, self.max_trials))

    def _objective_values(self, result: dict) -> list[float] | None:
        values = [finite(result.get(name)) for name in self.objectives]
        return None if any(v is None for v in values) else values

    def _distributions(self, trial_id: str) -> dict:
        return {p.name: p.distribution for p in self._params if p.name in self._values[trial_id]}


def _trial_json(trial: optuna.trial.FrozenTrial) -> dict:
    return {"params": trial.params, "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
            "values": trial.values, "state": trial.state.name, "system_attrs": _jsonable(trial.system_attrs)}


def _trial_from_json(record: dict) -> optuna.trial.FrozenTrial:
    return create_trial(params=record["params"],
                        distributions={k: json_to_distribution(d) for k, d in record["distributions"].items()},
                        values=record["values"], state=TrialState[record["state"]],
                        system_attrs=record.get("system_attrs") or {})


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


