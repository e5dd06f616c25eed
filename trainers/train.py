"""One trial: train a decoder + ddsp synth on a prepared dataset, evaluate it, write `out_dir/`.

Contract (docs/architecture.md, section 2):

    train_trial(dataset_dir, config, out_dir, report=None, report_every=50, threads=None) -> metrics
    load_trained(out_dir) -> (config, TrainedModel)
    cli_train(args)  # `tonesweep train --dataset DIR --config FILE.toml --out DIR`

Failure rule for callers (the sweep): a bad config or dataset raises `UserError` before any
training; a NaN/inf loss writes `metrics.json` with status "FAILED" and `failure_reason`, then
raises `TrialFailed(reason)`. A successful trial returns the metrics dict (status "FINISHED").

Training is deterministic for a seed: initial weights from `tf.keras.utils.set_random_seed`,
op determinism on, batch indices from numpy's generator seeded with (seed, step), synthesis
noise from a stateless RNG seeded with (seed, step). Hence resuming from `checkpoint/` at step k
continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from trainers import synth
from trainers.config import load_config_file, validate_config
from trainers.dataset import load_split, read_manifest
from trainers.ddsp_compat import ddsp
from trainers.errors import UserError
from trainers.files import write_json_atomic
from trainers.model import build_decoder, preprocess_inputs
from trainers.size import reverb_length, size_report

log = logging.getLogger(__name__)
keras = tf.keras

VAL_SUBSET = 4  # validation examples behind the reported val_loss (the metric ASHA stops on)
VAL_NOISE_SEED = 1234  # fixed synthesis noise for every validation/evaluation render
FEATURE_KEYS = {"loudness": "loudness_db", "rms": "rms_db"}
# XLA for the training step: -20..40% CPU per step for ~4 s CPU of compiling once per trial,
# a net gain beyond ~60 steps (measured with bench/train_throughput.py's configuration).
JIT_COMPILE = True


class TrialFailed(RuntimeError):
    """Training diverged (NaN/inf loss). `metrics.json` was written with status FAILED first."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------- model


class ReverbIR(keras.layers.Layer):
    """Holds the trainable reverb impulse response [n] (init N(0, 1e-6) as ddsp's Reverb)."""

    def __init__(self, n_samples: int, **kwargs):
        super().__init__(**kwargs)
        self.ir = self.add_weight(
            name="ir", shape=(n_samples,), initializer=keras.initializers.RandomNormal(stddev=1e-6)
        )
        self.built = True  # the weight exists now; nothing depends on the input shape

    def call(self, _unused=None):
        return self.ir


class TrainedModel(keras.Model):
    """Decoder (+ reverb IR) and the synth: frames in, audio out.

    `decoder` is the Keras functional model of trainers.model.build_decoder; `reverb`
    (a ReverbIR layer) exists only when config["reverb"].
    """

    def __init__(self, config: dict[str, Any], **kwargs):
        super().__init__(name="tonesweep_model", **kwargs)
        self.config = config
        self.decoder = build_decoder(config)
        n_ir = reverb_length(config)
        self.reverb = ReverbIR(n_ir, name="reverb") if n_ir else None
        self._compiled_synthesize = None

    def controls(self, f0_hz: tf.Tensor, feature_db: tf.Tensor) -> dict[str, tf.Tensor]:
        """f0_hz, feature_db [B,T,1] -> synth controls (see trainers.synth.get_controls)."""
        f0_scaled, feature_scaled = preprocess_inputs(f0_hz, feature_db)
        raw = self.decoder([f0_scaled, feature_scaled])
        return synth.get_controls(raw, f0_hz, self.config["n_harmonics"])

    def synthesize(self, f0_hz: tf.Tensor, feature_db: tf.Tensor, noise: tf.Tensor,
                   fast_harmonics: bool = False) -> tf.Tensor:
        """f0_hz, feature_db [B,T,1], noise [B,n_samples] -> audio [B,n_samples] (differentiable).

        The reference synth (ddsp's Harmonic) unless `fast_harmonics` (training step only; see
        trainers.synth.harmonic_synthesis_fast).
        """
        ir = self.reverb.ir if self.reverb is not None else None
        controls = self.controls(f0_hz, feature_db)
        return synth.get_signal(controls, int(noise.shape[-1]), noise, ir, fast_harmonics=fast_harmonics)

    def call(self, inputs):
        f0_hz, feature_db, noise = inputs
        return self.synthesize(f0_hz, feature_db, noise)

    def render(self, f0_hz: np.ndarray, feature_db: np.ndarray, seconds_per_frame: float | None = None,
               noise_seed: int = VAL_NOISE_SEED) -> np.ndarray:
        """Frames -> audio, for evaluation and listening.

        Args:
          f0_hz, feature_db: [B, T] or [B, T, 1] frames at config["frame_rate"].
          noise_seed: the stateless noise seed; the same seed gives the same audio.
        Returns:
          audio [B, T * 16000 / frame_rate] float32 numpy.
        """
        f0_hz, feature_db = _frames3(f0_hz), _frames3(feature_db)
        batch, frames = f0_hz.shape[0], f0_hz.shape[1]
        n_samples = frames * synth.SAMPLE_RATE // self.config["frame_rate"]
        noise = synth.white_noise(batch, n_samples, (noise_seed, 0))
        if self._compiled_synthesize is None:  # graph mode: ~10x faster than eager for the ddsp synth
            self._compiled_synthesize = tf.function(self.synthesize)  # ddsp needs static shapes: no relaxing
        return self._compiled_synthesize(tf.constant(f0_hz), tf.constant(feature_db), noise).numpy()

    def build_all(self, frames: int = 8) -> None:
        """Create every weight by running a tiny forward pass (needed before loading weights)."""
        hop = synth.SAMPLE_RATE // self.config["frame_rate"]
        zeros = tf.zeros([1, frames, 1])
        self((zeros + 220.0, zeros - 40.0, tf.zeros([1, frames * hop])))


