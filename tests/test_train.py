"""Training a trial end to end on the tiny prepared dataset: it learns, it is deterministic,
it resumes exactly, it fails clearly on NaN, and the CLI writes the contract's files."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from trainers.model.config import ConfigError
from common.errors import UserError

# Small and fast: GRU-8 at 50 Hz frames, few harmonics; XLA off so each call traces in seconds.
TINY = {"decoder": "gru", "hidden": 8, "gru_units": 8, "fc_layers": 1, "n_harmonics": 8, "n_noise_bands": 8,
        "frame_rate": 50, "batch_size": 2, "learning_rate": 1e-3, "seed": 3}
METRIC_KEYS = {"status", "failure_reason", "steps", "train_time_s", "final_train_loss", "params", "bytes_float32",
               "bytes_float16", "bytes_uint8"} | {f"{m}_{p}" for m in ("quality", "pitch_error_cents", "loudness_error_db")
                                                  for p in ("float32", "float16", "uint8")}


def _weights(out_dir):
    from trainers.model.trained import load_trained

    _, model = load_trained(out_dir)
    return [v.numpy() for v in model.trainable_variables]


def test_trial_writes_the_contract_files(trained_trial):
    from trainers.model.size import size_report

    metrics = json.loads((trained_trial / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert metrics["status"] == "FINISHED" and metrics["failure_reason"] is None and metrics["steps"] == 40
    config = json.loads((trained_trial / "config.json").read_text())
    assert {k: metrics[k] for k in size_report(config)} == size_report(config)
    assert all(np.isfinite(metrics[k]) for k in METRIC_KEYS - {"status", "failure_reason"})
    for name in ("weights.weights.h5", "dataset_manifest.json", "audio/original.wav", "audio/resynth.wav"):
        assert (trained_trial / name).is_file(), name
    assert any((trained_trial / "checkpoint").iterdir())
    # quantization costs little at these sizes, but the numbers are re-measured, not copied
    assert metrics["quality_uint8"] != metrics["quality_float32"]
    assert metrics["quality_uint8"] == pytest.approx(metrics["quality_float32"], rel=0.1)


def test_it_learns(trained_trial, tiny_dataset):
    """40 steps take the held-out spectral loss well below the untrained model's."""
    from trainers.training.evaluate import evaluate
    from trainers.model.trained import build_model, load_trained
    from trainers.training.train import load_frames

    config, trained = load_trained(trained_trial)
    val = load_frames(tiny_dataset, "validation", config)
    import tensorflow as tf

    tf.keras.utils.set_random_seed(config["seed"])
    untrained = evaluate(build_model(config), val)["quality"]
    quality = json.loads((trained_trial / "metrics.json").read_text())["quality_float32"]
    assert quality < 0.7 * untrained, (quality, untrained)
    # evaluation is reproducible: same weights and data, same number
    assert evaluate(trained, val)["quality"] == pytest.approx(quality, rel=1e-5)


def test_cnn_with_reverb_trains_and_reloads(trained_cnn_trial):
    from trainers.model.trained import load_trained

    config, model = load_trained(trained_cnn_trial)
    assert config["decoder"] == "cnn" and model.reverb is not None
    assert json.loads((trained_cnn_trial / "metrics.json").read_text())["status"] == "FINISHED"
    f0 = np.full((1, 20), 300.0, np.float32)
    db = np.full((1, 20), -30.0, np.float32)
    audio = model.render(f0, db)
    assert audio.shape == (1, 20 * 320) and np.isfinite(audio).all()
    np.testing.assert_array_equal(audio, model.render(f0, db))


def test_xla_only_where_it_pays():
    """bench/xla_break_even.py (2026-12-08): with the loss and the sinusoids compiled apart, XLA for the whole
    step pays on 1-second windows (a GRU-64 from 55 steps) and never on whole 4-second examples."""
    from trainers.training.train import XLA_MAX_WINDOW_SECONDS, XLA_MIN_STEPS, use_xla

    assert XLA_MIN_STEPS == 200 and XLA_MAX_WINDOW_SECONDS == 1.0
    assert not use_xla(150, 1.0) and use_xla(200, 1.0) and use_xla(500, 0.5)
    assert not use_xla(200, 4.0) and not use_xla(10_000, 2.0)  # whole examples, longer windows: never


