"""Trials that ended after Ray's last experiment snapshot: the budget a resumed searcher must count.

Ray saves its experiment state (trials, searcher) at most once a second. A trial that ends in the
second before the driver is killed is in MLflow (the driver logged it) but in neither Ray's trial
list nor the searcher's saved state; on ``--resume`` Ray does not rerun it, but the searcher would
suggest one trial too many. Before a resumed ``fit`` the sweep writes the ids of every trial MLflow
has seen end into the experiment folder; a searcher's ``restore`` counts the ones it never heard of
against its budget. (The ids written are every trial MLflow has a run for, ended or lost.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from common.files import write_json_atomic

LEDGER = "ended-trials.json"


def write_ended(experiment_path: str | Path, trial_ids: Iterable[str]) -> None:
    write_json_atomic(Path(experiment_path) / LEDGER, sorted(trial_ids), indent=None)


def unknown_ended(ledger_path: str | Path | None, known: Iterable[str]) -> set[str]:
    """Ended trial ids in the ledger that a searcher does not know ({} without a ledger)."""
    if not ledger_path or not Path(ledger_path).is_file():
        return set()
    try:
        return set(json.loads(Path(ledger_path).read_text())) - set(known)
    except (OSError, ValueError):
        return set()
