"""The sweep engine: trainable, outcomes, progress, and whole sweeps on Ray tracked in MLflow.

Whole sweeps run in a subprocess driver started in its own session, so the test can stop every
process Ray started (raylet, GCS, workers, agents that outlive a killed driver) by PID at the end,
whatever happened. Most run a stand-in trainer (fast and able to fail on purpose); one runs the
real trainer on the ``tiny_dataset`` fixture.
"""

from __future__ import annotations

import json
import math
import re
import sys
import textwrap
import time

import pytest

from results.layout import trial_metrics
from results.tracking import trial_outcome
from search.progress import InstrumentTally
from search.settings import SweepSettings, check_settings, instruments_of
from search.trainable import TrialSpec, execute_trial, rejection_reason
from common.errors import UserError
from trainers.model.config import DEFAULTS
from support.sweeps import SPACE, TERMINAL, make_datasets, mlflow_client, run_driver, stub_manifest, sweep_runs

# ------------------------------------------------------------------ pure pieces, no Ray


def fake_size(config):
    params = config.get("hidden", 8) * 100
    return {"params": params, "bytes_float32": 4 * params, "bytes_float16": 2 * params, "bytes_uint8": params}


def test_execute_trial_rejects_oversized_configs_without_training(tmp_path):
    def must_not_train(*args, **kwargs):
        raise AssertionError("an oversized config was trained")

    spec = TrialSpec(dataset_dir="d", trials_dir=str(tmp_path), max_params=1000,
                     train_fn=must_not_train, size_fn=fake_size)
    final = execute_trial({"hidden": 64, "steps": 10}, spec, tmp_path / "t1", report=lambda m: None)
    assert final["status"] == "REJECTED" and "6400 parameters > --max-params 1000" in final["failure_reason"]
    assert final["params"] == 6400 and final["final"] is True and math.isnan(final["val_loss"])
    assert rejection_reason({"params": 10, "bytes_float32": 40}, None, 39).startswith("too large: 40 float32 bytes")
    assert rejection_reason({"params": 10, "bytes_float32": 40}, 10, 40) is None


def test_execute_trial_turns_a_crash_into_a_failed_result(tmp_path):
    def crash(dataset_dir, config, out_dir, report, report_every, threads):
        report({"step": 5, "train_loss": 2.0, "val_loss": 3.0})
        raise ValueError("loss is NaN\nat step 7")

    spec = TrialSpec(dataset_dir="d", trials_dir=str(tmp_path), train_fn=crash, size_fn=fake_size)
    seen = []
    final = execute_trial({"steps": 10}, spec, tmp_path / "t2", report=seen.append)
    assert final["status"] == "FAILED" and final["failure_reason"] == "ValueError: loss is NaN at step 7"
    assert final["val_loss"] == 3.0 and final["step"] == 5 and final["params"] == 800
    reported = [{k: r[k] for k in ("step", "train_loss", "val_loss", "model_bytes", "bytes_uint8")} for r in seen]
    # both sizes with every report: the shown one (float32) and the search's objective (uint8)
    assert reported == [{"step": 5, "train_loss": 2.0, "val_loss": 3.0, "model_bytes": 3200, "bytes_uint8": 800}]
    assert final["model_bytes"] == 3200 and final["bytes_uint8"] == 800
    assert seen[0]["peak_rss_mib"] >= seen[0]["rss_at_start_mib"] > 0  # and the worker's memory
    assert "startup_s" not in seen[0]  # the stand-in reports no first step


def test_execute_trial_reports_start_up_and_memory(tmp_path):
    def train(dataset_dir, config, out_dir, report, report_every, threads):
        import time

        held = b"\x01" * (64 * 2**20)  # 64 MiB written, so resident, for longer than a sampling interval
        time.sleep(0.6)
        report({"step": 5, "train_loss": 1.0, "val_loss": 2.0, "first_step_s": 1.5})
        del held
        return {"status": "FINISHED", "steps": 10, "first_step_s": 1.5}

    spec = TrialSpec(dataset_dir="d", trials_dir=str(tmp_path), train_fn=train, size_fn=fake_size)
    seen = []
    final = execute_trial({"steps": 10}, spec, tmp_path / "t3", report=seen.append)
    assert seen[0]["startup_s"] == final["startup_s"] and 1.5 <= final["startup_s"] < 1.5 + 60  # + imports, size check
    assert final["peak_rss_mib"] >= final["rss_at_start_mib"] + 60  # the trial's own peak, not the start


