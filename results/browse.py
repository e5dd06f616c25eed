"""What a user sees first when opening an instrument's sweeps in MLflow's UI (docs/architecture.md §3).

MLflow 3's experiment page takes its runs table's view (which columns, which runs expanded, the
order) from ``?viewStateShareKey=KEY`` when the link carries one: the view is the JSON stored in the
experiment tag ``mlflow.sharedViewState.KEY``, which is what the UI's own "Share" button writes. So
tonesweep writes one such view per experiment, under the key ``tonesweep``, and the links that
``tonesweep ui`` and ``tonesweep tracking-server`` print carry that key: a fresh browser lands on the
trials grouped by sweep, best quality first, with their size, quality, pitch error, browser
speed, steps trained, status and why it ended, and the champion mark as columns; its chart mode opens
on every trial's size against quality.

A sweep writes the view when it starts, ``ui`` for an experiment swept before there were views;
nothing else in the store changes.
"""

from __future__ import annotations

import json

from mlflow import MlflowClient

from results import layout

VIEW_KEY = "tonesweep"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"   # the tag the UI reads for ?viewStateShareKey=tonesweep
VIEW_QUERY = f"viewStateShareKey={VIEW_KEY}"

# The runs table's columns, as MLflow's UI names them (``<type>.`<name>```): the trial's status and
# why it ended, the champion mark, the logged models, then the numbers a user compares.
# (The UI orders columns by kind, whatever the order here: attributes, metrics, then tags.)
LANDING_COLUMNS = (
    ["attributes.`Models`"]
    # model_bytes is bytes_float32, known before training, so a trial stopped early shows its size too; a
    # stopped trial's val_loss is its loss where the scheduler stopped it
    + [f"metrics.`{name}`" for name in ("model_bytes", "bytes_uint8", "quality_float32", "quality_uint8",
                                         "pitch_error_cents_float32", "rtf_wasm", "steps", "val_loss")]
    + [f"tags.`{tag}`" for tag in (layout.STATUS_TAG, layout.FAILURE_TAG, layout.CHAMPION_TAG)]
)
# Trials grouped by sweep (MLflow's "Group by" a tag; a group opens expanded, its header row shows the
# smallest value of each column over its runs: the sweep's smallest bundle and best quality), best held-out
# quality first within a group; a click on a column header sorts by it. (Shared views cannot carry which
# runs are expanded, so nesting trials under their parent run would open collapsed.)
LANDING_GROUPS = {"groupByKeys": [{"mode": "tag", "groupByData": layout.SWEEP_TAG}], "aggregateFunction": "min"}
LANDING_ORDER = ("metrics.`quality_float32`", True)


# The same view's chart mode (the chart button beside the table's, or ``&compareRunsMode=CHART``) opens on
# a section of its own, first: every trial as a point of size against quality, at float32 and at uint8
# (hover names the run, a click offers its page), each run its own point though the table groups them.
CHART_SECTION = "tonesweep-size-vs-quality"
SIZE_QUALITY_CHARTS = (("model_bytes", "quality_float32"), ("bytes_uint8", "quality_uint8"))


def _scatter(x: str, y: str) -> dict:
    return {"uuid": f"tonesweep-{x}-{y}", "type": "SCATTER", "runsCountToCompare": 100, "metricSectionId": CHART_SECTION,
            "deleted": False, "isGenerated": False, "xaxis": {"key": x, "type": "METRIC"},
            "yaxis": {"key": y, "type": "METRIC"}}


def landing_view() -> dict:
    """The shared view state: search facets (order) and UI state (columns, grouping, the size-vs-quality charts)."""
    order_key, ascending = LANDING_ORDER
    return {"orderByKey": order_key, "orderByAsc": ascending, "selectedColumns": list(LANDING_COLUMNS),
            "groupBy": LANDING_GROUPS, "useGroupedValuesInCharts": False, "runsHiddenMode": "SHOW_ALL",
            "compareRunSections": [{"uuid": CHART_SECTION, "name": "size vs quality", "display": True,
                                    "isReordered": True}],
            "compareRunCharts": [_scatter(x, y) for x, y in SIZE_QUALITY_CHARTS], "isAccordionReordered": True}


def write_landing_view(client: MlflowClient, experiment_id: str) -> None:
    """Write the experiment's landing view (the same for every tonesweep experiment; rewritten when it changed)."""
    value = json.dumps(landing_view(), separators=(",", ":"))
    if client.get_experiment(experiment_id).tags.get(VIEW_TAG) != value:
        client.set_experiment_tag(experiment_id, VIEW_TAG, value)


def has_landing_view(experiment) -> bool:
    """Whether an experiment (an MLflow ``Experiment``) carries tonesweep's view (sweeps before it did not)."""
    return VIEW_TAG in (experiment.tags or {})
