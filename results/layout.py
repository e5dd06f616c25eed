"""How tonesweep lays its results out in MLflow, spelled once (docs/architecture.md, sections 3-4).

Tracking writes this layout, the results table and the registry read it, export resolves runs
through it. Statuses are the trainer's (common.constants); tag values are strings.
"""

from __future__ import annotations

import os

# The store when neither --tracking-uri nor $MLFLOW_TRACKING_URI names one: a SQLite file in the
# working directory (artifacts beside it, in mlruns/).
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT_PREFIX = "tonesweep-"
MODEL_PREFIX = "tonesweep-"
CHAMPION_ALIAS = "champion"

# run tags
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "tonesweep.role"            # ROLE_SWEEP on a sweep's parent run, ROLE_TRIAL on a trial's run
SWEEP_TAG = "tonesweep.sweep"
INSTRUMENT_TAG = "tonesweep.instrument"
DATASET_TAG = "tonesweep.dataset"
ALGORITHM_TAG = "tonesweep.algorithm"
WARM_START_TAG = "tonesweep.warm_start"  # on a parent run: how many configurations its search tried first, from where
TRIAL_ID_TAG = "tonesweep.trial_id"
STATUS_TAG = "tonesweep.status"
FAILURE_TAG = "tonesweep.failure_reason"
NODE_TAG = "tonesweep.node_id"         # the Ray node a trial ran on (its last one, if Ray retried it)
CHAMPION_TAG = "tonesweep.champion"    # on the champion's trial run: "<precision>, models:/<model>@champion v<n>"
NODE_KEY = "node_id"                   # ... as the trainable puts it in every result
ROLE_SWEEP, ROLE_TRIAL = "sweep", "trial"

# experiment tags: mlflow.experimentKind makes MLflow 3's UI open an experiment on its runs
# (metrics, artifacts) rather than on its GenAI traces view, which shows none of them.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"

# artifact folders of a trial run, and the plot on a sweep's parent run
TRIAL_ARTIFACTS, AUDIO_ARTIFACTS, PLOT_ARTIFACTS = "trial", "audio", "plots"
PARETO_PLOT_ARTIFACT = "pareto/pareto.png"

# curves logged with their step while a trial runs
CURVE_KEYS = ("train_loss", "val_loss")

# A trial run's metrics in MLflow: the few a user compares across trials (size, quality, pitch error,
# browser speed, steps trained) at the top level; the rest under a prefix, which MLflow's charts show
# as a section of its own and its column picker as a group. A trial folder's metrics.json keeps the
# flat names; ``trial_metric_name`` reads both spellings (sweeps logged before the prefixes).
HEADLINE_METRICS = ("model_bytes", "bytes_float32", "bytes_float16", "bytes_uint8", "quality_float32",
                    "quality_float16", "quality_uint8", "pitch_error_cents_float32", "rtf_wasm", "steps")
COST_SECTION, DETAIL_SECTION = "cost/", "detail/"   # time and memory a trial spent; everything else
_COST_SUFFIXES = ("_s", "_mib")


def trial_metric_key(name: str) -> str:
    """The MLflow key of a trial's metrics.json number ``name``."""
    if name in HEADLINE_METRICS or name in CURVE_KEYS:
        return name
    return (COST_SECTION if name.endswith(_COST_SUFFIXES) else DETAIL_SECTION) + name


def trial_metric_name(key: str) -> str:
    """The metrics.json name behind an MLflow key of a trial run (old flat keys read as they are)."""
    for section in (COST_SECTION, DETAIL_SECTION):
        if key.startswith(section):
            return key[len(section):]
    return key


def trial_metrics(logged: dict[str, float]) -> dict[str, float]:
    """A trial run's MLflow metrics under their metrics.json names (the one reader of the spelling)."""
    return {trial_metric_name(key): value for key, value in logged.items()}


def trial_run_name(decoder: str, feature: str, params: float, trial_id: str) -> str:
    """A trial run's name in the runs table: decoder, feature, parameter count and the trial id's first
    characters, e.g. ``cnn-rms-4.7k-a819``."""
    count = f"{params / 1e6:.1f}M" if params >= 1e6 else f"{params / 1e3:.1f}k" if params >= 1e3 else f"{params:.0f}"
    return f"{decoder}-{feature}-{count}-{trial_id[:4]}"


def resolve_tracking_uri(cli_uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else DEFAULT_TRACKING_URI."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def experiment_name(instrument: str) -> str:
    return f"{EXPERIMENT_PREFIX}{instrument}"


def model_name(instrument: str) -> str:
    """Registered model name of an instrument's champion."""
    return f"{MODEL_PREFIX}{instrument}"


def experiment_tags(instrument: str) -> dict[str, str]:
    return {INSTRUMENT_TAG: instrument, EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}


def mlflow_status(tonesweep_status: str) -> str:
    """MLflow run status for a tonesweep status: FINISHED/STOPPED -> FINISHED, INTERRUPTED -> KILLED,
    anything else -> FAILED."""
    if tonesweep_status in ("FINISHED", "STOPPED"):
        return "FINISHED"
    return "KILLED" if tonesweep_status == "INTERRUPTED" else "FAILED"


def quote(text: str) -> str:
    """A value inside single quotes of an MLflow search filter."""
    return text.replace("'", "\\'")
