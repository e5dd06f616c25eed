"""Searching for the size-quality front: the space in Optuna's terms, Pareto ranking (checked against
moocore), MO-ASHA's rule on hand-made rungs, the Optuna searcher, and multi-objective sweeps."""

from __future__ import annotations

import json
import math
import pickle
import sys

import moocore
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial
from ray.tune.schedulers import TrialScheduler

from results.pareto import crowding_distance, hypervolume, nondominated_ranks, preference_order, ReferencePoint
from search.algorithms import OBJECTIVE_SIZE as SIZE
from search.algorithms.moasha import MOASHAScheduler, promote, rung_milestones
from search.algorithms.optuna_searcher import OptunaSearcher
from search.tuner import instrument_seed
from spaces.optuna_space import OptunaParam, sample, to_optuna
from spaces.toml_space import parse_space
from support.sweeps import SPACE, make_datasets, mlflow_client, run_driver, sweep_runs
from common.errors import UserError

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


# ---------------------------------------------------------------------------- the space in Optuna's terms


def every_type_space():
    return parse_space({
        "hyperparameters": {
            "decoder": {"type": "choice", "values": ["gru", "cnn"]},
            "gru_units": {"type": "choice", "values": [16, 64], "when": {"decoder": ["gru"]}},
            "conv_layers": {"type": "int", "min": 2, "max": 6, "step": 2, "when": {"decoder": ["cnn"]}},
            "causal": {"type": "boolean", "when": {"decoder": ["cnn"]}},
            "n_harmonics": {"type": "int", "min": 16, "max": 64, "sampling": "log"},
            "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
            "grad_clip": {"type": "float", "min": 1.0, "max": 3.0, "step": 0.5},
            "batch_size": {"type": "fixed", "value": 4},
        },
        "fixed": {"frame_rate": 50},
    })


def test_space_translates_every_type_and_condition():
    params, constants = to_optuna(every_type_space())
    assert params == [
        OptunaParam("decoder", CategoricalDistribution(["gru", "cnn"])),
        OptunaParam("gru_units", CategoricalDistribution([16, 64]), (("decoder", ("gru",)),)),
        OptunaParam("conv_layers", IntDistribution(2, 6, step=2), (("decoder", ("cnn",)),)),
        OptunaParam("causal", CategoricalDistribution([False, True]), (("decoder", ("cnn",)),)),
        OptunaParam("n_harmonics", IntDistribution(16, 64, log=True)),
        OptunaParam("learning_rate", FloatDistribution(1e-4, 1e-2, log=True)),
        OptunaParam("grad_clip", FloatDistribution(1.0, 3.0, step=0.5)),
    ]
    assert constants == {"frame_rate": 50, "batch_size": 4}


def test_sampling_asks_only_active_parameters():
    params, _ = to_optuna(every_type_space())
    fixed = {"decoder": "cnn", "conv_layers": 4, "causal": True, "n_harmonics": 32, "learning_rate": 1e-3,
             "grad_clip": 2.5, "gru_units": 64}
    values = sample(FixedTrial(fixed), params)
    assert values == {k: v for k, v in fixed.items() if k != "gru_units"}  # a GRU-only value is never asked


def test_ranges_optuna_cannot_sample_are_refused():
    space = parse_space({"hyperparameters": {"learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2,
                                                               "sampling": "reverse_log"}}})
    with pytest.raises(UserError, match="learning_rate: sampling 'reverse_log'"):
        to_optuna(space)


# ---------------------------------------------------------------------------- Pareto ranking vs moocore

