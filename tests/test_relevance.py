"""Evaluation in proportion: which quantised precisions a trial still evaluates (results.relevance,
search.front), checked against the real front and selector."""

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from results.criteria import Criteria
from results.pareto import pareto_mask
from results.relevance import PITCH_MARGIN, PITCH_SLACK_CENTS, QUALITY_MARGIN, Measured, could_matter
from results.select import select_smallest
from search.front import MeasuredCandidates
from search.trainable import TrialSpec, execute_trial

REPO = Path(__file__).resolve().parents[1]


def trial_metrics(quality=5.0, pitch=10.0, rtf=20.0, sizes=(60_000, 40_000, 30_000), quantised=True):
    metrics = {"rtf_wasm": rtf, "bytes_float32": sizes[0], "bytes_float16": sizes[1], "bytes_uint8": sizes[2],
               "quality_float32": quality, "pitch_error_cents_float32": pitch}
    if quantised:
        metrics.update(quality_float16=quality, pitch_error_cents_float16=pitch,
                       quality_uint8=quality, pitch_error_cents_uint8=pitch)
    return metrics


def test_an_empty_record_asks_for_every_quantised_precision():
    assert MeasuredCandidates().matter(trial_metrics()) == ["float16", "uint8"]


def test_a_smaller_better_faster_candidate_spares_the_evaluation():
    record = MeasuredCandidates()
    assert record.add(trial_metrics(quality=4.0, pitch=5.0, rtf=30.0, sizes=(20_000, 15_000, 10_000))) == 3
    assert record.matter(trial_metrics()) == []
    assert record.counts() == (2, 2)  # the sweep's summary and parent run report these


@pytest.mark.parametrize("measured, wanted", [
    # between the two sizes: only the smaller precision can still win by size
    (dict(quality=4.0, pitch=5.0, rtf=30.0, sizes=(35_000, 35_000, 35_000)), ["uint8"]),
    # slower: a speed bar could refuse it and take ours
    (dict(quality=4.0, pitch=5.0, rtf=10.0, sizes=(20_000, 15_000, 10_000)), ["float16", "uint8"]),
    # worse pitch: a pitch bar could refuse it
    (dict(quality=4.0, pitch=9.5, rtf=30.0, sizes=(20_000, 15_000, 10_000)), ["float16", "uint8"]),
    # better quality, but by less than quantising could move ours
    (dict(quality=5.0 * (1 - QUALITY_MARGIN / 2), pitch=5.0, rtf=30.0, sizes=(20_000, 15_000, 10_000)),
     ["float16", "uint8"]),
])
def test_a_candidate_that_could_still_matter_is_evaluated(measured, wanted):
    record = MeasuredCandidates()
    record.add(trial_metrics(**measured))
    assert record.matter(trial_metrics()) == wanted


def test_without_a_float32_evaluation_everything_matters():
    record = MeasuredCandidates()
    record.add(trial_metrics(quality=1.0, pitch=1.0, sizes=(1, 1, 1)))
    assert record.matter({**trial_metrics(), "quality_float32": math.nan}) == ["float16", "uint8"]


def test_unmeasured_precisions_are_not_recorded():
    record = MeasuredCandidates()
    assert record.add(trial_metrics(quantised=False)) == 1


def _table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    table["candidate"] = True
    table["status"] = "FINISHED"
    table["start_time"] = pd.to_datetime(np.arange(len(rows)), unit="s", utc=True)
    table["run_id"] = [f"r{i:03d}" for i in range(len(rows))]
    return table


