"""The results table: MLflow runs of one instrument's sweep as one tidy pandas DataFrame.

Input is the MLflow layout of docs/architecture.md §3 (experiment ``tonesweep-<instrument>``,
a parent run per sweep tagged ``tonesweep.role=sweep``, a child run per trial tagged
``tonesweep.role=trial``). Output is one row per trial × weight precision (float32, float16,
uint8): see ``TABLE_COLUMNS``, plus one column per hyperparameter.

Every trial gets its three rows whatever its status (FINISHED, FAILED, REJECTED, STOPPED, or
RUNNING while a sweep is still going): failed trials are kept and marked, never dropped. Missing
metrics are NaN. The boolean column ``candidate`` says which rows may compete: status FINISHED and
finite bytes and quality. Everything downstream (front, selector, plot) looks only at candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from results.layout import (
    EXPERIMENT_PREFIX,
    FAILURE_TAG,
    ROLE_SWEEP,
    ROLE_TAG,
    ROLE_TRIAL,
    STATUS_TAG,
    SWEEP_TAG,
    TRIAL_ID_TAG,
    experiment_name,
    trial_metrics,
)
from results.pareto import REFERENCE, ReferencePoint, reference_from_params
from common.constants import FINISHED, PRECISIONS
from common.errors import UserError

# Per-precision metrics in metrics.json, logged as "<name>_<precision>"; the table's column names.
# ``bytes`` is the whole shipped bundle (model.json + shards); ``bytes_weights`` the trained weights' share.
PER_PRECISION = {"bytes": "bytes", "bytes_weights": "bytes_weights", "bytes_gzip": "bytes_gzip", "quality": "quality",
                 "pitch_error_cents": "pitch_error_cents", "loudness_error_db": "loudness_error_db"}

TABLE_COLUMNS = [
    "run_id", "sweep", "instrument", "trial_id", "status", "failure_reason", "candidate",
    "precision", "bytes", "bytes_weights", "bytes_gzip", "rtf_wasm", "params", "quality", "pitch_error_cents",
    "loudness_error_db", "train_time_s", "start_time",
]


@dataclass(frozen=True)
class Sweep:
    """One sweep of one instrument: its experiment and parent run."""

    instrument: str
    name: str
    experiment_id: str
    parent_run_id: str
    start_time: int  # ms since epoch (MLflow's unit)
    reference: ReferencePoint = REFERENCE  # the hypervolume reference the sweep recorded


def find_experiment_id(client: MlflowClient, instrument: str) -> str:
    """The experiment id of ``tonesweep-<instrument>``; UserError listing what exists otherwise."""
    experiment = client.get_experiment_by_name(experiment_name(instrument))
    if experiment is not None:
        return experiment.experiment_id
    known = sorted(e.name[len(EXPERIMENT_PREFIX):] for e in client.search_experiments(view_type=ViewType.ALL)
                   if e.name.startswith(EXPERIMENT_PREFIX))
    listing = ", ".join(known) if known else "none yet; run `tonesweep sweep` first"
    raise UserError(f"--instrument {instrument}: no sweeps tracked for this instrument; known instruments: {listing}")


def list_sweeps(client: MlflowClient, instrument: str) -> list[Sweep]:
    """All sweeps (parent runs) of the instrument, oldest first."""
    experiment_id = find_experiment_id(client, instrument)
    runs = _search_all(client, experiment_id, f"tags.`{ROLE_TAG}` = '{ROLE_SWEEP}'")
    sweeps = [Sweep(instrument, r.data.tags.get(SWEEP_TAG, r.info.run_name), experiment_id, r.info.run_id,
                    r.info.start_time or 0, reference_from_params(r.data.params) or REFERENCE) for r in runs]
    return sorted(sweeps, key=lambda s: (s.start_time, s.parent_run_id))


def find_sweep(client: MlflowClient, instrument: str, name: str | None = None) -> Sweep:
    """The named sweep, or the latest (most recently started) one when ``name`` is None.

    A sweep resumed under the same name may own several parent runs; the latest one wins.
    """
    sweeps = list_sweeps(client, instrument)
    if not sweeps:
        raise UserError(f"--instrument {instrument}: the experiment has no sweep runs; run `tonesweep sweep` first")
    if name is None:
        return sweeps[-1]
    named = [s for s in sweeps if s.name == name]
    if not named:
        listing = ", ".join(dict.fromkeys(s.name for s in reversed(sweeps)))
        raise UserError(f"--sweep {name}: no such sweep for {instrument}; sweeps (latest first): {listing}")
    return named[-1]


def _search_all(client: MlflowClient, experiment_id: str, filter_string: str) -> list[Run]:
    """Every run matching the filter, following MLflow's pagination."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=50_000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def load_trial_runs(client: MlflowClient, sweep: Sweep) -> list[Run]:
    """The child (trial) runs of the sweep."""
    role = f"tags.`{ROLE_TAG}` = '{ROLE_TRIAL}'"
    if "'" in sweep.name:  # MLflow's filter grammar cannot escape quotes: filter by name here instead
        return [r for r in _search_all(client, sweep.experiment_id, role) if r.data.tags.get(SWEEP_TAG) == sweep.name]
    return _search_all(client, sweep.experiment_id, f"{role} and tags.`{SWEEP_TAG}` = '{sweep.name}'")


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One wide row per run: run info, ``metrics.<k>``, ``params.<k>``, ``tags.<k>`` (MLflow's naming)."""
    rows = []
    for run in runs:
        row = {"run_id": run.info.run_id, "run_status": run.info.status, "start_time": run.info.start_time}
        row.update({f"metrics.{k}": v for k, v in trial_metrics(run.data.metrics).items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _trial_status(wide: pd.DataFrame) -> pd.Series:
    """tonesweep's own status tag; before a trial reports it (sweep still running), MLflow's run status."""
    tag = wide.get(f"tags.{STATUS_TAG}", pd.Series(np.nan, index=wide.index, dtype=object))
    return tag.where(tag.notna() & (tag != ""), wide["run_status"]).astype(str)


def _parse_param(values: pd.Series) -> pd.Series:
    """MLflow stores params as strings: numbers back to numbers, "True"/"False" to bools, else as is."""
    present = values.dropna()
    if present.isin(["True", "False", "true", "false"]).all() and len(present):
        return values.map(lambda v: v if pd.isna(v) else str(v).lower() == "true")
    numeric = pd.to_numeric(values, errors="coerce")
    return numeric if numeric.notna().sum() == len(present) else values


def _metric(wide: pd.DataFrame, name: str) -> pd.Series:
    column = f"metrics.{name}"
    return wide[column].astype(float) if column in wide else pd.Series(np.nan, index=wide.index)


def build_table(wide: pd.DataFrame, instrument: str, sweep: str) -> pd.DataFrame:
    """Reduce the wide run frame to the tidy candidate table (module docstring)."""
    if wide.empty:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in [*TABLE_COLUMNS, "decoder", "feature"]})
        return empty.astype({"candidate": bool, "bytes": float, "bytes_weights": float, "quality": float,
                             "rtf_wasm": float, "params": float})
    base = pd.DataFrame({
        "run_id": wide["run_id"],
        "sweep": sweep,
        "instrument": instrument,
        "trial_id": wide.get(f"tags.{TRIAL_ID_TAG}", pd.Series(None, index=wide.index, dtype=object)),
        "status": _trial_status(wide),
        "failure_reason": wide.get(f"tags.{FAILURE_TAG}", pd.Series("", index=wide.index)).fillna(""),
        "rtf_wasm": _metric(wide, "rtf_wasm"),
        "params": _metric(wide, "params"),
        "train_time_s": _metric(wide, "train_time_s"),
        "start_time": pd.to_datetime(wide["start_time"], unit="ms", utc=True),
    })
    per_precision = []
    for precision in PRECISIONS:
        part = base.copy()
        part.insert(base.columns.get_loc("rtf_wasm"), "precision", precision)
        for column, metric in PER_PRECISION.items():
            part[column] = _metric(wide, f"{metric}_{precision}")
        per_precision.append(part)
    table = pd.concat(per_precision, ignore_index=True)
    table["candidate"] = candidate_mask(table)
    table = table[TABLE_COLUMNS]

    hyper = wide.filter(like="params.", axis=1)
    hyper = hyper.rename(columns=lambda c: c[len("params."):]).apply(_parse_param)
    hyper = hyper.rename(columns=lambda c: f"hp_{c}" if c in table.columns else c)
    hyper_rows = pd.concat([hyper] * len(PRECISIONS), ignore_index=True)
    table = pd.concat([table, hyper_rows], axis=1)
    for key in ("decoder", "feature"):  # the plot and JSON rely on these two even if a run lacks them
        if key not in table:
            table[key] = np.nan
    # stable, readable order: trial start, then precision in PRECISIONS order
    table["_p"] = table["precision"].map(PRECISIONS.index)
    return table.sort_values(["start_time", "run_id", "_p"], kind="stable").drop(columns="_p").reset_index(drop=True)


def candidate_mask(table: pd.DataFrame) -> pd.Series:
    """Which rows may compete (the module docstring): a FINISHED trial's precision with finite bytes and quality."""
    return ((table["status"] == FINISHED) & np.isfinite(table["bytes"].astype(float))
            & np.isfinite(table["quality"].astype(float)))


def load_table(client: MlflowClient, instrument: str, sweep_name: str | None = None) -> tuple[Sweep, pd.DataFrame]:
    """Find the sweep (latest when ``sweep_name`` is None) and return it with its candidate table."""
    sweep = find_sweep(client, instrument, sweep_name)
    wide = runs_frame(load_trial_runs(client, sweep))
    return sweep, build_table(wide, instrument, sweep.name)