def test_training_windows_are_random_crops_drawn_from_seed_and_step(tiny_dataset, tmp_path):
    """crop_seconds: each step trains on a window of each example, drawn from (seed, step) so a rerun
    (or a resume) is exact; evaluation still renders whole examples."""
    from trainers.training.train import crop_frames, crop_offsets, train_trial

    assert crop_frames({"crop_seconds": 0.0, "frame_rate": 50}, 200) == 200
    assert crop_frames({"crop_seconds": 1.0, "frame_rate": 50}, 200) == 50
    assert crop_frames({"crop_seconds": 1.0, "frame_rate": 250}, 200) == 200  # never past the example
    starts = crop_offsets(200, 50, 64, seed=3, step=7)
    assert starts.min() >= 0 and starts.max() <= 150 and len(set(starts.tolist())) > 1
    np.testing.assert_array_equal(starts, crop_offsets(200, 50, 64, seed=3, step=7))
    assert not np.array_equal(starts, crop_offsets(200, 50, 64, seed=3, step=8))

    run = lambda name, **kw: train_trial(tiny_dataset, {**TINY, "steps": 2, **kw}, tmp_path / name,  # noqa: E731
                                         report_every=2, jit_compile=False, judge=lambda metrics: [])
    whole, cropped, again = run("whole"), run("crop", crop_seconds=0.5), run("again", crop_seconds=0.5)
    assert cropped["final_train_loss"] == again["final_train_loss"] != whole["final_train_loss"]
    assert math.isfinite(cropped["quality_float32"]) and cropped["quality_float32"] == again["quality_float32"]
    assert json.loads((tmp_path / "crop" / "config.json").read_text())["crop_seconds"] == 0.5


def test_deterministic_and_resumes_exactly(tiny_dataset, tmp_path):
    """Same seed -> same weights; 2 steps + resume to 4 == 4 steps straight (b starts fresh with
    a's seed, so a == b shows determinism and exact resume at once); reports on schedule, each after
    the trial's audio example (which leaves the training's numbers alone)."""
    from trainers.training.train import train_trial

    reports = {"a": [], "b": []}

    def reporter(name):
        def report(metrics):  # a trial the scheduler stops at this report has its audio example already
            assert (tmp_path / name / "audio" / "resynth.wav").is_file() and (tmp_path / name / "audio" / "original.wav").is_file()
            reports[name].append(metrics)
        return report

    run = lambda name, steps, **kw: train_trial(tiny_dataset, {**TINY, "steps": steps}, tmp_path / name,  # noqa: E731
                                                report=reporter(name), report_every=2, jit_compile=False, **kw)
    asked = []
    a = run("a", 4)
    run("b", 2)
    b = run("b", 4, judge=lambda metrics: asked.append(dict(metrics)) or ["uint8"])  # resumes at step 2
    assert [r["step"] for r in reports["a"]] == [2, 4] and [r["step"] for r in reports["b"]] == [2, 4]
    assert set(reports["a"][0]) == {"step", "train_loss", "val_loss", "elapsed_s", "first_step_s", "first_call_s"}
    assert reports["b"] == [dict(r, elapsed_s=pytest.approx(r["elapsed_s"], abs=1e9),
                                 first_step_s=pytest.approx(r["first_step_s"], abs=1e9),
                                 first_call_s=pytest.approx(r["first_call_s"], abs=1e9)) for r in reports["a"]]
    assert 0 < reports["a"][0]["first_step_s"] < reports["a"][0]["elapsed_s"] + 120  # start-up, then steps
    assert 0 < a["first_call_s"] <= a["first_step_s"] and a["first_call_s"] <= a["train_time_s"]
    assert a["eval_time_s"] > 0 and a["examples_time_s"] > 0
    for x, y in zip(_weights(tmp_path / "a"), _weights(tmp_path / "b")):
        np.testing.assert_array_equal(x, y)
    assert a["final_train_loss"] == b["final_train_loss"]
    assert a["quality_float32"] == b["quality_float32"] and a["steps"] == b["steps"] == 4
    # the judge saw the size report and the float32 evaluation; only the precision it named was evaluated
    assert len(asked) == 1 and {"bytes_uint8", "rtf_wasm", "quality_float32", "pitch_error_cents_float32"} <= set(asked[0])
    assert "quality_float16" not in asked[0] and "quality_float16" not in b and "pitch_error_cents_float16" not in b
    assert b["quality_uint8"] == a["quality_uint8"] and {"quality_float16", "quality_uint8"} <= set(a)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["quality_uint8"] == b["quality_uint8"]
    again = run("a", 4)  # a finished trial resumes to the same end state
    assert again["final_train_loss"] == a["final_train_loss"] and again["quality_float32"] == a["quality_float32"]
    with pytest.raises(UserError, match="checkpoint does not fit this config"):
        train_trial(tiny_dataset, {**TINY, "gru_units": 4, "steps": 6}, tmp_path / "a", jit_compile=False)


