"""Trial workers that have grown are recycled: the bound on a reused worker's memory.

Ray Tune reuses a finished trial's worker (actor) for the next trial (``reuse_actors=True``), which
saves a fresh process's imports and a warm worker's compiled steps. But a TensorFlow process keeps
about 35 MiB for each new architecture it has trained, whatever tonesweep releases (measured: with no
cached kits, ``keras.backend.clear_session()``, jemalloc or oneDNN off alike; docs/engines.md
"Trial worker memory"), so a reused worker grows trial after trial (to 2.6 GiB in a 24-trial demo).

A worker whose resident memory after a trial (``rss_mib`` in its last result) is above the sweep's
limit (``sweep --worker-memory-mib``) is therefore not reused: Ray stops it and the next trial starts
in a fresh one. The cost is that fresh worker's start-up, counted in the sweep's ``startup_s`` and in
``workers_recycled`` on the parent run.

Ray Tune has no public way to decline reusing one actor: ``TuneController._maybe_cache_trial_actor``
(Ray 2.60, private) decides whether an ended trial's actor is kept, and returning False from it is
Ray's own path for "not needed: stop it". ``install`` wraps that method once per process;
tests/test_sweep.py fails if Ray renames it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Iterator

RSS_KEY = "rss_mib"            # a report's resident memory of the trial's worker, at the report (MiB)
DEFAULT_WORKER_MEMORY_MIB = 2048


class WorkerRecycling:
    """Which ended trials' workers are too big to reuse, and how many were recycled."""

    def __init__(self, limit_mib: float | None):
        self.limit_mib = limit_mib
        self.recycled = 0

    def too_big(self, last_result: dict | None) -> bool:
        if not self.limit_mib:
            return False
        try:
            rss = float((last_result or {}).get(RSS_KEY))
        except (TypeError, ValueError):
            return False
        return math.isfinite(rss) and rss > self.limit_mib


_ACTIVE: WorkerRecycling | None = None


@contextlib.contextmanager
def recycling(limit_mib: float | None) -> Iterator[WorkerRecycling]:
    """While the block runs (one instrument's ``Tuner.fit``), workers above ``limit_mib`` are recycled
    (None or 0: never)."""
    global _ACTIVE
    install()
    _ACTIVE = WorkerRecycling(limit_mib)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


def install() -> None:
    """Wrap Ray Tune's decision to keep an ended trial's actor for reuse (once per process)."""
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController._maybe_cache_trial_actor  # noqa: SLF001 - no public API (module docstring)
    if getattr(original, "_tonesweep_recycling", False):
        return

    @functools.wraps(original)
    def maybe_cache_trial_actor(self, trial) -> bool:
        active = _ACTIVE
        if active is not None and active.too_big(trial.last_result):
            active.recycled += 1
            return False  # Ray stops the actor; the next trial gets a fresh worker
        return original(self, trial)

    maybe_cache_trial_actor._tonesweep_recycling = True
    TuneController._maybe_cache_trial_actor = maybe_cache_trial_actor  # noqa: SLF001