def _frames3(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[..., np.newaxis] if x.ndim == 2 else x


def build_model(config: dict[str, Any]) -> TrainedModel:
    """A freshly initialized model for a validated config, with all weights created."""
    model = TrainedModel(config)
    model.build_all()
    return model


def load_trained(out_dir: str | Path) -> tuple[dict[str, Any], TrainedModel]:
    """Rebuild the model of a finished trial from `out_dir/config.json` + `weights.weights.h5`."""
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / "config.json", out_dir / "weights.weights.h5"
    for path in (config_path, weights_path):
        if not path.exists():
            raise UserError(f"{path}: missing; pass the out_dir of a finished `tonesweep train` trial")
    config = validate_config(json.loads(config_path.read_text()))
    model = build_model(config)
    model.load_weights(str(weights_path))
    return config, model


# ----------------------------------------------------------------------------- data


def load_frames(dataset_dir: str | Path, split: str, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The split as model inputs: f0_hz, feature_db [N,T,1], audio [N,n_samples], plus
    f0_confidence and loudness_db [N,T] for evaluation. Non-finite f0 (unvoiced) becomes 0 Hz."""
    data = load_split(dataset_dir, split, config["frame_rate"])
    if len(data["audio"]) == 0:
        raise UserError(f"{dataset_dir}: the {split} split is empty; prepare more audio or a larger validation fraction")
    f0 = np.nan_to_num(data["f0_hz"].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return {
        "f0_hz": f0[..., np.newaxis],
        "feature_db": data[FEATURE_KEYS[config["feature"]]].astype(np.float32)[..., np.newaxis],
        "audio": data["audio"].astype(np.float32),
        "f0_confidence": data["f0_confidence"].astype(np.float32),
        "loudness_db": data["loudness_db"].astype(np.float32),
    }


def check_dataset(dataset_dir: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """Read the manifest and check it can serve this config; returns the manifest."""
    manifest = read_manifest(dataset_dir)
    if int(manifest.get("sample_rate", synth.SAMPLE_RATE)) != synth.SAMPLE_RATE:
        raise UserError(f"{dataset_dir}: sample_rate {manifest['sample_rate']} unsupported; prepare the dataset at 16000 Hz")
    rates = [int(r) for r in manifest.get("frame_rates", [])]
    if config["frame_rate"] not in rates:
        raise UserError(
            f"frame_rate: {config['frame_rate']} Hz is not in the dataset's frame_rates {rates}; "
            f"use one of those or re-run `tonesweep prepare --frame-rates`"
        )
    return manifest


def batch_indices(n_examples: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Example indices of training step `step`: a pure function of (seed, step), so resume is exact."""
    rng = np.random.default_rng([seed, step])
    return rng.choice(n_examples, size=batch_size, replace=n_examples < batch_size)


# ----------------------------------------------------------------------------- training


def configure_threads(threads: int | None) -> None:
    """Set TF intra/inter-op pools to `threads` (both). Must run before TF's first op in the
    process; if TF is already initialized, log a warning and carry on with its pools."""
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as err:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != threads:
            log.warning("cannot set TF threads to %s (TF already initialized, keeping %s): %s", threads, current, err)


def make_loss() -> "ddsp.losses.SpectralLoss":
    """ddsp's multi-scale spectral loss: FFT 2048..64, 75% overlap, L1 on mag + log-mag."""
    return ddsp.losses.SpectralLoss(
        fft_sizes=(2048, 1024, 512, 256, 128, 64), loss_type="L1", mag_weight=1.0, logmag_weight=1.0
    )


def make_train_step(model: TrainedModel, optimizer, loss_fn, grad_clip: float, jit_compile: bool = JIT_COMPILE,
                    fast_harmonics: bool = True):
    """A compiled step: (f0_hz [B,T,1], feature_db [B,T,1], audio [B,n], noise [B,n]) -> loss.

    Spectral loss -> gradients -> global-norm clip -> Adam, in one tf.function traced once
    (fixed shapes). `fast_harmonics` uses the reorganized oscillator bank (synth.harmonic_synthesis_fast),
    the main speed-up (bench/train_throughput.py). The noise is an input, generated outside, so the
    step's output does not depend on XLA's RNG when `jit_compile` is on.
    """
    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(f0_hz, feature_db, audio, noise):
        with tf.GradientTape() as tape:
            loss = loss_fn(audio, model.synthesize(f0_hz, feature_db, noise, fast_harmonics=fast_harmonics))
        grads = tape.gradient(loss, variables)
        grads, _ = tf.clip_by_global_norm(grads, grad_clip)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def make_eval_loss(model: TrainedModel, loss_fn, jit_compile: bool = False):
    """Compiled (f0_hz, feature_db, audio, noise) -> spectral loss with the reference synth, no gradients.

    No XLA by default: it runs once per report, and compiling (~4 s CPU) costs more than it saves.
    """

    @tf.function(jit_compile=jit_compile)
    def evaluate(f0_hz, feature_db, audio, noise):
        return loss_fn(audio, model.synthesize(f0_hz, feature_db, noise))

    return evaluate


class _Trainer:
    """Mutable training state of one trial; `run()` does the loop. Kept private: use train_trial."""

    def __init__(self, config, train, val, out_dir: Path, jit_compile: bool):
        self.config, self.train, self.out_dir = config, train, out_dir
        tf.keras.utils.set_random_seed(config["seed"])
        self.model = build_model(config)
        self.optimizer = keras.optimizers.Adam(learning_rate=config["learning_rate"])
        self.optimizer.build(self.model.trainable_variables)
        loss_fn = make_loss()
        self.step_fn = make_train_step(self.model, self.optimizer, loss_fn, config["grad_clip"], jit_compile)
        self.val_fn = make_eval_loss(self.model, loss_fn)
        n_val = min(VAL_SUBSET, len(val["audio"]))
        self.val_batch = tuple(tf.constant(val[k][:n_val]) for k in ("f0_hz", "feature_db", "audio"))
        self.val_noise = synth.white_noise(n_val, val["audio"].shape[1], (VAL_NOISE_SEED, 0))
        # Resumable state lives in tf.Variables inside the checkpoint.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.train_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_time_s")
        self.last_loss = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="last_train_loss")
        self.ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                        train_time=self.train_time, last_loss=self.last_loss)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(out_dir / "checkpoint"), max_to_keep=1)

    def restore(self) -> int:
        if self.manager.latest_checkpoint:
            try:
                self.ckpt.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as err:
                raise UserError(f"{self.manager.latest_checkpoint}: checkpoint does not fit this config "
                                f"({str(err).splitlines()[0]}); use a fresh out_dir") from None
            log.info("resumed from %s at step %d", self.manager.latest_checkpoint, int(self.step))
        return int(self.step)

    def val_loss(self) -> float:
        return float(self.val_fn(*self.val_batch, self.val_noise))

    def batch(self, step: int):
        idx = batch_indices(len(self.train["audio"]), self.config["batch_size"], self.config["seed"], step)
        f0, feat, audio = (tf.constant(self.train[k][idx]) for k in ("f0_hz", "feature_db", "audio"))
        noise = synth.white_noise(len(idx), audio.shape[1], (self.config["seed"], step))
        return f0, feat, audio, noise

    def run(self, report, report_every: int) -> tuple[float, str | None]:
        """Train up to config["steps"]; returns (last train loss, failure reason or None)."""
        total, start_step = self.config["steps"], int(self.step)
        t0, time_before = time.perf_counter(), float(self.train_time)
        losses: list[float] = []
        last_loss = float(self.last_loss)  # restored value when resuming a finished trial
        for step in range(start_step, total):
            last_loss = float(self.step_fn(*self.batch(step)))
            if not math.isfinite(last_loss):
                return last_loss, f"non-finite training loss ({last_loss}) at step {step + 1}"
            losses.append(last_loss)
            self.step.assign(step + 1)
            self.last_loss.assign(last_loss)
            done = step + 1
            if done % report_every == 0 or done == total:
                self.train_time.assign(time_before + time.perf_counter() - t0)
                self.manager.save(checkpoint_number=done)
                if report is not None:
                    report({"step": done, "train_loss": float(np.mean(losses)), "val_loss": self.val_loss(),
                            "elapsed_s": float(self.train_time)})
                losses = []
        self.train_time.assign(time_before + time.perf_counter() - t0)
        return last_loss, None


