"""`tonesweep export`'s MLflow side: find the trial to export and download its files.

The champion (``tonesweep-<instrument>@champion``, set by `tonesweep pareto`) or a given run id is
resolved here, its ``trial/`` artifact folder downloaded, and the export chain in
``trainers.export.bundle`` (which knows TensorFlow, never MLflow) takes it from there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from results.registry import champion, model_name
from results.tracking import resolve_tracking_uri
from trainers.errors import UserError
from trainers.export.bundle import TrialSource, local_trial


def resolve_trial(instrument: str, run_id: str | None, tracking_uri: str | None, download_dir: Path) -> TrialSource:
    """The champion of `instrument`, an MLflow run id, or a local trial folder (``--run-id PATH``)."""
    if run_id and Path(run_id).is_dir():
        return local_trial(run_id)
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        raise UserError(f"{uri[len('sqlite:///'):]}: no MLflow store here (nothing to export); run a sweep first, "
                        "or pass --tracking-uri, or --run-id with a trial folder")
    client = MlflowClient(tracking_uri=uri)
    registry = _champion_info(client, instrument, uri) if run_id is None else _champion_info_if_run(client, instrument, run_id)
    run_id = run_id or registry["run_id"]
    try:
        client.get_run(run_id)
    except MlflowException:
        raise UserError(f"--run-id {run_id}: no such run in {uri}; check the id or --tracking-uri") from None
    download_dir.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(client.download_artifacts(run_id, "trial", str(download_dir)))
    except (MlflowException, OSError) as err:
        raise UserError(f"run {run_id}: its trial/ artifacts cannot be downloaded ({err}); was the trial logged by a sweep?") from None
    return TrialSource(local, run_id, registry.get("precision") or None, registry)


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


def cli_export(args) -> int:
    """`tonesweep export --instrument NAME --out DIR [--run-id ID|TRIAL_DIR] [--precision P]`."""
    from trainers.export.bundle import ExportParityError, export_bundle, print_summary  # noqa: PLC0415 (TF import)

    with tempfile.TemporaryDirectory(prefix="tonesweep-export-") as tmp:
        source = resolve_trial(args.instrument, args.run_id, args.tracking_uri, Path(tmp) / "download")
        try:
            card = export_bundle(source, args.out, args.instrument, args.precision,
                                 js_parity=not args.skip_js_parity)
        except ExportParityError as err:
            print(f"tonesweep: export FAILED parity check: {err}")
            return 1
    print_summary(args.out, card)
    return 0