points = st.lists(st.tuples(st.integers(1, 30).map(float), st.integers(1, 30).map(float)), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(points)
def test_nondominated_ranks_match_moocore(pts):
    x, y = np.array(pts).T
    np.testing.assert_array_equal(nondominated_ranks(x, y), moocore.pareto_rank(np.array(pts)))


@settings(max_examples=100, deadline=None)
@given(points)
def test_hypervolume_matches_moocore(pts):
    ref = ReferencePoint(log10_bytes=math.log10(40.0), quality=40.0)
    x, y = np.array(pts).T
    expected = moocore.hypervolume(np.column_stack([np.log10(x), y]), ref=[ref.log10_bytes, ref.quality])
    assert math.isclose(hypervolume(x, y, ref), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_crowding_distance_by_hand():
    # four points on a front: extremes infinite, inner ones the neighbour gaps over each range
    sizes, losses = [10.0, 100.0, 1000.0, 10_000.0], [4.0, 3.0, 1.5, 1.0]
    distance = crowding_distance(sizes, losses)
    assert np.isinf(distance[[0, 3]]).all()
    assert math.isclose(distance[1], (2 - 0) / 3 + (4.0 - 1.5) / 3.0)
    assert math.isclose(distance[2], (4 - 2) / 3 + (3.0 - 1.0) / 3.0)


# ---------------------------------------------------------------------------- MO-ASHA's rule


def test_rungs_are_ashas():
    assert rung_milestones(20, 200, 3) == [20, 60, 180]
    assert rung_milestones(10, 10, 3) == []


def test_the_rungs_follow_grace_period_and_reduction_factor(tmp_path):
    """--grace-period, --reduction-factor and --keep-front reach the scheduler; the defaults are a first
    rung at one report, eta 4 and the rung's front kept (bench/README.md, "MO-ASHA's settings")."""
    from search.settings import SweepSettings, check_settings
    from search.tuner import make_scheduler
    from spaces import default_space

    space = default_space()
    chosen = make_scheduler(SweepSettings(datasets=[], trials=24, steps=150, grace_period=50), space, tmp_path)
    assert chosen.milestones == [50]  # 50 x 4 is past the trials' end: one rung, then the end
    halving = SweepSettings(datasets=[], trials=24, steps=150, grace_period=38, reduction_factor=2)
    assert make_scheduler(halving, space, tmp_path).milestones == [38, 76]
    default = make_scheduler(SweepSettings(datasets=[], trials=8, steps=150), space, tmp_path)
    assert (default.milestones, default.keep_front) == ([7, 28, 112], True)
    assert default.size_metric == SIZE == "bytes_uint8"  # rungs judge the smallest bundle's bytes
    plain = SweepSettings(datasets=[], trials=8, steps=150, keep_front=False)
    assert make_scheduler(plain, space, tmp_path).keep_front is False
    from search.settings import report_every

    # reports fall on the rung: every 10 steps for a rung at 50, not every 7 (a decision at step 56)
    assert report_every(SweepSettings(datasets=[], trials=1, steps=150), space) == 7
    assert report_every(SweepSettings(datasets=[], trials=1, steps=150, grace_period=50), space) == 10
    assert report_every(SweepSettings(datasets=[], trials=1, steps=150, grace_period=37), space) == 37
    # a rung before the first report: reports every grace steps (this once raised StopIteration)
    assert report_every(SweepSettings(datasets=[], trials=1, steps=150, grace_period=5), space) == 5
    for bad, field in ((dict(reduction_factor=1.0), "--reduction-factor"), (dict(grace_period=0), "--grace-period")):
        with pytest.raises(UserError, match=field):
            check_settings(SweepSettings(datasets=["x"], trials=2, **bad))


def test_a_small_model_with_worse_loss_survives_large_ones():
    scheduler = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3)
    for i, (size, loss) in enumerate([(2e6, 1.0), (3e6, 1.1), (4e6, 1.2), (5e6, 1.3), (6e6, 1.4)]):
        scheduler.decide(f"big{i}", {"step": 20, SIZE: size, "val_loss": loss})
    assert scheduler.decide("small", {"step": 20, SIZE: 1e4, "val_loss": 5.0}) == CONTINUE
    # loss alone (ASHA's view) would stop it: it is the worst of six
    recorded = {t: (1.0, v[1]) for t, v in scheduler.rungs[20].items()}
    assert not promote(recorded, "small", 3)


def test_dominated_trials_stop_and_decisions_are_final():
    scheduler = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3)
    seen = [(1e4, 3.0), (1e5, 2.0), (1e6, 1.0), (2e5, 2.5), (3e6, 1.5), (5e4, 3.5)]
    verdicts = [scheduler.decide(f"f{i}", {"step": 20, SIZE: s, "val_loss": v}) for i, (s, v) in enumerate(seen)]
    assert verdicts[0] == CONTINUE  # the first to arrive goes on
    assert verdicts[3] == STOP and verdicts[5] == STOP  # each dominated when it arrived (by f1; by f0)
    assert scheduler.decide("dominated", {"step": 20, SIZE: 2e6, "val_loss": 4.0}) == STOP
    # a later report of a recorded trial is not judged again at that rung
    assert scheduler.decide("f3", {"step": 40, SIZE: 2e5, "val_loss": 0.1}) == CONTINUE
    assert scheduler.decisions["dominated"] == {20: STOP} and scheduler.decisions["f3"] == {20: STOP}
    # on a full rung, the front's extremes always win the crowding tie-break
    recorded = {f"f{i}": point for i, point in enumerate(seen)}
    recorded["tiny"] = (1e3, 9.0)
    assert promote(recorded, "tiny", 3)


