"""Held-out evaluation of a trained model, at float32 and with weights quantized as TF.js ships them.

Metrics on the validation split (same weights + same data -> same numbers: the synthesis noise
comes from fixed stateless seeds and the pitch tracker is deterministic):

- quality: ddsp multi-scale spectral loss (trainers.train.make_loss), mean over examples; lower is better.
- pitch error: median |1200 log2(f0_resynth / f0_input)| in cents over voiced frames, where
  f0_resynth is librosa's YIN re-tracking of the resynthesized audio and f0_input the dataset's f0
  that conditioned the model (what tone transfer asks it to play). Voiced frames: dataset
  f0_confidence >= VOICED_CONFIDENCE and f0 > 0.
- loudness error: mean |loudness(resynth) - loudness(original)| in dB over all frames
  (ddsp.spectral_ops.compute_loudness, the function the dataset's loudness_db comes from).

Quantization follows tensorflowjs.quantization.quantize_weights: float16 is a cast; uint8 is
affine per tensor with TF-Lite's zero-point nudging (0.0 stays exactly representable),
dequantized as q * scale + min.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import librosa
import numpy as np
import soundfile as sf
import tensorflow as tf

from trainers import synth
from trainers.ddsp_compat import ddsp

PRECISIONS = ("float32", "float16", "uint8")
VOICED_CONFIDENCE = 0.5  # default; trials use the dataset manifest's features.voiced_threshold
EVAL_BATCH = 8
EVAL_NOISE_SEED = 1234
YIN_FMIN, YIN_FMAX, YIN_FRAME = 40.0, 2000.0, 1024


# ----------------------------------------------------------------------------- quantization


def quantize_dequantize(weights: np.ndarray, precision: str) -> np.ndarray:
    """Round-trip one weight tensor through TF.js's weight quantization; float32 out."""
    w = np.asarray(weights, dtype=np.float32)
    if precision == "float32":
        return w.copy()
    if precision == "float16":
        return w.astype(np.float16).astype(np.float32)
    if precision == "uint8":
        q, scale, minimum = quantize_uint8(w)
        return (q * scale + minimum).astype(np.float32)
    raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")


def quantize_uint8(w: np.ndarray) -> tuple[np.ndarray, float, float]:
    """TF.js affine uint8 quantization of one tensor -> (q uint8, scale, min) (min may be nudged)."""
    lo, hi = float(w.min()), float(w.max())
    if lo == hi:
        return np.zeros_like(w, dtype=np.uint8), 1.0, lo
    scale = (hi - lo) / 255.0
    if lo <= 0.0 <= hi:  # nudge so that 0.0 maps to an integer (TF-Lite NudgeQuantizationRange)
        lo = -np.round(-lo / scale) * scale
        hi = 255.0 * scale + lo
    q = np.round((np.clip(w, lo, hi) - lo) / scale).astype(np.uint8)
    return q, scale, lo


@contextlib.contextmanager
def quantized_weights(model: tf.keras.Model, precision: str) -> Iterator[None]:
    """Temporarily replace every trainable weight by its quantized+dequantized value."""
    originals = [v.numpy() for v in model.trainable_variables]
    try:
        for var, value in zip(model.trainable_variables, originals):
            var.assign(quantize_dequantize(value, precision))
        yield
    finally:
        for var, value in zip(model.trainable_variables, originals):
            var.assign(value)


# ----------------------------------------------------------------------------- metrics


def render_split(model, frames: dict[str, np.ndarray]) -> np.ndarray:
    """Resynthesize every example of a split: audio [N, n_samples], fixed noise per batch."""
    outputs = []
    for start in range(0, len(frames["audio"]), EVAL_BATCH):
        stop = start + EVAL_BATCH
        outputs.append(model.render(frames["f0_hz"][start:stop], frames["feature_db"][start:stop],
                                    noise_seed=EVAL_NOISE_SEED + start))
    return np.concatenate(outputs, axis=0)


def spectral_quality(original: np.ndarray, resynth: np.ndarray) -> float:
    """Mean multi-scale spectral loss over examples (per batch, weighted by batch size)."""
    from trainers.train import make_loss

    loss_fn, total = make_loss(), 0.0
    for start in range(0, len(original), EVAL_BATCH):
        a, b = original[start:start + EVAL_BATCH], resynth[start:start + EVAL_BATCH]
        total += float(loss_fn(tf.constant(a), tf.constant(b))) * len(a)
    return total / len(original)


