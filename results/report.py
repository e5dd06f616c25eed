"""`tonesweep pareto`: the front with the winner marked, the plot, and the registry step.

    tonesweep pareto --instrument NAME [--sweep NAME] [--tolerance T] [--max-loss L]
                     [--max-pitch-error C] [--format table|csv|json] [--tracking-uri URI]
                     [--plot PATH] [--no-register]

Steps: load the sweep's table (latest sweep by default) → front + hypervolume (results.pareto) →
selection (results.select) → plot saved to PATH (default ``./pareto-<instrument>-<sweep>.png``)
and logged to the sweep's parent run as ``pareto/pareto.png``, with the interactive
``pareto/size-vs-quality.html`` (results.explore) → winner registered as
``tonesweep-<instrument>@champion`` unless ``--no-register`` → output on stdout.

Output: ``table`` is for people; ``csv`` and ``json`` keep stdout machine-readable and put the
messages on stderr. ``json`` is exactly ``{"instrument", "sweep", "tolerance", "best", "winner",
"front", "hypervolume"}``; candidates are flat objects of the table columns (NaN → null) and the
winner adds ``reason``, ``bar`` and ``on_front``. Exit code 0 with a winner; 1 when nothing
qualifies (the reason is printed as one line on stderr, ``winner`` is null), so scripts that go on
to export stop there.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from results.criteria import Criteria
from results.explore import EXPLORER_ARTIFACT, explorer_html
from results.front_models import log_front_models
from results.listen import LISTEN_ARTIFACT, listening_page
from results.layout import PARETO_PLOT_ARTIFACT as PLOT_ARTIFACT
from results.pareto import hypervolume, pareto_mask
from results.plot import draw, plot_data
from results.registry import register_winner
from results.select import Selection, select_smallest
from results.table import Sweep, load_table
from results.layout import resolve_tracking_uri
from results.tracking import check_store_exists, check_tracking_uri
from common.paths import check_name, check_output_file

PLOT_FORMATS = (".png", ".svg", ".pdf")  # what matplotlib's Agg backend writes

# Columns shown by --format table (all columns go to csv/json).
SHOWN = ["mark", "run_id", "trial_id", "precision", "bytes", "bytes_weights", "rtf_wasm", "params", "quality",
         "pitch_error_cents", "decoder", "feature"]


def front_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated finished candidates, smallest first."""
    candidates = table[table["candidate"]]
    front = candidates[pareto_mask(candidates["bytes"], candidates["quality"])]
    return front.sort_values(["bytes", "quality", "start_time", "run_id"], kind="stable")


def sweep_hypervolume(sweep: Sweep, table: pd.DataFrame) -> float:
    """Hypervolume of the sweep's candidates against the reference point the sweep recorded."""
    candidates = table[table["candidate"]]
    return hypervolume(candidates["bytes"], candidates["quality"], sweep.reference)


def _jsonable(value):
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if value is None or (not isinstance(value, (str, bool, int)) and pd.isna(value)):
        return None
    return value


def candidate_dict(row: pd.Series) -> dict:
    """A candidate as a flat JSON-ready dict (table columns; ``candidate``/``sweep``/``instrument`` left out)."""
    skip = {"candidate", "sweep", "instrument"}
    return {key: _jsonable(value) for key, value in row.items() if key not in skip}


def report_dict(sweep: Sweep, table: pd.DataFrame, selection: Selection) -> dict:
    """The JSON document of `--format json` (module docstring)."""
    front = front_rows(table)
    winner = None
    if selection.winner is not None:
        winner = candidate_dict(selection.winner)
        winner.update(reason=selection.reason, bar=selection.bar,
                      on_front=bool(selection.winner.name in front.index))
    return {
        "instrument": sweep.instrument,
        "sweep": sweep.name,
        "tolerance": selection.criteria.tolerance,
        "best": None if selection.best is None else candidate_dict(selection.best),
        "winner": winner,
        "front": [candidate_dict(row) for _, row in front.iterrows()],
        "hypervolume": sweep_hypervolume(sweep, table),
    }


