"""The search benchmark's replay (search/replay/simulate.py) on a hand-made pool: the pool file round-trips, the
simulated workers account for time and trial-steps, the real schedulers stop trials, warm starts come
first, and the hypervolume is scored on the pool's fixed box."""

from __future__ import annotations

import math

import pytest

from common.errors import UserError
from search.replay.pool import Pool, Record, Startup, read_pool, read_startups, with_startups, write_pool, write_startups
from search.replay.simulate import Scale, Strategy, at_budget, front_records, replay, winner

STEPS, EVERY = 40, 5


def record(i: int, size: float, final_loss: float, seconds_per_step: float = 0.1) -> Record:
    """A trial whose loss falls linearly from 10 to final_loss; its candidates are its loss at bytes."""
    curve = {s: 10.0 + (final_loss - 10.0) * s / STEPS for s in range(EVERY, STEPS + 1, EVERY)}
    return Record(config={"decoder": "cnn", "conv_channels": 8, "learning_rate": 1e-3 * (1 + i)}, model_bytes=size,
                  curve=curve, candidates=[(size, final_loss), (0.5 * size, final_loss + 0.1)],
                  seconds_per_step=seconds_per_step, eval_s=2.0, startup_s=1.0, rtf_wasm=10.0)


@pytest.fixture
def pool() -> Pool:
    sizes = [1e4 * (1 + i) for i in range(12)]
    losses = [8.0 - 0.4 * i for i in range(12)]  # larger models reach lower losses: every trial on the front
    return Pool("oboe", STEPS, EVERY, [record(i, s, q) for i, (s, q) in enumerate(zip(sizes, losses))])


def test_a_pool_round_trips_through_its_file(tmp_path, pool):
    path = tmp_path / "pool-oboe.json.gz"
    write_pool(path, Pool(pool.instrument, STEPS, EVERY, pool.records, {"recorded": "2026-12-06"}))
    back = read_pool(path)
    assert back.instrument == "oboe" and back.steps == STEPS and back.meta["recorded"] == "2026-12-06"
    assert back.records == pool.records
    assert back.records[0].loss_at(12) == back.records[0].curve[10]  # the nearest report, earlier on a tie


def test_start_ups_measured_again_take_the_pools_place_only_for_their_pool(tmp_path, pool):
    """bench/record_startups.py's file: one start-up per record, read back for the pool it was measured on."""
    pool.meta["dataset_key"] = "abc"
    path = tmp_path / "startups-oboe.json.gz"
    measured = [Startup(index=i, startup_s=0.5 + i, first_call_s=0.25, fresh_startup_s=10.5 + i if i < 3 else None)
                for i in range(len(pool.records))]
    write_startups(path, measured, {"instrument": "oboe", "dataset_key": "abc", "recorded": "2026-12-07",
                                    "trials_per_worker": [70, 80, 75]})
    back, meta = read_startups(path, pool)
    timed = with_startups(pool, back, meta["trials_per_worker"])
    assert [r.startup_s for r in timed.records] == [0.5 + i for i in range(len(pool.records))]
    assert timed.fresh_worker_s == 10.0 and timed.trials_per_worker == 75
    assert [r.curve for r in timed.records] == [r.curve for r in pool.records] and pool.records[0].startup_s == 1.0
    fewer = Pool("oboe", STEPS, EVERY, pool.records[:-1], {"dataset_key": "abc"})
    with pytest.raises(UserError, match="not measured for this pool"):
        read_startups(path, fewer)


def test_every_trial_to_the_end_costs_trials_times_steps_and_keeps_two_workers_busy(pool):
    outcome = replay(pool.records, Strategy("full", "random", "none"), seed=0, trials=8, steps=STEPS,
                     report_every=EVERY, workers=2, overhead_s=0.5)
    assert outcome.trial_steps == 8 * STEPS and all(e.finished for e in outcome.ends)
    assert len(set(outcome.finished())) == 8  # distinct records while the pool lasts
    each = 0.5 + 1.0 + STEPS * 0.1 + 2.0  # overhead, start-up, training, evaluation
    assert outcome.wall_s == pytest.approx(4 * each) and outcome.utilisation == pytest.approx(1.0)


def test_moasha_stops_trials_at_its_rungs_and_more_workers_finish_sooner(pool):
    strategy = Strategy("mo", "random", "moasha", grace=10, eta=3.0, keep_front=False)
    two = replay(pool.records, strategy, 0, 12, STEPS, EVERY, workers=2)
    assert two.trial_steps < 12 * STEPS and any(not e.finished for e in two.ends)
    assert {e.steps for e in two.ends if not e.finished} <= {10, 30}  # stopped at a rung (grace x eta^k)
    eight = replay(pool.records, strategy, 0, 12, STEPS, EVERY, workers=8)
    assert eight.wall_s < two.wall_s and 0 < eight.utilisation <= 1.0


