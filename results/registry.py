"""Register the selected winner in the MLflow Model Registry as ``tonesweep-<instrument>@champion``.

Contract with export (docs/architecture.md §4): registered model ``tonesweep-<instrument>``, alias
``champion``; version tags ``run_id``, ``precision``, ``bytes`` (the shipped bundle), ``quality``,
``tolerance`` (plus ``sweep``, ``instrument``, ``max_loss``, ``max_pitch_error``, ``min_rtf``,
``max_bytes``, ``rule``, ``bytes_weights``, ``rtf_wasm``, ``model_id`` when the winner is a logged model
of the front, which lists the version back in ``mlflow.modelVersions``); the version's source is the
trial run's ``trial/`` artifact folder, which export downloads and rebuilds with ``load_trained``.

History: every distinct (winner, settings) pair is its own version, so re-selecting with other
settings creates a new version and moves the alias while older versions stay. Re-selecting the
same winner (run id + precision) of the same sweep with the same settings does not add a copy:
the alias is pointed at the existing version instead (``Registration.created`` is False).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from results.layout import CHAMPION_ALIAS as ALIAS
from results.layout import CHAMPION_TAG
from results.layout import model_name
from results.select import Selection

MODEL_ID_TAG = "model_id"  # version tag: the winner's logged model (results.front_models)


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    created: bool  # False when an identical earlier version was reused


def version_tags(selection: Selection, sweep: str) -> dict[str, str]:
    """The tags that identify a registered version (MLflow tag values are strings)."""
    winner, criteria = selection.winner, selection.criteria
    return {
        "run_id": str(winner["run_id"]),
        "precision": str(winner["precision"]),
        "bytes": str(int(winner["bytes"])),
        "quality": repr(float(winner["quality"])),
        "tolerance": repr(float(criteria.tolerance)),
        "max_loss": "" if criteria.max_loss is None else repr(float(criteria.max_loss)),
        "max_pitch_error": "" if criteria.max_pitch_error is None else repr(float(criteria.max_pitch_error)),
        "min_rtf": "" if not criteria.min_rtf else repr(float(criteria.min_rtf)),
        "max_bytes": "" if criteria.max_bytes is None else str(int(criteria.max_bytes)),
        "bytes_weights": _int_text(winner.get("bytes_weights")),
        "rtf_wasm": _float_text(winner.get("rtf_wasm")),
        "sweep": sweep,
        "instrument": str(winner["instrument"]),
        "rule": "max_loss" if criteria.max_loss is not None else "tolerance",
    }


# Tags that must all match for an earlier version to count as "the same selection".
_IDENTITY = ("run_id", "precision", "sweep", "tolerance", "max_loss", "max_pitch_error", "min_rtf", "max_bytes")


def _int_text(value) -> str:
    return "" if value is None or pd.isna(value) else str(int(value))


def _float_text(value) -> str:
    return "" if value is None or pd.isna(value) else repr(round(float(value), 3))


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
        client.create_registered_model(name, description="Smallest acceptable tonesweep model (see version tags).")


def _same_selection(client: MlflowClient, name: str, tags: dict[str, str]) -> ModelVersion | None:
    """The newest existing version whose identity tags equal ``tags``, if any."""
    versions = client.search_model_versions(f"name = '{name}'")
    matching = [v for v in versions if all(v.tags.get(k, "") == tags[k] for k in _IDENTITY)]
    return max(matching, key=lambda v: int(v.version)) if matching else None


def register_winner(client: MlflowClient, selection: Selection, sweep: str, model_id: str | None = None) -> Registration:
    """Register ``selection.winner`` (or reuse an identical version) and point ``champion`` at it; a new
    version links to the winner's logged model ``model_id`` (``results.front_models``) when given."""
    if selection.winner is None:
        raise ValueError("register_winner needs a selection with a winner")
    winner: pd.Series = selection.winner
    name = model_name(str(winner["instrument"]))
    tags = version_tags(selection, sweep)
    _ensure_registered_model(client, name)

    existing = _same_selection(client, name, tags)
    if existing is not None:
        version, created = existing.version, False
    else:
        run = client.get_run(str(winner["run_id"]))
        source = f"{run.info.artifact_uri.rstrip('/')}/trial"
        if model_id:
            tags = {**tags, MODEL_ID_TAG: model_id}
        # (no model_id= here: a tracking server refuses it unless the source is the model's own artifacts,
        # and these stay the trial's; the version tag and the model's mlflow.modelVersions link the two)
        mv = client.create_model_version(name, source, run_id=run.info.run_id, tags=tags,
                                         description=selection.reason)
        version, created = mv.version, True
    if model_id:
        link_logged_model(client, model_id, name, int(version))
    try:
        previous = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:  # no champion yet (MLflow says so with one error or another)
        previous = None
    client.set_registered_model_alias(name, ALIAS, version)
    mark_champion_run(client, previous, str(winner["run_id"]), f"{winner['precision']}, models:/{name}@{ALIAS} v{version}")
    return Registration(name, str(version), created)


def link_logged_model(client: MlflowClient, model_id: str, name: str, version: int) -> None:
    """The logged model lists the registered version (``mlflow.modelVersions``, as ``mlflow.register_model``
    writes it: MLflow's SQL registry keeps no model id on a version, so the link lives on the model)."""
    listed = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    entry = {"name": name, "version": version}
    if entry not in listed:
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*listed, entry])})


def mark_champion_run(client: MlflowClient, previous: ModelVersion | None, run_id: str, text: str) -> None:
    """The champion's trial run carries ``tonesweep.champion`` (a column the runs table can show);
    the run of the version the alias left loses it."""
    if previous is not None and previous.run_id and previous.run_id != run_id:
        try:
            client.delete_tag(previous.run_id, CHAMPION_TAG)
        except MlflowException:  # the tag was never set (a version registered before it existed), or the run is gone
            pass
    client.set_tag(run_id, CHAMPION_TAG, text)


def champion(client: MlflowClient, instrument: str) -> ModelVersion | None:
    """The version the ``champion`` alias points at, or None when nothing is registered yet."""
    try:
        return client.get_model_version_by_alias(model_name(instrument), ALIAS)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
