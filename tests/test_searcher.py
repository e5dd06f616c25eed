"""The KerasTuner-oracle adapter follows Ray Tune's Searcher contract, without starting Ray."""

from __future__ import annotations

import json
import math
import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from ray.tune.search import Searcher

from search.algorithms import OBJECTIVE_SIZE as SIZE
from search.algorithms.kerastuner_searcher import KerasTunerSearcher
from spaces.toml_space import parse_space


def small_space():
    return parse_space({
        "hyperparameters": {
            "decoder": {"type": "choice", "values": ["gru", "cnn"]},
            "gru_units": {"type": "choice", "values": [16, 32, 64], "when": {"decoder": ["gru"]}},
            "conv_channels": {"type": "choice", "values": [8, 16], "when": {"decoder": ["cnn"]}},
            "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"},
        },
        "fixed": {"batch_size": 2},
    })


def make(algorithm="random", max_trials=6, **kwargs):
    return KerasTunerSearcher(small_space(), algorithm, max_trials=max_trials, seed=7,
                              overrides={"steps": 30}, **kwargs)


def finish(searcher, trial_id, val_loss, status="FINISHED"):
    searcher.on_trial_result(trial_id, {"step": 10, "val_loss": val_loss * 2})
    searcher.on_trial_complete(trial_id, {"step": 30, "val_loss": val_loss, "status": status})


def test_suggest_gives_configs_with_fixed_and_overrides_and_distinct_tuner_ids():
    searcher = make(max_concurrent=0)
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    for config in configs:
        assert config["batch_size"] == 2 and config["steps"] == 30
        assert ("gru_units" in config) == (config["decoder"] == "gru")
    # three concurrent KerasTuner trials, one tuner id each
    assert len(searcher.oracle.ongoing_trials) == 3
    assert searcher.suggest("t1") == configs[1]  # asking again for a trial: the same answer


def test_concurrency_limit_answers_none_until_a_trial_completes():
    searcher = make(max_concurrent=2)
    assert isinstance(searcher.suggest("a"), dict) and isinstance(searcher.suggest("b"), dict)
    assert searcher.suggest("c") is None
    finish(searcher, "a", 1.0)
    assert isinstance(searcher.suggest("c"), dict)


def test_finished_after_max_trials_and_completion_is_idempotent():
    searcher = make(max_trials=3)
    for trial_id in ("a", "b", "c"):
        assert isinstance(searcher.suggest(trial_id), dict)
    finish(searcher, "a", 0.5)
    finish(searcher, "a", 0.1)                      # second call: ignored
    searcher.on_trial_complete("never-suggested", {"val_loss": 0.0})
    searcher.on_trial_complete("b", None, error=True)
    searcher.on_trial_complete("c", {"status": "REJECTED", "failure_reason": "too large"})
    assert searcher.suggest("d") == Searcher.FINISHED
    by_status = {t.trial_id: (t.status, t.score, t.message) for t in searcher.oracle.trials.values()}
    assert sorted(s for s, _, _ in by_status.values()) == ["COMPLETED", "FAILED", "FAILED"]
    completed = [v for v in by_status.values() if v[0] == "COMPLETED"][0]
    assert completed[1] == pytest.approx(0.5)      # the best val_loss reported, not the ignored 0.1
    assert any(m == "too large" for _, _, m in by_status.values())


def test_stopped_trial_scores_its_best_reported_loss_and_no_loss_means_failed():
    searcher = make()
    searcher.suggest("s")
    searcher.on_trial_result("s", {"step": 10, "val_loss": 3.0})
    searcher.on_trial_result("s", {"step": 20, "val_loss": 2.0})
    searcher.on_trial_complete("s", {"step": 20, "val_loss": 2.0})  # ASHA stop: no final status
    searcher.suggest("n")
    searcher.on_trial_complete("n", {"step": 0, "val_loss": math.nan, "status": "FINISHED"})
    trials = {t.trial_id: t for t in searcher.oracle.trials.values()}
    assert [t.score for t in trials.values() if t.status == "COMPLETED"] == [2.0]
    assert [t.status for t in trials.values()].count("FAILED") == 1


def test_many_failures_do_not_stop_the_search():
    searcher = make(max_trials=8)
    for i in range(6):  # KerasTuner's default would raise after 3 consecutive failures
        searcher.suggest(f"f{i}")
        searcher.on_trial_complete(f"f{i}", {"status": "FAILED", "failure_reason": "NaN loss"})
    assert isinstance(searcher.suggest("ok"), dict)


