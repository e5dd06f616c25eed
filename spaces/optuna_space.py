"""The one translation from a KerasTuner space to Optuna: pure, tested alone (tests/test_spaces.py).

The space stays declared once, as KerasTuner ``HyperParameters`` (built-in or TOML). Optuna's
samplers work define-by-run: each trial asks for one parameter at a time. ``to_optuna`` turns the
space into an ordered list of ``OptunaParam`` (name, Optuna distribution, activation conditions);
``sample`` asks an Optuna trial for the active ones, in declaration order, so a GRU-only
hyperparameter is only asked when ``decoder`` came out ``gru``.

Type mapping (KerasTuner -> Optuna):
- ``Choice(values)`` -> ``CategoricalDistribution(values)``;
- ``Boolean`` -> ``CategoricalDistribution([False, True])``;
- ``Int(min, max, step, sampling)`` -> ``IntDistribution(min, max, step, log=sampling == "log")``;
- ``Float(min, max, step, sampling)`` -> ``FloatDistribution(min, max, step, log=sampling == "log")``;
- ``Fixed(value)`` -> not a distribution: a constant every trial gets.
Optuna has no ``reverse_log`` sampling (dense near the top of a range); such a range is refused
with a ``UserError`` rather than silently sampled another way. Optuna's log sampling cannot have
a step either; a log range with a step is refused the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import keras_tuner as kt
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from spaces.translate import SearchSpace, _plain
from common.errors import UserError

_HP = kt.engine.hyperparameters


@dataclass(frozen=True)
class OptunaParam:
    """One hyperparameter as Optuna sees it; active when every (parent, allowed values) holds."""

    name: str
    distribution: BaseDistribution
    conditions: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: Mapping[str, Any]) -> bool:
        return all(values.get(parent) in allowed for parent, allowed in self.conditions)


def to_optuna(space: SearchSpace) -> tuple[list[OptunaParam], dict[str, Any]]:
    """(params in declaration order, constants): the space's tuned values as Optuna distributions,
    its ``Fixed`` hyperparameters and ``fixed`` table as constants."""
    params, constants = [], dict(space.fixed)
    for hp in space.hyperparameters.space:
        conditions = tuple((c.name, tuple(_plain(v) for v in c.values)) for c in hp.conditions)
        if isinstance(hp, _HP.Fixed):
            constants[hp.name] = _plain(hp.value)
            continue
        params.append(OptunaParam(hp.name, _distribution(hp), conditions))
    return params, constants


def _distribution(hp) -> BaseDistribution:
    if isinstance(hp, _HP.Boolean):
        return CategoricalDistribution([False, True])
    if isinstance(hp, _HP.Choice):
        return CategoricalDistribution([_plain(v) for v in hp.values])
    if isinstance(hp, (_HP.Int, _HP.Float)):
        sampling = hp.sampling or "linear"
        if sampling == "reverse_log":
            raise UserError(f"{hp.name}: sampling 'reverse_log' has no Optuna equivalent; use linear or log "
                            "with the multi-objective algorithms")
        log = sampling == "log"
        if log and hp.step is not None and not (isinstance(hp, _HP.Int) and hp.step == 1):
            raise UserError(f"{hp.name}: a log range with a step cannot be sampled by Optuna; drop the step")
        if isinstance(hp, _HP.Int):
            return IntDistribution(int(hp.min_value), int(hp.max_value), step=1 if log else int(hp.step or 1), log=log)
        return FloatDistribution(float(hp.min_value), float(hp.max_value), step=None if log else hp.step, log=log)
    raise UserError(f"{hp.name}: hyperparameter type {type(hp).__name__} has no Optuna equivalent")


def sample(trial, params: list[OptunaParam]) -> dict[str, Any]:
    """Ask an Optuna trial (``optuna.Trial``) for every active parameter, in order; returns the values."""
    values: dict[str, Any] = {}
    for param in params:
        if not param.active(values):
            continue
        d = param.distribution
        if isinstance(d, CategoricalDistribution):
            values[param.name] = trial.suggest_categorical(param.name, list(d.choices))
        elif isinstance(d, IntDistribution):
            values[param.name] = trial.suggest_int(param.name, d.low, d.high, step=d.step, log=d.log)
        else:
            values[param.name] = trial.suggest_float(param.name, d.low, d.high, step=d.step, log=d.log)
    return values
