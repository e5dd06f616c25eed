"""Browsing a sweep in MLflow: metric spelling, the landing view, the interactive size-vs-quality page,
the front as logged models (synthetic stores; the real UI is driven in tests/test_mlflow_ui.py)."""

import json
import random
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from cli.main import main
from results import browse, layout
from results.front_models import ON_FRONT_TAG, PRECISION_TAG
from results.report import front_rows
from results.synthetic import log_sweep, synthetic_trial
from results.table import load_table
from server.mlflow_server import instrument_links
from support.stores import sqlite_store


def test_a_trial_logs_the_compared_numbers_at_the_top_and_the_rest_in_sections():
    assert layout.trial_metric_key("quality_uint8") == "quality_uint8"
    assert layout.trial_metric_key("rtf_wasm") == "rtf_wasm" and layout.trial_metric_key("val_loss") == "val_loss"
    assert layout.trial_metric_key("eval_time_s") == "cost/eval_time_s"
    assert layout.trial_metric_key("peak_rss_mib") == "cost/peak_rss_mib"
    assert layout.trial_metric_key("loudness_error_db_float16") == "detail/loudness_error_db_float16"
    names = ["bytes_gzip_uint8", "first_call_s", "steps", "weight_tensors", "pitch_error_cents_float32"]
    assert [layout.trial_metric_name(layout.trial_metric_key(n)) for n in names] == names
    assert layout.trial_metric_name("eval_time_s") == "eval_time_s"  # a sweep logged before the sections


def _trials(seed: int):
    rng = random.Random(seed)
    return [synthetic_trial(rng, s) for s in ["FINISHED"] * 6 + ["FAILED", "STOPPED"]]


def test_sweeps_logged_with_either_spelling_read_the_same(tmp_path):
    client = MlflowClient(tracking_uri=sqlite_store(tmp_path / "mlflow.db"))
    log_sweep(client, "flute", "flat", _trials(5))
    log_sweep(client, "flute", "sections", _trials(5), flat_metrics=False)
    [logged] = [r for r in client.search_runs([client.get_experiment_by_name("tonesweep-flute").experiment_id],
                                              "tags.`tonesweep.sweep` = 'sections'") if "cost/train_time_s" in r.data.metrics][:1]
    assert "train_time_s" not in logged.data.metrics
    _, flat = load_table(client, "flute", "flat")
    _, sections = load_table(client, "flute", "sections")
    columns = ["precision", "bytes", "bytes_weights", "quality", "pitch_error_cents", "loudness_error_db",
               "train_time_s", "params", "status", "candidate"]
    assert flat[columns].fillna(-1).values.tolist() == sections[columns].fillna(-1).values.tolist()


@pytest.fixture()
def swept(tmp_path):
    uri = sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    parent = log_sweep(client, "flute", "s1", _trials(11), flat_metrics=False)
    for run in client.search_runs([client.get_experiment_by_name("tonesweep-flute").experiment_id]):
        if run.info.run_id != parent:  # named as a sweep names them, dots included
            client.set_tag(run.info.run_id, "mlflow.runName", f"cnn-rms-{run.info.run_id[:2]}.5k-{run.info.run_id[-4:]}")
    return uri, client, parent


