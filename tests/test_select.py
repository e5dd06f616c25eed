"""Selector: smallest acceptable, monotone in tolerance, deterministic ties, nothing-qualifies reasons."""

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings, strategies as st

from results.select import Criteria, select_smallest


def make_table(rows):
    """rows: (bytes, quality, status[, pitch]) -> a minimal candidate table."""
    records = []
    for i, r in enumerate(rows):
        b, q, status = r[:3]
        records.append({"run_id": f"r{i:03d}", "precision": "float32", "bytes": float(b), "quality": float(q),
                        "pitch_error_cents": float(r[3]) if len(r) > 3 else 10.0, "status": status,
                        "start_time": pd.Timestamp(1_700_000_000 + i, unit="s", tz="UTC")})
    table = pd.DataFrame(records, columns=["run_id", "precision", "bytes", "quality", "pitch_error_cents",
                                           "status", "start_time"])
    table["candidate"] = (table["status"] == "FINISHED") & np.isfinite(table["bytes"]) & np.isfinite(table["quality"])
    return table


rows = st.lists(st.tuples(st.integers(1, 30), st.one_of(st.floats(1, 10), st.just(math.nan)),
                          st.sampled_from(["FINISHED", "FINISHED", "FAILED"])), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(rows, st.floats(0, 1), st.floats(0, 1))
def test_smallest_acceptable_and_monotone(data, t1, t2):
    table = make_table(data)
    small, large = sorted([t1, t2])
    a, b = select_smallest(table, Criteria(small)), select_smallest(table, Criteria(large))
    ok = table[table["candidate"]]
    if ok.empty:
        assert a.winner is None and "no finished trial" in a.reason
        return
    best = ok["quality"].min()
    acceptable = ok[ok["quality"] <= best + small * abs(best)]
    assert a.winner["bytes"] == acceptable["bytes"].min()
    assert a.winner["quality"] == acceptable.loc[acceptable["bytes"] == acceptable["bytes"].min(), "quality"].min()
    assert b.winner["bytes"] <= a.winner["bytes"]


def test_ties_prefer_better_quality_then_earlier_run():
    table = make_table([(10, 2.0, "FINISHED"), (10, 1.9, "FINISHED"), (10, 1.9, "FINISHED"), (5, 9.0, "FINISHED")])
    assert select_smallest(table, Criteria(0.1)).winner["run_id"] == "r001"


def test_one_trial_all_failed_running_and_nan():
    assert select_smallest(make_table([(7, 1.0, "FINISHED")])).winner["run_id"] == "r000"
    none = select_smallest(make_table([(7, math.nan, "FINISHED"), (3, 1.0, "FAILED"), (3, 1.0, "RUNNING")]))
    assert none.winner is None and "1 FAILED" in none.reason and "1 RUNNING" in none.reason


def test_max_loss_and_pitch_bar_explain_failure():
    table = make_table([(5, 2.0, "FINISHED", 80), (9, 1.0, "FINISHED", math.nan)])
    assert "best of 2 is 1" in select_smallest(table, Criteria(max_loss=0.5)).reason
    assert select_smallest(table, Criteria(max_loss=3.0)).winner["run_id"] == "r000"
    miss = select_smallest(table, Criteria(max_loss=3.0, max_pitch_error=20))
    assert miss.winner is None and "pitch error <= 20" in miss.reason
    assert select_smallest(table, Criteria(max_loss=3.0, max_pitch_error=90)).winner["run_id"] == "r000"


def test_a_candidate_below_the_speed_bar_is_never_the_winner():
    table = make_table([(1_000, 1.0, "FINISHED"), (5_000, 1.02, "FINISHED"), (9_000, 1.01, "FINISHED")])
    table["rtf_wasm"] = [2.0, 40.0, 80.0]  # the smallest is a GRU at 250 Hz: 2x real time
    chosen = select_smallest(table, Criteria(0.05))
    assert chosen.winner["run_id"] == "r001" and "below the speed bar" in chosen.reason and "2 < 5" in chosen.reason
    assert select_smallest(table, Criteria(0.05, min_rtf=0)).winner["run_id"] == "r000"  # no bar: the smallest
    none = select_smallest(table, Criteria(0.05, min_rtf=100))
    assert none.winner is None and "real-time factor >= 100" in none.reason and "80" in none.reason
    capped = select_smallest(table, Criteria(0.05, max_bytes=4_000))
    assert capped.winner is None and "bundle <= 4000 bytes" in capped.reason
    table["rtf_wasm"] = math.nan  # a sweep from before speeds were recorded: not refused for it
    assert select_smallest(table, Criteria(0.05)).winner["run_id"] == "r000"
