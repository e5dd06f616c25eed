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
The hypervolume is measured in the plane ``(log10(bytes), quality)`` (unit: "decades of bytes ×
loss"; larger is better; points beyond the reference on either axis contribute nothing). Each
sweep records its reference on its parent run (``ReferencePoint.to_params``), fixed per dataset so
sweeps of one instrument compare by their numbers directly: the bytes of ddsp's ``solo_instrument``
(19.2 MB at float32, the usual tone-transfer model) and the validation loss of an untrained decoder
on that dataset (trainers/training/reference.py). A far-away fixed point (100 MB, loss 100) made
every demo front score about 410 whatever it found; against "untrained" the number shows progress.
Sweeps recorded before this fall back to ``REFERENCE`` (log10 bytes 8.0, quality 100.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np


@dataclass(frozen=True)
class ReferencePoint:
    """Upper bounds of the hypervolume box: log10 of bytes and quality (spectral loss)."""

    log10_bytes: float = 8.0
    quality: float = 100.0

    PARAMS: ClassVar[tuple[str, str]] = ("hv_reference_log10_bytes", "hv_reference_quality")  # how a sweep's parent run records it

    def to_params(self) -> dict[str, str]:
        return dict(zip(self.PARAMS, (repr(float(self.log10_bytes)), repr(float(self.quality)))))


REFERENCE = ReferencePoint()  # sweeps that recorded no reference of their own (before per-dataset points)


def reference_from_params(params: Mapping[str, str]) -> ReferencePoint | None:
    """The reference point a sweep's parent run recorded, or None."""
    try:
        return ReferencePoint(*(float(params[key]) for key in ReferencePoint.PARAMS))
    except (KeyError, TypeError, ValueError):
        return None


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
    return hypervolume_2d(np.log10(x[keep]), y[keep], reference.log10_bytes, reference.quality)


def hypervolume_2d(x, y, ref_x: float, ref_y: float) -> float:
    """Area dominated by points (x, y), both minimised, inside the box below (ref_x, ref_y)."""
    x, y, finite = _as_points(x, y)
    inside = finite & (x < ref_x) & (y < ref_y)
    x, y = x[inside], y[inside]
    if x.size == 0:
        return 0.0
    front = pareto_mask(x, y)
    fx, fy = x[front], y[front]
    order = np.argsort(fx, kind="stable")
    fx, fy = fx[order], fy[order]
    # Along the front, x rises and y falls: each point owns the slab from its x to the next
    # point's x (or the reference), from its y up to the reference.
    next_x = np.append(fx[1:], ref_x)
    return float(np.sum((next_x - fx) * (ref_y - fy)))


# ---------------------------------------------------------------------------- ranking (MO-ASHA, samplers)


def nondominated_ranks(size_bytes, quality) -> np.ndarray:
    """Non-dominated sorting: int [n], 0 for the front, 1 for the front of the rest, and so on.

    Points with a non-finite coordinate get the rank after every finite point (they can be compared
    with nothing, so they are never preferred). O(n^2) peeling, fine for the few hundred trials of a rung.
    """
    x, y, finite = _as_points(size_bytes, quality)
    ranks = np.full(x.shape[0], -1, dtype=int)
    remaining = np.flatnonzero(finite)
    rank = 0
    while remaining.size:
        front = remaining[pareto_mask(x[remaining], y[remaining])]
        ranks[front] = rank
        remaining = np.setdiff1d(remaining, front, assume_unique=True)
        rank += 1
    ranks[~finite] = rank
    return ranks


def crowding_distance(size_bytes, quality) -> np.ndarray:
    """NSGA-II's crowding distance of each point within the given set: float [n], larger = more isolated.

    Per objective the points are sorted; points at either extreme get +inf (all of them when several
    share the extreme value), an inner point the gap between its neighbours over the objective's range. Bytes are taken in log10 (sizes span decades; a gap
    of 2x should count the same at 2 KB and at 2 MB). Sums over both objectives.
    """
    x, y, finite = _as_points(size_bytes, quality)
    n = x.shape[0]
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for values in (np.log10(np.maximum(x, 1e-300)), y):
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        span = ordered[-1] - ordered[0]
        if span > 0 and np.isfinite(span):
            distance[order[1:-1]] += (ordered[2:] - ordered[:-2]) / span
        # every point at an extreme is a boundary point (duplicates included, so equal points stay equal)
        distance[(values == ordered[0]) | (values == ordered[-1])] = np.inf
    distance[~finite] = 0.0
    return distance


def preference_order(size_bytes, quality) -> np.ndarray:
    """Indices from most to least preferred: by non-dominated rank, then larger crowding distance
    (computed within each rank), then input order (stable: earlier arrival wins a full tie)."""
    x, y, _ = _as_points(size_bytes, quality)
    ranks = nondominated_ranks(x, y)
    crowd = np.zeros(x.shape[0])
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        crowd[members] = crowding_distance(x[members], y[members])
    return np.lexsort((np.arange(x.shape[0]), -crowd, ranks))
