"""Held-out evaluation of a trained model, at float32 and with weights quantized as TF.js ships them.

Metrics on the validation split (same weights + same data -> same numbers: the synthesis noise
comes from fixed stateless seeds and the pitch tracker is deterministic), rendered with the
training step's harmonic synth (``trainers.model.synth.harmonic_synthesis_fast``): the same
oscillator bank as ddsp's Harmonic that the bundles ship, reorganised and more exact in phase, and
4-8x faster at 32-60 harmonics, where ddsp's was most of a finished trial's evaluation. Over five
trained demo models (16-60 harmonics, three instruments) the quality it gives is within 0.03 % of
ddsp's synth and the pitch error within 0.01 cents (docs/engines.md#evaluation). A finished trial's
audio example is the first example of its float32 rendering here (``evaluate_precisions(renders=)``):
what its quality was measured on, without tracing and running ddsp's synth once more for it.

- quality: ddsp multi-scale spectral loss (trainers.model.trained.make_loss), mean over examples; lower is better.
- pitch error: median |1200 log2(f0_resynth / f0_input)| in cents over voiced frames, where
  f0_resynth is YIN's re-tracking of the resynthesized audio (librosa's estimate, computed without numba by
  trainers.training.measures) and f0_input the dataset's f0
  that conditioned the model (what tone transfer asks it to play). Voiced frames: the dataset's
  f0_voiced (pYIN's decoded voicing) and f0 > 0.
- loudness error: mean |loudness(resynth) - loudness(original)| in dB over all frames
  (the numbers of ddsp.spectral_ops.compute_loudness, the function the dataset's loudness_db comes from,
  computed without librosa by trainers.training.measures).

Weights are quantized and dequantized as TF.js ships them by trainers.model.quantize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import tensorflow as tf

from common.constants import SAMPLE_RATE, VAL_NOISE_SEED, VOICED_THRESHOLD
from trainers.model import synth
from trainers.model.quantize import quantized_weights
from trainers.training import measures
from trainers.training.loss import spectral_loss

EVAL_BATCH = 8   # examples per noise draw (the noise seed is EVAL_NOISE_SEED + the batch's first index)
RENDER_ROWS = 2  # examples synthesised at once (render_split says why)
EVAL_NOISE_SEED = VAL_NOISE_SEED
YIN_FMIN, YIN_FMAX, YIN_FRAME = 40.0, 2000.0, 1024


# ----------------------------------------------------------------------------- metrics


def render_split(model, frames: dict[str, np.ndarray]) -> np.ndarray:
    """Resynthesize every example of a split: audio [N, n_samples], fixed noise per batch of EVAL_BATCH.

    A last, shorter batch is padded to EVAL_BATCH (a split of one batch: to whole sub-batches; its last
    example repeated, the copies dropped), so the synth graph is traced once per model, not twice (a
    trace of ddsp's synth costs seconds). Each batch is synthesised RENDER_ROWS examples at a time,
    with its own rows of the batch's noise: ddsp's
    harmonic synth holds [rows, samples, harmonics] tensors (8 x 64,000 x 60 float32 is 123 MB each),
    the largest a trial worker allocates. A row's noise does not depend on how many rows are rendered
    together, and its synthesis only to float32 rounding (where the batch size changes how a vectorised
    kernel rounds: within 1e-5 in tests/test_model.py; bit-identical on the demo's data).
    """
    outputs, n = [], len(frames["audio"])
    width = EVAL_BATCH if n > EVAL_BATCH else RENDER_ROWS * -(-n // RENDER_ROWS)  # whole sub-batches: one trace
    for start in range(0, n, EVAL_BATCH):
        rows = np.arange(start, start + width)
        take = int((rows < n).sum())
        rows = np.minimum(rows, n - 1)
        noise = synth.white_noise(len(rows), frames["audio"].shape[1], (EVAL_NOISE_SEED + start, 0))
        parts = [model.render(frames["f0_hz"][rows[i:i + RENDER_ROWS]], frames["feature_db"][rows[i:i + RENDER_ROWS]],
                              noise=noise[i:i + RENDER_ROWS], fast_harmonics=True)
                 for i in range(0, len(rows), RENDER_ROWS)]
        outputs.append(np.concatenate(parts, axis=0)[:take])
    return np.concatenate(outputs, axis=0)


def spectral_quality(original: np.ndarray, resynth: np.ndarray) -> float:
    """Mean multi-scale spectral loss over examples (per batch, weighted by batch size), in one graph
    (``trainers.training.loss.spectral_loss``)."""
    loss_fn, total = spectral_loss(), 0.0
    for start in range(0, len(original), EVAL_BATCH):
        a, b = original[start:start + EVAL_BATCH], resynth[start:start + EVAL_BATCH]
        total += float(loss_fn(tf.constant(a), tf.constant(b))) * len(a)
    return total / len(original)


def track_f0(audio: np.ndarray, frame_rate: int, n_frames: int) -> np.ndarray:
    """YIN f0 in Hz [N, n_frames] of audio [N, n_samples], frames centered like the dataset's.

    One example at a time: YIN treats rows independently, so the result is bit-identical to one call
    on the batch, but a batch call frames the whole split at once ([N, frames, 1024] and its FFT: +560
    MiB at 21 x 4 s and 250 frames/s, the largest allocation of a trial) and ran 6x slower, bound by
    memory traffic (docs/engines.md#evaluation)."""
    hop = SAMPLE_RATE // frame_rate
    f0 = np.stack([measures.yin(row, YIN_FMIN, YIN_FMAX, SAMPLE_RATE, YIN_FRAME, hop) for row in audio])
    return _fit_frames(f0, n_frames)


def pitch_error_cents(resynth: np.ndarray, frames: dict[str, np.ndarray], frame_rate: int) -> float:
    """Median absolute pitch error (cents) of resynth vs the conditioning f0, voiced frames only
    (voiced_frames: pYIN's decoded voicing). NaN if no frame is voiced."""
    f0_in = frames["f0_hz"][..., 0]
    f0_out = track_f0(resynth, frame_rate, f0_in.shape[1])
    voiced = voiced_frames(frames) & (f0_in > 0) & (f0_out > 0)
    if not voiced.any():
        return float("nan")
    cents = 1200.0 * np.log2(f0_out[voiced] / f0_in[voiced])
    return float(np.median(np.abs(cents)))


def loudness_error_db(original_db: np.ndarray, resynth: np.ndarray, frame_rate: int) -> float:
    """Mean absolute difference (dB) of ddsp A-weighted loudness, the original's (``original_db``,
    measured once a split) vs resynth's."""
    return float(np.mean(np.abs(original_db - measures.loudness_db(resynth, SAMPLE_RATE, frame_rate))))


def voiced_frames(frames: dict[str, np.ndarray]) -> np.ndarray:
    """Voiced flags of a split [N, T]: its f0_voiced, else (hand-made frames) confidence >= 0.5."""
    if "f0_voiced" in frames:
        return np.asarray(frames["f0_voiced"]).astype(bool)
    return np.asarray(frames["f0_confidence"]) >= VOICED_THRESHOLD


def evaluate(model, frames: dict[str, np.ndarray], original_db: np.ndarray | None = None,
             resynth: np.ndarray | None = None) -> dict[str, float]:
    """{"quality", "pitch_error_cents", "loudness_error_db"} of `model` on a split (load_frames);
    ``original_db``: the split's own loudness when the caller has it already; ``resynth``: the split as
    ``render_split`` renders it, when the caller has rendered it already."""
    frame_rate = model.config["frame_rate"]
    if resynth is None:
        resynth = render_split(model, frames)
    if original_db is None:
        original_db = split_loudness_db(model, frames)
    return {
        "quality": spectral_quality(frames["audio"], resynth),
        "pitch_error_cents": pitch_error_cents(resynth, frames, frame_rate),
        "loudness_error_db": loudness_error_db(original_db, resynth, frame_rate),
    }


def split_loudness_db(model, frames: dict[str, np.ndarray]) -> np.ndarray:
    """The split's own A-weighted loudness at the model's frame rate (what ``loudness_error_db`` compares with)."""
    return measures.loudness_db(frames["audio"], SAMPLE_RATE, model.config["frame_rate"])


def evaluate_precisions(model, frames: dict[str, np.ndarray], precisions,
                        original_db: np.ndarray | None = None,
                        renders: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """`evaluate` at the given precisions, keys suffixed (quality_float16, ...); the split's loudness
    (``original_db``, else measured here) once for all of them. ``renders``: a dict that gets each
    precision's rendering of the split (``render_split``), for a caller that keeps one to listen to."""
    out: dict[str, float] = {}
    if precisions and original_db is None:
        original_db = split_loudness_db(model, frames)
    for precision in precisions:
        with quantized_weights(model, precision):
            resynth = render_split(model, frames)
            for key, value in evaluate(model, frames, original_db, resynth).items():
                out[f"{key}_{precision}"] = value
        if renders is not None:
            renders[precision] = resynth
    return out


def write_example_pair(audio_dir: Path, original: np.ndarray, resynth: np.ndarray) -> None:
    """audio_dir/original.wav and resynth.wav, clipped to [-1, 1], 16-bit PCM (the one writer of the pair)."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    for name, audio in (("original", original), ("resynth", resynth)):
        sf.write(str(audio_dir / f"{name}.wav"), np.clip(np.asarray(audio), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")


def _fit_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Crop or edge-pad the last axis to n_frames (trackers differ by a frame at the end)."""
    if x.shape[-1] >= n_frames:
        return x[..., :n_frames]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n_frames - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


__all__ = ["evaluate", "evaluate_precisions", "write_example_pair"]