def test_ties_go_by_crowding_then_arrival():
    scheduler = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3)
    verdicts = [scheduler.decide(f"t{i}", {"step": 20, SIZE: 1e5, "val_loss": 2.0}) for i in range(4)]
    # identical points: same rank, same crowding, so arrival decides; quota ceil(n/3) = 1, 1, 1, 2 -> t0 (and t1)
    assert verdicts == [CONTINUE, STOP, STOP, STOP]
    order = preference_order([1e5] * 3, [2.0] * 3)
    assert order.tolist() == [0, 1, 2]


def test_keep_front_lets_a_second_front_member_through_a_quota_of_one():
    """Two trials on a rung, both on its front: the quota (ceil(2/3) = 1) stops the later one; with
    ``keep_front`` it goes on, while a dominated trial still stops."""
    arrivals = [("big", 1e6, 1.0), ("small", 1e4, 3.0), ("dominated", 2e6, 2.0)]
    plain = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3)
    keeping = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3, keep_front=True)
    for scheduler, expected in ((plain, [CONTINUE, STOP, STOP]), (keeping, [CONTINUE, CONTINUE, STOP])):
        verdicts = [scheduler.decide(t, {"step": 20, SIZE: s, "val_loss": v}) for t, s, v in arrivals]
        assert verdicts == expected
    assert pickle.loads(pickle.dumps(keeping)).keep_front is True  # a resumed sweep keeps its rule
    older = plain.__getstate__()  # a sweep pickled before keep_front existed: 7 arguments, the quota alone
    older["args"] = older["args"][:7]
    revived = MOASHAScheduler.__new__(MOASHAScheduler)
    revived.__setstate__(older)
    assert revived.keep_front is False


def test_failed_trials_never_block_a_rung_and_state_survives_a_restart(tmp_path):
    path = tmp_path / "state.json"
    first = MOASHAScheduler(max_t=200, grace_period=20, reduction_factor=3, state_path=str(path))
    assert first.decide("failed", {"step": 20, SIZE: 1e5, "val_loss": math.nan}) == CONTINUE
    assert first.decide("rejected", {"status": "REJECTED", SIZE: 1e9}) == CONTINUE
    assert first.rungs[20] == {}
    first.decide("a", {"step": 20, SIZE: 1e5, "val_loss": 2.0})
    second = pickle.loads(pickle.dumps(first))  # what Tuner.restore does with the pickled TuneConfig
    assert second.rungs[20] == {"a": (1e5, 2.0)} and second.decisions == {"a": {20: CONTINUE}}
    assert second.decide("a", {"step": 20, SIZE: 1e5, "val_loss": 0.1}) == CONTINUE
    assert second.rungs[20]["a"] == (1e5, 2.0)  # not re-judged


# ---------------------------------------------------------------------------- the Optuna searcher


def small_space():
    return parse_space({"hyperparameters": {
        "decoder": {"type": "choice", "values": ["gru", "cnn"]},
        "gru_units": {"type": "choice", "values": [16, 32, 64], "when": {"decoder": ["gru"]}},
        "conv_channels": {"type": "choice", "values": [8, 16], "when": {"decoder": ["cnn"]}},
        "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
    }, "fixed": {"batch_size": 2}})


def finish(searcher, trial_id, config, status="FINISHED"):
    size = 1000 * (config.get("gru_units") or config.get("conv_channels"))
    searcher.on_trial_complete(trial_id, {"status": status, SIZE: size,
                                          "val_loss": 1.0 + 100 * config["learning_rate"]})


@pytest.mark.parametrize("algorithm", ["nsga2", "motpe"])
def test_optuna_searcher_suggests_conditionally_and_finishes(algorithm):
    searcher = OptunaSearcher(small_space(), algorithm, max_trials=12, seed=3, overrides={"steps": 30})
    for i in range(12):
        config = searcher.suggest(f"t{i}")
        assert config["batch_size"] == 2 and config["steps"] == 30
        assert ("gru_units" in config) == (config["decoder"] == "gru") and ("conv_channels" in config) != ("gru_units" in config)
        finish(searcher, f"t{i}", config, status="FAILED" if i == 3 else "FINISHED")
        finish(searcher, f"t{i}", config)  # told twice: ignored
    assert searcher.suggest("t12") == "FINISHED"
    states = [t.state.name for t in searcher.study.trials]
    assert states.count("COMPLETE") == 11 and states.count("FAIL") == 1 and searcher.study.best_trials