def train_trial(
    dataset_dir: str | Path,
    config: dict[str, Any],
    out_dir: str | Path,
    report: Callable[[dict], None] | None = None,
    report_every: int = 50,
    threads: int | None = None,
    jit_compile: bool = JIT_COMPILE,
) -> dict[str, Any]:
    """Train, evaluate and save one trial; returns the metrics dict (also in out_dir/metrics.json).

    Raises UserError (bad config/dataset, before training) or TrialFailed (NaN/inf loss, after
    writing metrics.json with status FAILED). `report` is called every `report_every` steps (and
    at the last step) with {"step", "train_loss" (mean since last report), "val_loss", "elapsed_s"}.
    Resumes from out_dir/checkpoint/ when present.
    """
    configure_threads(threads)  # first: before any TF op of this process
    config = validate_config(config)
    if report_every < 1:
        raise UserError(f"report_every: {report_every} must be >= 1")
    manifest = check_dataset(dataset_dir, config)
    out_dir = Path(out_dir)
    train, val = load_frames(dataset_dir, "train", config), load_frames(dataset_dir, "validation", config)
    tf.config.experimental.enable_op_determinism()
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer = _Trainer(config, train, val, out_dir, jit_compile)
    trainer.restore()  # before writing anything: a checkpoint of another config must stay intact
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "dataset_manifest.json", manifest)
    final_loss, failure = trainer.run(report, report_every)
    metrics = {"status": "FINISHED", "failure_reason": None, "steps": int(trainer.step),
               "train_time_s": float(trainer.train_time), "final_train_loss": final_loss, **size_report(config)}
    if failure is not None:
        metrics.update(status="FAILED", failure_reason=failure)
        _write_json(out_dir / "metrics.json", metrics)
        raise TrialFailed(failure)

    trainer.model.save_weights(str(out_dir / "weights.weights.h5"))
    metrics.update(_evaluate_and_listen(trainer.model, val, manifest, out_dir))
    _write_json(out_dir / "metrics.json", metrics)
    return metrics


