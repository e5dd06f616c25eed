"""Warm starts: the configurations on the fronts of earlier sweeps, for a new search to try first.

``tonesweep sweep --warm-start`` seeds each instrument's searcher with the front configurations of the
instruments the same sweep swept before it; ``--warm-start-from NAME`` adds those of every instrument
of an earlier sweep NAME in the same tracking store. A front configuration is a FINISHED trial with a
candidate (any precision) on its sweep's size-quality front (``results.report.front_rows``), its
configuration as its MLflow run's params. Smallest candidates first, one entry per trial. Which of them
the new space can draw, and how many are tried, is the searcher's side (``spaces.translate.warm_values``).
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import ViewType

from common.errors import UserError
from results.layout import EXPERIMENT_PREFIX
from results.report import front_rows
from results.table import build_table, list_sweeps, load_trial_runs, runs_frame


def front_configs(client: MlflowClient, sweep_name: str, instruments: list[str] | None = None) -> list[dict]:
    """The configurations on the fronts of sweep ``sweep_name``, for ``instruments`` (None: every
    instrument that sweep has), in the order given, each front smallest first."""
    configs: list[dict] = []
    for instrument in instruments if instruments is not None else swept_instruments(client):
        sweeps = [s for s in _sweeps(client, instrument) if s.name == sweep_name]
        if not sweeps:
            continue
        runs = {run.info.run_id: run for run in load_trial_runs(client, sweeps[-1])}
        table = build_table(runs_frame(list(runs.values())), instrument, sweep_name)
        for run_id in dict.fromkeys(front_rows(table)["run_id"]):
            configs.append({key: parse_param(text) for key, text in runs[run_id].data.params.items()})
    return configs


def check_warm_sources(client: MlflowClient, names: list[str], uri: str) -> None:
    """Every ``--warm-start-from`` name is a sweep in this store; one line naming what is there otherwise."""
    known = {s.name for instrument in swept_instruments(client) for s in _sweeps(client, instrument)}
    for name in names:
        if name not in known:
            listing = ", ".join(sorted(known)) or "none"
            raise UserError(f"--warm-start-from {name}: no sweep of that name in {uri}; sweeps there: {listing}")


def swept_instruments(client: MlflowClient) -> list[str]:
    return sorted(e.name[len(EXPERIMENT_PREFIX):] for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
                  if e.name.startswith(EXPERIMENT_PREFIX))


def _sweeps(client: MlflowClient, instrument: str):
    try:
        return list_sweeps(client, instrument)
    except UserError:  # no such experiment
        return []


def parse_param(text: str):
    """An MLflow param (a string) as the value the trainer's config had: int, float, bool or text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)