def test_idle_worker_time_falls_after_the_last_trial_starts(pool):
    """Three equal trials on two workers: the third starts when the first two end, and one worker idles
    while it runs, so the whole sweep is 3/4 busy, fully busy before the last start, half busy after it."""
    outcome = replay(pool.records, Strategy("full", "random", "none"), 0, 3, STEPS, EVERY, workers=2)
    each = 1.0 + STEPS * 0.1 + 2.0
    assert outcome.last_start_s == pytest.approx(each) and outcome.wall_s == pytest.approx(2 * each)
    assert outcome.utilisation == pytest.approx(0.75)
    assert outcome.utilisation_between(0.0, outcome.last_start_s) == pytest.approx(1.0)
    assert outcome.utilisation_between(outcome.last_start_s, outcome.wall_s) == pytest.approx(0.5)


def test_a_wall_clock_budget_starts_no_trial_after_it_and_stops_the_running_ones_at_the_step_it_ran_out(pool):
    """As `sweep --time-budget`: trials start until the budget, and each running then ends at the first step it
    ends after it (the trainer reports there at once), or after its first step if it was still starting (its time
    busy, but not useful); a trial whose budget step is its last finishes."""
    each = 1.0 + STEPS * 0.1 + 2.0  # 7 s: start-up, training (a step every 0.1 s, a report every 5), evaluation
    outcome = replay(pool.records, Strategy("full", "random", "none"), 0, 1000, STEPS, EVERY, workers=2,
                     time_budget_s=2.45 * each)
    done, cut = [e for e in outcome.ends if not e.cut], [e for e in outcome.ends if e.cut]
    assert len(done) == 4 and all(e.finished for e in done) and len(cut) == 2
    # the last two started at 14 s, trained from 15 s: the budget ran out at 17.15 s, in their step 22 (not at
    # their next report, step 25 at 17.5 s)
    assert all(e.started == 2 * each and e.steps == 22 and not e.finished for e in cut)
    assert outcome.wall_s == pytest.approx(17.2) and all(e.time == pytest.approx(17.2) for e in cut)
    assert outcome.utilisation == pytest.approx(1.0) and outcome.useful_utilisation == pytest.approx(1 - 3.2 / 17.2)
    starting = replay(pool.records, Strategy("full", "random", "none"), 0, 1000, STEPS, EVERY, workers=2,
                      time_budget_s=2 * each + 0.5)  # in their start-up (14-15 s): they end after their first step
    assert sorted((e.steps, round(e.time, 6)) for e in starting.ends if e.cut) == [(1, 15.1), (1, 15.1)]
    finishing = replay(pool.records, Strategy("full", "random", "none"), 0, 1000, STEPS, EVERY, workers=2,
                       time_budget_s=2 * each + 5.9)  # in their last steps: they finish
    assert len(finishing.ends) == 6 and all(e.finished and not e.cut for e in finishing.ends)
    assert finishing.wall_s == pytest.approx(3 * each)


def test_a_workers_first_trial_and_its_first_after_recycling_start_a_fresh_process(pool):
    """A fresh worker imports the trainer: its first trial, and the first after every `trials_per_worker`,
    take `fresh_worker_s` longer to start; a worker's, not a record's."""
    each = 1.0 + STEPS * 0.1 + 2.0
    plain = replay(pool.records, Strategy("full", "random", "none"), 0, 6, STEPS, EVERY, workers=2)
    fresh = replay(pool.records, Strategy("full", "random", "none"), 0, 6, STEPS, EVERY, workers=2,
                   fresh_worker_s=3.0, trials_per_worker=2)
    assert plain.wall_s == pytest.approx(3 * each)
    # each worker: fresh, reused, fresh (recycled after two trials)
    assert sorted(e.time for e in fresh.ends) == pytest.approx([each + 3, each + 3, 2 * each + 3, 2 * each + 3,
                                                                3 * each + 6, 3 * each + 6])


def test_a_record_drawn_again_cannot_tie_its_first_draw_onto_the_front():
    """With replacement, random search draws records again; MO-ASHA keeping each rung's front must not pass
    every copy of a front record (identical points never dominate each other): a repeat reports a hair worse."""
    small = record(0, 1e4, 5.0)
    larger = [record(i, 1e5, 9.0) for i in range(1, 4)]  # larger and worse: off the front
    strategy = Strategy("mo", "random", "moasha", grace=10, eta=4.0, keep_front=True)
    outcome = replay([small, *larger], strategy, 0, 24, STEPS, EVERY, workers=1)
    copies = [e for e in outcome.ends if e.record == 0]
    assert len(copies) > 2 and sum(e.finished for e in copies) < len(copies)


def test_warm_starts_run_first_and_scoring_uses_the_pools_box(pool):
    outcome = replay(pool.records, Strategy("full", "random", "none"), 3, 4, STEPS, EVERY, workers=1, warm=[11, 5])
    assert outcome.finished()[:2] == [11, 5]
    scale = Scale(pool.records)
    everything = [c for r in pool.records for c in r.candidates]
    assert scale.hypervolume(everything) > scale.hypervolume(outcome.candidates(pool.records)) > 0
    trajectory = scale.trajectory(outcome, pool.records)
    assert [t[0] for t in trajectory] == [STEPS, 2 * STEPS, 3 * STEPS, 4 * STEPS]
    assert at_budget(trajectory, STEPS) == trajectory[0][2] and at_budget(trajectory, 0) == 0.0
    assert set(front_records(outcome, pool.records)) <= set(outcome.finished())
    best = winner(outcome.candidates(pool.records))
    assert best is not None and math.isfinite(best[1])
