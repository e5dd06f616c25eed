"""A Ray Tune searcher that takes multi-objective suggestions from an Optuna sampler (``nsga2``, ``nsga3``, ``motpe``).

Objectives: ``OBJECTIVE_SIZE`` (``bytes_uint8``: the trainable reports it, known before training) and ``val_loss``,
both minimised. Samplers: NSGA-II (``nsga2``, Optuna's ``NSGAIISampler``), NSGA-III (``nsga3``,
``NSGAIIISampler``) and multi-objective TPE (``motpe``, ``TPESampler`` given two objectives). Optuna's
GP sampler is not offered: it needs PyTorch, which nothing else here does. The bookkeeping every searcher shares is
``search.algorithms.base``'s.

Why an adapter of ours rather than Ray's ``OptunaSearch``: Ray pickles the searcher inside its
Tuner, and an NSGA-II study does not pickle (``cannot pickle '_thread.lock' object``); and Ray's
adapter pickles its whole ``__dict__`` as the saved state.

================================  ==========================================================
``TrialSearcher`` hook            Optuna (ask/tell)
================================  ==========================================================
``_ask(ray_id)``                  ``study.ask()`` + ``spaces.optuna_space.sample`` -> values
``_ask_given``                    ``study.enqueue_trial(values)``, then ``_ask``
``_tell``                         ``study.tell(values=[bytes, loss])``, or FAIL for failed /
                                  rejected trials and missing objectives
``_engine_state``                 every told trial (params, distributions, values, the sampler's
                                  system attributes) and every asked trial's values; a restore
                                  rebuilds the study with ``add_trials``
================================  ==========================================================

Multi-objective Optuna studies cannot take intermediate values (``trial.report`` raises for them),
so a trial stopped early by the scheduler is told the objectives of its last report: it was stopped
for being dominated at that rung, and its loss at that rung is what is known of it.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import TrialState, create_trial

from common.constants import FAILED, REJECTED
from common.values import finite
from search.algorithms import OBJECTIVE_SIZE, OPTUNA_ALGORITHMS
from search.algorithms.base import TrialSearcher, jsonable
from spaces.optuna_space import sample, to_optuna
from spaces.translate import SearchSpace

OBJECTIVES = (OBJECTIVE_SIZE, "val_loss")


LIMITS = "limits"        # Optuna constraint of every told trial: how far past the sweep's limits (> 0: refused)
REFUSED_VALUE = 1e9      # a refused draw's unknown objectives (its constraint ranks it, not they)


def make_sampler(algorithm: str, seed: int, max_trials: int) -> optuna.samplers.BaseSampler:
    """NSGA-II or -III with a population a quarter of the budget (4..50), or TPE with a startup of a quarter
    of the budget (4..10), so that small sweeps still get past the random start. Both learn which
    draws the sweep's limits refuse from the trials' constraints (``LIMITS``)."""
    quarter = max(4, max_trials // 4)
    if algorithm == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=min(50, quarter), seed=seed)
    if algorithm == "nsga3":  # reference-point based NSGA (Deb & Jain 2014), same population rule
        with warnings.catch_warnings():  # Optuna marks it experimental; a user's terminal gets no library warning
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.NSGAIIISampler(population_size=min(50, quarter), seed=seed)
    if algorithm == "motpe":
        return optuna.samplers.TPESampler(n_startup_trials=min(10, quarter), seed=seed, multivariate=True)
    raise ValueError(f"algorithm must be one of {OPTUNA_ALGORITHMS}, got {algorithm!r}")


class OptunaSearcher(TrialSearcher):
    """Ray Tune searcher backed by an Optuna study over ``objectives`` (the search's size objective, ``val_loss``)."""

    STATE_FORMAT = "tonesweep-optuna-searcher/1"
    ALGORITHMS = OPTUNA_ALGORITHMS

    def __init__(self, space: SearchSpace, algorithm: str = "nsga2", max_trials: int = 10, seed: int = 0,
                 overrides: dict[str, Any] | None = None, max_concurrent: int = 0,
                 objectives: tuple[str, ...] = OBJECTIVES, ledger_path: str | None = None, refuse=None,
                 warm_start: list[dict] | None = None, out_of_time=None):
        self.objectives = tuple(objectives)
        self._asked_trials: dict[str, optuna.trial.Trial] = {}  # Ray id -> asked Optuna trial (this process)
        self._values: dict[str, dict] = {}     # Ray id -> the sampled values (to re-add after a restore)
        self._told: list[dict] = []            # every told trial, JSON-ready
        super().__init__(space, algorithm, max_trials, seed, overrides, max_concurrent, ledger_path,
                         metric=self.objectives[-1], mode="min", refuse=refuse, warm_start=warm_start,
                         out_of_time=out_of_time)

    # ---- the engine ----

    def _new_engine(self) -> None:
        # Optuna logs every told trial at INFO; those lines would interleave with the sweep's progress.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._params, self._constants = to_optuna(self.space)  # constants: fixed values and Fixed parameters
        self._study = optuna.create_study(directions=["minimize"] * len(self.objectives),
                                          sampler=make_sampler(self.algorithm, self.seed, self.max_trials))

    def _ask(self, trial_id: str) -> dict:
        trial = self._study.ask()
        values = sample(trial, self._params)
        self._asked_trials[trial_id] = trial
        self._values[trial_id] = values
        return {**self._constants, **values}

    def _ask_given(self, trial_id: str, values: dict) -> dict:
        self._study.enqueue_trial(values)  # Optuna's own warm start: the next ask takes these values
        return self._ask(trial_id)

    def _decline(self, trial_id: str, refusal) -> None:
        """Tell the study the draw is infeasible: complete, with the violation as its constraint (the
        samplers rank it behind every feasible trial) and what is known of its objectives."""
        trial = self._asked_trials.pop(trial_id)
        self._values.pop(trial_id, None)
        trial.set_constraint(LIMITS, max(float(refusal.violation), 1e-9))
        values = [float(refusal.objectives.get(name, REFUSED_VALUE)) for name in self.objectives]
        self._study.tell(trial, values=values, state=TrialState.COMPLETE)
        self._told.append(_trial_json(self._study.trials[trial.number]))

    def _tell(self, trial_id: str, result: dict, error: bool) -> None:
        values = None if error or result.get("status") in (FAILED, REJECTED) else self._objective_values(result)
        state = TrialState.COMPLETE if values else TrialState.FAIL
        trial = self._asked_trials.pop(trial_id, None)
        if trial is not None:
            trial.set_constraint(LIMITS, 0.0)  # it trained: within the limits
            self._study.tell(trial, values=values, state=state)
            record = self._study.trials[trial.number]
        else:  # asked before a restore: the study never saw it, add it whole
            record = create_trial(params=self._values[trial_id], distributions=self._distributions(trial_id),
                                  values=values, state=state, constraints={LIMITS: 0.0})
            self._study.add_trial(record)
        self._told.append(_trial_json(record))

    def _engine_state(self) -> dict:
        return {"objectives": list(self.objectives), "told": self._told, "values": self._values}

    def _load_engine(self, state: dict) -> None:
        self._study.add_trials([_trial_from_json(t) for t in state["told"]])
        self._told = list(state["told"])
        self._values = {k: dict(v) for k, v in state["values"].items()}

    def _settings(self, state: dict) -> dict[str, Any]:
        return {**super()._settings(state), "objectives": tuple(state["objectives"])}

    # ---- queries ----

    @property
    def study(self) -> optuna.Study:
        return self._study

    # ---- internals ----

    def _objective_values(self, result: dict) -> list[float] | None:
        values = [finite(result.get(name)) for name in self.objectives]
        return None if any(v is None for v in values) else values

    def _distributions(self, trial_id: str) -> dict:
        return {p.name: p.distribution for p in self._params if p.name in self._values[trial_id]}


def _trial_json(trial: optuna.trial.FrozenTrial) -> dict:
    return {"params": trial.params, "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
            "values": trial.values, "state": trial.state.name, "system_attrs": jsonable(trial.system_attrs),
            "user_attrs": jsonable(trial.user_attrs)}


def _trial_from_json(record: dict) -> optuna.trial.FrozenTrial:
    return create_trial(params=record["params"],
                        distributions={k: json_to_distribution(d) for k, d in record["distributions"].items()},
                        values=record["values"], state=TrialState[record["state"]],
                        system_attrs=record.get("system_attrs") or {}, user_attrs=record.get("user_attrs") or {})
