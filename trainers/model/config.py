"""Trial configuration: a flat dict of hyperparameters (a TOML file on the CLI).

`validate_config(cfg)` is the single gate: it fills defaults and raises `ConfigError`
(a `UserError`) naming the field and the fix for any unknown key or invalid value, so a
bad configuration fails before any data is read or any TensorFlow op runs.
This module imports neither TensorFlow nor ddsp (the sweep driver uses it cheaply).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from common.errors import UserError


class ConfigError(UserError):
    """An invalid trial configuration; the message names the field."""


# Defaults: a small GRU model in the spirit of ddsp's tiny_instrument (anchors.md), 250 Hz frames.
DEFAULTS: dict[str, Any] = {
    "decoder": "gru",          # gru | cnn
    "feature": "loudness",     # loudness | rms: the second decoder input besides f0
    "frame_rate": 250,         # control frames per second (50 | 250); the synth upsamples to audio rate
    "hidden": 64,              # width of the FC layers (gru only)
    "fc_layers": 1,            # FC layers per stack (gru: input stacks and output stack); 0 allowed
    "gru_units": 64,           # GRU state size (gru only)
    "conv_channels": 32,       # channels of every dilated conv (cnn only)
    "conv_layers": 3,          # dilated conv layers per stack, dilation 2**i (cnn only)
    "conv_stacks": 2,          # stacks of conv_layers (cnn only)
    "conv_kernel": 3,          # conv kernel size in frames (cnn only)
    "causal": False,           # causal (left-padded) convolutions (cnn only)
    "n_harmonics": 60,         # harmonic oscillators
    "n_noise_bands": 65,       # filtered-noise frequency bands
    "reverb": False,           # learn one FIR reverb impulse response for the dataset
    "reverb_seconds": 0.5,     # length of that impulse response
    "learning_rate": 3e-4,     # Adam
    "batch_size": 8,           # examples per step
    "crop_seconds": 0.0,       # train on random windows this long of each example (0: whole examples)
    "steps": 2000,             # optimizer steps
    "seed": 0,                 # initial weights, batch order, synthesis noise
    "grad_clip": 3.0,          # global-norm gradient clipping (ddsp's default)
}

GRU_ONLY = ("hidden", "fc_layers", "gru_units")
CNN_ONLY = ("conv_channels", "conv_layers", "conv_stacks", "conv_kernel", "causal")

_CHOICES = {"decoder": ("gru", "cnn"), "feature": ("loudness", "rms"), "frame_rate": (250, 50)}
# (min, max) inclusive for integers; None = unbounded above.
_INT_RANGES = {
    "hidden": (1, 4096),
    "fc_layers": (0, 8),
    "gru_units": (1, 4096),
    "conv_channels": (1, 1024),
    "conv_layers": (1, 12),
    "conv_stacks": (1, 8),
    "conv_kernel": (1, 15),
    "n_harmonics": (1, 256),
    "n_noise_bands": (1, 512),
    "batch_size": (1, 1024),
    "steps": (1, None),
    "seed": (0, 2**31 - 1),
}
_FLOAT_RANGES = {  # (exclusive min, inclusive max)
    "reverb_seconds": (0.0, 4.0),
    "learning_rate": (0.0, 1.0),
    "grad_clip": (0.0, 1e6),
}
_BOOLS = ("causal", "reverb")


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return a new dict: `cfg` with defaults filled in and types normalized.

    Raises `ConfigError("<field>: <problem>; <fix>")` on unknown keys or invalid values.
    Never mutates `cfg`.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"config: expected a table of hyperparameters, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown hyperparameter; valid keys are {', '.join(DEFAULTS)}")
    out = dict(DEFAULTS)
    out.update(cfg)
    for key, choices in _CHOICES.items():
        if isinstance(out[key], bool) or out[key] not in choices:
            raise ConfigError(f"{key}: {out[key]!r} is not allowed; use one of {', '.join(map(str, choices))}")
    for key, (low, high) in _INT_RANGES.items():
        out[key] = _check_int(key, out[key], low, high)
    for key, (low, high) in _FLOAT_RANGES.items():
        out[key] = _check_float(key, out[key], low, high)
    for key in _BOOLS:
        if not isinstance(out[key], bool):
            raise ConfigError(f"{key}: expected true or false, got {out[key]!r}")
    crop = out["crop_seconds"]
    if isinstance(crop, bool) or not isinstance(crop, (int, float)) or not 0.0 <= crop <= 60.0:
        raise ConfigError(f"crop_seconds: {crop!r} is not allowed; use 0 (whole examples) or seconds up to 60")
    out["crop_seconds"] = float(crop)
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML file of hyperparameters (flat table) and validate it."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found; pass an existing TOML file with --config") from None
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path}: not valid TOML ({err}); fix the syntax") from None
    try:
        return validate_config(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _check_int(key: str, value: Any, low: int, high: int | None) -> int:
    is_integral_float = isinstance(value, float) and value.is_integer()
    if isinstance(value, bool) or not (isinstance(value, int) or is_integral_float):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{key}: {value} is out of range; use an integer {bound}")
    return value


def _check_float(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    value = float(value)
    if not (low < value <= high):  # also rejects NaN
        raise ConfigError(f"{key}: {value} is out of range; use a number > {low} and <= {high}")
    return value
