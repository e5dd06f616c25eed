"""One trial: train a decoder + ddsp synth on a prepared dataset, evaluate it, write `out_dir/`.

Contract (docs/architecture.md, section 2):

    train_trial(dataset_dir, config, out_dir, report=None, report_every=50, threads=None) -> metrics

(The model itself, and ``load_trained`` to rebuild a finished trial, live in trainers.model.trained.)

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
from typing import Any, Callable, Iterable

import numpy as np
import tensorflow as tf

from common.constants import FAILED, FINISHED, PRECISIONS, SAMPLE_RATE, VAL_NOISE_SEED
from trainers.data.dataset import check_dataset_files, load_split, read_manifest
from common.errors import UserError
from common.files import sha256_file, write_json_atomic
from trainers.model import synth
from trainers.model.config import validate_config
from trainers.model.size import size_report
from trainers.model.trained import WEIGHTS_DIGEST, TrainedModel, build_model
from trainers.training.evaluate import evaluate_precisions, split_loudness_db, write_example_pair
from trainers.training.loss import spectral_loss, spectral_loss_and_gradient

log = logging.getLogger(__name__)
keras = tf.keras

VAL_SUBSET = 4  # validation examples behind the reported val_loss (the metric ASHA stops on)
FEATURE_KEYS = {"loudness": "loudness_db", "rms": "rms_db"}
# XLA for the whole training step only on windows of at most XLA_MAX_WINDOW_SECONDS, from XLA_MIN_STEPS steps
# on. Since the loss and the oscillator bank's sinusoids became XLA programs of their own (compiled once per
# worker, whatever this rule says), compiling the rest of the step pays where the decoder is a long
# sequential loop on short windows, and little or not at all elsewhere: bench/xla_break_even.py, 2026-12-08
# (batch 8, one thread): on 1-second windows a GRU-64 at 250 Hz stepped in 148 ms with XLA against 183
# without (break-even 55 steps), a CNN-16 at 50 Hz in 78 against 74 (never); on whole 4-second examples XLA
# was slower for both (GRU 964 against 720 ms, CNN 286 against 278), so whole examples (`tonesweep train`'s
# default) train without it. 200 steps keeps the margin of the earlier rule for the CNNs it slows a little.
# The two differ in float32 reassociation only (held-out quality 0.07-1.7 % apart at 20-150 steps); a
# trial's choice depends on its config alone, so a resumed trial keeps it.
XLA_MIN_STEPS = 200
XLA_MAX_WINDOW_SECONDS = 1.0


def use_xla(steps: int, window_seconds: float) -> bool:
    """Whether a trial of ``steps`` steps on windows of ``window_seconds`` compiles its whole step with XLA."""
    return window_seconds <= XLA_MAX_WINDOW_SECONDS and steps >= XLA_MIN_STEPS


class TrialFailed(RuntimeError):
    """Training diverged (NaN/inf loss). `metrics.json` was written with status FAILED first."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ----------------------------------------------------------------------------- data


