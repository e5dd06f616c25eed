"""A sweep's front as MLflow 3 logged models, so the experiment's Models tab lists what may ship.

One logged model per candidate on the front (and per winner off it): named for its trial and
precision (``cnn-rms-4_7k-a819-uint8``: MLflow refuses dots in a model name), created from the trial's run (``source_run_id``), marked
external (``mlflow.model.isExternal``: its files stay the trial's ``trial/`` artifacts, never
copied; the tag ``tonesweep.source`` names them), with the trial's configuration as params and its
precision, bytes, quality, pitch error and browser speed as metrics. The metrics are logged through
the sweep's parent run under ``front/...`` (``winner_off_front/...`` for a winner off the front), one
step per front member, smallest first, so the trial runs' own metrics stay as the sweep logged them
and the parent's charts draw the front.

``pareto`` calls ``log_front_models`` every time; a candidate that already has its model keeps it,
and a model whose candidate has left the front (a resumed sweep found better) is tagged
``tonesweep.on_front=false``. The registry links the champion's version to its model.
"""

from __future__ import annotations

import re
import time

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric

from results import layout
from results.table import Sweep

SOURCE_TAG, ON_FRONT_TAG, PRECISION_TAG = "tonesweep.source", "tonesweep.on_front", "tonesweep.precision"
EXTERNAL_TAG = "mlflow.model.isExternal"          # MLflow's own mark for a model whose files live elsewhere
MODEL_TYPE = "tonesweep-ddsp-decoder"
MODEL_METRICS = ("bytes", "quality", "pitch_error_cents", "rtf_wasm")   # candidate table columns
FRONT_SECTION, OFF_FRONT_SECTION = "front/", "winner_off_front/"      # the parent run's metric keys


def existing_models(client: MlflowClient, sweep: Sweep) -> dict[tuple[str, str], object]:
    """The sweep's logged models already in the experiment, by (run id, precision)."""
    found, token = {}, None
    while True:
        page = client.search_logged_models([sweep.experiment_id], max_results=1000, page_token=token)
        for model in page:
            tags = model.tags or {}
            if tags.get(layout.SWEEP_TAG) == sweep.name and model.source_run_id:
                found[(model.source_run_id, tags.get(PRECISION_TAG, ""))] = model
        token = page.token
        if not token:
            return found


def log_front_models(client: MlflowClient, sweep: Sweep, front: pd.DataFrame,
                     extra: pd.DataFrame | None = None) -> dict[tuple[str, str], str]:
    """Make sure every row of ``front`` (smallest first) and of ``extra`` (e.g. a winner off the front)
    has its logged model; returns (run id, precision) -> model id."""
    existing = existing_models(client, sweep)
    rows = pd.concat([front, extra]) if extra is not None and len(extra) else front
    ids: dict[tuple[str, str], str] = {}
    for rank, (_, row) in enumerate(rows.iterrows()):
        key = (str(row["run_id"]), str(row["precision"]))
        model = existing.get(key) or _create(client, sweep, row, rank if rank < len(front) else None)
        ids[key] = model.model_id
    on_front = {(str(r["run_id"]), str(r["precision"])) for _, r in front.iterrows()}
    for key, model in existing.items():
        wanted = "true" if key in on_front else "false"
        if (model.tags or {}).get(ON_FRONT_TAG) != wanted:
            client.set_logged_model_tags(model.model_id, {ON_FRONT_TAG: wanted})
    return ids


def model_name(run_name: str, precision: str) -> str:
    """``<trial run name>-<precision>`` in the characters MLflow allows in a model name (no '/', ':', '.',
    '%', quotes): ``cnn-rms-1.4k-6a5f`` at uint8 is ``cnn-rms-1_4k-6a5f-uint8``."""
    return re.sub(r"""[/:.%"']""", "_", f"{run_name}-{precision}")


def _create(client: MlflowClient, sweep: Sweep, row: pd.Series, rank: int | None):
    run = client.get_run(str(row["run_id"]))
    name = model_name(run.info.run_name, str(row["precision"]))
    tags = {EXTERNAL_TAG: "true", layout.SWEEP_TAG: sweep.name, layout.INSTRUMENT_TAG: sweep.instrument,
            PRECISION_TAG: str(row["precision"]), ON_FRONT_TAG: "true" if rank is not None else "false",
            SOURCE_TAG: f"{run.info.artifact_uri.rstrip('/')}/{layout.TRIAL_ARTIFACTS}"}
    params = {k: str(run.data.params[k]) for k in sorted(run.data.params)}
    params["precision"] = str(row["precision"])
    model = client.create_logged_model(sweep.experiment_id, name=name, source_run_id=run.info.run_id, tags=tags,
                                       params=params, model_type=MODEL_TYPE)
    now = int(time.time() * 1000)
    section, step = (FRONT_SECTION, rank) if rank is not None else (OFF_FRONT_SECTION, 0)
    metrics = [Metric(section + column, float(row[column]), now, step, model_id=model.model_id)
               for column in MODEL_METRICS if pd.notna(row.get(column))]
    client.log_batch(sweep.parent_run_id, metrics=metrics)
    return client.finalize_logged_model(model.model_id, "READY")
