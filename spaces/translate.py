"""Pure translation between KerasTuner hyperparameter values and the trainer's flat config dict.

A trial's configuration (docs/architecture.md, Section 2) is a flat dict. A search space holds
KerasTuner ``HyperParameters`` (the tuned part) plus ``fixed`` values (set, not tuned). Only the
hyperparameters that are *active* for a trial (e.g. ``gru_units`` only when ``decoder == "gru"``)
become config keys; the trainer fills every missing key from its defaults.

Nothing here imports Ray or MLflow, so the translation is tested on its own.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

import keras_tuner as kt

# The configuration keys of the trainer contract (architecture.md, Section 2). A space may tune or
# fix only these; anything else is a user error reported before a sweep starts.
CONFIG_KEYS: tuple[str, ...] = (
    "decoder", "feature", "frame_rate", "hidden", "fc_layers", "gru_units", "conv_channels",
    "conv_layers", "conv_stacks", "conv_kernel", "causal", "n_harmonics", "n_noise_bands",
    "reverb", "reverb_seconds", "learning_rate", "batch_size", "steps", "seed", "grad_clip", "crop_seconds",
)


def values_to_config(
    values: Mapping[str, Any],
    fixed: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Flat trainer config from a trial's active HP values.

    Precedence, lowest first: ``fixed`` (from the space), ``values`` (suggested by the oracle),
    ``overrides`` (from the command line, e.g. ``--steps``). Values are converted to plain Python
    types (numpy scalars do not survive JSON/TOML/MLflow params cleanly).
    """
    config: dict[str, Any] = {}
    for layer in (fixed or {}, values, overrides or {}):
        for key, value in layer.items():
            if value is not None:
                config[key] = _plain(value)
    return config


def config_to_values(config: Mapping[str, Any], hyperparameters: kt.HyperParameters) -> dict[str, Any]:
    """The active HP values that a flat config corresponds to (the inverse of ``values_to_config``).

    Keys that are not hyperparameters of the space (fixed values, overrides) are dropped, and so
    are hyperparameters that are inactive under the config's own values.
    """
    values: dict[str, Any] = {}
    for hp in hyperparameters.space:
        if hp.name in config and all(cond.is_active(config) for cond in hp.conditions):
            values[hp.name] = _plain(config[hp.name])
    return values


def warm_values(configs: Iterable[Mapping[str, Any]], space: "SearchSpace", limit: int) -> list[dict[str, Any]]:
    """The hyperparameter values of earlier trials' configurations that ``space`` can draw (a warm
    start, ``search.algorithms.base``): each config's active values (``config_to_values``), kept only
    when every value lies in its hyperparameter's domain and some value is tuned, duplicates dropped,
    at most ``limit`` of them, in the order given."""
    kept: list[dict[str, Any]] = []
    for config in configs:
        values = config_to_values(config, space.hyperparameters)
        if values and values not in kept and all(_in_domain(hp, values[hp.name])
                                                 for hp in space.hyperparameters.space if hp.name in values):
            kept.append(values)
    return kept[:max(0, limit)]


def _in_domain(hp: kt.engine.hyperparameters.HyperParameter, value: Any) -> bool:
    hp_types = kt.engine.hyperparameters
    if isinstance(hp, (hp_types.Int, hp_types.Float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and hp.min_value <= value <= hp.max_value
    if isinstance(hp, hp_types.Fixed):
        return value == hp.value
    return value in _discrete_values(hp)


def unknown_keys(keys: Iterable[str]) -> list[str]:
    """Keys that are not trainer configuration keys, in the order given."""
    return [key for key in keys if key not in CONFIG_KEYS]


def discrete_size(hyperparameters: kt.HyperParameters) -> int:
    """Number of distinct configurations over the space's discrete hyperparameters.

    Conditional parameters only multiply the branches where they are active (so a GRU-only
    choice does not multiply the CNN branch). Floats are continuous and counted once.
    """
    assignments: list[dict[str, Any]] = [{}]
    for hp in hyperparameters.space:
        grown: list[dict[str, Any]] = []
        for partial in assignments:
            if all(cond.is_active(partial) for cond in hp.conditions):
                grown.extend({**partial, hp.name: value} for value in _discrete_values(hp))
            else:
                grown.append(partial)
        assignments = grown
    return len(assignments)


def has_continuous(hyperparameters: kt.HyperParameters) -> bool:
    """Whether a hyperparameter of the space is a float range (then its configurations never run out)."""
    return any(isinstance(hp, kt.engine.hyperparameters.Float) for hp in hyperparameters.space)


def possible_values(space: "SearchSpace", key: str, default: Any = None) -> list[Any]:
    """Every value config key ``key`` can take in a trial of ``space``, in declaration order.

    A fixed value wins over the trainer's ``default``; a tuned choice, boolean or int gives all its
    values, a float its two ends. A key the space leaves alone gives ``[default]``.
    """
    for hp in space.hyperparameters.space:
        if hp.name == key:
            hp_types = kt.engine.hyperparameters
            if isinstance(hp, hp_types.Float):
                return [hp.min_value, hp.max_value]
            if isinstance(hp, hp_types.Fixed):
                return [hp.value]
            return _discrete_values(hp)
    if key in space.fixed:
        return [space.fixed[key]]
    return [default]


def _discrete_values(hp: kt.engine.hyperparameters.HyperParameter) -> list[Any]:
    hp_types = kt.engine.hyperparameters
    if isinstance(hp, hp_types.Choice):
        return list(hp.values)
    if isinstance(hp, hp_types.Boolean):
        return [False, True]
    if isinstance(hp, hp_types.Int):
        return list(range(hp.min_value, hp.max_value + 1, hp.step or 1))
    # Fixed and Float: one value as far as counting distinct discrete configurations goes.
    return [hp.default]


def _plain(value: Any) -> Any:
    """numpy scalar -> Python scalar; everything else unchanged."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


class SearchSpace:
    """A search space: tuned ``HyperParameters`` plus ``fixed`` config values, and where it came from.

    ``to_json``/``from_json`` give a JSON-safe form, used by the searcher's saved state so a resumed
    sweep continues over exactly the space it started with.
    """

    def __init__(self, hyperparameters: kt.HyperParameters, fixed: Mapping[str, Any] | None = None,
                 source: str = "built-in"):
        self.hyperparameters = hyperparameters
        self.fixed = dict(fixed or {})
        self.source = source

    def to_json(self) -> dict[str, Any]:
        return {"hyperparameters": self.hyperparameters.get_config(), "fixed": self.fixed,
                "source": self.source}

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> "SearchSpace":
        # KerasTuner's from_config rewrites the dicts it is given, so hand it a copy.
        config = copy.deepcopy(state["hyperparameters"])
        return cls(kt.HyperParameters.from_config(config), dict(state["fixed"]), state["source"])

    def names(self) -> list[str]:
        """Every config key the space sets: tuned names then fixed names."""
        return [hp.name for hp in self.hyperparameters.space] + list(self.fixed)

    def __repr__(self) -> str:
        return f"SearchSpace({self.source}: {len(self.hyperparameters.space)} tuned, fixed={self.fixed})"
