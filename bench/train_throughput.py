"""Training throughput: tonesweep's training step vs a plain ddsp baseline, side by side.

    .venv/bin/python bench/train_throughput.py [--steps 6] [--threads 1] [--profile]

Both steps train the same model (GRU-64 decoder, 250 Hz frames, 60 harmonics, 65 noise bands)
on the same batches (4 examples x 4 s at 16 kHz) with ddsp's multi-scale spectral loss, Adam
and global-norm clipping, starting from the same weights:

- baseline: the straightforward step — `tf.function` around ddsp.synths.Harmonic (angular
  cumsum) + filtered noise + SpectralLoss, no other changes;
- tonesweep: `trainers.training.train.make_train_step` — the same step with the oscillator bank
  reorganized (`trainers.model.synth.harmonic_synthesis_fast`: f0-only phase accumulation, Hann
  crossfade of amplitudes folded into one batched matmul per frame), without XLA for the whole step, as a
  trial on whole examples trains (`trainers.training.train.use_xla`; `--jit on`: with it).

Steps of the two are interleaved (A, B, A, B, ...) so machine load hits both alike. Throughput is
seconds of audio per CPU-second of this process (`time.process_time`, all threads), and the
printed ratio is tonesweep / baseline. `--profile` also times the parts of one forward+backward
pass (harmonic synth, noise synth, loss, decoder) under both formulations.

Measured 2026-11-21 on the shared 2-core dev machine, threads=1 (CPU ms per step of 16 s of audio):

    baseline 1476-1499 ms (10.7 s audio/CPU-s); tonesweep 287-299 ms with XLA (53-56 s/CPU-s,
    ratio 5.0-5.1x), 354 ms without XLA (4.2x). XLA compiling costs ~4 s CPU once per trial.

Where the time goes (--profile, one forward+backward, no XLA): ddsp Harmonic 1222 ms ->
harmonic_synthesis_fast 78 ms; decoder (GRU-64 over 1000 frames) 138 ms; spectral loss 88 ms;
filtered noise 24 ms. The baseline is ~80% oscillator bank: ddsp upsamples and accumulates 60
phases per sample and overlap-adds 60 amplitude envelopes. After the rewrite the sequential GRU and
the six-scale STFT loss dominate; XLA does not speed up the synth or the loss, so its gain comes
from the GRU loop and the optimizer update. (Since 2026-12-07 the step's loss and gradient and the
oscillator bank's sinusoids are XLA programs of their own whatever `--jit` says, the sinusoids with a
polynomial sine: 445 -> 372 ms CPU a step here, docs/engines.md "The training step".) Tried and kept out: XLA on
ddsp's own synth (1.3x only: XLA's sin is slower than TF's), XLA on the validation loss (compile
time exceeds savings). The fast step's loss differs from the baseline's by ~0.1% because ddsp's
float32 phase accumulation drifts (tests/test_model.py measures both against float64 synthesis).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed steps per variant (after 2 warm-up steps)")
    p.add_argument("--threads", type=int, default=1, help="TF intra/inter-op threads (trials use 1)")
    p.add_argument("--jit", choices=["on", "off"], default="off",
                   help="XLA for the whole tonesweep step (default: off, as trials on whole examples train)")
    p.add_argument("--profile", action="store_true", help="also time the parts of the step")
    return p.parse_args()


CONFIG = {"decoder": "gru", "gru_units": 64, "hidden": 64, "fc_layers": 1, "frame_rate": 250,
          "n_harmonics": 60, "n_noise_bands": 65, "batch_size": 4, "seed": 0}
BATCH, SECONDS, SAMPLE_RATE = 4, 4.0, 16000


def make_batch(seed: int, n_frames: int, n_samples: int):
    """A plausible batch: stepwise melodies with harmonic audio targets."""
    rng = np.random.default_rng(seed)
    notes = rng.uniform(150.0, 600.0, size=(BATCH, 8))
    f0 = np.repeat(notes, n_frames // 8, axis=1)[..., None].astype(np.float32)
    loud = rng.uniform(-50.0, -20.0, size=(BATCH, n_frames, 1)).astype(np.float32)
    f0_samples = np.repeat(notes, n_samples // 8, axis=1)
    phase = 2 * np.pi * np.cumsum(f0_samples, axis=1) / SAMPLE_RATE
    audio = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.1
    return f0, loud, audio.astype(np.float32)


def main() -> None:
    args = parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from trainers.model import synth
    from trainers.model.config import validate_config
    from trainers.model.trained import build_model
    from trainers.training.train import make_train_step

    jit = args.jit == "on"
    config = validate_config(CONFIG)
    n_frames = int(SECONDS * config["frame_rate"])
    n_samples = int(SECONDS * SAMPLE_RATE)
    f0, loud, audio = (tf.constant(x) for x in make_batch(0, n_frames, n_samples))
    noise = synth.white_noise(BATCH, n_samples, (0, 0))

    def variant(fast: bool, use_jit: bool):
        tf.keras.utils.set_random_seed(0)
        model = build_model(config)
        optimizer = tf.keras.optimizers.Adam(config["learning_rate"])
        optimizer.build(model.trainable_variables)
        return make_train_step(model, optimizer, config["grad_clip"], jit_compile=use_jit, fast_harmonics=fast)

    variants = {"baseline": variant(False, False), "tonesweep": variant(True, jit)}
    first_loss = {name: float(step(f0, loud, audio, noise)) for name, step in variants.items()}
    for step in variants.values():  # second warm-up step
        step(f0, loud, audio, noise)
    cpu = {name: 0.0 for name in variants}
    wall = {name: 0.0 for name in variants}
    for _ in range(args.steps):
        for name, step in variants.items():
            c0, w0 = time.process_time(), time.perf_counter()
            float(step(f0, loud, audio, noise))
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0

    audio_seconds = args.steps * BATCH * SECONDS
    print(f"config: GRU-{config['gru_units']}, {config['frame_rate']} Hz, {config['n_harmonics']} harmonics, "
          f"{config['n_noise_bands']} noise bands, batch {BATCH} x {SECONDS:g} s; threads={args.threads}, "
          f"tonesweep jit_compile={jit}, {args.steps} timed steps each")
    print(f"first-step loss (same weights and batch): baseline {first_loss['baseline']:.4f}, "
          f"tonesweep {first_loss['tonesweep']:.4f}")
    for name in variants:
        print(f"{name:>10}: {cpu[name] / args.steps * 1000:7.0f} ms CPU/step, {wall[name] / args.steps * 1000:7.0f} ms wall/step, "
              f"{audio_seconds / cpu[name]:6.1f} s audio per CPU-s")
    print(f"ratio tonesweep / baseline: {cpu['baseline'] / cpu['tonesweep']:.2f}x (audio per CPU-second)")
    if args.profile:
        profile_parts(config, f0, loud, audio, noise)


def profile_parts(config, f0, loud, audio, noise, repeats: int = 3) -> None:
    """CPU ms of forward+backward of each part of the step (plain tf.function, no XLA)."""
    import tensorflow as tf

    from trainers.model import synth
    from trainers.ddsp_compat import ddsp
    from trainers.model.trained import build_model, make_loss

    model, loss_fn = build_model(config), make_loss()
    n_samples = int(audio.shape[-1])
    controls = {k: tf.Variable(v) for k, v in model.controls(f0, loud).items()}  # fixed controls as leaves
    signal = tf.Variable(audio * 0.5)

    def timed(name, fn, variables):
        @tf.function
        def grad():
            with tf.GradientTape() as tape:
                y = fn()
            return tape.gradient(y, variables)
        grad()
        c0 = time.process_time()
        for _ in range(repeats):
            grad()
        print(f"  {name:<40} {(time.process_time() - c0) / repeats * 1000:7.0f} ms CPU (fwd+bwd)")

    harmonic_vars = [controls["amplitudes"], controls["harmonic_distribution"]]
    print("profile (one forward+backward pass per part):")
    timed("decoder + get_controls (GRU-64, FC)", lambda: tf.reduce_sum(model.controls(f0, loud)["amplitudes"]),
          model.trainable_variables)
    timed("harmonic synth, ddsp Harmonic", lambda: tf.reduce_sum(tf.square(synth._harmonic(n_samples, SAMPLE_RATE).get_signal(
        controls["amplitudes"], controls["harmonic_distribution"], controls["f0_hz"]))), harmonic_vars)
    timed("harmonic synth, harmonic_synthesis_fast", lambda: tf.reduce_sum(tf.square(synth.harmonic_synthesis_fast(
        controls["amplitudes"], controls["harmonic_distribution"], controls["f0_hz"], n_samples))), harmonic_vars)
    timed("filtered noise synth", lambda: tf.reduce_sum(tf.square(ddsp.core.frequency_filter(
        noise, controls["noise_magnitudes"], window_size=synth.NOISE_WINDOW_SIZE))), [controls["noise_magnitudes"]])
    timed("multi-scale spectral loss", lambda: loss_fn(audio, signal), [signal])


if __name__ == "__main__":
    main()