def test_execute_trial_holds_back_the_last_step_report(tmp_path):
    def train(dataset_dir, config, out_dir, report, report_every, threads):
        for step in (5, 10):
            report({"step": step, "train_loss": 1.0 / step, "val_loss": 2.0 / step})
        return {"status": "FINISHED", "failure_reason": None, "steps": 10, "quality_float32": 0.5}

    spec = TrialSpec(dataset_dir="d", trials_dir=str(tmp_path), train_fn=train, size_fn=fake_size, threads=2)
    seen = []
    final = execute_trial({"steps": 10}, spec, tmp_path / "t3", report=seen.append)
    assert [m["step"] for m in seen] == [5]          # step 10 arrives with the evaluation
    assert final["step"] == 10 and final["val_loss"] == 0.2 and final["train_loss"] == 0.1
    assert final["quality_float32"] == 0.5 and final["out_dir"] == str(tmp_path / "t3")


def test_trial_outcome():
    assert trial_outcome({"status": "FINISHED"}, False) == ("FINISHED", "")
    assert trial_outcome({"status": "REJECTED", "failure_reason": "too large"}, False) == ("REJECTED", "too large")
    assert trial_outcome({"step": 40, "val_loss": 1.0}, False)[0] == "STOPPED"
    assert trial_outcome({"step": 40}, True, "worker died") == ("FAILED", "worker died")


def test_tally_best_and_smallest_acceptable():
    tally = InstrumentTally("bansuri", total=4)
    sizes = {"bytes_float32": 4000, "bytes_float16": 2000, "bytes_uint8": 1000}
    tally.end("a", "FINISHED", {**sizes, "quality_float32": 1.00, "quality_float16": 1.01, "quality_uint8": 1.20})
    tally.end("b", "FINISHED", {"bytes_float32": 400, "bytes_float16": 200, "bytes_uint8": 100,
                                "quality_float32": 1.04, "quality_float16": 1.06, "quality_uint8": math.nan})
    tally.end("c", "FAILED", {})
    tally.end("d", "STOPPED", {})
    assert (tally.best().trial_id, tally.best().precision) == ("a", "float32")
    small = tally.smallest_acceptable()
    assert (small.trial_id, small.precision, small.bytes) == ("b", "float32", 400)  # 1.04 <= 1.05
    line = tally.line()
    assert "done 4/4" in line and "failed 1" in line and "stopped 1" in line and "400 B" in line
    assert "rejected" not in line
    refused = InstrumentTally("bansuri", total=2)
    refused.end("e", "REJECTED", {})
    refused.end("f", "FAILED", {})
    assert "failed 1 stopped 0 rejected 1" in refused.line()  # refused before training is not a failure


def test_tally_splits_the_trials_time_from_their_own_metrics():
    """Training after each step's first call, start-up (which counts that call), evaluation and the rest, over
    the trials' time as the driver saw it; trials that ended before this driver (a resumed sweep) do not count."""
    from search.summary import InstrumentResult, format_summary

    tally = InstrumentTally("bansuri", total=3)
    tally.preload({"old": ("FINISHED", {"train_time_s": 500.0})})
    tally.start("a", now=100.0)  # finished: 30 s of training of which 3 s the first call, 8 s of evaluation
    tally.start("b", now=100.0)  # stopped at a rung: its last report's elapsed_s
    tally.end("a", "FINISHED", {"train_time_s": 30.0, "first_call_s": 3.0, "startup_s": 5.0,
                                "eval_time_s": 7.0, "examples_time_s": 1.0}, now=140.0)
    tally.end("b", "STOPPED", {"elapsed_s": 12.0, "first_call_s": 2.0, "startup_s": 4.0}, now=120.0)
    split = tally.time_split()
    assert split.trial_s == 60.0
    assert split.training == pytest.approx(37 / 60) and split.startup == pytest.approx(9 / 60)
    assert split.evaluation == pytest.approx(8 / 60) and split.rest == pytest.approx(6 / 60)
    tally.start("c", now=0.0)  # resumed: it had trained 50 s before the interruption, 10 s seen here
    tally.end("c", "FINISHED", {"train_time_s": 50.0, "first_call_s": 1.0, "startup_s": 3.0}, now=10.0)
    assert tally.times["c"].training == 10.0 and tally.times["c"].startup == 0.0  # capped by what the wall leaves
    assert InstrumentTally("x", 1).time_split() is None
    result = InstrumentResult("bansuri", "d", "1", "p", time_split=split, rungs={7: (2, 12.02), 28: (1, 10.19)})
    summary = format_summary([result], "s", "u")
    assert "trials' time 60 s: training 62%, start-up 15%, evaluation 13%, the rest 10%" in summary
    assert "best val_loss per rung: step 7: 12.02 (2 trials), step 28: 10.19 (1 trial)" in summary


