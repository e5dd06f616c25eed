"""Pareto front (non-dominated and complete) and hypervolume: properties and edge cases."""

import math

import numpy as np
from hypothesis import given, settings, strategies as st

from results.pareto import ReferencePoint, dominates, hypervolume, pareto_mask

values = st.one_of(st.integers(1, 50).map(float), st.just(math.nan))
points = st.lists(st.tuples(values, values), min_size=0, max_size=40)


@settings(max_examples=200, deadline=None)
@given(points)
def test_front_is_non_dominated_and_complete(pts):
    x = [p[0] for p in pts]
    y = [p[1] for p in pts]
    mask = pareto_mask(x, y)
    for i, p in enumerate(pts):
        dominated = any(dominates(q, p) for q in pts)
        finite = all(map(math.isfinite, p))
        if mask[i]:
            assert finite and not dominated
        elif finite:
            assert dominated  # completeness: every finite non-member is dominated by someone ...
            assert any(mask[j] and dominates(pts[j], p) for j in range(len(pts)))  # ... on the front


def test_ties_and_nan():
    mask = pareto_mask([10, 10, 10, 5, np.nan], [1.0, 1.0, 2.0, 3.0, 0.0])
    assert mask.tolist() == [True, True, False, True, False]


def test_hypervolume_by_hand():
    ref = ReferencePoint(log10_bytes=4.0, quality=10.0)
    # points at log10 bytes 2 and 3: slabs (3-2)*(10-6) + (4-3)*(10-2)
    assert math.isclose(hypervolume([100, 1000, 1000], [6.0, 2.0, 9.0], ref), 4 + 8)
    assert hypervolume([1e9], [1.0], ref) == 0.0
    assert hypervolume([], [], ref) == 0.0


@settings(max_examples=100, deadline=None)
@given(points, st.tuples(values, values))
def test_adding_a_point_never_lowers_hypervolume(pts, extra):
    x = [10 ** p[0] / 1e6 if math.isfinite(p[0]) else p[0] for p in pts]
    y = [p[1] for p in pts]
    before = hypervolume(x, y)
    ex = 10 ** extra[0] / 1e6 if math.isfinite(extra[0]) else extra[0]
    assert hypervolume(x + [ex], y + [extra[1]]) >= before - 1e-9
