"""Which candidates still need measuring: a quantised precision of a trial whose quality nobody
measured could matter only if no measured candidate is provably better in every respect a selection
can ask about. Pure Python; a trial asks it (through ``search.front``) once its float32 evaluation is done.

A candidate is a trial at one weight precision. Its bytes and its wasm speed are known exactly before
training (the size report); its quality and pitch error at float16 or uint8 are known only after
evaluating the quantised weights. Quantising moves them a little, either way: ``QUALITY_MARGIN`` and
``PITCH_MARGIN`` bound how much better than float32 a quantised precision may come out
(docs/architecture.md, "Evaluation in proportion", says where the bounds come from).

An unmeasured candidate ``u`` cannot be on the size-quality front, nor be the winner under any
criteria (tolerance or an absolute bar, pitch, speed and size bars, ``results.criteria``), when some
measured candidate ``c``:
- has at most ``u``'s bytes (so ``c`` passes any size bar ``u`` passes, and comes first by size);
- has a quality better than the best ``u`` could reach (so ``u`` is neither the best nor before ``c``);
- is at least as fast, or of unknown speed (so ``c`` passes any speed bar ``u`` passes);
- has a finite pitch error better than the best ``u`` could reach (so ``c`` passes any pitch bar ``u``
  passes).
Then whatever the selection asks, ``c`` is as good a choice and comes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

# How much better than float32 a quantised precision's held-out quality (relative) and pitch error
# (relative, plus cents) can come out. From the measured pairs in docs/architecture.md.
QUALITY_MARGIN = 0.02
PITCH_MARGIN, PITCH_SLACK_CENTS = 0.05, 0.25


@dataclass(frozen=True)
class Measured:
    """A candidate with measured quality: its bytes, quality, wasm speed (None: unknown) and pitch error."""

    bytes: float
    quality: float
    rtf: float | None = None
    pitch_error: float | None = None


def could_matter(size: float, quality_float32: float, rtf: float | None, pitch_error_float32: float | None,
                 measured: Iterable[Measured]) -> bool:
    """Whether an unmeasured quantised candidate of ``size`` bytes, whose trial's float32 quality and
    pitch error are given, could be on the front or be a selection's winner (the module docstring)."""
    if not _finite(quality_float32) or not _finite(pitch_error_float32):
        return True  # nothing to bound it by
    best_quality = quality_float32 - QUALITY_MARGIN * abs(quality_float32)
    best_pitch = pitch_error_float32 * (1 - PITCH_MARGIN) - PITCH_SLACK_CENTS
    return not any(
        c.bytes <= size and _finite(c.quality) and c.quality < best_quality
        and (not _finite(c.rtf) or (_finite(rtf) and c.rtf >= rtf))
        and _finite(c.pitch_error) and c.pitch_error <= best_pitch
        for c in measured)


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
