"""Weights as TF.js ships them: quantize + dequantize, shared by evaluation and export.

Follows tensorflowjs.quantization.quantize_weights: float16 is a cast; uint8 is affine per tensor
with TF-Lite's zero-point nudging (0.0 stays exactly representable), dequantized as q * scale + min.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from common.constants import PRECISIONS


def quantize_dequantize(weights: np.ndarray, precision: str) -> np.ndarray:
    """Round-trip one weight tensor through TF.js's weight quantization; float32 out."""
    w = np.asarray(weights, dtype=np.float32)
    if precision == "float32":
        return w.copy()
    if precision == "float16":
        return w.astype(np.float16).astype(np.float32)
    if precision == "uint8":
        q, scale, minimum = quantize_uint8(w)
        return (q * scale + minimum).astype(np.float32)
    raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")


def quantize_uint8(w: np.ndarray) -> tuple[np.ndarray, float, float]:
    """TF.js affine uint8 quantization of one tensor -> (q uint8, scale, min) (min may be nudged)."""
    lo, hi = float(w.min()), float(w.max())
    if lo == hi:
        return np.zeros_like(w, dtype=np.uint8), 1.0, lo
    scale = (hi - lo) / 255.0
    if lo <= 0.0 <= hi:  # nudge so that 0.0 maps to an integer (TF-Lite NudgeQuantizationRange)
        lo = -np.round(-lo / scale) * scale
        hi = 255.0 * scale + lo
    q = np.round((np.clip(w, lo, hi) - lo) / scale).astype(np.uint8)
    return q, scale, lo


@contextlib.contextmanager
def quantized_weights(model, precision: str) -> Iterator[None]:
    """Temporarily replace every trainable weight by its quantized+dequantized value."""
    originals = [v.numpy() for v in model.trainable_variables]
    try:
        for var, value in zip(model.trainable_variables, originals):
            var.assign(quantize_dequantize(value, precision))
        yield
    finally:
        for var, value in zip(model.trainable_variables, originals):
            var.assign(value)