def test_refused_draws_show_on_the_progress_line(tmp_path):
    from search.limits import Feasibility, Limits, read_refusals

    check = Feasibility(Limits(max_params=1000), fake_size, str(tmp_path / "refusals.json"))
    assert check({"hidden": 8}) is None  # 800 parameters fit
    refusal = check({"hidden": 64})
    assert refusal.reason == "too large: 6400 parameters > --max-params 1000" and refusal.violation == pytest.approx(5.4)
    assert refusal.objectives == {"model_bytes": 25600.0, "bytes_uint8": 6400.0}  # both sizes, the objective among them
    check({"hidden": 32})
    assert read_refusals(tmp_path / "refusals.json") == {"refused": 2, "reasons": {"too large": 2}}
    tally = InstrumentTally("bansuri", total=4, refusals_path=str(tmp_path / "refusals.json"))
    tally.end("a", "FAILED", {})
    assert tally.line().endswith("failed 1 stopped 0 refused 2") and tally.refused() == 2
    assert InstrumentTally("bansuri", total=4).refused() == 0 and "refused" not in InstrumentTally("x", 1).line()


def test_settings_and_dataset_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="--resume: needs --name"):
        check_settings(SweepSettings(datasets=["x"], trials=2, resume=True))
    with pytest.raises(UserError, match="--trials"):
        check_settings(SweepSettings(datasets=["x"], trials=0))
    with pytest.raises(UserError, match="manifest.json: missing"):
        instruments_of([str(tmp_path / "nothing")])
    a, b = make_datasets(tmp_path, ["bansuri"]), tmp_path / "copy"
    b.mkdir()
    (b / "manifest.json").write_text(json.dumps(stub_manifest("bansuri")))
    with pytest.raises(UserError, match="instrument bansuri already given"):
        instruments_of([a[0], str(b)])


