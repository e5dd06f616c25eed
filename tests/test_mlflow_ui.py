"""Browsing a sweep in the real MLflow UI (Chromium through Playwright), from the link `tonesweep ui`
prints, in a fresh browser profile: the mode, the runs table's columns and champion mark, the Models
tab's front, the parent run's plot, interactive view and listening page.

The sweep is written the way a sweep and `tonesweep pareto` write one (``results.synthetic`` in the
current metric spelling, an audio example on every trial that trained, the real `pareto` command), so
the test costs seconds of MLflow and a browser, not minutes of training. Screenshots go to
``$TONESWEEP_UI_SHOTS`` when it names a folder (docs/images/ holds the README's).
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import numpy as np
import pytest
import soundfile as sf
from mlflow import MlflowClient
from support.servers import START_S

from cli.main import main
from common.net import free_port
from results import browse
from results.synthetic import log_sweep, synthetic_trial
from support.stores import sqlite_store

pytestmark = pytest.mark.system


def small_sweep(tmp_path) -> tuple[str, str]:
    """A finished 10-trial sweep with audio, selected by `pareto`; returns (store URI, parent run id)."""
    uri = sqlite_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    rng = random.Random(7)
    trials = [synthetic_trial(rng, s) for s in ["FINISHED"] * 7 + ["STOPPED", "STOPPED", "FAILED"]]
    parent = log_sweep(client, "bansuri", "small", trials, flat_metrics=False)
    experiment_id = client.get_experiment_by_name("tonesweep-bansuri").experiment_id
    browse.write_landing_view(client, experiment_id)  # as a sweep does when it starts
    audio = tmp_path / "audio"
    audio.mkdir()
    tone = 0.3 * np.sin(2 * np.pi * 330 * np.arange(8000) / 16000)
    sf.write(str(audio / "original.wav"), tone, 16000)
    sf.write(str(audio / "resynth.wav"), 0.8 * tone, 16000)
    for run in client.search_runs([experiment_id], "tags.`tonesweep.role` = 'trial'"):
        if run.data.tags.get("tonesweep.status") in ("FINISHED", "STOPPED"):
            client.log_artifacts(run.info.run_id, str(audio), "audio")
        if run.data.tags.get("tonesweep.status") == "FINISHED":
            client.log_metric(run.info.run_id, "rtf_wasm", 20.0)  # the speed the cost model gives every trial
        if "bytes_float32" in run.data.metrics:  # the size every report carries, known before training
            client.log_metric(run.info.run_id, "model_bytes", run.data.metrics["bytes_float32"])
    assert main(["pareto", "--instrument", "bansuri", "--tracking-uri", uri, "--plot", str(tmp_path / "p.png")]) == 0
    return uri, parent


def test_a_sweep_browses_in_the_real_mlflow_ui(servers, tmp_path):
    from support.browser import CHROMIUM, HARNESS

    from common.node import PROJECT_ROOT, node_binary

    uri, parent = small_sweep(tmp_path)
    ui = servers("ui", "--port", str(free_port()), "--tracking-uri", uri, cwd=tmp_path)
    link = ui.wait_for("runs of bansuri: ", START_S).split(": ", 1)[1]
    assert link.endswith(f"workflowType=machine_learning&{browse.VIEW_QUERY}")
    shots = os.environ.get("TONESWEEP_UI_SHOTS") or str(tmp_path)
    shown = subprocess.run([node_binary(), str(HARNESS / "mlflow_browse_check.mjs"), link, "--chromium", CHROMIUM,
                            "--parent", parent, "--shots", shots],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert shown.returncode == 0, shown.stderr[-3000:]
    seen = json.loads(shown.stdout.strip().splitlines()[-1])

    runs = seen["runs"]
    assert runs["modelRegistryLink"] and not runs["genaiSidebar"], runs["url"]
    headers = " ".join(runs["headers"])
    for column in ("quality_float32", "model_bytes", "pitch_error_cents_float32", "rtf_wasm", "steps",
                   "tonesweep.status", "tonesweep.failure_reason", "tonesweep.champion"):
        assert column in headers, (column, runs["headers"])
    text = runs["text"]
    assert "small" in text and "STOPPED" in text and "FINISHED" in text  # the trials, expanded, with their status
    assert "models:/tonesweep-bansuri@champion" in text                  # the champion marked in the table

    charts = seen["charts"]  # chart mode opens on the size-vs-quality section, first
    assert charts["sections"][:2] == ["size vs quality", "(2)"] and charts["scatter"] >= 2, charts

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.get_experiment_by_name("tonesweep-bansuri").experiment_id
    front = [m for m in client.search_logged_models([experiment_id]) if m.tags["tonesweep.on_front"] == "true"]
    assert front and all(m.name in seen["models"]["text"] for m in front), seen["models"]["text"][:2000]

    artifacts = seen["artifacts"]["text"]
    for name in ("pareto.png", "size-vs-quality.html", "front.html"):
        assert name in artifacts, artifacts[:2000]
