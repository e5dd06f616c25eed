"""Size-vs-quality plot of one sweep: every candidate, the Pareto front, the winner.

Two steps, as in Optuna's visualization: ``plot_data`` computes what to show from the candidate
table (pure pandas, testable without matplotlib), ``draw`` renders it. Encoding: x = bytes (log
scale), y = quality (spectral loss, lower is better); marker shape = decoder (GRU circle, CNN
square), colour = input feature (loudness blue, RMS orange), fill = precision (float32 filled,
float16 half-transparent, uint8 hollow). The front is a step line, the winner a large star, the
quality bar a dashed line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from results.pareto import pareto_mask
from results.select import Selection

MARKERS = {"gru": "o", "cnn": "s"}
COLORS = {"loudness": "tab:blue", "rms": "tab:orange"}
OTHER_MARKER, OTHER_COLOR = "^", "tab:gray"  # decoder/feature values this module does not know


@dataclass(frozen=True)
class PlotData:
    """Everything ``draw`` needs; no MLflow, no matplotlib."""

    title: str
    groups: dict[tuple[str, str, str], pd.DataFrame]  # (decoder, feature, precision) -> bytes, quality
    front: pd.DataFrame                               # bytes, quality, sorted by bytes
    winner: tuple[float, float] | None
    bar: float | None
    notes: list[str] = field(default_factory=list)
    slow: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["bytes", "quality"]))  # below the speed bar


def plot_data(table: pd.DataFrame, selection: Selection, instrument: str, sweep: str) -> PlotData:
    """Candidates grouped for the legend, the front, the winner point and the bar."""
    candidates = table[table["candidate"]]
    groups = {}
    for key, part in candidates.groupby(["decoder", "feature", "precision"], sort=True, dropna=False):
        groups[tuple(str(k) for k in key)] = part[["bytes", "quality"]].reset_index(drop=True)
    front = candidates[pareto_mask(candidates["bytes"], candidates["quality"])]
    front = front[["bytes", "quality"]].sort_values(["bytes", "quality"]).reset_index(drop=True)
    winner = None
    if selection.winner is not None:
        winner = (float(selection.winner["bytes"]), float(selection.winner["quality"]))
    others = table.drop_duplicates("run_id")
    others = others[~others["run_id"].isin(candidates["run_id"])]
    notes = [f"{len(others)} trials without a candidate ({', '.join(sorted(others['status'].unique()))})"] if len(others) else []
    rtf = candidates["rtf_wasm"] if "rtf_wasm" in candidates else pd.Series(float("nan"), index=candidates.index)
    slow = candidates.loc[~rtf.map(selection.criteria.speed_ok).astype(bool), ["bytes", "quality"]].reset_index(drop=True)
    if len(slow):
        notes.append(f"x: {len(slow)} below the speed bar (wasm real-time factor < {selection.criteria.min_rtf:g})")
    return PlotData(f"{instrument} / {sweep}: size vs quality", groups, front, winner, selection.bar, notes, slow)


def draw(data: PlotData, path: str | Path | None = None):
    """Render ``data`` into a new matplotlib Figure; save it as PNG when ``path`` is given."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the CLI runs on servers and in CI
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.5, 5.5), dpi=120)
    ax = fig.add_subplot()
    fill_alpha = {"float32": 1.0, "float16": 0.45, "uint8": 0.0}
    for (decoder, feature, precision), points in data.groups.items():
        color = COLORS.get(feature, OTHER_COLOR)
        ax.scatter(points["bytes"], points["quality"], marker=MARKERS.get(decoder, OTHER_MARKER), s=28,
                   facecolors=matplotlib.colors.to_rgba(color, fill_alpha.get(precision, 1.0)), edgecolors=color,
                   linewidths=0.8, label=f"{decoder.upper()} · {feature} · {precision}")
    if len(data.front):
        ax.step(data.front["bytes"], data.front["quality"], where="post", color="black", linewidth=1.0,
                label="Pareto front")
    if data.bar is not None:
        ax.axhline(data.bar, color="tab:green", linestyle="--", linewidth=0.9, label=f"quality bar {data.bar:.4g}")
    if len(data.slow):
        ax.scatter(data.slow["bytes"], data.slow["quality"], marker="x", s=40, color="tab:red", linewidths=1.0,
                   label="below the speed bar", zorder=4)
    if data.winner is not None:
        ax.scatter([data.winner[0]], [data.winner[1]], marker="*", s=260, color="gold", edgecolors="black",
                   zorder=5, label=f"winner: {int(data.winner[0]):,} bytes")
    ax.set_xscale("log")
    ax.set_xlabel("shipped bundle: model.json + weights (bytes, log scale)")
    ax.set_ylabel("quality: spectral loss (lower is better)")
    ax.set_title(data.title)
    ax.grid(True, which="both", alpha=0.25)
    if not data.groups:
        ax.text(0.5, 0.5, "no finished candidates", transform=ax.transAxes, ha="center", va="center")
    if data.notes:
        ax.text(0.01, 0.01, "; ".join(data.notes), transform=ax.transAxes, fontsize=7, color="dimgray")
    # outside the axes, on the right: a legend inside would cover the points of some sweep
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
