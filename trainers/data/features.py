"""Per-frame features of 16 kHz mono audio: f0 + voicing confidence (pYIN), loudness, RMS energy.

Frame convention (shared by every feature and every frame rate R): frame i is centred on sample
``i * sample_rate / R`` (centre padding), and a signal of ``n`` samples has exactly ``n * R /
sample_rate`` frames (the extra last frame that centre padding produces is dropped). So the frames
of a 4 s slice at 250 Hz are exactly frames ``[t0 * 250, t0 * 250 + 1000)`` of the whole file,
which lets `prepare` compute features once per file and cut examples afterwards.

pYIN cost: librosa's pYIN decodes its pitch HMM with a dense Viterbi over ~1200 states, ~18 s of
CPU per 20 s of audio at 250 Hz. The HMM's transition matrix is banded (pitch moves at most a few
bins per frame), so :func:`pyin` runs the same model with a banded Viterbi — identical voicing,
voicing probability and voiced f0 (tested against ``librosa.pyin``), about 15-30x faster.
(librosa's dense matrix also allows out-of-band jumps with probability ~1e-308; they can change
the arbitrary "best guess" pitch it reports in unvoiced frames, which tonesweep interpolates over.)

When every requested frame rate divides the highest one, pYIN runs once at the highest rate and
lower rates take every k-th frame: the frames are centred on the same samples and pYIN's voicing
probability is computed per frame, so only the HMM path could differ. Measured on 1-minute demo
takes: identical confidence, 99.96-100% of voiced frames within 10 cents of a direct 50 Hz run.

Imports of TensorFlow/ddsp happen inside the loudness functions, so worker processes that only
track pitch never pay for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numba import njit  # librosa depends on numba; the Viterbi loop below needs it

from common.constants import DB_RANGE, SAMPLE_RATE, VOICED_THRESHOLD

# librosa.pyin's defaults, spelled out because :func:`pyin` re-assembles its steps
PYIN_THRESHOLDS = 100
PYIN_BETA = (2, 18)
PYIN_BOLTZMANN = 2
PYIN_NO_TROUGH_PROB = 0.01
PYIN_SWITCH_PROB = 0.01
PYIN_MAX_TRANSITION_RATE = 35.92  # octaves per second


@dataclass(frozen=True)
class FeatureParams:
    """Everything that determines the features; part of a dataset's cache key and manifest."""

    sample_rate: int = SAMPLE_RATE
    frame_rates: tuple[int, ...] = (250, 50)
    f0_min_hz: float = 65.4  # C2: below the lowest note of the instruments we model
    f0_max_hz: float = 2093.0  # C7: above a bansuri's top register
    pyin_frame_length: int = 1024  # 64 ms: two periods of the lowest f0
    pyin_resolution: float = 0.1  # semitones per pitch bin
    loudness_n_fft: int = 512
    rms_frame_size: int = 512
    db_range: float = DB_RANGE
    # Voiced = pYIN's decoded voicing (f0_voicing). This threshold on the voiced probability only
    # serves datasets prepared before voiced flags were stored (pipeline version < 3).
    voiced_threshold: float = VOICED_THRESHOLD
    algorithm: dict = field(default_factory=lambda: {"f0": "pyin (librosa 0.11, banded Viterbi)",
                                                     "voicing": "pyin's decoded HMM voicing",
                                                     "loudness": "ddsp.spectral_ops.compute_loudness",
                                                     "rms": "ddsp.spectral_ops.compute_rms_energy -> dB"})

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frame_rates"] = list(self.frame_rates)
        return out


def n_frames(n_samples: int, frame_rate: int, sample_rate: int = SAMPLE_RATE) -> int:
    """Frames covering ``n_samples`` at ``frame_rate`` under the convention above."""
    return n_samples * frame_rate // sample_rate


# ----------------------------------------------------------------------------------------------
# f0