def test_optuna_searcher_survives_pickle_and_restore_midway(tmp_path):
    searcher = OptunaSearcher(small_space(), "nsga2", max_trials=10, seed=1)
    configs = {f"t{i}": searcher.suggest(f"t{i}") for i in range(5)}
    for i in range(3):
        finish(searcher, f"t{i}", configs[f"t{i}"])
    searcher.save(str(tmp_path / "state.json"))
    clone = pickle.loads(pickle.dumps(searcher))  # NSGA-II's study itself does not pickle
    restored = OptunaSearcher(small_space(), "nsga2")
    restored.restore(str(tmp_path / "state.json"))
    for other in (clone, restored):
        assert other.live_trials() == {"t3", "t4"} and other.suggest("t3") == configs["t3"]
        finish(other, "t3", configs["t3"])  # asked before the restore, told after it
        assert len(other.study.trials) == 4 and other.suggest("t5") is not None


# ---------------------------------------------------------------------------- sweeps


def test_each_instrument_gets_its_own_seed():
    seeds = {instrument_seed(0, name) for name in ("bansuri", "shehnai", "sarangi")}
    assert len(seeds) == 3 and instrument_seed(0, "bansuri") == instrument_seed(0, "bansuri")


def moasha_settings(tmp_path, trials=9, name="mo", **changes):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    return {"datasets": make_datasets(tmp_path, ["sarangi"]), "trials": trials, "space": str(space), "steps": 60,
            "report_every": 10, "name": name, "storage": str(tmp_path / "runs"), "max_params": 60_000, "seed": 2,
            "algorithm": "nsga2", "scheduler": "moasha", **changes}


def test_multiobjective_sweep_logs_the_front_while_it_runs(tmp_path, ray_head):
    output = run_driver(tmp_path, moasha_settings(tmp_path, trials=8, name="front"), cluster=ray_head)
    client = mlflow_client(tmp_path)
    parent, runs = sweep_runs(client, "sarangi", "front")
    history = client.get_metric_history(parent.info.run_id, "hypervolume")
    assert [m.step for m in history] == list(range(1, 9)) and history[-1].value > 0, output[-2000:]
    assert sorted(m.value for m in history) == [m.value for m in sorted(history, key=lambda m: m.step)]  # never falls
    steps = client.get_metric_history(parent.info.run_id, "trial_steps_used")
    assert steps[-1].value <= 8 * 60 and parent.data.params["hv_reference_quality"] == "10.0"
    assert {r.data.tags["tonesweep.status"] for r in runs} <= {"FINISHED", "STOPPED", "FAILED", "REJECTED"}
    assert "hv " in output and "best val_loss per rung" in output


def test_multiobjective_sweep_on_the_real_trainer(tmp_path, request, ray_head):
    """The default tier's one sweep of the real trainer: 2 real trials side by side, NSGA-II + MO-ASHA,
    a few steps each, through the CLI, on the run's Ray head (tests/test_sweep.py's 4-trial sweep of
    the real trainer is in the system tier)."""
    dataset = request.getfixturevalue("tiny_dataset")
    space = tmp_path / "space.toml"
    space.write_text('[hyperparameters.decoder]\ntype = "choice"\nvalues = ["gru", "cnn"]\n'
                     '[hyperparameters.n_harmonics]\ntype = "choice"\nvalues = [8, 16]\n'
                     '[fixed]\nhidden = 8\ngru_units = 8\nconv_channels = 8\nconv_layers = 2\nconv_stacks = 1\n'
                     'n_noise_bands = 8\nframe_rate = 50\nbatch_size = 2\n')
    command = [sys.executable, "-m", "cli", "sweep", "--dataset", str(dataset), "--trials", "2",
               "--space", str(space), "--steps", "8", "--name", "mo4", "--algorithm", "nsga2",
               "--storage", str(tmp_path / "runs"), "--address", ray_head.address]
    output = run_driver(tmp_path, {}, timeout=1200, module_args=command, cluster=ray_head)
    client = mlflow_client(tmp_path)
    parent, children = sweep_runs(client, "bansuri", "mo4")
    assert len(children) == 2 and parent.info.status == "FINISHED", output[-3000:]
    assert "model_bytes" in children[0].data.metrics or "model_bytes" in children[1].data.metrics
    assert float(parent.data.params["hv_reference_quality"]) > 0
    assert client.get_metric_history(parent.info.run_id, "hypervolume")


