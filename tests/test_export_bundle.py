"""`tonesweep export`: bundle contents, parity checks (training graph, Node + wasm), registry path.

The main bundle comes from the trainer's real `trained_trial` (GRU, loudness, 250 Hz) and the
registry test from `trained_cnn_trial` (causal CNN, RMS, 50 Hz, reverb). `make_trial` writes the
same out_dir layout with seeded random weights for tests that need many or odd models quickly
(parity does not depend on how well a model sounds).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cli.main import main as tonesweep
from support.stores import sqlite_store
from support.trials import make_trial

@pytest.fixture(scope="module")
def float32_bundle(trained_trial, tmp_path_factory) -> Path:
    """The trained GRU exported through the CLI from its trial folder (--run-id PATH), float32."""
    root = tmp_path_factory.mktemp("export")
    trial = trained_trial
    out = root / "bundle"
    code = tonesweep(["export", "--instrument", "bansuri", "--out", str(out), "--run-id", str(trial),
                      "--precision", "float32"])
    assert code == 0
    return out


def test_bundle_files_and_model_card(float32_bundle, trained_trial):
    card = json.loads((float32_bundle / "model-card.json").read_text())
    assert (float32_bundle / "saved_model" / "saved_model.pb").exists()
    model_json = float32_bundle / "tfjs" / "model.json"
    shards = sorted((float32_bundle / "tfjs").glob("group*-shard*.bin"))
    assert card["format"] == card["versions"]["format"] == "tonesweep-model-card/1"
    for key in ("instrument", "decoder", "feature", "sample_rate", "frame_rate", "frames_per_call",
                "input_scaling", "bytes", "quality", "run_id", "precision", "versions"):
        assert key in card, key
    assert (card["instrument"], card["decoder"], card["feature"], card["precision"]) == ("bansuri", "gru", "loudness", "float32")
    assert card["bytes"]["model_json"] == model_json.stat().st_size
    assert card["bytes"]["shards"] == sum(p.stat().st_size for p in shards)
    manifest = json.loads((trained_trial / "dataset_manifest.json").read_text())
    assert card["input_scaling"]["f0_midi"] == manifest["stats"]["250"]["f0_midi"]
    metrics = json.loads((trained_trial / "metrics.json").read_text())
    assert card["quality"]["value"] == metrics["quality_float32"]
    assert card["bytes"]["selector_estimate"] == metrics["bytes_float32"]
    assert card["versions"]["tensorflowjs_converter"] == "4.22.0"


def test_parity_bars_met_and_graph_is_lean(float32_bundle):
    card = json.loads((float32_bundle / "model-card.json").read_text())
    assert card["parity"]["tf_vs_training_db"] >= 100
    assert card["parity"]["tfjs_node_wasm"]["snr_db"] >= 100
    # lean: weights + small DSP constants, nothing audio-sized folded into the shards
    # (one [64000, 60] constant alone would be 15 MB)
    assert card["bytes"]["shards"] < card["bytes"]["selector_estimate"] + 60_000
    assert card["bytes"]["model_json"] < 300_000
    assert_no_large_constants(float32_bundle / "tfjs", card["layout"])


def test_the_live_graph_renders_a_block_per_call_as_whole_calls_render(float32_bundle):
    """The page's live mode renders with the bundle's live graph (tfjs/live/, 10 ms per call: 3 frames of the GRU
    at 250 Hz, unrolled, its state carried); export checked it against the bundle's graph in Node, and its
    weights are the same ones, stored once per weight."""
    from trainers.export.bundle import LIVE_DIR, LIVE_PARITY_DB, live_frames

    card = json.loads((float32_bundle / "model-card.json").read_text())
    live = card["live"]
    assert live["frames_per_call"] == live["layout"]["frames_per_call"] == live_frames(card["frame_rate"]) == 3
    assert live["model"] == f"{LIVE_DIR}/model.json" and f"{LIVE_DIR}/model.json" in card["files"]
    assert live["live_vs_whole_db"] >= LIVE_PARITY_DB
    model = json.loads((float32_bundle / LIVE_DIR / "model.json").read_text())
    ops = {node["op"] for node in model["modelTopology"]["node"]}
    assert "StatelessWhile" not in ops  # unrolled: TF.js runs it in execute(), not step by step
    # the recurrent kernel, read once per unrolled step, is stored once (per read, the shards would be larger)
    assert abs(live["bytes"]["shards"] - card["bytes"]["shards"]) < 0.05 * card["bytes"]["shards"]


def assert_no_large_constants(tfjs_dir: Path, layout: dict) -> None:
    """Besides the weights (``*ReadVariableOp*``), only vector-sized DSP constants: none larger
    than a hop, a FIR (2(N-1)) or the harmonics. The noise filter's DFT matrix [N, 2(N-1)] is
    built in-graph (safe_ops.impulse_response_graph), so finding it here means grappler folded
    it back; a frame-by-hop or audio-sized tensor would mean it folded something else."""
    from trainers.export.lean import is_trained_weight

    manifest = json.loads((tfjs_dir / "model.json").read_text())["weightsManifest"]
    constants = [(int(np.prod(w["shape"])), w["name"]) for group in manifest for w in group["weights"]
                 if not is_trained_weight(w["name"])]
    n_bands = layout["n_noise_bands"]
    assert max(constants)[0] <= max(layout["hop"], 2 * (n_bands - 1), layout["n_harmonics"]), max(constants)


def test_node_parity_recomputed_independently(float32_bundle):
    """Run the shipped TF.js model in Node and the shipped SavedModel on fresh inputs."""
    import tensorflow as tf

    from trainers.export import graph, tfjs
    from trainers.export.graph import Layout

    card = json.loads((float32_bundle / "model-card.json").read_text())
    inputs = graph.random_inputs(Layout.from_dict(card["layout"]), seed=11)
    fn = tf.saved_model.load(str(float32_bundle / "saved_model")).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    got, info = tfjs.run_node(float32_bundle / "tfjs", inputs, backend="wasm")
    assert info["backend"] == "wasm"
    assert set(got) == set(expected) == {"audio", "next_phase", "next_noise_tail", "next_state",
                                         "amplitudes", "harmonic_distribution", "noise_magnitudes"}
    assert graph.snr_db(expected["audio"], got["audio"]) >= 100
    assert graph.snr_db(expected["next_state"], got["next_state"]) >= 100


def test_signature_keyed_by_tensor_names_is_mapped_back(float32_bundle, tmp_path):
    """The converter sometimes keys outputs by the frozen graph's names (Identity_k:0, k-th output in
    sorted key order) and inputs by tensor names (f0_hz:0): both are mapped back to the signature keys."""
    from trainers.export.tfjs import restore_signature_keys

    model = json.loads((float32_bundle / "tfjs" / "model.json").read_text())
    outputs = sorted(model["signature"]["outputs"])
    model["signature"]["outputs"] = {("audio" if key == "audio" else f"Identity_{i}:0"): spec
                                     for i, (key, spec) in enumerate(sorted(model["signature"]["outputs"].items()))}
    model["signature"]["inputs"] = {f"{key}:0": spec for key, spec in model["signature"]["inputs"].items()}
    (tmp_path / "model.json").write_text(json.dumps(model))
    restore_signature_keys(tmp_path / "model.json", float32_bundle / "saved_model")
    restored = json.loads((tmp_path / "model.json").read_text())["signature"]
    assert sorted(restored["outputs"]) == outputs == ["amplitudes", "audio", "harmonic_distribution", "next_noise_tail",
                                                      "next_phase", "next_state", "noise_magnitudes"]
    assert restored["outputs"]["next_phase"] == json.loads((float32_bundle / "tfjs" / "model.json").read_text())[
        "signature"]["outputs"]["next_phase"]
    assert "f0_hz" in restored["inputs"]


def _register_champion(tracking_uri: str, trial: Path, precision: str) -> str:
    """A registry entry as results/registry.py writes it (docs §4): run with trial/ artifacts,
    version of tonesweep-bansuri with tags, alias champion. Returns the run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("tonesweep-bansuri", artifact_location=str(trial.parent / "artifacts"))
    run = client.create_run(experiment, tags={"tonesweep.role": "trial"})
    client.log_artifacts(run.info.run_id, str(trial), "trial")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("tonesweep-bansuri")
    source = f"{run.info.artifact_uri}/trial"
    tags = {"run_id": run.info.run_id, "precision": precision, "bytes": "1", "quality": "5.2", "tolerance": "0.05"}
    version = client.create_model_version("tonesweep-bansuri", source, run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias("tonesweep-bansuri", "champion", version.version)
    return run.info.run_id


def test_export_champion_from_registry_at_selected_precision(trained_cnn_trial, tmp_path, capsys):
    trial = tmp_path / "trial"
    shutil.copytree(trained_cnn_trial, trial, ignore=shutil.ignore_patterns("checkpoint", "audio"))  # §3: trial/
    uri = sqlite_store(tmp_path / "mlflow.db")
    run_id = _register_champion(uri, trial, "uint8")
    out = tmp_path / "bundle"
    assert tonesweep(["export", "--instrument", "bansuri", "--out", str(out), "--tracking-uri", uri]) == 0
    card = json.loads((out / "model-card.json").read_text())
    assert card["run_id"] == run_id and card["precision"] == "uint8" and card["decoder"] == "cnn"
    assert card["registry"]["version"] == "1"
    assert card["parity"]["tfjs_node_wasm"]["snr_db"] >= 100  # vs TF with the same dequantized weights
    manifest = json.loads((out / "tfjs" / "model.json").read_text())["weightsManifest"]
    weights = [w for group in manifest for w in group["weights"]]
    quantized = [w["name"] for w in weights if w.get("quantization", {}).get("dtype") == "uint8"]
    float_consts = [w for w in weights if "quantization" not in w and w["dtype"] == "float32"]
    from trainers.export.lean import is_trained_weight

    assert quantized and all(is_trained_weight(name) for name in quantized)  # weights only, never DSP constants
    n_bands = card["layout"]["n_noise_bands"]
    assert any(w["shape"] == [2 * (n_bands - 1)] for w in float_consts)  # DFT column gains: float32
    assert_no_large_constants(out / "tfjs", card["layout"])

    # the same run by id: the champion's precision still applies (it is that run)
    by_id = tmp_path / "by_id"
    assert tonesweep(["export", "--instrument", "bansuri", "--out", str(by_id), "--tracking-uri", uri,
                      "--run-id", run_id, "--skip-js-parity"]) == 0
    card = json.loads((by_id / "model-card.json").read_text())
    assert card["run_id"] == run_id and card["precision"] == "uint8" and card["parity"]["tfjs_node_wasm"] is None
    printed = capsys.readouterr()
    assert "bundle bytes" in printed.out
    assert "live mode: no live graph (a reverb model" in printed.out  # a reverb model's graph synthesizes
    assert "Downloading artifacts" not in printed.err  # MLflow's progress bars stay off the terminal


def test_missing_store_is_one_line_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'nothing.db'}"
    code = tonesweep(["export", "--instrument", "bansuri", "--out", str(tmp_path / "b"), "--tracking-uri", uri])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "nothing.db" in err and "--run-id" in err
    assert not (tmp_path / "nothing.db").exists()


def test_missing_champion_is_one_line_error(tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()  # creates the (empty) store
    capsys.readouterr()
    code = tonesweep(["export", "--instrument", "nosuch", "--out", str(tmp_path / "b"), "--tracking-uri", uri])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "tonesweep-nosuch@champion" in err and "--run-id" in err


def test_not_a_trial_folder_is_one_line_error(tmp_path, capsys):
    code = tonesweep(["export", "--instrument", "x", "--out", str(tmp_path / "b"), "--run-id", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "config.json" in err


def test_export_fails_loudly_below_the_bar(tmp_path, monkeypatch, capsys):
    """An unreachable bar must stop the export and leave no bundle behind."""
    from trainers.export import bundle

    trial = make_trial(tmp_path / "trial", seed=5, frame_rate=50)
    monkeypatch.setattr(bundle, "TF_PARITY_DB", 1e9)
    out = tmp_path / "bundle"
    code = tonesweep(["export", "--instrument", "bansuri", "--out", str(out), "--run-id", str(trial),
                      "--precision", "float16", "--skip-js-parity"])
    assert code == 1
    assert "FAILED parity" in capsys.readouterr().err  # errors go to stderr (issue 9)
    assert not out.exists()
