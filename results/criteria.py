"""What "acceptable" means: one rule for the progress display, the selector and export's
``--precision auto`` (quality is a held-out spectral loss: lower is better).

A candidate is acceptable when its quality is at most the bar: ``best + tolerance * |best|`` (best
= the lowest quality among the candidates compared), or ``max_loss`` when an absolute bar is given;
with ``max_pitch_error``, its pitch error (cents) is at most that; it runs at least ``min_rtf`` times
faster than real time in TF.js's wasm backend (``rtf_wasm``); and, with ``max_bytes``, its shipped
bundle is at most that many bytes. A candidate whose speed is unknown (a sweep from before speeds
were recorded) is not refused for it. Pure Python, no pandas.

Why 5x real time by default: ``rtf_wasm`` is measured (and modelled) on one desktop core of this
project's machine, in Node's TF.js wasm backend; phone CPUs run wasm a few times slower, so 5x here
is about the least that still plays in real time on a phone. Measured on 40 untrained architectures
of the built-in space (bench/bundle_cost.py): 0.9x to 15x; the synthesizer's oscillator bank (one
sine per harmonic per sample) and a reverb's long FIR cost more than most decoders. A GRU at 250 Hz
(the reference's sarangi winner: about 2x) does not pass; small CNNs at 50 Hz with 16-32 harmonics
do (10-15x).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.bounds import AT_LEAST_ZERO, COUNT, POSITIVE, SPEED_BAR

DEFAULT_TOLERANCE = 0.05  # 5 % worse than the best still counts as acceptable
DEFAULT_MIN_RTF = 5.0     # times faster than real time in TF.js's wasm backend (see the module docstring)


@dataclass(frozen=True)
class Criteria:
    """What "acceptable" means for one selection; recorded with the registered version."""

    tolerance: float = DEFAULT_TOLERANCE
    max_loss: float | None = None
    max_pitch_error: float | None = None
    min_rtf: float | None = DEFAULT_MIN_RTF
    max_bytes: int | None = None

    def __post_init__(self) -> None:  # the CLI's parser applies the same rules (common.bounds)
        AT_LEAST_ZERO.check(self.tolerance, "--tolerance")
        for value, bound, flag in ((self.max_loss, POSITIVE, "--max-loss"), (self.max_pitch_error, AT_LEAST_ZERO, "--max-pitch-error"),
                                   (self.min_rtf, SPEED_BAR, "--min-rtf"), (self.max_bytes, COUNT, "--max-bytes")):
            if value is not None:
                bound.check(value, flag)

    def quality_bar(self, best_quality: float) -> float:
        if self.max_loss is not None:
            return float(self.max_loss)
        return float(best_quality + self.tolerance * abs(best_quality))

    def accepts(self, quality: float, best_quality: float, pitch_error: float | None = None,
                rtf: float | None = None, size: float | None = None) -> bool:
        """True when a candidate meets every bar (quality relative to ``best_quality``)."""
        if not (math.isfinite(quality) and quality <= self.quality_bar(best_quality)):
            return False
        return self.pitch_ok(pitch_error) and self.speed_ok(rtf) and self.size_ok(size)

    def pitch_ok(self, pitch_error: float | None) -> bool:
        if self.max_pitch_error is None:
            return True
        return pitch_error is not None and math.isfinite(pitch_error) and pitch_error <= self.max_pitch_error

    def speed_ok(self, rtf: float | None) -> bool:
        """Fast enough; an unknown speed (None/NaN) is not refused."""
        return not self.min_rtf or rtf is None or not math.isfinite(rtf) or rtf >= self.min_rtf

    def size_ok(self, size: float | None) -> bool:
        return self.max_bytes is None or (size is not None and math.isfinite(size) and size <= self.max_bytes)

    def describe_bar(self, best_quality: float) -> str:
        bar = self.quality_bar(best_quality)
        if self.max_loss is not None:
            text = f"quality <= {bar:.6g} (--max-loss)"
        else:
            text = f"quality <= {bar:.6g} (best {best_quality:.6g} + {self.tolerance:.4g} relative)"
        if self.max_pitch_error is not None:
            text += f" and pitch error <= {self.max_pitch_error:.4g} cents"
        if self.min_rtf:
            text += f" and wasm real-time factor >= {self.min_rtf:.4g}"
        if self.max_bytes is not None:
            text += f" and bundle <= {int(self.max_bytes):,} bytes"
        return text