def shown_rows(table: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The front plus the winner if it is off the front (possible with --max-pitch-error), marked."""
    rows = front_rows(table)
    if selection.winner is not None and selection.winner.name not in rows.index:
        rows = pd.concat([rows, table.loc[[selection.winner.name]]])
    marks = pd.Series("", index=rows.index)
    if selection.best is not None and selection.best.name in rows.index:
        marks[selection.best.name] = "best"
    if selection.winner is not None:
        marks[selection.winner.name] = "WINNER"
    return rows.assign(mark=marks).sort_values(["bytes", "quality"], kind="stable")


def _status_counts(table: pd.DataFrame) -> str:
    counts = table.drop_duplicates("run_id")["status"].value_counts().sort_index()
    return ", ".join(f"{n} {s}" for s, n in counts.items())


def format_table(sweep: Sweep, table: pd.DataFrame, selection: Selection) -> str:
    rows = shown_rows(table, selection)
    n_trials = table["run_id"].nunique()
    header = (f"{sweep.instrument} / {sweep.name}: {n_trials} trials ({_status_counts(table) or 'none'}), "
              f"{int(table['candidate'].sum())} candidates, front of {len(front_rows(table))}, "
              f"hypervolume {sweep_hypervolume(sweep, table):.4g} (reference: {10 ** sweep.reference.log10_bytes:,.0f} "
              f"bytes, quality {sweep.reference.quality:.4g})")
    shown = rows[SHOWN].astype({"bytes": "Int64", "bytes_weights": "Int64", "params": "Int64"})  # NaN-safe ints
    body = shown.to_string(index=False, na_rep="-") if len(rows) else "(no finished candidates)"
    verdict = f"winner: {selection.reason}" if selection.winner is not None else f"no winner: {selection.reason}"
    return "\n".join([header, body, verdict])


def format_csv(table: pd.DataFrame, selection: Selection) -> str:
    rows = shown_rows(table, selection)
    return rows.drop(columns=["candidate"]).to_csv(index=False)


def _log_front_models(client: MlflowClient, sweep: Sweep, table: pd.DataFrame, front: pd.DataFrame,
                      selection: Selection, notes: list[str]) -> dict[tuple[str, str], str]:
    """The front (and a winner off it) as logged models; a note instead of failing when the store refuses."""
    off_front = None
    if selection.winner is not None and selection.winner.name not in front.index:
        off_front = table.loc[[selection.winner.name]]
    try:
        ids = log_front_models(client, sweep, front, off_front)
    except (MlflowException, OSError) as err:  # the models are a view of the front; the selection still stands
        notes.append(f"could not log the front as models in experiment {sweep.experiment_id}: {err}")
        return {}
    notes.append(f"front: {len(front)} logged model(s) in the experiment's Models tab")
    return ids


def _log_listening_page(client: MlflowClient, sweep: Sweep, front: pd.DataFrame, selection: Selection,
                        notes: list[str]) -> None:
    """The front's audio on one page of the parent run (``results.listen``), when its trials logged audio."""
    try:
        page = listening_page(client, f"{sweep.instrument} / {sweep.name}: listen to the front", front,
                              selection.winner)
        if page is not None:
            client.log_text(sweep.parent_run_id, page, LISTEN_ARTIFACT)
            notes.append(f"listen: {LISTEN_ARTIFACT} on the sweep's parent run")
    except (MlflowException, OSError) as err:
        notes.append(f"could not log the listening page to run {sweep.parent_run_id}: {err}")


def _default_plot_path(sweep: Sweep) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{sweep.instrument}-{sweep.name}")
    return Path(f"pareto-{safe}.png")


def save_and_log_plot(client: MlflowClient, sweep: Sweep, table: pd.DataFrame, selection: Selection,
                      path: Path) -> str | None:
    """Save the PNG locally and log it to the parent run; returns a warning instead of failing on logging."""
    figure = draw(plot_data(table, selection, sweep.instrument, sweep.name), path)
    ui_url = client.tracking_uri if client.tracking_uri.startswith(("http://", "https://")) else None
    page = explorer_html(table, front_rows(table), selection, f"{sweep.instrument} / {sweep.name}: size vs quality",
                         sweep.experiment_id, ui_url)
    try:
        client.log_figure(sweep.parent_run_id, figure, PLOT_ARTIFACT)
        client.log_text(sweep.parent_run_id, page, EXPLORER_ARTIFACT)
    except (MlflowException, OSError) as err:  # the plot is a convenience; the selection still stands
        return f"could not log the plot to run {sweep.parent_run_id}: {err}"
    return None


@dataclass
class ParetoReport:
    """What `tonesweep pareto` found and did: the sweep, its table, the selection, and notes."""

    sweep: Sweep
    table: pd.DataFrame
    selection: Selection
    notes: list[str] = field(default_factory=list)  # where the plot went, what was registered

    def render(self, fmt: str) -> str:
        """The report as ``table`` (for people), ``csv`` or ``json`` text."""
        if fmt == "json":
            return json.dumps(report_dict(self.sweep, self.table, self.selection), indent=2)
        if fmt == "csv":
            return format_csv(self.table, self.selection).rstrip("\n")
        return format_table(self.sweep, self.table, self.selection)


def run_pareto(instrument: str, sweep_name: str | None = None, criteria: Criteria = Criteria(),
               tracking_uri: str | None = None, plot: str | Path | None = None,
               register: bool = True) -> ParetoReport:
    """Table -> front -> selection -> plot (saved and logged) -> registry (unless ``register`` is False)."""
    check_name(instrument, "--instrument")
    if sweep_name is not None:
        check_name(sweep_name, "--sweep")
    if plot:
        check_output_file(plot, "--plot", PLOT_FORMATS)
    tracking_uri = check_store_exists(check_tracking_uri(resolve_tracking_uri(tracking_uri)), "select from")
    client = MlflowClient(tracking_uri=tracking_uri)
    sweep, table = load_table(client, instrument, sweep_name)
    selection = select_smallest(table, criteria)
    report = ParetoReport(sweep, table, selection)

    plot_path = Path(plot) if plot else _default_plot_path(sweep)
    check_output_file(plot_path, "--plot", PLOT_FORMATS)
    warning = save_and_log_plot(client, sweep, table, selection, plot_path)
    report.notes.append(warning or f"plot: {plot_path} (also {PLOT_ARTIFACT} and the interactive {EXPLORER_ARTIFACT} "
                                   f"on the sweep's parent run {sweep.parent_run_id})")
    front = front_rows(table)
    model_ids = _log_front_models(client, sweep, table, front, selection, report.notes)
    _log_listening_page(client, sweep, front, selection, report.notes)
    if selection.winner is not None and register:
        winner = (str(selection.winner["run_id"]), str(selection.winner["precision"]))
        reg = register_winner(client, selection, sweep.name, model_ids.get(winner))
        how = "registered" if reg.created else "already registered (same winner and settings)"
        report.notes.append(f"{how}: models:/{reg.name}@champion -> version {reg.version}")
    return report