def test_the_first_step_after_a_deadline_reports_at_once(tiny_dataset, tmp_path):
    """A sweep's time budget (search.budget) hands the trainer its deadline: the first step that ends after it
    reports at once, between the regular reports, so that the sweep's stopper can end the trial there; once."""
    import time

    from trainers.training.train import train_trial

    steps: dict[str, list[int]] = {}

    def run(name: str, deadline: float) -> None:
        seen = steps.setdefault(name, [])
        train_trial(tiny_dataset, {**TINY, "steps": 4}, tmp_path / name, report=lambda m: seen.append(m["step"]),
                    report_every=2, jit_compile=False, judge=lambda metrics: [], deadline=deadline)

    run("passed", time.time() - 1.0)
    run("ahead", time.time() + 3600.0)
    assert steps == {"passed": [1, 2, 4], "ahead": [2, 4]}


def test_a_later_trial_of_an_architecture_reuses_its_compiled_step_and_gives_the_same_numbers(tiny_dataset, tmp_path):
    """A reused worker keeps each architecture's model and compiled step (ArchitectureKit): a trial with
    another seed, learning rate, clipping and feature traces nothing, and the first trial again gives
    the very same weights and numbers."""
    from trainers.training import train

    def run(name: str, **changes) -> dict:
        return train.train_trial(tiny_dataset, {**TINY, "steps": 2, **changes}, tmp_path / name, jit_compile=False,
                                 report=lambda result: None)  # reports: the validation loss runs too

    first = run("first")
    kit = list(train._KITS.values())[-1]  # the kit this architecture's trials share
    other = run("other", seed=5, learning_rate=2e-3, grad_clip=1.0, feature="rms")
    again = run("again")
    assert list(train._KITS.values())[-1] is kit and kit.trials >= 3
    assert kit.step.experimental_get_tracing_count() == 1 and kit.val_loss.experimental_get_tracing_count() == 1
    assert other["final_train_loss"] != first["final_train_loss"]
    assert again["final_train_loss"] == first["final_train_loss"] and again["quality_float32"] == first["quality_float32"]
    for x, y in zip(_weights(tmp_path / "first"), _weights(tmp_path / "again")):
        np.testing.assert_array_equal(x, y)


def test_architectures_share_one_traced_loss_and_step_as_with_the_loss_taped_along():
    """The step takes the spectral loss and its gradient from trainers.training.loss, traced once per
    process and shape: another architecture's step traces only its decoder and synth. Chaining that
    gradient into the tape gives the numbers of the loss taped with the rest, bit for bit."""
    import tensorflow as tf

    from trainers.model import synth
    from trainers.model.config import validate_config
    from trainers.model.trained import build_model, make_loss
    from trainers.training.loss import spectral_loss_and_gradient
    from trainers.training.train import make_train_step

    def taped_along(model, optimizer, clip):  # the step as it was: the loss inside the tape
        loss_fn, variables = make_loss(), model.trainable_variables

        @tf.function(autograph=False)
        def step(f0_hz, feature_db, audio, noise):
            with tf.GradientTape() as tape:
                loss = loss_fn(audio, model.synthesize(f0_hz, feature_db, noise, fast_harmonics=True))
            grads, _ = tf.clip_by_global_norm(tape.gradient(loss, variables), clip)
            optimizer.apply_gradients(zip(grads, variables))
            return loss
        return step

    def trained(config, make_step, steps=3):
        tf.keras.utils.set_random_seed(config["seed"])
        model = build_model(config)
        optimizer = tf.keras.optimizers.Adam(config["learning_rate"])
        optimizer.build(model.trainable_variables)
        step = make_step(model, optimizer, 1.0)
        rng = np.random.default_rng(0)
        losses = []
        for i in range(steps):
            f0 = tf.constant(rng.uniform(200.0, 400.0, (3, 50, 1)), tf.float32)  # batch 3: a shape no other test uses
            feature = tf.constant(rng.uniform(-60.0, -20.0, (3, 50, 1)), tf.float32)
            audio = tf.constant(rng.uniform(-0.3, 0.3, (3, 16000)), tf.float32)
            losses.append(float(step(f0, feature, audio, synth.white_noise(3, 16000, (1, i)))))
        return losses, [v.numpy() for v in model.trainable_variables]

    config = validate_config(TINY)
    shared = lambda model, optimizer, clip: make_train_step(model, optimizer, clip, jit_compile=False, xla_loss=False)
    before = spectral_loss_and_gradient(jit_compile=False).experimental_get_tracing_count()
    losses, weights = trained(config, shared)
    traced = spectral_loss_and_gradient(jit_compile=False).experimental_get_tracing_count()
    assert traced == before + 1
    reference_losses, reference_weights = trained(config, taped_along)
    assert losses == reference_losses
    for x, y in zip(weights, reference_weights, strict=True):
        np.testing.assert_array_equal(x, y)

    trained(validate_config({**TINY, "decoder": "cnn", "conv_channels": 8, "n_harmonics": 16}), shared, steps=1)
    assert spectral_loss_and_gradient(jit_compile=False).experimental_get_tracing_count() == traced

    # The trials' step compiles that loss and gradient with XLA: losses equal to float32 rounding; the weights
    # as far apart as Adam's first steps make gradients that differ in rounding (each moves a weight by up to
    # about the learning rate, whatever the gradient's size).
    xla = lambda model, optimizer, clip: make_train_step(model, optimizer, clip, jit_compile=False)
    xla_losses, xla_weights = trained(config, xla)
    assert xla_losses != losses  # another program, not the same one
    np.testing.assert_allclose(xla_losses, losses, rtol=1e-5)
    for x, y in zip(xla_weights, weights, strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=2 * 3 * config["learning_rate"])


