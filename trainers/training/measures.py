"""The two signal measures evaluation takes of audio, in NumPy and SciPy alone: YIN f0 and ddsp's loudness.

    yin(y, fmin, fmax, sr, frame_length, hop_length) -> f0 [..., frames]        = librosa.yin(..., center=True)
    loudness_db(audio, sample_rate, frame_rate)      -> dB [batch, frames]      = ddsp's compute_loudness(use_tf=False)

Why not call them: librosa's utilities import numba (its local minima and parabolic interpolation are
numba kernels), so the first pitch call in a process imports numba and llvmlite and loads the compiled
kernels: +132 MiB of a trial worker's resident memory and 1.3 s, in every worker that evaluates a trial,
for arithmetic NumPy does as fast (docs/engines.md "Evaluation"). ddsp's numpy loudness goes through
librosa's STFT, frequencies and A-weighting, which import the same. The steps below are librosa 0.11's
and ddsp 3.7's, in their order and at their precisions, so the numbers are theirs bit for bit
(tests/test_model.py holds them to it). Training and the datasets do not use this module: `prepare`
keeps librosa (its pitch tracker is a numba kernel of its own, trainers.data.features).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.signal

LOUDNESS_FFT = 512      # ddsp's compute_loudness defaults: n_fft, range_db (ddsp.spectral_ops.DB_RANGE), ref_db
LOUDNESS_RANGE_DB = 80.0
A_WEIGHTING_MIN_DB = -80.0  # librosa.A_weighting's min_db
YIN_TROUGH_THRESHOLD = 0.1  # librosa.yin's trough_threshold


# ----------------------------------------------------------------------------- YIN


def yin(y: np.ndarray, fmin: float, fmax: float, sr: int, frame_length: int, hop_length: int) -> np.ndarray:
    """f0 in Hz of ``y`` [..., n_samples], frames centered (zero-padded): librosa.yin's estimate. As librosa,
    refuses audio that is not finite; the pitch range and frame are evaluation's own, not checked again."""
    _check_finite(y)
    pad = [(0, 0)] * (y.ndim - 1) + [(frame_length // 2, frame_length // 2)]
    frames = _frame(np.pad(y, pad, mode="constant"), frame_length, hop_length)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    yin_frames = _cumulative_mean_normalized_difference(frames, min_period, max_period)

    is_trough = _local_minima(yin_frames)
    is_trough[..., 0, :] = yin_frames[..., 0, :] < yin_frames[..., 1, :]
    below = np.logical_and(is_trough, yin_frames < YIN_TROUGH_THRESHOLD)
    # The smallest period with a trough below the threshold, else the global minimum (YIN's absolute threshold).
    target_shape = list(yin_frames.shape)
    target_shape[-2] = 1
    global_min = np.argmin(yin_frames, axis=-2).reshape(target_shape)
    period = np.argmax(below, axis=-2).reshape(target_shape)
    none_below = np.all(~below, axis=-2, keepdims=True)
    period[none_below] = global_min[none_below]
    period = (min_period + period + _parabolic_shift_at(yin_frames, period))[..., 0, :]
    return sr / period


def _frame(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """[..., n] -> [..., frame_length, n_frames] (a view), as librosa.util.frame(axis=-1)."""
    windows = np.lib.stride_tricks.sliding_window_view(y, frame_length, axis=-1)[..., ::hop_length, :]
    return np.swapaxes(windows, -1, -2)


def _autocorrelate(y: np.ndarray, max_size: int) -> np.ndarray:
    """librosa.autocorrelate along axis -2 (real input): the power spectrum's inverse FFT.

    The FFTs run along rows made contiguous first (librosa's run along the frames' strided axis):
    each transform is the same arithmetic, so the numbers are too, in half the time."""
    rows = np.ascontiguousarray(np.swapaxes(y, -1, -2))  # [..., n_frames, frame_length]
    n_pad = scipy.fft.next_fast_len(2 * rows.shape[-1] - 1, real=True)
    spectrum = scipy.fft.rfft(rows, n=n_pad, axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    acf = scipy.fft.irfft(power, n=n_pad, axis=-1)[..., :min(max_size, rows.shape[-1])]
    return np.swapaxes(acf, -1, -2)


def _cumulative_mean_normalized_difference(frames: np.ndarray, min_period: int, max_period: int) -> np.ndarray:
    """YIN's d'(tau) for tau in [min_period, max_period] (de Cheveigné and Kawahara 2002, eq. 8)."""
    acf = _autocorrelate(frames, max_period + 1)
    # librosa squares and sums the whole frame; the running sum's rows 0..max_period-1 are read (and row
    # max_period written over), and a running sum's first rows do not depend on the rows after them
    energy = np.square(frames[..., :max_period + 1, :])
    np.cumsum(energy, out=energy, axis=-2)
    k = slice(1, max_period + 1)
    energy[..., 0, :] = 0
    energy[..., k, :] = 2 * (acf[..., 0:1, :] - acf[..., k, :]) - energy[..., :k.stop - 1, :]
    numerator = energy[..., min_period:max_period + 1, :]
    k_range = np.r_[k].reshape(-1, 1)
    cumulative_mean = np.cumsum(energy[..., k, :], axis=-2) / k_range
    denominator = cumulative_mean[..., min_period - 1:max_period, :]
    return numerator / (denominator + np.finfo(denominator.dtype).tiny)


def _local_minima(x: np.ndarray) -> np.ndarray:
    """librosa.util.localmin along axis -2: x[i] < x[i-1] and x[i] <= x[i+1]; the first row False, the
    last x[-1] < x[-2]."""
    out = np.zeros(x.shape, dtype=bool)
    out[..., 1:-1, :] = (x[..., 1:-1, :] < x[..., :-2, :]) & (x[..., 1:-1, :] <= x[..., 2:, :])
    out[..., -1, :] = x[..., -1, :] < x[..., -2, :]
    return out


def _parabolic_shift_at(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """librosa's parabolic interpolation along axis -2, at ``index`` [..., 1, frames] only (all YIN reads):
    the offset of the parabola's optimum through that point and its neighbours, 0 where it lies a bin or
    more away and at both ends. librosa's numba stencil adds and subtracts neighbours at the input's
    precision and multiplies and divides by its integer constants in float64; so does this, with the
    result at the input's precision as librosa's."""
    last = x.shape[-2] - 1
    before, here, after = (np.take_along_axis(x, np.clip(index + offset, 0, last), axis=-2) for offset in (-1, 0, 1))
    a = (after + before).astype(np.float64) - 2 * here.astype(np.float64)
    b = (after - before).astype(np.float64) / 2
    far = (np.abs(b) >= np.abs(a)) | (index == 0) | (index == last)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(far, 0.0, -b / np.where(far, 1.0, a)).astype(x.dtype)


# ----------------------------------------------------------------------------- loudness


def loudness_db(audio: np.ndarray, sample_rate: int, frame_rate: int) -> np.ndarray:
    """A-weighted loudness in dB [batch, frames] of ``audio`` [batch, n_samples], frames centered: ddsp's
    ``compute_loudness(audio, sample_rate, frame_rate, use_tf=False)`` (n_fft 512, 80 dB range, ref 0 dB)."""
    hop = sample_rate // frame_rate
    audio = np.asarray(audio, dtype=np.float32)
    _check_finite(audio)
    padded = np.pad(audio, [(0, 0), (LOUDNESS_FFT // 2, LOUDNESS_FFT // 2)], mode="constant")
    window = scipy.signal.get_window("hann", LOUDNESS_FFT, fftbins=True).reshape(-1, 1)
    spectra = np.stack([_stft(row, window, hop) for row in padded])  # [batch, frames, bins]
    power = np.abs(spectra) ** 2
    frequencies = np.fft.rfftfreq(n=LOUDNESS_FFT, d=1.0 / sample_rate)
    weighting = 10 ** (_a_weighting(frequencies)[np.newaxis, np.newaxis, :] / 10)
    avg_power = np.mean(power * weighting, axis=-1)
    db = 10.0 * np.log10(np.maximum(10 ** -(LOUDNESS_RANGE_DB / 10.0), avg_power))  # ddsp.core.power_to_db, ref 0 dB
    return np.maximum(db, -LOUDNESS_RANGE_DB)


def _stft(y: np.ndarray, window: np.ndarray, hop: int) -> np.ndarray:
    """librosa.stft(y, n_fft, hop, center=False).T with its Hann ``window`` [n_fft, 1]: windowed frames, FFT in
    float64, kept as complex64, [frames, bins] in C order as ddsp gets it (the mean over bins sums in memory
    order)."""
    frames = _frame(y, len(window), hop)
    return np.ascontiguousarray(scipy.fft.rfft(window * frames, axis=-2).astype(np.complex64).T)


def _a_weighting(frequencies: np.ndarray) -> np.ndarray:
    """librosa.A_weighting (IEC 61672), floored at -80 dB, term for term in librosa's order."""
    f_sq = frequencies ** 2.0
    const = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2.0
    with np.errstate(divide="ignore"):  # 0 Hz: -inf, floored below
        weights = 2.0 + 20.0 * (
            np.log10(const[0]) + 2 * np.log10(f_sq) - np.log10(f_sq + const[0]) - np.log10(f_sq + const[1])
            - 0.5 * np.log10(f_sq + const[2]) - 0.5 * np.log10(f_sq + const[3])
        )
    return np.maximum(A_WEIGHTING_MIN_DB, weights)


def _check_finite(audio: np.ndarray) -> None:
    """librosa's and ddsp's refusal of audio that is not finite everywhere (a trial's evaluation then fails
    with the reason, rather than measuring over the frames that happen to be finite)."""
    if not np.isfinite(audio).all():
        raise ValueError("audio is not finite everywhere")


__all__ = ["loudness_db", "yin"]
