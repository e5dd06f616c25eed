"""Pareto maths over (bytes, quality), both minimised. Pure numpy; no MLflow, no plotting.

Shared by the selector (`results.select`), the plot (`results.plot`) and the report/registry
step, so all three agree on what "the front" is.

Conventions
-----------
- A point is ``(bytes, quality)``: model size in bytes at one weight precision and the held-out
  multi-scale spectral loss at that precision (lower is better for both).
- ``a`` dominates ``b`` when ``a`` is no worse on both axes and strictly better on at least one.
  Two identical points do not dominate each other, so both are on the front.
- Points with a NaN/inf coordinate are never on the front and never dominate anything: a trial
  whose metrics are missing cannot be compared, and must not hide a real candidate.

Hypervolume reference point
---------------------------
The hypervolume is measured in the plane ``(log10(bytes), quality)`` against the fixed point
``REFERENCE = (log10 bytes 8.0, quality 100.0)``: 100 MB is five times the largest DDSP model we
know of (ddsp's ``solo_instrument``, 19.2 MB float32) and a spectral loss of 100 is worse than an
untrained decoder. The unit is "decades of bytes × loss". Because the point is fixed (never derived
from the data), two sweeps of one instrument are compared by their numbers directly: larger is
better. Points beyond the reference on either axis contribute nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReferencePoint:
    """Upper bounds of the hypervolume box: log10 of bytes and quality (spectral loss)."""

    log10_bytes: float = 8.0
    quality: float = 100.0


REFERENCE = ReferencePoint()


def _as_points(size_bytes, quality) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both axes as float64 arrays of shape [n], and the mask of points with finite coordinates."""
    x = np.asarray(size_bytes, dtype=np.float64).reshape(-1)
    y = np.asarray(quality, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"bytes and quality differ in length: {x.shape[0]} vs {y.shape[0]}")
    return x, y, np.isfinite(x) & np.isfinite(y)


def pareto_mask(size_bytes, quality) -> np.ndarray:
    """Boolean mask [n]: True for the non-dominated points among those with finite coordinates.

    O(n log n): sort by (bytes, quality); a point is non-dominated exactly when its quality is
    the lowest among points of equal bytes and strictly lower than every point with fewer bytes.
    """
    x, y, finite = _as_points(size_bytes, quality)
    mask = np.zeros(x.shape[0], dtype=bool)
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return mask
    order = idx[np.lexsort((y[idx], x[idx]))]
    best_with_fewer_bytes = np.inf  # lowest quality among points with strictly fewer bytes
    start = 0
    while start < order.size:
        # one group of equal bytes; sorted by quality, so its first element holds the group minimum
        stop = start
        while stop < order.size and x[order[stop]] == x[order[start]]:
            stop += 1
        group = order[start:stop]
        group_min = y[group[0]]
        if group_min < best_with_fewer_bytes:
            mask[group[y[group] == group_min]] = True
        best_with_fewer_bytes = min(best_with_fewer_bytes, group_min)
        start = stop
    return mask


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when point ``a`` = (bytes, quality) dominates ``b`` (see the module docstring)."""
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return False
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def hypervolume(size_bytes, quality, reference: ReferencePoint = REFERENCE) -> float:
    """Area dominated by the points inside the reference box, in the (log10 bytes, quality) plane.

    Only the front matters; non-finite points and points outside the box are ignored.
    Returns 0.0 when no point lies inside the box.
    """
    x, y, finite = _as_points(size_bytes, quality)
    keep = finite & (x > 0)
    lx, ly = np.log10(x[keep]), y[keep]
    inside = (lx < reference.log10_bytes) & (ly < reference.quality)
    lx, ly = lx[inside], ly[inside]
    if lx.size == 0:
        return 0.0
    front = pareto_mask(lx, ly)
    fx, fy = lx[front], ly[front]
    order = np.argsort(fx, kind="stable")
    fx, fy = fx[order], fy[order]
    # Along the front, x rises and quality falls: each point owns the slab from its x to the
    # next point's x (or the reference), from its quality up to the reference.
    next_x = np.append(fx[1:], reference.log10_bytes)
    return float(np.sum((next_x - fx) * (reference.quality - fy)))