def f0_voicing(
    audio: np.ndarray, params: FeatureParams, interpolate: bool = True
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """f0, voicing confidence and voiced flags at each of ``params.frame_rates``.

    Voicing is decided the way pYIN decides it: the frame's state on the decoded HMM path is a
    voiced one. The confidence (pYIN's voiced probability) is kept beside it as a feature. (A fixed
    threshold on the probability refused real pitched recordings: a low synth bass was 0 % voiced
    at probability >= 0.5 and 99.9 % by pYIN's own decoder.)

    Args: audio float32 [n] at params.sample_rate.
    Returns: {R: (f0_hz float32 [n*R/sr], f0_confidence float32 [same], voiced bool [same])}. f0 is
    continuous: in unvoiced frames it is interpolated between the neighbouring voiced pitches (held
    at the ends), so a synthesizer never sees jumps to 0 Hz. With ``interpolate=False`` unvoiced
    frames keep pYIN's most likely pitch (for stitching chunks).
    """
    out: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for base_rate, derived in _pyin_plan(params):
        hop = params.sample_rate // base_rate
        f0, voiced, confidence = pyin(audio, params, hop)
        for rate in derived:
            step = base_rate // rate
            count = n_frames(len(audio), rate, params.sample_rate)
            f0_r, conf_r, voiced_r = f0[::step][:count], confidence[::step][:count], voiced[::step][:count]
            if interpolate:
                f0_r = fill_unvoiced(f0_r, voiced_r)
            out[rate] = (f0_r.astype(np.float32), conf_r.astype(np.float32), voiced_r.astype(bool))
    return out


def f0_features(audio: np.ndarray, params: FeatureParams, interpolate: bool = True) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``f0_voicing`` without the voiced flags: {R: (f0_hz, f0_confidence)}."""
    return {rate: (f0, confidence) for rate, (f0, confidence, _) in f0_voicing(audio, params, interpolate).items()}


# A recording has "pitched content" when at least this share of its frames is steadily voiced: voiced
# (pYIN's decoded voicing) like the frame before, with a pitch within STEADY_CENTS of it. pYIN's decoder
# calls ~30 % of white noise voiced, but its path jumps there (9 % steady); the demo recordings are
# 88 % steady, a held or breathy note 100 %. `prepare` skips a file without it, `transfer` refuses one.
MIN_STEADY_FRACTION = 0.25
STEADY_CENTS = 30.0


def steady_fraction(f0_hz: np.ndarray, voiced: np.ndarray) -> float:
    """Share of frames voiced like the frame before them, at a pitch within STEADY_CENTS of it."""
    voiced = np.asarray(voiced) > 0.5
    f0 = np.maximum(np.asarray(f0_hz, dtype=np.float64), 1e-3)
    steps = np.abs(1200.0 * np.log2(f0[1:] / f0[:-1])) if f0.size > 1 else np.zeros(0)
    steady = voiced[1:] & voiced[:-1] & (steps < STEADY_CENTS)
    return float(steady.mean()) if steady.size else 0.0


def parse_pitch(text: str | float, field: str) -> float:
    """A pitch bound in Hz from a number ("65.4") or a note name ("C2", "A#1", "Eb5")."""
    from common.errors import UserError

    try:
        return float(text)
    except (TypeError, ValueError):
        pass
    import librosa

    try:
        return float(librosa.note_to_hz(str(text)))
    except Exception:  # noqa: BLE001 - librosa raises ParameterError or ValueError for bad names
        raise UserError(f"{field} {text!r}: not a frequency in Hz or a note name; use e.g. 65.4 or C2") from None


def _pyin_plan(params: FeatureParams) -> list[tuple[int, list[int]]]:
    """Which rates pYIN runs at, and which requested rates each run serves by decimation."""
    plan: list[tuple[int, list[int]]] = []
    for rate in sorted(set(params.frame_rates), reverse=True):
        for base, derived in plan:
            if base % rate == 0:
                derived.append(rate)
                break
        else:
            plan.append((rate, [rate]))
    return plan


def fill_unvoiced(f0_hz: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """Interpolate f0 over unvoiced frames in log-frequency; float32 [T]. All unvoiced → zeros."""
    f0_hz = np.asarray(f0_hz, dtype=np.float64)
    if not voiced.any():
        return np.zeros_like(f0_hz, dtype=np.float32)
    index = np.arange(len(f0_hz))
    log_f0 = np.interp(index, index[voiced], np.log2(f0_hz[voiced]))
    return (2.0**log_f0).astype(np.float32)


def pyin(audio: np.ndarray, params: FeatureParams, hop_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa's pYIN with a banded Viterbi: (f0_hz [F], voiced_flag [F], voiced_prob [F]).

    F = 1 + n // hop_length (centre padding, like librosa). Unvoiced frames keep their most
    likely pitch in f0_hz (librosa's ``fill_na=None``).
    """
    import librosa
    import scipy.stats
    from librosa.core import pitch as lp

    sr, frame_length, fmin, fmax = params.sample_rate, params.pyin_frame_length, params.f0_min_hz, params.f0_max_hz
    # The steps below mirror librosa.pyin (librosa 0.11) up to its Viterbi call.
    y = np.pad(np.asarray(audio, dtype=np.float32), (frame_length // 2, frame_length // 2))
    y_frames = librosa.util.frame(y, frame_length=frame_length, hop_length=hop_length)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    yin_frames = lp._cumulative_mean_normalized_difference(y_frames, min_period, max_period)
    parabolic_shifts = lp._parabolic_interpolation(yin_frames)
    thresholds = np.linspace(0, 1, PYIN_THRESHOLDS + 1)
    beta_probs = np.diff(scipy.stats.beta.cdf(thresholds, *PYIN_BETA))
    bins_per_semitone = int(np.ceil(1.0 / params.pyin_resolution))
    n_pitch_bins = int(np.floor(12 * bins_per_semitone * np.log2(fmax / fmin))) + 1
    helper = getattr(lp, "__pyin_helper")  # module-private in librosa; same call librosa.pyin makes
    observation_probs, voiced_prob = helper(
        yin_frames, parabolic_shifts, sr, thresholds, PYIN_BOLTZMANN, beta_probs, PYIN_NO_TROUGH_PROB,
        min_period, fmin, n_pitch_bins, bins_per_semitone,
    )
    max_semitones_per_frame = round(PYIN_MAX_TRANSITION_RATE * 12 * hop_length / sr)
    width = max_semitones_per_frame * bins_per_semitone + 1
    pitch_transition = librosa.sequence.transition_local(n_pitch_bins, width, window="triangle", wrap=False)
    observation_probs = observation_probs.reshape(2 * n_pitch_bins, -1)  # helper returns [1, 2S, F]
    states = banded_viterbi(observation_probs, pitch_transition, switch_prob=PYIN_SWITCH_PROB)
    freqs = fmin * 2 ** (np.arange(n_pitch_bins) / (12 * bins_per_semitone))
    return freqs[states % n_pitch_bins], states < n_pitch_bins, voiced_prob.reshape(-1)


def banded_viterbi(observation_probs: np.ndarray, pitch_transition: np.ndarray, switch_prob: float) -> np.ndarray:
    """Most likely state path of pYIN's HMM, exploiting that its transitions are banded.

    States: [voiced pitch bins 0..S-1, unvoiced pitch bins 0..S-1] (librosa's order);
    transition = kron([[1-p, p], [p, 1-p]], pitch_transition), pitch_transition banded.
    Args: observation_probs [2S, T]; pitch_transition [S, S] (rows sum to 1).
    Returns: states int64 [T], same tie-breaking as ``librosa.sequence.viterbi``.
    """
    from librosa.util import tiny

    n_states, _ = observation_probs.shape
    epsilon = tiny(observation_probs)
    sources, log_weights = _cached_band_tables(pitch_transition, switch_prob, epsilon)
    log_prob = np.log(observation_probs.T + epsilon)
    log_init = np.log(np.full(n_states, 1.0 / n_states) + epsilon)
    return _viterbi_sparse(log_prob, sources, log_weights, log_init)


_BAND_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _cached_band_tables(pitch_transition: np.ndarray, switch_prob: float, epsilon: float):
    """_band_tables of pYIN's full transition, memoised: it depends only on the hop and pitch grid."""
    key = (pitch_transition.shape, pitch_transition.tobytes().__hash__(), switch_prob, epsilon)
    if key not in _BAND_TABLES:
        switch = np.array([[1 - switch_prob, switch_prob], [switch_prob, 1 - switch_prob]])
        _BAND_TABLES[key] = _band_tables(np.kron(switch, pitch_transition), epsilon)
    return _BAND_TABLES[key]


def _band_tables(transition: np.ndarray, epsilon: float) -> tuple[np.ndarray, np.ndarray]:
    """For every target state, its possible source states (ascending) and their log weights.

    Returns: sources int32 [2S, K] (padded with -1) and log_weights float64 [2S, K].
    """
    nonzero = transition > 0
    widest = int(nonzero.sum(axis=0).max())
    n_states = transition.shape[0]
    sources = np.full((n_states, widest), -1, dtype=np.int32)
    log_weights = np.full((n_states, widest), -np.inf)
    for target in range(n_states):
        found = np.flatnonzero(nonzero[:, target])
        sources[target, : len(found)] = found
        log_weights[target, : len(found)] = np.log(transition[found, target] + epsilon)
    return sources, log_weights


@njit(cache=True)
def _viterbi_sparse(log_prob, sources, log_weights, log_init):  # pragma: no cover - numba kernel
    """Viterbi over a sparse transition: log_prob [T, N], sources/log_weights [N, K] → states [T]."""
    n_steps, n_states = log_prob.shape
    value = log_prob[0] + log_init
    pointers = np.zeros((n_steps, n_states), dtype=np.int32)
    for t in range(1, n_steps):
        new_value = np.empty(n_states)
        for target in range(n_states):
            # strict ">" over ascending sources keeps the first maximum, like librosa's argmax
            best, best_source = -np.inf, 0
            for k in range(sources.shape[1]):
                source = sources[target, k]
                if source < 0:
                    break
                candidate = value[source] + log_weights[target, k]
                if candidate > best:
                    best, best_source = candidate, source
            pointers[t, target] = best_source
            new_value[target] = log_prob[t, target] + best
        value = new_value
    states = np.zeros(n_steps, dtype=np.int64)
    states[-1] = np.argmax(value)
    for t in range(n_steps - 2, -1, -1):
        states[t] = pointers[t + 1, states[t + 1]]
    return states


# ----------------------------------------------------------------------------------------------
# loudness and RMS (ddsp)


def loudness_db(audio: np.ndarray, frame_rate: int, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """ddsp's A-weighted loudness in dB (0 dB ref, floored at -db_range).

    Args: audio float32 [n] or [B, n] at params.sample_rate.
    Returns: float32 [n*R/sr] or [B, n*R/sr].
    """
    from trainers.ddsp_compat import ddsp

    with np.errstate(divide="ignore"):  # librosa's A-weighting takes log10(0) for the DC bin
        values = ddsp.spectral_ops.compute_loudness(
            np.asarray(audio, dtype=np.float32), sample_rate=params.sample_rate, frame_rate=int(frame_rate),
            n_fft=params.loudness_n_fft, range_db=params.db_range, ref_db=0.0, use_tf=True, padding="center",
        )
    return _trim(np.asarray(values, dtype=np.float32), audio, frame_rate, params)


def rms_db(audio: np.ndarray, frame_rate: int, params: FeatureParams = FeatureParams()) -> np.ndarray:
    """RMS energy (ddsp.spectral_ops.compute_rms_energy) in dB, floored at -db_range.

    Args: audio float32 [n] or [B, n]. Returns: float32 [n*R/sr] or [B, n*R/sr].
    """
    from trainers.ddsp_compat import ddsp

    rms = ddsp.spectral_ops.compute_rms_energy(
        np.asarray(audio, dtype=np.float32), sample_rate=params.sample_rate, frame_rate=int(frame_rate),
        frame_size=params.rms_frame_size, padding="center",
    )
    values = ddsp.core.amplitude_to_db(rms, ref_db=0.0, range_db=params.db_range, use_tf=True)
    return _trim(np.asarray(values, dtype=np.float32), audio, frame_rate, params)


def _trim(values: np.ndarray, audio: np.ndarray, frame_rate: int, params: FeatureParams) -> np.ndarray:
    """Drop centre padding's extra last frame so the count is exactly n*R/sr."""
    count = n_frames(np.shape(audio)[-1], frame_rate, params.sample_rate)
    if values.shape[-1] < count:  # cannot happen with centre padding; guard the contract anyway
        raise ValueError(f"feature has {values.shape[-1]} frames, expected {count}")
    return values[..., :count]


def all_features(audio: np.ndarray, params: FeatureParams) -> dict[str, np.ndarray]:
    """Every feature at every frame rate for one signal (used for a whole file).

    Returns: {"f0_hz_R", "f0_confidence_R", "loudness_db_R", "rms_db_R"} float32 [n*R/sr] each.
    """
    out = {}
    for rate, (f0, confidence) in f0_features(audio, params).items():
        out[f"f0_hz_{rate}"], out[f"f0_confidence_{rate}"] = f0, confidence
    out.update(level_features(audio, params))
    return out


def level_features(audio: np.ndarray, params: FeatureParams) -> dict[str, np.ndarray]:
    """Loudness and RMS in dB at every frame rate: {"loudness_db_R", "rms_db_R"} float32 [n*R/sr]."""
    out = {}
    for rate in params.frame_rates:
        out[f"loudness_db_{rate}"] = loudness_db(audio, rate, params)
        out[f"rms_db_{rate}"] = rms_db(audio, rate, params)
    return out