def test_a_skipped_candidate_is_never_on_the_front_nor_a_winner():
    """The oracle: random measured candidates and a quantised candidate whose true figures lie anywhere
    within the margins of its float32 ones; whenever it was judged not to matter, adding it changes
    neither the size-quality front's membership for it nor the winner of random criteria."""
    rng = random.Random(23)
    skipped = 0
    for _ in range(400):
        measured = [Measured(rng.uniform(1e4, 1e5), rng.uniform(2, 8), rng.choice([None, rng.uniform(5, 60)]),
                             rng.uniform(1, 40)) for _ in range(rng.randint(1, 8))]
        size, quality32, pitch32 = rng.uniform(1e4, 1e5), rng.uniform(2, 8), rng.uniform(1, 40)
        rtf = rng.choice([None, rng.uniform(5, 60)])
        if could_matter(size, quality32, rtf, pitch32, measured):
            continue
        skipped += 1
        quality = quality32 * (1 - QUALITY_MARGIN * rng.random())
        pitch = max(0.0, pitch32 * (1 - PITCH_MARGIN * rng.random()) - PITCH_SLACK_CENTS * rng.random())
        rows = [{"precision": "float32", "bytes": c.bytes, "quality": c.quality,
                 "rtf_wasm": math.nan if c.rtf is None else c.rtf, "pitch_error_cents": c.pitch_error}
                for c in measured]
        rows.append({"precision": "uint8", "bytes": size, "quality": quality,
                     "rtf_wasm": math.nan if rtf is None else rtf, "pitch_error_cents": pitch})
        table = _table(rows)
        assert not pareto_mask(table["bytes"], table["quality"])[-1]
        for _ in range(5):
            criteria = Criteria(tolerance=rng.choice([0.0, 0.05, 0.5]),
                                max_pitch_error=rng.choice([None, rng.uniform(1, 40)]),
                                min_rtf=rng.choice([None, rng.uniform(5, 60)]),
                                max_bytes=rng.choice([None, int(rng.uniform(1e4, 1e5))]))
            winner = select_smallest(table, criteria).winner
            assert winner is None or winner["run_id"] != table["run_id"].iloc[-1]
    assert skipped > 50  # the oracle saw enough skips to mean something


def test_execute_trial_asks_the_record_and_adds_a_finished_trial(tmp_path):
    record, asked = MeasuredCandidates(), []

    def train(dataset_dir, config, out_dir, report, report_every, threads, judge):
        metrics = {"status": "FINISHED", **trial_metrics(quantised=False)}
        wanted = judge(metrics)
        asked.append(wanted)
        metrics.update({f"quality_{p}": 5.0 for p in wanted})
        metrics.update({f"pitch_error_cents_{p}": 10.0 for p in wanted})
        return metrics

    spec = TrialSpec(dataset_dir="d", trials_dir=str(tmp_path), train_fn=train, size_fn=lambda config: {})
    execute_trial({"steps": 10}, spec, tmp_path, report=lambda m: None, front=record)
    execute_trial({"steps": 10}, spec, tmp_path, report=lambda m: None, front=record)
    assert asked[0] == ["float16", "uint8"]
    assert record.add({}) == 3 + 3  # both trials' candidates, three each: same figures beat nothing


RECORD_PROBE = """
import json, ray
from search.front import FrontRecord, TrialFront
from tests.test_relevance import trial_metrics

@ray.remote(num_cpus=0)
def trial(metrics, add):  # on a worker, as a trial would
    front = TrialFront("tonesweep-front/probe/bansuri")
    if add:
        front.add(metrics)
    return front.matter(trial_metrics())

ray.init(address="{address}", logging_level="ERROR", log_to_driver=False)
with FrontRecord("tonesweep-front/probe/bansuri"):
    before = ray.get(trial.remote(trial_metrics(quality=4.0, pitch=5.0, rtf=30.0, sizes=(20_000, 15_000, 10_000)), True))
after = ray.get(trial.remote({{}}, False))  # the record is gone with the driver's block: measure everything
print("PROBE " + json.dumps([before, after]))
"""


def test_trials_on_workers_share_the_driver_s_record(ray_head):
    code = RECORD_PROBE.format(address=ray_head.address)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**ray_head.env}, capture_output=True,
                          text=True, timeout=180)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(lines[0][len("PROBE "):]) == [[], ["float16", "uint8"]]
