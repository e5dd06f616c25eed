"""The synthesizer: ddsp Harmonic + FilteredNoise (+ optional FIR reverb), as two pure functions.

    raw [B,T,1+H+N], f0_hz [B,T,1] --get_controls--> controls --get_signal--> audio [B, n_samples]

Both functions hold no state and no trainable variables (the reverb impulse response is passed
in), so the export engineer can reproduce them op by op and test with hand-made controls.
The synth is exactly ddsp's:

- harmonic: ``ddsp.synths.Harmonic(scale_fn=exp_sigmoid, normalize_below_nyquist=True,
  amp_resample_method='window', use_angular_cumsum=True)`` (wrapped phase accumulation,
  see docs/export-notes.md);
- noise: ``ddsp.synths.FilteredNoise(window_size=257, scale_fn=exp_sigmoid, initial_bias=-5)``,
  except that the white noise is an explicit input (``FilteredNoise.get_signal`` draws it
  from TF's stateful RNG) so training, evaluation and export parity are reproducible;
- reverb: ``ddsp.effects.Reverb(add_dry=True)`` applied to a given impulse response.

Control frames are upsampled to audio rate inside the synth (frames T must divide n_samples).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common.constants import SAMPLE_RATE
from trainers.ddsp_compat import ddsp

NOISE_WINDOW_SIZE = 257  # FilteredNoise's default FIR length
NOISE_INITIAL_BIAS = -5.0  # FilteredNoise's default: starts the noise quiet


def _harmonic(n_samples: int, sample_rate: int) -> "ddsp.synths.Harmonic":
    return ddsp.synths.Harmonic(
        n_samples=n_samples,
        sample_rate=sample_rate,
        scale_fn=ddsp.core.exp_sigmoid,
        normalize_below_nyquist=True,
        amp_resample_method="window",
        use_angular_cumsum=True,
    )


def _filtered_noise(n_samples: int) -> "ddsp.synths.FilteredNoise":
    return ddsp.synths.FilteredNoise(
        n_samples=n_samples,
        window_size=NOISE_WINDOW_SIZE,
        scale_fn=ddsp.core.exp_sigmoid,
        initial_bias=NOISE_INITIAL_BIAS,
    )


def get_controls(raw: tf.Tensor, f0_hz: tf.Tensor, n_harmonics: int, sample_rate: int = SAMPLE_RATE) -> dict[str, tf.Tensor]:
    """Decoder outputs -> synthesizer controls (ddsp's scaling and normalization).

    Args:
      raw: decoder output [B, T, 1 + n_harmonics + n_noise_bands], channel order
        amplitude | harmonic distribution | noise magnitudes.
      f0_hz: fundamental frequency in Hz [B, T, 1] (unscaled, as in the dataset).
      n_harmonics: H, to split `raw`.
      sample_rate: audio rate, for removing harmonics above Nyquist.
    Returns:
      {"amplitudes" [B,T,1] > 0, "harmonic_distribution" [B,T,H] (sums to 1 over harmonics
      below Nyquist, 0 above), "f0_hz" [B,T,1], "noise_magnitudes" [B,T,N] > 0}.
    """
    n_noise = int(raw.shape[-1]) - 1 - n_harmonics
    amplitudes, harmonic_distribution, noise = tf.split(raw, [1, n_harmonics, n_noise], axis=-1)
    # Only get_controls of these processors is used here: the constructor's n_samples is irrelevant.
    harmonic = _harmonic(1, sample_rate).get_controls(amplitudes, harmonic_distribution, f0_hz)
    noise_controls = _filtered_noise(1).get_controls(noise)
    return {**harmonic, "noise_magnitudes": noise_controls["magnitudes"]}


def get_signal(
    controls: dict[str, tf.Tensor],
    n_samples: int,
    noise: tf.Tensor,
    reverb_ir: tf.Tensor | None = None,
    sample_rate: int = SAMPLE_RATE,
    fast_harmonics: bool = False,
) -> tf.Tensor:
    """Synthesizer controls -> audio.

    Args:
      controls: the dict from `get_controls`.
      n_samples: audio length; a multiple of the frame count T.
      noise: white noise [B, n_samples], uniform in [-1, 1) (see `white_noise`).
      reverb_ir: optional impulse response [ir_len]; sample 0 is ignored (ddsp masks the dry tap)
        and the dry signal is added back.
      sample_rate: audio rate in Hz.
      fast_harmonics: use `harmonic_synthesis_fast` (training only) instead of ddsp's Harmonic.
    Returns:
      audio [B, n_samples], float32.
    """
    harmonic_args = (controls["amplitudes"], controls["harmonic_distribution"], controls["f0_hz"])
    if fast_harmonics:
        harmonic_audio = harmonic_synthesis_fast(*harmonic_args, n_samples=n_samples, sample_rate=sample_rate)
    else:
        harmonic_audio = _harmonic(n_samples, sample_rate).get_signal(*harmonic_args)
    noise_audio = ddsp.core.frequency_filter(noise, controls["noise_magnitudes"], window_size=NOISE_WINDOW_SIZE)
    audio = harmonic_audio + noise_audio
    if reverb_ir is not None:
        audio = apply_reverb(audio, reverb_ir)
    return audio


def harmonic_synthesis_fast(
    amplitudes: tf.Tensor, harmonic_distribution: tf.Tensor, f0_hz: tf.Tensor, n_samples: int, sample_rate: int = SAMPLE_RATE
) -> tf.Tensor:
    """ddsp's Harmonic.get_signal (angular cumsum, 'window' amplitudes) reorganized for speed.

    Used by the training step only; rendering, evaluation and export use ddsp's Harmonic.
    Two reformulations, equal in exact arithmetic:

    1. Phase: linear interpolation and cumulative sums are linear, so harmonic k's phase is k
       times the fundamental's (mod 2 pi). Only f0 is upsampled and accumulated (in float64,
       then wrapped to [0, 2 pi) and cast to float32), and sin(k * phase0) replaces ddsp's
       sin(angular_cumsum(k * omega0)) — 1/H of the cumsum work. This is also more exact: in
       float32 ddsp's chunked cumsum of k * omega drifts by up to ~pi rad at high harmonics over
       4 s, this by ~k * 2e-7 rad (tests/test_model.py measures both against float64). f0 is data,
       so no gradient flows through the phase, and the [B, n, H] sinusoids (``_harmonic_waves``,
       the largest tensor of the step) are one XLA loop with a polynomial sine.
    2. Amplitudes: ddsp's 'window' upsampling (overlap-add of Hann windows of 2*hop, trimmed) is,
       per output sample in frame interval q at offset t, a two-frame crossfade
       a[q] * w[t + hop] + a[q + 1] * w[t] (the last frame held). Summing over harmonics before
       crossfading turns the oscillator bank into one batched matmul per frame:
       [hop, H] sinusoids x [H, 2] amplitudes of frames q and q+1 — fast forward and backward.

    Args: amplitudes [B,T,1], harmonic_distribution [B,T,H], f0_hz [B,T,1] (controls from
      `get_controls`), n_samples (a multiple of T). Returns audio [B, n_samples].
    """
    batch, n_frames, n_harmonics = (int(d) for d in harmonic_distribution.shape)
    hop = n_samples // n_frames
    ratios = tf.linspace(1.0, float(n_harmonics), n_harmonics)  # [H], as ddsp.core.get_harmonic_frequencies
    f0_env = ddsp.core.resample(f0_hz, n_samples)  # [B, n, 1], linear like ddsp's frequency envelopes
    f0_env = tf.stop_gradient(f0_env)
    omega0 = tf.cast(f0_env, tf.float64) * (2.0 * np.pi / sample_rate)  # rad per sample
    phase0 = tf.cast(tf.math.floormod(tf.cumsum(omega0, axis=1), 2.0 * np.pi), tf.float32)  # [B, n, 1] in [0, 2 pi)
    waves = tf.reshape(_harmonic_waves(phase0, f0_env, ratios, sample_rate / 2.0), [batch, n_frames, hop, n_harmonics])

    harmonic_amps = amplitudes * harmonic_distribution  # [B, T, H]
    held = tf.concat([harmonic_amps, harmonic_amps[:, -1:]], axis=1)  # hold the last frame (add_endpoint)
    frame_pairs = tf.stack([held[:, :-1], held[:, 1:]], axis=-1)  # [B, T, H, 2]: frames q and q+1
    per_frame = tf.matmul(waves, frame_pairs)  # [B, T, hop, 2]
    window = tf.signal.hann_window(2 * hop)  # periodic Hann, as ddsp.core.upsample_with_windows
    fade = tf.stack([window[hop:], window[:hop]], axis=-1)  # [hop, 2]: (fall, rise)
    return tf.reshape(tf.reduce_sum(per_frame * fade, axis=-1), [batch, n_samples])


# sin on [-pi, pi] as an odd polynomial of degree 15: least squares on 4,000 Chebyshev nodes in float64, the
# coefficients rounded to float32 (then within 2.2e-7 of sin, in float64). Evaluated in float32 over the
# oscillator bank's arguments it is within 5.6e-7 of sin (tf.sin: 9e-8; tests/test_model.py asks 1e-6), a
# 125 dB margin below a full-scale wave. 2 pi in two parts (Cody and Waite): the first has 16 significant
# bits, so turns * _TWO_PI_HI is exact for the fewer than 2**8 turns of 256 harmonics.
_SIN_COEFFICIENTS = (1.0, -0.1666666716337204, 0.00833333283662796, -0.00019841245375573635,
                     2.755645482466207e-06, -2.503538176767961e-08, 1.5874157544004674e-10, -6.549461493976505e-13)
_TWO_PI_HI, _TWO_PI_LO = 6.283203125, -1.781781975296326e-05


def _sine(x: tf.Tensor) -> tf.Tensor:
    """sin(x), float32, from adds and multiplies alone: XLA fuses it with what surrounds it into one
    vectorised loop, where its own sine is scalar (docs/engines.md, "The training step": TF's sine over a
    [8, 16,000, 60] bank 16 ms, XLA's 55 ms, this polynomial fused with the products 7 ms)."""
    turns = tf.round(x * (1.0 / (2.0 * np.pi)))
    y = (x - turns * _TWO_PI_HI) - turns * _TWO_PI_LO  # in [-pi, pi]
    y2 = y * y
    poly = tf.constant(_SIN_COEFFICIENTS[-1], tf.float32)
    for coefficient in _SIN_COEFFICIENTS[-2::-1]:
        poly = poly * y2 + coefficient
    return poly * y


@tf.function(jit_compile=True, autograph=False)
def _harmonic_waves(phase0: tf.Tensor, f0_env: tf.Tensor, ratios: tf.Tensor, nyquist: float) -> tf.Tensor:
    """The oscillator bank's sinusoids [B, n, H]: sin(k * phase0) where k * f0 is below Nyquist, else 0
    (ddsp.core.remove_above_nyquist). Data only (f0), no gradient; one XLA program per shape and process,
    shared by every architecture with that many harmonics and frames. The unfused TF ops took 34 ms for
    8 x 16,000 x 60, this 7 ms: the broadcasts and the sine each passed over 30 MB."""
    below_nyquist = tf.cast(f0_env * ratios < nyquist, tf.float32)
    return _sine(phase0 * ratios) * below_nyquist


def apply_reverb(audio: tf.Tensor, reverb_ir: tf.Tensor) -> tf.Tensor:
    """ddsp.effects.Reverb with a given IR: audio [B, n] -> dry + (audio * ir[1:]) [B, n]."""
    reverb = ddsp.effects.Reverb(trainable=False, add_dry=True)
    batch = tf.shape(audio)[0]
    ir = tf.tile(reverb_ir[tf.newaxis, :], [batch, 1])
    return reverb.get_signal(audio, ir)


def white_noise(batch: int, n_samples: int, seed: tf.Tensor | tuple[int, int]) -> tf.Tensor:
    """Reproducible uniform noise [batch, n_samples] in [-1, 1) from a stateless seed (2 ints)."""
    return tf.random.stateless_uniform([batch, n_samples], seed=seed, minval=-1.0, maxval=1.0)
