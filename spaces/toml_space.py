"""Search spaces from TOML files.

Format (every table under ``[hyperparameters]`` is one tuned hyperparameter, in file order;
``[fixed]`` holds config values that are set but not tuned)::

    [hyperparameters.decoder]
    type = "choice"                 # choice | int | float | boolean | fixed
    values = ["gru", "cnn"]

    [hyperparameters.gru_units]
    type = "choice"
    values = [32, 64]
    when = { decoder = ["gru"] }    # active only for these values of an earlier hyperparameter

    [hyperparameters.learning_rate]
    type = "float"
    min = 3e-4
    max = 3e-3
    sampling = "log"                # linear | log | reverse_log (int and float)

    [fixed]
    batch_size = 4

Every problem (bad TOML, unknown hyperparameter, missing or wrong field) is a one-line
``UserError`` naming the file and the field, raised before anything starts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Mapping

import keras_tuner as kt

from spaces.translate import CONFIG_KEYS, SearchSpace
from common.errors import UserError

_TYPES = ("choice", "int", "float", "boolean", "fixed")
_SAMPLINGS = ("linear", "log", "reverse_log")
# Fields each type accepts (besides "type" and "when").
_FIELDS = {
    "choice": {"values", "default"},
    "int": {"min", "max", "step", "sampling", "default"},
    "float": {"min", "max", "step", "sampling", "default"},
    "boolean": {"default"},
    "fixed": {"value"},
}


def load_space(path: str | Path) -> SearchSpace:
    """Read a TOML space file; raise ``UserError`` on the first problem found."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: space file not found; pass an existing TOML file to --space") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML ({err}); fix the syntax") from None
    return parse_space(document, source=str(path))


def parse_space(document: Mapping[str, Any], source: str = "<space>") -> SearchSpace:
    """Build a ``SearchSpace`` from an already-parsed TOML document."""
    extra = sorted(set(document) - {"hyperparameters", "fixed"})
    if extra:
        raise UserError(f"{source}: unknown table [{extra[0]}]; use [hyperparameters.NAME] and [fixed]")
    tuned = document.get("hyperparameters", {})
    fixed = document.get("fixed", {})
    if not isinstance(tuned, dict) or not tuned:
        raise UserError(f"{source}: no [hyperparameters.NAME] tables; declare at least one hyperparameter")
    if not isinstance(fixed, dict):
        raise UserError(f"{source}: fixed: must be a table of config values; write [fixed] then key = value lines")
    for name in list(tuned) + list(fixed):
        _check_known(name, source)
    both = sorted(set(tuned) & set(fixed))
    if both:
        raise UserError(f"{source}: {both[0]}: both tuned and fixed; keep it in one of the two tables")

    hp = kt.HyperParameters()
    for name, spec in tuned.items():
        field = f"{source}: hyperparameters.{name}"
        if not isinstance(spec, dict):
            raise UserError(f"{field}: must be a table; write [hyperparameters.{name}] with a type = line")
        _declare(hp, name, spec, field)
    return SearchSpace(hp, fixed=fixed, source=source)


def _check_known(name: str, source: str) -> None:
    if name not in CONFIG_KEYS:
        raise UserError(f"{source}: {name}: unknown hyperparameter; use one of {', '.join(CONFIG_KEYS)}")


def _declare(hp: kt.HyperParameters, name: str, spec: Mapping[str, Any], field: str) -> None:
    """Register one hyperparameter, inside the conditional scopes its ``when`` asks for."""
    kind = spec.get("type")
    if kind not in _TYPES:
        raise UserError(f"{field}.type: {kind!r} is not a hyperparameter type; use one of {', '.join(_TYPES)}")
    unknown = sorted(set(spec) - _FIELDS[kind] - {"type", "when"})
    if unknown:
        raise UserError(f"{field}.{unknown[0]}: not a field of a {kind} hyperparameter; "
                        f"use {', '.join(sorted(_FIELDS[kind]))}")
    conditions = spec.get("when", {})
    if not isinstance(conditions, dict):
        raise UserError(f"{field}.when: must be a table like {{ decoder = [\"gru\"] }}")
    scopes = []
    for parent, parent_values in conditions.items():
        if not hp._exists(parent):  # noqa: SLF001 - KerasTuner has no public "is declared" query
            raise UserError(f"{field}.when: {parent} is not declared above it; declare {parent} first")
        parent_values = parent_values if isinstance(parent_values, list) else [parent_values]
        scopes.append(hp.conditional_scope(parent, parent_values))
    _enter_scopes_and_register(hp, scopes, name, kind, spec, field)


def _enter_scopes_and_register(hp, scopes, name, kind, spec, field) -> None:
    if scopes:
        with scopes[0]:
            _enter_scopes_and_register(hp, scopes[1:], name, kind, spec, field)
        return
    try:
        _register(hp, name, kind, spec)
    except KeyError as err:
        raise UserError(f"{field}.{err.args[0]}: missing; a {kind} hyperparameter needs it") from None
    except (TypeError, ValueError) as err:
        message = str(err).replace("\n", " ")
        raise UserError(f"{field}: {message}; fix the values") from None


def _register(hp: kt.HyperParameters, name: str, kind: str, spec: Mapping[str, Any]) -> None:
    sampling = spec.get("sampling", "linear")
    if kind in ("int", "float") and sampling not in _SAMPLINGS:
        raise ValueError(f"sampling {sampling!r} is not one of {', '.join(_SAMPLINGS)}")
    if kind == "choice":
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ValueError("values must be a non-empty list")
        hp.Choice(name, values, default=spec.get("default"))
    elif kind == "int":
        hp.Int(name, int(spec["min"]), int(spec["max"]), step=spec.get("step"), sampling=sampling,
               default=spec.get("default"))
    elif kind == "float":
        hp.Float(name, float(spec["min"]), float(spec["max"]), step=spec.get("step"), sampling=sampling,
                 default=spec.get("default"))
    elif kind == "boolean":
        hp.Boolean(name, default=bool(spec.get("default", False)))
    else:
        hp.Fixed(name, spec["value"])