def _evaluate_and_listen(model: TrainedModel, val: dict[str, np.ndarray], manifest: dict, out_dir: Path) -> dict:
    """Held-out metrics at every precision (+ eval_time_s), and audio/original.wav + resynth.wav."""
    from trainers.evaluate import VOICED_CONFIDENCE, evaluate_all_precisions, write_audio_examples

    t0 = time.perf_counter()
    voiced_threshold = float(manifest.get("features", {}).get("voiced_threshold", VOICED_CONFIDENCE))
    metrics = evaluate_all_precisions(model, val, voiced_threshold)
    metrics["eval_time_s"] = time.perf_counter() - t0
    write_audio_examples(model, val, out_dir / "audio")
    return metrics


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON atomically; non-finite floats become null (JSON has no NaN)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in obj.items()}
    write_json_atomic(path, clean, sort_keys=True)


# ----------------------------------------------------------------------------- CLI


def cli_train(args) -> int:
    """`tonesweep train --dataset DIR --config FILE.toml --out DIR`; exit code 0, or 1 if FAILED."""
    config = load_config_file(args.config)  # fails fast, naming the field

    def print_progress(d: dict) -> None:
        print(f"step {d['step']:>6}  train_loss {d['train_loss']:.4f}  val_loss {d['val_loss']:.4f}  "
              f"{d['elapsed_s']:.1f}s", flush=True)

    try:
        metrics = train_trial(args.dataset, config, args.out, report=print_progress)
    except TrialFailed as err:
        print(f"tonesweep: trial FAILED: {err.reason} (see {Path(args.out) / 'metrics.json'})")
        return 1
    print(f"finished {metrics['steps']} steps in {metrics['train_time_s']:.1f}s: quality {metrics['quality_float32']:.4f} "
          f"(float16 {metrics['quality_float16']:.4f}, uint8 {metrics['quality_uint8']:.4f}), "
          f"pitch error {metrics['pitch_error_cents_float32']:.1f} cents, {metrics['params']} params; "
          f"wrote {args.out}")
    return 0


__all__ = ["train_trial", "load_trained", "cli_train", "TrialFailed", "TrainedModel", "build_model"]