def test_trials_ended_after_the_last_snapshot_count_against_the_budget(tmp_path):
    """A trial that ended in the second before a kill is in MLflow, not in the searcher's saved state."""
    from search.algorithms.kerastuner_searcher import KerasTunerSearcher

    for make in (lambda: KerasTunerSearcher(small_space(), "random", max_trials=5, seed=1,
                                            ledger_path=str(tmp_path / "ended.json")),
                 lambda: OptunaSearcher(small_space(), "nsga2", max_trials=5, seed=1,
                                        ledger_path=str(tmp_path / "ended.json"))):
        searcher = make()
        for i in range(2):
            finish(searcher, f"t{i}", searcher.suggest(f"t{i}"))
        searcher.save(str(tmp_path / "state.json"))
        (tmp_path / "ended.json").write_text(json.dumps(["t0", "t1", "lost-after-snapshot"]))
        restored = make()
        restored.restore(str(tmp_path / "state.json"))
        suggestions = [restored.suggest(f"n{i}") for i in range(3)]
        assert [isinstance(s, dict) for s in suggestions[:2]] == [True, True], suggestions
        assert suggestions[2] == "FINISHED", suggestions  # 2 + 1 lost + 2 = 5
        # a second resume reads the same ledger: the lost trial was counted once and is not again
        restored = make()
        restored.restore(str(tmp_path / "state.json"))
        assert isinstance(restored.suggest("m0"), dict)  # 2 + 1 lost + 1
        restored.save(str(tmp_path / "again.json"))
        again = make()
        again.restore(str(tmp_path / "again.json"))
        assert isinstance(again.suggest("m1"), dict) and again.suggest("m2") == "FINISHED", type(again).__name__


def refuse_gru(config):
    """A stand-in for the sweep's limits: every GRU is too large."""
    from search.algorithms.refusal import Refusal

    if config["decoder"] == "gru":
        return Refusal("too large: a GRU", violation=0.5, objectives={SIZE: 4000.0 * config["gru_units"]})
    return None


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "nsga2", "motpe"])
def test_refused_draws_are_drawn_again_learned_and_never_spend_the_budget(tmp_path, algorithm):
    from search.algorithms.kerastuner_searcher import KerasTunerSearcher

    cls = OptunaSearcher if algorithm in ("nsga2", "motpe") else KerasTunerSearcher
    searcher = cls(small_space(), algorithm, max_trials=6, seed=3, refuse=refuse_gru)
    configs = [searcher.suggest(f"t{i}") for i in range(6)]
    assert all(c["decoder"] == "cnn" for c in configs), configs  # six trials, every one may train
    for i, config in enumerate(configs):
        finish(searcher, f"t{i}", config)
    assert searcher.suggest("t6") == "FINISHED" and searcher.refused > 0 and searcher.exhausted is None
    if cls is OptunaSearcher:  # the sampler learned the refused draws as infeasible
        infeasible = [t for t in searcher.study.trials if t.constraints.get("limits", 0.0) > 0]
        assert len(infeasible) == searcher.refused and all(t.params["decoder"] == "gru" for t in infeasible)
    searcher.save(str(tmp_path / "state.json"))
    restored = cls(small_space(), algorithm, refuse=refuse_gru)
    restored.restore(str(tmp_path / "state.json"))
    assert restored.refused == searcher.refused and restored.suggest("t7") == "FINISHED"
    clone = pickle.loads(pickle.dumps(searcher))  # Ray pickles the searcher, the check goes with it
    assert clone.refuse is not None and clone.refused == searcher.refused


def test_a_space_the_limits_refuse_entirely_ends_the_search_saying_why():
    from search.algorithms.refusal import MAX_REDRAWS, Refusal

    searcher = OptunaSearcher(small_space(), "nsga2", max_trials=4, seed=1,
                              refuse=lambda config: Refusal("too slow: all of it", 1.0))
    assert searcher.suggest("t0") == "FINISHED"
    assert searcher.refused == MAX_REDRAWS and "too slow: all of it" in searcher.exhausted