def test_cli_rejects_a_bad_space_in_one_line_before_starting(tmp_path, capsys):
    from cli.main import main

    dataset = make_datasets(tmp_path, ["bansuri"])[0]
    space = tmp_path / "space.toml"
    space.write_text("[hyperparameters.dropout]\ntype = 'float'\nmin = 0.1\nmax = 0.2\n")
    code = main(["sweep", "--dataset", dataset, "--trials", "2", "--space", str(space),
                 "--storage", str(tmp_path / "runs"), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "dropout: unknown hyperparameter" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m.db").exists()


# ------------------------------------------------------------------ whole sweeps on Ray


def test_sweep_of_two_instruments_records_every_trial(tmp_path, ray_head):
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    datasets = make_datasets(tmp_path, ["bansuri", "shehnai"])
    settings = {"datasets": datasets, "trials": 8, "space": str(space), "steps": 40, "report_every": 10,
                "name": "t8", "storage": str(tmp_path / "runs"), "max_params": 60_000, "seed": 1, "warm_start": True}
    output = run_driver(tmp_path, settings, cluster=ray_head)
    assert "bansuri" in output and "done 8/8" in output and "MLflow: sqlite:///" in output and " refused " in output

    client = mlflow_client(tmp_path)
    finished = 0
    for instrument, dataset in zip(("bansuri", "shehnai"), datasets):
        parent, children = sweep_runs(client, instrument, "t8")
        finished += sum(c.data.tags["tonesweep.status"] == "FINISHED" for c in children)
        assert parent.info.status == "FINISHED" and parent.info.run_name == "t8"
        assert parent.data.tags["tonesweep.dataset"] == instrument  # named, not a path (a stub manifest has no key)
        assert parent.data.tags["tonesweep.algorithm"] == "random"
        assert len(children) == 8
        for child in children:  # named for what they are: decoder, feature, parameters, trial id
            trial_id = child.data.tags["tonesweep.trial_id"]
            assert re.fullmatch(rf"(gru|cnn)-(loudness|rms)-[0-9.]+[kM]?-{trial_id[:4]}", child.info.run_name), \
                child.info.run_name
        assert len({c.data.tags["tonesweep.trial_id"] for c in children}) == 8
        assert {(c.data.params["decoder"], c.data.params["feature"]) for c in children} == {
            ("gru", "loudness"), ("gru", "rms"), ("cnn", "loudness"), ("cnn", "rms")}
        statuses = {c.data.tags["tonesweep.status"] for c in children}
        # GRUs of hidden 256 exceed --max-params: refused and drawn again, never a trial of the 8
        assert {"FINISHED", "FAILED"} <= statuses <= TERMINAL - {"REJECTED"}, statuses
        assert 0.0 <= parent.data.metrics["training_share"] <= 1.0  # of the trials' time (InstrumentTally.time_split)
        assert parent.data.metrics["trials_refused"] >= 1 and all(int(c.data.params["hidden"]) < 256 for c in children
                                                                  if c.data.params["decoder"] == "gru")
        for child in children:
            check_child(client, child, parent)
    # --warm-start: shehnai's search began with the configurations on bansuri's front, bansuri's with none
    from results.warm_start import front_configs
    from spaces import load_space
    from spaces.translate import config_to_values, warm_values

    tuned = load_space(str(space))
    warm = warm_values(front_configs(client, "t8", ["bansuri"]), tuned, 8 // 4)
    (bansuri, _), (shehnai, children) = sweep_runs(client, "bansuri", "t8"), sweep_runs(client, "shehnai", "t8")
    assert warm and "tonesweep.warm_start" not in bansuri.data.tags
    assert shehnai.data.tags["tonesweep.warm_start"] == f"{len(warm)} from t8/bansuri"
    assert f"[shehnai] warm start: {len(warm)} configuration(s) from the fronts of t8/bansuri" in output
    first = sorted(children, key=lambda c: c.info.start_time)[:len(warm)]
    drawn = [config_to_values({k: _value(v) for k, v in c.data.params.items()}, tuned.hyperparameters) for c in first]
    assert all(values in drawn for values in warm), (warm, drawn)
    # each trial that trained asked its instrument's record which quantised precisions to evaluate
    judged = [line.split() for line in (tmp_path / "fake.log").read_text().splitlines() if line.startswith("judged ")]
    assert len(judged) == finished and all(set(answer.split(",")) <= {"float16", "uint8"} for *_, answer in judged)
    asked = sum(int(sweep_runs(client, i, "t8")[0].data.metrics["quantised_judged"]) for i in ("bansuri", "shehnai"))
    assert asked == 2 * finished and "quantised candidates evaluated:" in output


def test_a_time_budget_starts_no_trial_after_it_and_stops_the_running_ones_at_their_next_step(tmp_path, ray_head):
    """--time-budget: trials start until the instrument's budget runs out; those running then stop at their next
    step (the trainer, given the deadline, reports at once) and are recorded STOPPED with the budget as the
    reason (no MLflow run is left open), and the sweep says so in one line. Each stand-in trial takes ~2.4 s
    (40 steps, 0.06 s each) and reports only at its end, so any report before that is the deadline's; the
    budget is 5 s."""
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    settings = {"datasets": make_datasets(tmp_path, ["bansuri"]), "trials": 40, "space": str(space), "steps": 40,
                "report_every": 40, "name": "tb", "storage": str(tmp_path / "runs"), "seed": 2, "time_budget_s": 5.0,
                "scheduler": "none"}
    output = run_driver(tmp_path, settings, cluster=ray_head, env={"FAKE_SLEEP": "2.4"})
    parent, children = sweep_runs(mlflow_client(tmp_path), "bansuri", "tb")
    assert 1 <= len(children) < 40
    by_budget = [c for c in children if "time budget ran out" in c.data.tags.get("tonesweep.failure_reason", "")]
    assert by_budget and all(c.data.tags["tonesweep.status"] == "STOPPED" and c.info.status == "FINISHED"
                             for c in by_budget)
    # each stopped at the step where its trainer saw the deadline pass (without it: at its end, finished)
    ran_out = [int(line.split()[2]) for line in (tmp_path / "fake.log").read_text().splitlines()
               if line.startswith("ran-out ")]
    stopped_at = [int(c.data.tags["tonesweep.failure_reason"].split()[3].rstrip(":")) for c in by_budget]
    assert set(stopped_at) <= set(ran_out), (stopped_at, ran_out)
    assert all(c.data.tags["tonesweep.status"] in TERMINAL for c in children)
    assert parent.data.params["time_budget_s"] == "5.0"
    assert f"[bansuri] the time budget (5 s) ran out after {len(children)} of 40 trials: none started after it, " \
           f"and the {len(by_budget)} running then stopped at their next step" in output
    assert output.count("STOPPED (the time budget ran out)") == len(by_budget)
    assert "the search space ran out" not in output


def _value(text: str):
    from results.warm_start import parse_param

    return parse_param(text)


def test_ray_tunes_actor_reuse_decision_is_wrapped_to_recycle_grown_workers():
    """search.recycling wraps Ray Tune's private TuneController._maybe_cache_trial_actor (Ray 2.60): a
    trial whose last result reports more resident memory than the limit gives up its worker (False,
    without asking Ray); otherwise Ray decides. Fails when Ray renames the method."""
    from ray.tune.execution.tune_controller import TuneController

    from search import recycling

    class Trial:
        def __init__(self, rss):
            self.last_result = {"rss_mib": rss}

    with recycling.recycling(1000) as active:
        method = TuneController._maybe_cache_trial_actor
        assert getattr(method, "_tonesweep_recycling", False)
        assert method(None, Trial(1500.0)) is False and active.recycled == 1  # Ray not even asked (self is None)
        with pytest.raises(AttributeError):  # under the limit: Ray's own decision runs
            method(None, Trial(900.0))
        assert active.recycled == 1
    recycling.install()  # once per process: wrapping twice would count twice
    assert not getattr(TuneController._maybe_cache_trial_actor.__wrapped__, "_tonesweep_recycling", False)
    assert not recycling.WorkerRecycling(0).too_big({"rss_mib": 1e9})  # 0: always reuse
    assert not recycling.WorkerRecycling(10).too_big({})  # no figure (a trial that never reported): reuse


def test_a_worker_that_grew_past_the_limit_is_not_reused(tmp_path, ray_head):
    """--worker-memory-mib: with a limit every stand-in worker passes, each trial runs in a fresh
    worker process and the sweep counts them; with 0, trials share their workers."""
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    [dataset] = make_datasets(tmp_path, ["bansuri"])
    pids = {}
    for limit in (1, 0):
        name = f"recycle{limit}"
        settings = {"datasets": [dataset], "trials": 4, "space": str(space), "steps": 20, "report_every": 10,
                    "name": name, "storage": str(tmp_path / "runs"), "max_params": 60_000, "seed": 3,
                    "scheduler": "none", "worker_memory_mib": limit}
        output = run_driver(tmp_path, settings, cluster=ray_head)
        log = (tmp_path / "fake.log").read_text()
        pids[limit] = re.findall(r"^start \S+ threads=\S+ pid=(\d+)$", log, re.M)
        (tmp_path / "fake.log").unlink()
        parent, _ = sweep_runs(mlflow_client(tmp_path), "bansuri", name)
        recycled = parent.data.metrics["workers_recycled"]
        if limit:
            assert len(pids[limit]) == 4 and len(set(pids[limit])) == 4, pids
            assert recycled >= 2 and "trial workers recycled" in output, (recycled, output[-2000:])
        else:
            assert len(pids[limit]) == 4 and len(set(pids[limit])) <= 3 and recycled == 0, (pids, recycled)


def check_child(client, child, parent) -> None:
    """One trial's run has the layout of docs/architecture.md, Section 3."""
    tags, metrics, status = child.data.tags, child.data.metrics, child.data.tags["tonesweep.status"]
    assert tags["mlflow.parentRunId"] == parent.info.run_id and tags["tonesweep.sweep"] == "t8"
    assert child.info.status == ("FINISHED" if status in ("FINISHED", "STOPPED") else "FAILED")
    # every config key, including those the space left to the trainer's defaults
    assert set(DEFAULTS) <= set(child.data.params)
    assert child.data.params["batch_size"] == str(DEFAULTS["batch_size"]) and child.data.params["steps"] == "40"
    assert len(tags["tonesweep.node_id"]) == 56 and "node_id" not in metrics  # the Ray node id (hex), a tag
    if status == "FAILED":
        assert "simulated trainer crash" in tags["tonesweep.failure_reason"]
    if status in ("FINISHED", "STOPPED"):
        history = client.get_metric_history(child.info.run_id, "val_loss")
        # a report every 10 of 40 steps; MO-ASHA's first rung is the first report (the default), where a stopped
        # trial ends with that one report; a finished one reports on to step 40
        assert len(history) >= (4 if status == "FINISHED" else 1) and sorted(m.step for m in history)[0] == 10
    if status == "FINISHED":
        for key in ("quality_float32", "quality_float16", "quality_uint8", "bytes_float32", "bytes_uint8",
                    "params", "train_time_s", "pitch_error_cents_float16", "loudness_error_db_uint8"):
            assert key in trial_metrics(metrics), key
        # the numbers a user compares at the top level, time and memory under cost/, the rest under detail/
        assert {"quality_float32", "bytes_uint8", "cost/train_time_s", "detail/params"} <= set(metrics)
        assert "train_time_s" not in metrics and "params" not in metrics
        assert max(m.step for m in client.get_metric_history(child.info.run_id, "val_loss")) == 40
        files = {a.path for folder in ("trial", "audio", "plots")
                 for a in client.list_artifacts(child.info.run_id, folder)}
        assert {"trial/metrics.json", "trial/config.json", "trial/weights.weights.h5", "audio/original.wav",
                "audio/resynth.wav", "plots/spectrogram.png"} <= files
        assert not any(path.startswith("trial/checkpoint") for path in files)


# ------------------------------------------------------------------ the real trainer


@pytest.mark.system
def test_real_trials_cover_gru_cnn_loudness_rms(tmp_path, request):
    """4 real trials (seed 3 draws all four decoder × feature pairs) with the default scheduler, through the
    CLI, on the Ray the sweep starts itself (what `make demo` runs)."""
    dataset = request.getfixturevalue("tiny_dataset")
    space = tmp_path / "space.toml"
    space.write_text(textwrap.dedent("""
        [hyperparameters.decoder]
        type = "choice"
        values = ["gru", "cnn"]
        [hyperparameters.feature]
        type = "choice"
        values = ["loudness", "rms"]
        [hyperparameters.learning_rate]
        type = "float"
        min = 3e-4
        max = 3e-3
        sampling = "log"
        [fixed]
        hidden = 16
        gru_units = 16
        conv_channels = 8
        conv_layers = 2
        conv_stacks = 1
        n_harmonics = 16
        n_noise_bands = 16
        frame_rate = 50
        batch_size = 2
    """))
    command = [sys.executable, "-m", "cli", "sweep", "--dataset", str(dataset), "--trials", "4",
               "--space", str(space), "--steps", "10", "--name", "real4", "--seed", "3",
               "--storage", str(tmp_path / "runs")]
    start = time.perf_counter()
    output = run_driver(tmp_path, {}, timeout=1200, module_args=command)
    client = mlflow_client(tmp_path)
    parent, children = sweep_runs(client, "bansuri", "real4")
    assert len(children) == 4 and parent.info.status == "FINISHED", output[-3000:]
    assert {(c.data.params["decoder"], c.data.params["feature"]) for c in children} == {
        ("gru", "loudness"), ("gru", "rms"), ("cnn", "loudness"), ("cnn", "rms")}
    statuses = [c.data.tags["tonesweep.status"] for c in children]
    assert set(statuses) <= {"FINISHED", "STOPPED"} and "FINISHED" in statuses, statuses
    for child in children:
        assert client.get_metric_history(child.info.run_id, "val_loss"), child.data.tags
        if child.data.tags["tonesweep.status"] == "FINISHED":
            assert "quality_uint8" in child.data.metrics and "bytes_float16" in child.data.metrics
    print(f"real 4-trial sweep: {time.perf_counter() - start:.0f} s wall")


def test_trial_workers_get_xla_s_persistent_cache_unless_it_is_off(tmp_path, monkeypatch):
    from search.tuner import worker_environment

    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    env = worker_environment(str(tmp_path / "xla"))
    assert env["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 --tf_xla_persistent_cache_directory={tmp_path / 'xla'}"
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert "TF_XLA_FLAGS" not in worker_environment("off") and "TF_XLA_FLAGS" not in worker_environment(None)