@pytest.mark.parametrize("algorithm", ["random", "bayesian"])
def test_save_restore_continues_exactly(tmp_path, algorithm):
    searcher = make(algorithm, max_trials=12, max_concurrent=2)
    for i in range(5):
        searcher.suggest(f"t{i}")
        finish(searcher, f"t{i}", 1.0 / (i + 1))
    searcher.suggest("live")                        # running at save time
    path = tmp_path / "state" / "searcher.json"
    searcher.save(str(path))
    state = json.loads(path.read_text())          # plain JSON, not a pickle
    assert state["format"] == "tonesweep-searcher/1" and state["live"] == ["live"]
    assert [p.name for p in path.parent.iterdir()] == ["searcher.json"]  # no temp files left

    restored = make(algorithm, max_trials=1)        # different settings: restore replaces them
    restored.restore(str(path))
    assert restored.max_trials == 12 and restored.live_trials() == {"live"}
    # the running trial's completion reaches the oracle after the restore
    finish(restored, "live", 0.01)
    finish(searcher, "live", 0.01)
    assert restored.best_config() == searcher.best_config()
    assert restored.best_config()["learning_rate"] == searcher.oracle.get_best_trials(1)[0].hyperparameters.values["learning_rate"]
    # and both suggest the same next configurations (Bayesian floats agree to the optimizer's
    # precision: the Gaussian process is refitted after a restore)
    for i in range(2):
        after, before = restored.suggest(f"n{i}"), searcher.suggest(f"n{i}")
        assert after.keys() == before.keys()
        for key in after:
            assert after[key] == (pytest.approx(before[key], rel=1e-4) if isinstance(before[key], float)
                                  else before[key]), key
        finish(restored, f"n{i}", 0.2 + i)
        finish(searcher, f"n{i}", 0.2 + i)


def test_pickle_goes_through_the_json_state():
    searcher = make()
    searcher.suggest("a")
    assert KerasTunerSearcher.__getstate__(searcher)["format"] == "tonesweep-searcher/1"
    clone = pickle.loads(pickle.dumps(searcher))
    assert clone.live_trials() == {"a"} and clone.suggest("a") == searcher.suggest("a")
    assert clone.suggest("b") == searcher.suggest("b")


def test_no_trial_starts_once_the_time_budget_ran_out_and_a_pickled_searcher_asks_the_same_clock():
    """--time-budget (search.budget): the searcher answers FINISHED once the instrument's budget is spent, before
    its trial budget; the check pickles with it (by the instrument's name), as Ray pickles a searcher."""
    from search import budget

    try:
        budget.start("oboe", 3600.0)
        searcher = make(max_trials=10, out_of_time=budget.OutOfTime("oboe"))
        assert isinstance(searcher.suggest("a"), dict) and not budget.held_back("oboe")
        clone = pickle.loads(pickle.dumps(searcher))
        budget.start("oboe", 0.0)  # spent at once
        assert searcher.suggest("b") == Searcher.FINISHED and clone.suggest("b") == Searcher.FINISHED
        assert budget.held_back("oboe")
        assert isinstance(searcher.suggest("a"), dict)  # asked again for a trial it started: the same answer
        budget.start("oboe", None)
        assert isinstance(clone.suggest("b"), dict)
    finally:
        budget.start("oboe", None)


def test_bayesian_moves_past_its_random_start():
    """On a smooth 1-D objective (optimum at learning rate 10^-3.3), the Gaussian process homes in
    after its random start; random search with the same seed and budget does not."""
    space = parse_space({"hyperparameters": {
        "learning_rate": {"type": "float", "min": 1e-4, "max": 1e-2, "sampling": "log"}}})

    def distances(algorithm: str, trials: int = 12) -> list[float]:
        searcher = KerasTunerSearcher(space, algorithm, max_trials=trials, seed=1)
        out = []
        for i in range(trials):
            config = searcher.suggest(f"t{i}")
            decades = abs(math.log10(config["learning_rate"]) + 3.3)
            out.append(decades)
            searcher.on_trial_complete(f"t{i}", {"step": 30, "val_loss": 1.0 + decades**2, "status": "FINISHED"})
        return out

    def median_of_last_four(values):
        return sorted(values[-4:])[1:3][0] / 2 + sorted(values[-4:])[1:3][1] / 2

    bayesian, random_search = distances("bayesian"), distances("random")
    assert median_of_last_four(bayesian) < 0.05, bayesian
    assert median_of_last_four(random_search) > 0.1, random_search  # the check tells the two apart


def test_unknown_algorithm_is_rejected():
    with pytest.raises(ValueError):
        KerasTunerSearcher(small_space(), "hyperband")