def test_the_hypervolume_reference_loss_is_the_eager_loss_bit_for_bit(tiny_dataset):
    """trainers.training.reference traces the untrained model's loss with Grappler off: the same number as
    running it eagerly (what earlier sweeps recorded), and Grappler is on again afterwards."""
    import tensorflow as tf

    from common.constants import VAL_NOISE_SEED
    from trainers.model import synth
    from trainers.model.config import validate_config
    from trainers.model.trained import build_model, make_loss
    from trainers.training.reference import untrained_loss
    from trainers.training.train import VAL_SUBSET, load_frames

    traced = untrained_loss(tiny_dataset)
    assert not tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)
    config = validate_config({"frame_rate": 250, "seed": 0})
    val = load_frames(tiny_dataset, "validation", config)
    n = min(VAL_SUBSET, len(val["audio"]))
    tf.keras.utils.set_random_seed(0)
    model = build_model(config)
    noise = synth.white_noise(n, val["audio"].shape[1], (VAL_NOISE_SEED, 0))
    eager = make_loss()(tf.constant(val["audio"][:n]),
                        model.synthesize(tf.constant(val["f0_hz"][:n]), tf.constant(val["feature_db"][:n]), noise))
    assert traced == float(eager) and math.isfinite(traced)


def test_nan_loss_writes_failed_metrics_and_raises(tiny_dataset, tmp_path, monkeypatch):
    from trainers.training import train

    real_load = train.load_frames

    def poisoned(dataset_dir, split, config):
        frames = real_load(dataset_dir, split, config)
        frames["feature_db"][:] = np.nan
        return frames

    monkeypatch.setattr(train, "load_frames", poisoned)
    with pytest.raises(train.TrialFailed, match="non-finite training loss") as err:
        train.train_trial(tiny_dataset, {**TINY, "steps": 3}, tmp_path / "nan", jit_compile=False)
    metrics = json.loads((tmp_path / "nan" / "metrics.json").read_text())
    assert metrics["status"] == "FAILED" and metrics["failure_reason"] == err.value.reason
    assert metrics["steps"] == 0 and metrics["final_train_loss"] is None
    assert not (tmp_path / "nan" / "weights.weights.h5").exists()


def test_bad_config_or_dataset_fails_before_training(tiny_dataset, tmp_path):
    from trainers.training.train import train_trial

    with pytest.raises(ConfigError, match="^n_harmonics:"):
        train_trial(tiny_dataset, {"n_harmonics": 0}, tmp_path / "x")
    with pytest.raises(UserError):
        train_trial(tmp_path / "no_dataset", TINY, tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cli_train(tiny_dataset, tmp_path, capsys):
    from cli.main import main

    config = tmp_path / "trial.toml"
    config.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**TINY, "steps": 2}.items()) + "\n")
    assert main(["train", "--dataset", str(tiny_dataset), "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    assert "finished 2 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["status"] == "FINISHED"
    config.write_text('decoder = "transformer"\n')
    assert main(["train", "--dataset", str(tiny_dataset), "--config", str(config), "--out", str(tmp_path / "o2")]) == 2
    assert "decoder: 'transformer' is not allowed" in capsys.readouterr().err


@pytest.mark.slow
def test_longer_training_tracks_pitch(tiny_dataset, tmp_path):
    """A few hundred steps: pitch of the resynthesis within 50 cents, loss far below untrained."""
    from trainers.training.train import train_trial

    config = {"decoder": "gru", "hidden": 64, "gru_units": 64, "n_harmonics": 60, "n_noise_bands": 65,
              "batch_size": 8, "learning_rate": 2e-3, "steps": 400}
    metrics = train_trial(tiny_dataset, config, tmp_path / "long", report_every=100,
                          report=lambda d: print("progress", d))
    print("metrics", {k: metrics[k] for k in sorted(metrics) if k.startswith(("quality", "pitch", "loud", "train"))})
    assert metrics["pitch_error_cents_float32"] < 50.0
    assert metrics["pitch_error_cents_uint8"] < 50.0
    assert metrics["quality_float32"] < 8.0


@pytest.mark.slow
def test_threads_are_set_before_tf_starts():
    code = ("from trainers.training.train import configure_threads; configure_threads(1); import tensorflow as tf; "
            "tf.constant(1.0); print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["1", "1"]