def test_pareto_logs_the_interactive_view_and_the_front_as_models(swept, tmp_path, capsys):
    uri, client, parent = swept
    assert main(["pareto", "--instrument", "flute", "--tracking-uri", uri, "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "size-vs-quality.html" in out and "logged model(s)" in out
    page = client.download_artifacts(parent, "pareto/size-vs-quality.html", str(tmp_path))
    text = Path(page).read_text(encoding="utf-8")
    data = json.loads(re.search(r"const D = (\{.*?\});\n", text).group(1))
    sweep, table = load_table(client, "flute", "s1")
    assert len(data["points"]) == int(table["candidate"].sum())
    front = front_rows(table)
    assert {(p["run_id"], p["precision"]) for p in data["points"] if p["front"]} == set(
        zip(front["run_id"], front["precision"]))
    [winner] = [p for p in data["points"] if p["winner"]]
    assert "<script src" not in text and "http" not in text.replace("http://www.w3.org/2000/svg", "")

    models = client.search_logged_models([sweep.experiment_id])
    on_front = {(m.source_run_id, m.tags[PRECISION_TAG]) for m in models if m.tags[ON_FRONT_TAG] == "true"}
    assert on_front == set(zip(front["run_id"], front["precision"]))
    for model in models:
        assert model.tags["mlflow.model.isExternal"] == "true" and model.tags["tonesweep.source"].endswith("/trial")
        assert re.fullmatch(r"cnn-rms-\w\w_5k-\w{4}-(float32|float16|uint8)", model.name), model.name
        quality = {m.key: m.value for m in model.metrics}["front/quality"]
        row = table[(table["run_id"] == model.source_run_id) & (table["precision"] == model.tags[PRECISION_TAG])]
        assert quality == pytest.approx(float(row["quality"].iloc[0]))
    champion = client.get_model_version_by_alias("tonesweep-flute", "champion")
    assert champion.run_id == winner["run_id"]
    linked = client.get_logged_model(champion.tags["model_id"])  # the version names its model, the model the version
    assert linked.source_run_id == winner["run_id"] and linked.tags[PRECISION_TAG] == winner["precision"]
    assert json.loads(linked.tags["mlflow.modelVersions"]) == [{"name": "tonesweep-flute", "version": champion.version}]

    # a second pareto adds no second model for the same candidates
    assert main(["pareto", "--instrument", "flute", "--tracking-uri", uri, "--plot", str(tmp_path / "p.png")]) == 0
    assert len(client.search_logged_models([sweep.experiment_id])) == len(models)


def test_the_legend_never_covers_a_point(swept, tmp_path):
    from results.plot import draw, plot_data
    from results.select import select_smallest

    _, client, _ = swept
    _, table = load_table(client, "flute", "s1")
    figure = draw(plot_data(table, select_smallest(table), "flute", "s1"))
    figure.canvas.draw()
    [axes] = figure.axes
    legend = axes.get_legend().get_window_extent()
    assert not legend.overlaps(axes.get_window_extent())


def test_the_landing_view_groups_trials_by_sweep_with_the_compared_columns(swept):
    uri, client, _ = swept
    experiment = client.get_experiment_by_name("tonesweep-flute")
    assert not browse.has_landing_view(experiment)  # logged the way sweeps before the view were
    [(instrument, url)] = instrument_links(uri, "http://127.0.0.1:5000")
    assert instrument == "flute" and url.endswith(f"/runs?workflowType=machine_learning&{browse.VIEW_QUERY}")
    view = json.loads(client.get_experiment(experiment.experiment_id).tags[browse.VIEW_TAG])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "tonesweep.sweep"}]
    assert "metrics.`quality_float32`" in view["selectedColumns"] and "tags.`tonesweep.status`" in view["selectedColumns"]
    assert view["orderByKey"] == "metrics.`quality_float32`" and view["orderByAsc"] is True


def test_the_tracker_logs_sections_and_a_stopped_trials_audio(tmp_path):
    import numpy as np
    import soundfile as sf

    from results.tracking import (
        TrialTracker,
        child_runs,
        ensure_experiment,
        make_client,
        start_parent_run,
    )

    uri = sqlite_store(tmp_path / "mlflow.db")
    client = make_client(uri)
    experiment_id = ensure_experiment(client, "flute")
    parent = start_parent_run(client, experiment_id, "s", "flute", "flute@abc", "random", {"trials": 2})
    tracker = TrialTracker(uri, experiment_id, parent, "s", "flute")
    for trial_id in ("stopped", "failed"):
        out = tmp_path / trial_id
        (out / "audio").mkdir(parents=True)
        for name in ("original.wav", "resynth.wav"):
            sf.write(str(out / "audio" / name), np.zeros(1600, dtype=np.float32), 16000)
        tracker.open(trial_id, {"decoder": "cnn"})
        tracker.curve(trial_id, {}, {"step": 55, "val_loss": 0.5, "train_loss": 0.6})
    # a trial stopped at a rung: its last report, with the folder it wrote its audio example to
    tracker.close("stopped", {}, {"step": 55, "val_loss": 0.5, "eval_time_s": 1.0, "model_bytes": 4e4,
                                  "out_dir": str(tmp_path / "stopped")}, errored=False)
    tracker.close("failed", {}, {"step": 55, "out_dir": str(tmp_path / "failed")}, errored=True, error_text="boom")
    runs = {r.data.tags["tonesweep.trial_id"]: r for r in child_runs(client, experiment_id, parent)}
    stopped = runs["stopped"]
    assert stopped.data.tags["tonesweep.status"] == "STOPPED"
    assert "stopped early by the scheduler at step 55" in stopped.data.tags["tonesweep.failure_reason"]
    assert {"cost/eval_time_s", "model_bytes", "val_loss"} <= set(stopped.data.metrics)
    assert sorted(a.path for a in client.list_artifacts(stopped.info.run_id, "audio")) == [
        "audio/original.wav", "audio/resynth.wav"]
    assert client.list_artifacts(runs["failed"].info.run_id) == []