def test_searchers_and_schedulers_pickled_under_their_old_module_names_still_load():
    """Ray pickles the searcher and scheduler into a sweep's experiment state. A sweep interrupted
    before they moved to search/algorithms/ pickled them as search.searcher and search.moasha; a
    resume restores them (search.tuner.MOVED_MODULES)."""
    import sys

    from search.algorithms.moasha import MOASHAScheduler
    from search.tuner import MOVED_MODULES, _alias_moved_modules

    searcher = make()
    searcher.suggest("a")
    scheduler = MOASHAScheduler(max_t=100, grace_period=10)
    scheduler.decide("a", {"step": 10, SIZE: 1e4, "val_loss": 1.0})
    old = pickle.dumps([searcher, scheduler], protocol=0)  # protocol 0 names a class on one text line
    for before, after in (("search.algorithms.kerastuner_searcher", "search.searcher"),
                          ("search.algorithms.moasha", "search.moasha")):
        assert f"c{before}\n".encode() in old
        old = old.replace(f"c{before}\n".encode(), f"c{after}\n".encode())
    try:
        _alias_moved_modules()
        clone, rungs = pickle.loads(old)
    finally:
        for name in MOVED_MODULES:
            sys.modules.pop(name, None)
    assert clone.live_trials() == {"a"} and clone.suggest("a") == searcher.suggest("a")
    assert rungs.rungs == scheduler.rungs


def test_state_saved_into_rays_folder_never_shows_a_temporary_file_there(tmp_path, monkeypatch):
    """Ray copies its staging folder to storage in the background while the next state is saved into
    it: a temporary file there could vanish under the copy and fail it (a traceback in the terminal)."""
    import tempfile

    searcher = make()
    searcher.suggest("a")
    made_in = []
    real_mkstemp = tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda **kw: made_in.append(kw.get("dir")) or real_mkstemp(**kw))
    searcher.save_to_dir(str(tmp_path), session_str="s1")
    assert [p.name for p in tmp_path.iterdir()] == ["searcher-state-s1.pkl"]
    assert made_in and all(str(folder) != str(tmp_path) for folder in made_in), made_in
    restored = make()
    restored.restore_from_dir(str(tmp_path))  # what Tuner.restore calls
    assert restored.live_trials() == {"a"}


# ------------------------------------------------------------------ warm starts (sweep --warm-start)


WARM = [{"decoder": "cnn", "conv_channels": 16, "learning_rate": 0.003},
        {"decoder": "gru", "gru_units": 64, "learning_rate": 0.0002}]


def optuna_searcher(algorithm, **kwargs):
    from search.algorithms.optuna_searcher import OptunaSearcher

    return OptunaSearcher(small_space(), algorithm, max_trials=6, seed=7, overrides={"steps": 30}, **kwargs)


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "nsga2", "nsga3", "motpe"])
def test_warm_start_values_come_first_then_the_engine_draws(algorithm):
    searcher = make(algorithm, warm_start=WARM) if algorithm in ("random", "bayesian") else \
        optuna_searcher(algorithm, warm_start=WARM)
    first, second, third = (searcher.suggest(t) for t in ("a", "b", "c"))
    assert {k: first[k] for k in WARM[0]} == WARM[0] and "gru_units" not in first
    assert {k: second[k] for k in WARM[1]} == WARM[1] and first["steps"] == second["steps"] == 30
    assert {k: third.get(k) for k in WARM[0]} not in WARM  # then the engine's own draws
    for trial_id, loss in (("a", 0.5), ("b", 0.7), ("c", 0.9)):
        searcher.on_trial_complete(trial_id, {"step": 30, "val_loss": loss, SIZE: 1e4, "status": "FINISHED"})
    assert isinstance(searcher.suggest("d"), dict)  # the engine took the warm trials as its own


def test_a_refused_warm_start_is_drawn_again_and_the_rest_survive_a_restore(tmp_path):
    from search.algorithms.refusal import Refusal

    refuse = lambda config: Refusal("too large", 1.0, {}) if config["decoder"] == "cnn" else None  # noqa: E731
    searcher = make("random", max_trials=6, warm_start=WARM + [{**WARM[1], "gru_units": 16}], refuse=refuse)
    first = searcher.suggest("a")
    assert first["decoder"] == "gru" and first["gru_units"] == 64 and searcher.refused == 1
    searcher.save(str(tmp_path / "state.json"))
    restored = make("random", max_trials=6)
    restored.restore(str(tmp_path / "state.json"))
    assert restored.suggest("b")["gru_units"] == 16  # the last warm value, after the restore
