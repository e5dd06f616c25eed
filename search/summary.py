"""What a sweep reports when it ends: one ``InstrumentResult`` per instrument, and the closing lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from results.layout import DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from search.progress import TimeSplit


@dataclass
class InstrumentResult:
    """What one instrument's sweep produced (also what the final summary prints)."""

    instrument: str
    dataset: str
    experiment_id: str
    parent_run_id: str
    outcomes: dict[str, str] = field(default_factory=dict)  # trial id -> status
    run_ids: dict[str, str] = field(default_factory=dict)   # trial id -> MLflow run id
    summary_line: str = ""
    tracking_s_per_trial: float = 0.0
    wall_s: float = 0.0
    hypervolume: float | None = None
    trial_steps_used: int = 0
    rungs: dict[int, tuple[int, float]] = field(default_factory=dict)  # MO-ASHA: step -> (trials, best val_loss)
    quantised: tuple[int, int] = (0, 0)  # float16/uint8 candidates of finished trials: judged, skipped (search.front)
    workers_recycled: int = 0  # trial workers not reused because they had grown (search.recycling)
    time_split: TimeSplit | None = None  # where the trials' time went (search.progress.InstrumentTally.time_split)


def format_summary(results: list[InstrumentResult], name: str, uri: str) -> str:
    """The closing lines of a sweep: one block per instrument, then where to browse."""
    lines = [f"\nsweep {name} done"]
    for result in results:
        lines.append(f"  {result.summary_line}")
        volume = "-" if result.hypervolume is None else f"{result.hypervolume:.4g}"
        lines.append(f"    hypervolume {volume}; {result.trial_steps_used:,} trial-steps; {result.wall_s:.0f} s; "
                     f"MLflow logging {result.tracking_s_per_trial:.2f} s per trial (driver); "
                     f"parent run {result.parent_run_id}")
        if result.time_split is not None:
            lines.append(f"    trials' time {result.time_split.trial_s:,.0f} s: {result.time_split.describe()}")
        judged, skipped = result.quantised
        if judged:
            lines.append(f"    quantised candidates evaluated: {judged - skipped} of {judged} "
                         f"({skipped} could not be on the front or win)")
        if result.workers_recycled:
            lines.append(f"    trial workers recycled after growing past --worker-memory-mib: {result.workers_recycled}")
        if result.rungs:
            rungs = sorted(result.rungs.items())
            lines.append("    best val_loss per rung: " + ", ".join(
                f"step {step}: {best:.4g} ({n} trial{'' if n == 1 else 's'})" for step, (n, best) in rungs))
    browse = "`tonesweep ui" + (f" --tracking-uri {uri}" if uri != DEFAULT_TRACKING_URI else "") + "`"
    lines.append(f"MLflow: {uri} (browse: {browse}, then http://127.0.0.1:5000)")
    return "\n".join(lines)