def load_frames(dataset_dir: str | Path, split: str, config: dict[str, Any]) -> dict[str, np.ndarray]:
    """The split as model inputs: f0_hz, feature_db [N,T,1], audio [N,n_samples], plus
    f0_confidence, f0_voiced and loudness_db [N,T] for evaluation. Non-finite f0 (unvoiced) becomes 0 Hz."""
    data = load_split(dataset_dir, split, config["frame_rate"])
    if len(data["audio"]) == 0:
        raise UserError(f"{dataset_dir}: the {split} split is empty; prepare more audio or a larger validation fraction")
    f0 = np.nan_to_num(data["f0_hz"].astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return {
        "f0_hz": f0[..., np.newaxis],
        "feature_db": data[FEATURE_KEYS[config["feature"]]].astype(np.float32)[..., np.newaxis],
        "audio": data["audio"].astype(np.float32),
        "f0_confidence": data["f0_confidence"].astype(np.float32),
        "f0_voiced": data["f0_voiced"].astype(bool),
        "loudness_db": data["loudness_db"].astype(np.float32),
    }


def check_dataset(dataset_dir: str | Path, config: dict[str, Any]) -> dict[str, Any]:
    """Read the manifest, check its shards are there and that it can serve this config; returns the
    manifest. (Their contents are checked where the dataset enters: `tonesweep train`, a sweep's
    pre-flight; a trial does not hash the whole dataset again.)"""
    manifest = read_manifest(dataset_dir)
    check_dataset_files(dataset_dir, manifest, contents=False)
    if int(manifest.get("sample_rate", SAMPLE_RATE)) != SAMPLE_RATE:
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


def crop_frames(config: dict[str, Any], n_frames: int) -> int:
    """Frames of a training window: ``crop_seconds`` at the config's frame rate, at most the example."""
    if not config.get("crop_seconds"):
        return n_frames
    return max(1, min(n_frames, int(round(config["crop_seconds"] * config["frame_rate"]))))


def crop_offsets(n_frames: int, window: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """First frame of each example's training window at step `step`: a pure function of (seed, step)
    (a stream apart from ``batch_indices``'), so resume is exact."""
    rng = np.random.default_rng([seed, step, 1])
    return rng.integers(0, n_frames - window + 1, size=batch_size)


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



def make_train_step(model: TrainedModel, optimizer, grad_clip: float | tf.Variable, jit_compile: bool = True,
                    fast_harmonics: bool = True, xla_loss: bool = True):
    """A compiled step: (f0_hz [B,T,1], feature_db [B,T,1], audio [B,n], noise [B,n]) -> loss.

    Spectral loss -> gradients -> global-norm clip -> Adam, in one tf.function traced once
    (fixed shapes). `fast_harmonics` uses the reorganized oscillator bank (synth.harmonic_synthesis_fast),
    the main speed-up (bench/train_throughput.py). The noise is an input, generated outside, so the
    step's output does not depend on XLA's RNG when `jit_compile` is on. The loss and its gradient with
    respect to the rendered audio come from ``trainers.training.loss``, traced once per process for
    every architecture, and the tape carries that gradient back through the synth and the decoder:
    the same numbers, bit for bit, as with the loss taped along (tests/test_train.py, ``xla_loss`` off).
    ``xla_loss``: that loss and gradient compiled with XLA, whatever ``jit_compile`` says of the rest. It
    is half of a step and the same program for every architecture with the step's shapes, so it
    compiles once per process (~1 s) and then costs half as much (a demo CNN's step 112 -> 83 ms);
    the loss then differs from TensorFlow's kernels' by float32 rounding only (docs/engines.md).

    Traced without AutoGraph, as are the validation loss and ``TrainedModel.render``: nothing in them
    branches or loops on a tensor in Python, so AutoGraph's source conversion (of ddsp's and Keras's
    functions too) only cost time, half of the trace (a demo CNN's first call 4.1 -> 2.5 s), and left its
    generated sources in the temp folder wherever the process ends without atexit handlers, as Ray's
    workers do (80 files from one 24-trial sweep); the graph, and so every number, is the same. A Python
    ``if`` on a tensor added later fails at trace time instead of being converted.
    """
    variables = model.trainable_variables
    loss_and_gradient = spectral_loss_and_gradient(jit_compile=xla_loss)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def step(f0_hz, feature_db, audio, noise):
        with tf.GradientTape() as tape:
            rendered = model.synthesize(f0_hz, feature_db, noise, fast_harmonics=fast_harmonics)
        loss, d_rendered = loss_and_gradient(audio, rendered)
        grads = tape.gradient(rendered, variables, output_gradients=d_rendered)
        grads, _ = tf.clip_by_global_norm(grads, grad_clip)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def make_eval_loss(model: TrainedModel, jit_compile: bool = False, fast_harmonics: bool = True):
    """Compiled (f0_hz, feature_db, audio, noise) -> (spectral loss, the first example's rendering), no
    gradients: the reported val_loss, and the audio example a report leaves (``_Trainer.listen``).

    The training step's synthesiser (``fast_harmonics``): the loss ASHA compares is the one training
    minimises, and it costs a third to a seventh of the reference synth's (4 validation examples of
    4 s: 0.12 s against 0.31 s at 16 harmonics, 0.89 s at 60; its first call 1.1-1.8 s against
    3.3-5.8 s) for a loss 0.01-0.03 % apart. Held-out quality (``trainers.training.evaluate``)
    keeps the reference synth, as export does. No XLA by default: it runs once per report, and
    compiling (~4 s CPU) costs more than it saves. The loss is ``trainers.training.loss``'s, traced once
    per process.
    """
    loss_fn = spectral_loss()

    @tf.function(jit_compile=jit_compile, autograph=False)
    def evaluate(f0_hz, feature_db, audio, noise):
        rendered = model.synthesize(f0_hz, feature_db, noise, fast_harmonics=fast_harmonics)
        return loss_fn(audio, rendered), rendered[0]

    return evaluate


# What differs between trials of one architecture: values the compiled step reads from variables and
# inputs (the learning rate and clipping are variables; the seed decides the initial weights and the
# batches and noise fed in; the feature is only which input array feeds the decoder), never its program.
TRIAL_VALUES = ("learning_rate", "grad_clip", "seed", "steps", "feature")
MAX_KITS = 3  # architectures whose model and compiled step a process keeps (each holds its graphs and executables)


class ArchitectureKit:
    """What the trials of one architecture share in a process: the model and optimizer objects and the
    compiled training step and validation loss, traced (and XLA-compiled) once.

    A later trial of the same architecture in the same process (a reused Ray worker) gets the kit back
    with fresh values (``reset``): the weights a fresh build with its seed has, a new optimizer state
    with its learning rate, its clipping. It then calls the same compiled functions: no tracing, no
    compiling, and the same numbers as in a fresh process.
    """

    def __init__(self, config: dict[str, Any], jit_compile: bool):
        tf.keras.utils.set_random_seed(config["seed"])
        self.model = build_model(config)
        self.optimizer = keras.optimizers.Adam(learning_rate=config["learning_rate"])
        self.optimizer.build(self.model.trainable_variables)
        self.clip = tf.Variable(float(config["grad_clip"]), trainable=False, dtype=tf.float32, name="grad_clip")
        self.step = make_train_step(self.model, self.optimizer, self.clip, jit_compile)
        self.val_loss = make_eval_loss(self.model)
        self.trials = 1

    def reset(self, config: dict[str, Any]) -> None:
        """Fresh values for the next trial: its seed's initial weights (a throwaway build, whose
        initializers draw as this kit's did), zeroed optimizer state, its learning rate and clipping."""
        tf.keras.utils.set_random_seed(config["seed"])
        fresh = build_model(config)
        for target, source in zip(self.model.weights, fresh.weights, strict=True):
            target.assign(source)
        for variable in self.optimizer.variables:  # iterations, the moments, the learning rate
            variable.assign(tf.zeros(variable.shape, variable.dtype))
        self.optimizer.learning_rate = float(config["learning_rate"])
        self.clip.assign(float(config["grad_clip"]))
        self.model.config = config
        self.trials += 1


_KITS: dict[str, ArchitectureKit] = {}  # architecture key -> kit, least recently used first


def architecture_kit(config: dict[str, Any], jit_compile: bool) -> ArchitectureKit:
    """This process's kit for the config's architecture: built on first use, reset after that; the
    ``MAX_KITS`` architectures used last are kept."""
    key = json.dumps({**{k: v for k, v in config.items() if k not in TRIAL_VALUES}, "jit": jit_compile},
                     sort_keys=True)
    kit = _KITS.pop(key, None)
    if kit is None:
        kit = ArchitectureKit(config, jit_compile)
    else:
        kit.reset(config)
    _KITS[key] = kit
    while len(_KITS) > MAX_KITS:
        _KITS.pop(next(iter(_KITS)))
    return kit


class _Trainer:
    """Mutable training state of one trial; `run()` does the loop. Kept private: use train_trial."""

    def __init__(self, config, train, val, out_dir: Path, jit_compile: bool, started: float):
        self.config, self.train, self.out_dir, self.started = config, train, out_dir, started
        self.kit = architecture_kit(config, jit_compile)
        self.model, self.optimizer = self.kit.model, self.kit.optimizer
        self.step_fn, self.val_fn = self.kit.step, self.kit.val_loss
        n_val = min(VAL_SUBSET, len(val["audio"]))
        self.val_batch = tuple(tf.constant(val[k][:n_val]) for k in ("f0_hz", "feature_db", "audio"))
        self.val_noise = synth.white_noise(n_val, val["audio"].shape[1], (VAL_NOISE_SEED, 0))
        self.val_example = None  # the first validation example as the last val_loss() rendered it
        # Resumable state lives in tf.Variables inside the checkpoint.
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.train_time = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_time_s")
        self.last_loss = tf.Variable(math.nan, dtype=tf.float64, trainable=False, name="last_train_loss")
        self.ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                        train_time=self.train_time, last_loss=self.last_loss)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(out_dir / "checkpoint"), max_to_keep=1)
        self.first_step_s: float | None = None  # train_trial's start to the end of this process's first step
        self.first_call_s: float | None = None  # the first step call alone: tracing, compiling, one step

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
        """The validation loss; keeps the first example's rendering for ``listen``."""
        loss, self.val_example = self.val_fn(*self.val_batch, self.val_noise)
        return float(loss)

    def listen(self) -> None:
        """audio/original.wav and resynth.wav from the last validation pass (one example, no render of its
        own: ~5 ms), so a trial the scheduler stops at a report leaves what its model sounded like there.
        A finished trial's are rewritten from its evaluation's float32 rendering."""
        write_example_pair(self.out_dir / "audio", self.val_batch[2][0], self.val_example)

    def batch(self, step: int):
        seed = self.config["seed"]
        idx = batch_indices(len(self.train["audio"]), self.config["batch_size"], seed, step)
        f0, feat, audio = (self.train[k][idx] for k in ("f0_hz", "feature_db", "audio"))
        n_frames = f0.shape[1]
        window = crop_frames(self.config, n_frames)
        if window < n_frames:  # a random window of each example: the step's cost scales with its samples
            hop = audio.shape[1] // n_frames
            starts = crop_offsets(n_frames, window, len(idx), seed, step)
            f0, feat = (np.stack([x[i, s:s + window] for i, s in enumerate(starts)]) for x in (f0, feat))
            audio = np.stack([audio[i, s * hop:(s + window) * hop] for i, s in enumerate(starts)])
        noise = synth.white_noise(len(idx), audio.shape[1], (seed, step))
        return tf.constant(f0), tf.constant(feat), tf.constant(audio), noise

    def run(self, report, report_every: int, deadline: float | None = None) -> tuple[float, str | None]:
        """Train up to config["steps"]; returns (last train loss, failure reason or None). A report every
        ``report_every`` steps, at the last, and at the first step that ends after ``deadline``."""
        total, start_step = self.config["steps"], int(self.step)
        watch = deadline is not None  # until the first step that ends after the deadline has reported
        t0, time_before = time.perf_counter(), float(self.train_time)
        losses: list[float] = []
        last_loss = float(self.last_loss)  # restored value when resuming a finished trial
        for step in range(start_step, total):
            called = time.perf_counter()
            last_loss = float(self.step_fn(*self.batch(step)))
            if self.first_step_s is None:
                self.first_step_s = time.perf_counter() - self.started
                # the first call traces and compiles (or loads from XLA's cache): start-up, though
                # train_time_s counts it too
                self.first_call_s = time.perf_counter() - called
            if not math.isfinite(last_loss):
                return last_loss, f"non-finite training loss ({last_loss}) at step {step + 1}"
            losses.append(last_loss)
            self.step.assign(step + 1)
            self.last_loss.assign(last_loss)
            done = step + 1
            ran_out = watch and time.time() >= deadline
            watch = watch and not ran_out
            if done % report_every == 0 or done == total or ran_out:
                self.train_time.assign(time_before + time.perf_counter() - t0)
                self.manager.save(checkpoint_number=done)
                if report is not None:
                    val_loss = self.val_loss()
                    self.listen()
                    report({"step": done, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                            "elapsed_s": float(self.train_time), "first_step_s": self.first_step_s,
                            "first_call_s": self.first_call_s})
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
    jit_compile: bool | None = None,
    judge: Callable[[dict[str, Any]], Iterable[str]] | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train, evaluate and save one trial; returns the metrics dict (also in out_dir/metrics.json).

    Raises UserError (bad config/dataset, before training) or TrialFailed (NaN/inf loss, after
    writing metrics.json with status FAILED). `report` is called every `report_every` steps (and
    at the last step) with {"step", "train_loss" (mean since last report), "val_loss", "elapsed_s",
    "first_step_s"}.
    Resumes from out_dir/checkpoint/ when present. ``first_step_s`` in the metrics: seconds from this
    call to the end of its first training step (data, model, tracing and XLA compilation).
    ``jit_compile``: XLA for the training step; None: ``use_xla`` of the steps and the training window.
    ``judge``: given the metrics with the float32 evaluation, the quantised precisions whose candidates
    could still matter to the sweep (``search.front``); only those are evaluated besides float32, the
    others have no quality or pitch metrics. None: every precision.
    ``deadline`` (``time.time()``; a sweep's time budget, ``search.budget``): the first step that ends after it
    reports at once, between the ``report_every`` steps, so that the sweep can stop the trial there.
    """
    started = time.perf_counter()
    configure_threads(threads)  # first: before any TF op of this process
    config = validate_config(config)
    if report_every < 1:
        raise UserError(f"report_every: {report_every} must be >= 1")
    manifest = check_dataset(dataset_dir, config)
    out_dir = Path(out_dir)
    train, val = load_frames(dataset_dir, "train", config), load_frames(dataset_dir, "validation", config)
    tf.config.experimental.enable_op_determinism()
    out_dir.mkdir(parents=True, exist_ok=True)
    if jit_compile is None:
        n_frames = train["f0_hz"].shape[1]
        jit_compile = use_xla(config["steps"], crop_frames(config, n_frames) / config["frame_rate"])
    trainer = _Trainer(config, train, val, out_dir, jit_compile, started)
    trainer.restore()  # before writing anything: a checkpoint of another config must stay intact
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "dataset_manifest.json", manifest)
    final_loss, failure = trainer.run(report, report_every, deadline)
    metrics = {"status": FINISHED, "failure_reason": None, "steps": int(trainer.step),
               "train_time_s": float(trainer.train_time), "final_train_loss": final_loss, **size_report(config)}
    if trainer.first_step_s is not None:  # start-up: loading, building, tracing and compiling the step
        metrics["first_step_s"] = trainer.first_step_s
        metrics["first_call_s"] = trainer.first_call_s
    if failure is not None:
        metrics.update(status=FAILED, failure_reason=failure)
        _write_json(out_dir / "metrics.json", metrics)
        raise TrialFailed(failure)

    trainer.model.save_weights(str(out_dir / "weights.weights.h5"))
    metrics[WEIGHTS_DIGEST] = sha256_file(out_dir / "weights.weights.h5")  # load_trained checks it
    metrics.update(_evaluate_and_listen(trainer.model, val, out_dir, metrics, judge))
    _write_json(out_dir / "metrics.json", metrics)
    return metrics


def _evaluate_and_listen(model: TrainedModel, val: dict[str, np.ndarray], out_dir: Path, metrics: dict[str, Any],
                         judge: Callable[[dict[str, Any]], Iterable[str]] | None) -> dict:
    """Held-out metrics at float32 and at the quantised precisions the judge names (all without one),
    ``eval_time_s``; audio/original.wav + resynth.wav (the first validation example and its float32
    rendering from the evaluation) and ``examples_time_s``."""
    t0 = time.perf_counter()
    original_db = split_loudness_db(model, val)  # once for float32 and the quantised precisions
    renders: dict[str, np.ndarray] = {}
    out = evaluate_precisions(model, val, PRECISIONS[:1], original_db, renders)
    wanted = set(PRECISIONS) if judge is None else set(judge({**metrics, **out}))
    out.update(evaluate_precisions(model, val, [p for p in PRECISIONS[1:] if p in wanted], original_db))
    out["eval_time_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_example_pair(out_dir / "audio", val["audio"][0], renders[PRECISIONS[0]][0])
    out["examples_time_s"] = time.perf_counter() - t0
    return out


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    """Write JSON atomically; non-finite floats become null (JSON has no NaN)."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in obj.items()}
    write_json_atomic(path, clean, sort_keys=True)


__all__ = ["train_trial", "TrialFailed", "load_frames", "check_dataset"]