def track_f0(audio: np.ndarray, frame_rate: int, n_frames: int) -> np.ndarray:
    """YIN f0 in Hz [N, n_frames] of audio [N, n_samples], frames centered like the dataset's."""
    hop = synth.SAMPLE_RATE // frame_rate
    f0 = librosa.yin(audio, fmin=YIN_FMIN, fmax=YIN_FMAX, sr=synth.SAMPLE_RATE, frame_length=YIN_FRAME,
                     hop_length=hop, center=True)
    return _fit_frames(f0, n_frames)


def pitch_error_cents(resynth: np.ndarray, frames: dict[str, np.ndarray], frame_rate: int,
                      voiced_threshold: float = VOICED_CONFIDENCE) -> float:
    """Median absolute pitch error (cents) of resynth vs the conditioning f0, voiced frames only
    (f0_confidence >= voiced_threshold, the dataset manifest's). NaN if no frame is voiced."""
    f0_in = frames["f0_hz"][..., 0]
    f0_out = track_f0(resynth, frame_rate, f0_in.shape[1])
    voiced = (frames["f0_confidence"] >= voiced_threshold) & (f0_in > 0) & (f0_out > 0)
    if not voiced.any():
        return float("nan")
    cents = 1200.0 * np.log2(f0_out[voiced] / f0_in[voiced])
    return float(np.median(np.abs(cents)))


def loudness_error_db(original: np.ndarray, resynth: np.ndarray, frame_rate: int) -> float:
    """Mean absolute difference (dB) of ddsp A-weighted loudness, original vs resynth."""
    def loudness(x):
        return np.asarray(ddsp.spectral_ops.compute_loudness(x, sample_rate=synth.SAMPLE_RATE,
                                                             frame_rate=frame_rate, use_tf=False))
    return float(np.mean(np.abs(loudness(original) - loudness(resynth))))


def evaluate(model, frames: dict[str, np.ndarray], voiced_threshold: float = VOICED_CONFIDENCE) -> dict[str, float]:
    """{"quality", "pitch_error_cents", "loudness_error_db"} of `model` on a split (load_frames)."""
    frame_rate = model.config["frame_rate"]
    resynth = render_split(model, frames)
    return {
        "quality": spectral_quality(frames["audio"], resynth),
        "pitch_error_cents": pitch_error_cents(resynth, frames, frame_rate, voiced_threshold),
        "loudness_error_db": loudness_error_db(frames["audio"], resynth, frame_rate),
    }


def evaluate_all_precisions(model, frames: dict[str, np.ndarray],
                            voiced_threshold: float = VOICED_CONFIDENCE) -> dict[str, float]:
    """`evaluate` at each precision, keys suffixed: quality_float32, pitch_error_cents_uint8, ..."""
    out: dict[str, float] = {}
    for precision in PRECISIONS:
        with quantized_weights(model, precision):
            for key, value in evaluate(model, frames, voiced_threshold).items():
                out[f"{key}_{precision}"] = value
    return out


def write_audio_examples(model, frames: dict[str, np.ndarray], audio_dir: Path, n_examples: int = 1) -> None:
    """audio_dir/original.wav and resynth.wav: the first validation example(s), 16-bit PCM."""
    audio_dir.mkdir(parents=True, exist_ok=True)
    subset = {k: v[:n_examples] for k, v in frames.items()}
    resynth = model.render(subset["f0_hz"], subset["feature_db"], noise_seed=EVAL_NOISE_SEED)
    for name, audio in (("original", subset["audio"]), ("resynth", resynth)):
        clipped = np.clip(np.concatenate(list(audio)), -1.0, 1.0)
        sf.write(str(audio_dir / f"{name}.wav"), clipped, synth.SAMPLE_RATE, subtype="PCM_16")


def _fit_frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """Crop or edge-pad the last axis to n_frames (trackers differ by a frame at the end)."""
    if x.shape[-1] >= n_frames:
        return x[..., :n_frames]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, n_frames - x.shape[-1])]
    return np.pad(x, pad, mode="edge")


__all__ = ["evaluate", "evaluate_all_precisions", "quantize_dequantize", "quantize_uint8", "quantized_weights",
           "write_audio_examples", "PRECISIONS"]
