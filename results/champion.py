"""`tonesweep export`'s MLflow side: which trial to export, at which precision, and its files.

The champion (``tonesweep-<instrument>@champion``, set by `tonesweep pareto`) or an MLflow run id
is resolved here and its ``trial/`` artifact folder downloaded; ``--precision auto`` is decided here too, by the selector's own rule
(``results.criteria``). The export chain in ``trainers.export.bundle`` (TensorFlow, never MLflow)
takes the resulting folder from there; ``cli.commands.export`` joins the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from results.criteria import Criteria
from results.layout import FAILURE_TAG, INSTRUMENT_TAG, STATUS_TAG, TRIAL_ARTIFACTS, model_name
from results.registry import champion
from results.layout import resolve_tracking_uri
from results.tracking import check_store_exists, check_tracking_uri
from common.constants import PRECISIONS
from common.trial import ResolvedTrial
from common.errors import UserError
from common.values import finite

TRIAL_METRICS = "metrics.json"  # a trial folder's metrics (docs/architecture.md, section 2)


def resolve_trial(instrument: str, run_id: str | None, tracking_uri: str | None, download_dir: Path) -> ResolvedTrial:
    """The champion of `instrument`, or the MLflow run ``run_id``, downloaded into ``download_dir``."""
    uri = check_store_exists(check_tracking_uri(resolve_tracking_uri(tracking_uri)), "export; or pass --run-id with a trial folder")
    client = MlflowClient(tracking_uri=uri)
    registry = _champion_info(client, instrument, uri) if run_id is None else _champion_info_if_run(client, instrument, run_id)
    run_id = run_id or registry["run_id"]
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"--run-id {run_id}: no such run in {uri}; check the id or --tracking-uri") from None
    trained_on = run.data.tags.get(INSTRUMENT_TAG)
    if trained_on and trained_on != instrument:
        raise UserError(f"--instrument {instrument}: run {run_id} belongs to {trained_on}; pass --instrument {trained_on}")
    download_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(client.download_artifacts(run_id, TRIAL_ARTIFACTS, str(download_dir)))
    except (MlflowException, OSError):
        status = run.data.tags.get(STATUS_TAG, run.info.status)
        why = run.data.tags.get(FAILURE_TAG) or ""
        raise UserError(f"run {run_id}: no {TRIAL_ARTIFACTS}/ artifacts to export (trial status {status}"
                        + (f": {why[:200]}" if why else "") + "); export a FINISHED trial") from None
    return ResolvedTrial(local, run_id, registry.get("precision") or None, registry)


def choose_precision(requested: str, registry_precision: str | None, trial_dir: Path,
                     criteria: Criteria = Criteria()) -> str:
    """The precision to export: as requested, or for ``auto`` the registry's choice, else the smallest
    precision whose quality the selector would accept against this trial's float32 quality."""
    if requested != "auto":
        return requested
    if registry_precision:
        return registry_precision
    metrics = _read_metrics(Path(trial_dir))
    best = finite(metrics.get("quality_float32"))
    if best is None:
        return "float32"
    for precision in reversed(PRECISIONS):  # smallest first
        quality = finite(metrics.get(f"quality_{precision}"))
        if quality is not None and criteria.accepts(quality, best):
            return precision
    return "float32"


def _read_metrics(trial_dir: Path) -> dict[str, Any]:
    path = trial_dir / TRIAL_METRICS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({err}); export another run or re-run the trial") from None


def _champion_info(client: MlflowClient, instrument: str, uri: str) -> dict[str, str]:
    """The champion version's registry facts (model, version, tags, run_id), or a one-line error."""
    version = champion(client, instrument)
    if version is None:
        raise UserError(f"{model_name(instrument)}@champion: not registered in {uri}; run "
                        f"`tonesweep pareto --instrument {instrument}` first, or pass --run-id")
    return {"model": model_name(instrument), "version": str(version.version), **version.tags,
            "run_id": version.tags.get("run_id") or version.run_id}


def _champion_info_if_run(client: MlflowClient, instrument: str, run_id: str) -> dict[str, str]:
    """The champion's registry facts when it is this run (its precision then applies), else {}."""
    try:
        info = _champion_info(client, instrument, "")
    except (UserError, MlflowException):
        return {}
    return info if info.get("run_id") == run_id else {}
