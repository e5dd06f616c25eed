"""The record of a resolved trial: a trial folder on this machine and what the registry said of it.

``results.champion`` resolves one from the tracking store (the champion, or a run id) and
``trainers.export.bundle.local_trial`` from a folder on disk; ``trainers.export.bundle`` builds a
bundle from it. It lives on the floor because both sides speak it and neither may import the other
(results knows MLflow, trainers never does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ResolvedTrial:
    """A trial's files on local disk and what the registry said about them."""

    trial_dir: Path
    run_id: str
    precision: str | None = None                            # the selector's choice (registry tag), None if unknown
    registry: dict[str, str] = field(default_factory=dict)  # registered model, version and its tags; {} without
