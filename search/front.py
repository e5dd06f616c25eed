"""The measured candidates of one instrument's sweep, shared by its trials, so a trial evaluates only
the quantised precisions that could still matter (``results.relevance``).

A trial that has trained and evaluated its float32 weights asks ``MeasuredCandidates.matter`` which
precisions are worth evaluating; a finished trial adds what it measured. The driver holds the one
``MeasuredCandidates`` actor of each instrument (``FrontRecord``) while the Tuner runs, named so the
trials' workers find it on any node; it needs no CPU. Skipping is sound for the rest of the sweep:
candidates are only ever added, so one that a measured candidate beat stays beaten (the argument is in
``results.relevance``). A resumed sweep starts with an empty record and so measures more, never less.
A trial that cannot reach the record evaluates every precision.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

from common.constants import PRECISIONS
from common.values import finite
from results.relevance import Measured, could_matter

log = logging.getLogger(__name__)

NAMESPACE = "tonesweep"  # the actor's Ray namespace: the driver's and every worker's


class MeasuredCandidates:
    """Every candidate measured so far in one instrument's sweep (plain Python; Ray runs it as an actor)."""

    def __init__(self) -> None:
        self._measured: list[Measured] = []
        self.asked = self.skipped = 0  # quantised candidates judged, and judged unable to matter

    def add(self, metrics: Mapping[str, Any]) -> int:
        """Record a finished trial's measured precisions; returns how many candidates are known."""
        for precision in PRECISIONS:
            size, quality = metrics.get(f"bytes_{precision}"), metrics.get(f"quality_{precision}")
            if size is not None and quality is not None:
                self._measured.append(Measured(float(size), float(quality), finite(metrics.get("rtf_wasm")),
                                               finite(metrics.get(f"pitch_error_cents_{precision}"))))
        return len(self._measured)

    def matter(self, metrics: Mapping[str, Any]) -> list[str]:
        """The quantised precisions of a trial (size report and float32 evaluation in ``metrics``) that
        could be on the front or be a selection's winner, given what is measured."""
        quality, pitch = finite(metrics.get("quality_float32")), finite(metrics.get("pitch_error_cents_float32"))
        rtf = finite(metrics.get("rtf_wasm"))
        wanted = [p for p in PRECISIONS[1:]
                  if metrics.get(f"bytes_{p}") is None
                  or could_matter(float(metrics[f"bytes_{p}"]), quality, rtf, pitch, self._measured)]
        self.asked += len(PRECISIONS) - 1
        self.skipped += len(PRECISIONS) - 1 - len(wanted)
        return wanted

    def counts(self) -> tuple[int, int]:
        """(quantised candidates judged, of them skipped): what evaluation in proportion saved."""
        return self.asked, self.skipped


class FrontRecord:
    """The driver's side: starts an instrument's ``MeasuredCandidates`` actor and keeps it alive while the
    ``with`` block runs (a Ray actor lives as long as its creator holds a handle)."""

    def __init__(self, name: str):
        self.name, self._handle = name, None
        self.counts: tuple[int, int] = (0, 0)  # MeasuredCandidates.counts, read as the block ends

    def __enter__(self) -> "FrontRecord":
        import ray

        actor = ray.remote(num_cpus=0, max_restarts=0)(MeasuredCandidates)
        self._handle = actor.options(name=self.name, namespace=NAMESPACE, get_if_exists=True).remote()
        return self

    def __exit__(self, *_exc) -> None:
        import ray

        if self._handle is not None:
            try:
                self.counts = tuple(ray.get(self._handle.counts.remote(), timeout=30))
            except Exception as err:  # noqa: BLE001 - only the summary's count is lost
                log.warning("front record %s: no counts (%s)", self.name, err)
            ray.kill(self._handle)
            self._handle = None


class TrialFront:
    """A trial's side: the record, found by name; any failure to reach it means "measure everything"."""

    def __init__(self, name: str):
        self.name = name

    def matter(self, metrics: Mapping[str, Any]) -> list[str]:
        try:
            return list(self._call("matter", dict(metrics)))
        except Exception as err:  # noqa: BLE001 - a missing record costs evaluation time, not the trial
            log.warning("front record %s unreachable (%s): evaluating every precision", self.name, err)
            return list(PRECISIONS[1:])

    def add(self, metrics: Mapping[str, Any]) -> None:
        try:
            self._call("add", dict(metrics))
        except Exception as err:  # noqa: BLE001
            log.warning("front record %s unreachable (%s): this trial's candidates are not shared", self.name, err)

    def _call(self, method: str, metrics: dict[str, Any]):
        import ray

        handle = ray.get_actor(self.name, namespace=NAMESPACE)
        return ray.get(getattr(handle, method).remote(metrics), timeout=60)


def record_name(sweep: str, instrument: str) -> str:
    """The actor name of one instrument's record: unique per sweep, so two sweeps on a cluster never share."""
    return f"tonesweep-front/{sweep}/{instrument}"


__all__ = ["MeasuredCandidates", "FrontRecord", "TrialFront", "record_name", "NAMESPACE"]
