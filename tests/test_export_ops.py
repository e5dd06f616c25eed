"""Op-by-op equality of the export-safe DSP (trainers/export/safe_ops.py) with ddsp and Keras.

Random controls, fixed seeds. "Equal" means >= 100 dB SNR (most are bit-identical or ~130 dB).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainers.ddsp_compat import ddsp
from trainers.export import safe_ops

SR = 16000


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = np.asarray(reference, np.float64)
    error = np.sum((reference - np.asarray(estimate, np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(np.sum(reference**2) / error))


def random_controls(rng, batch, n_frames, n_harmonics, n_bands):
    f0 = rng.uniform(80.0, 900.0, size=(batch, n_frames, 1)).astype(np.float32)
    f0 = np.cumsum(rng.normal(0, 3, size=f0.shape), axis=1).astype(np.float32) + f0[:, :1]
    return {
        "f0_hz": np.clip(f0, 30.0, 2000.0).astype(np.float32),
        "amplitudes": rng.normal(0, 2, size=(batch, n_frames, 1)).astype(np.float32),
        "harmonics": rng.normal(0, 2, size=(batch, n_frames, n_harmonics)).astype(np.float32),
        "noise": rng.normal(0, 2, size=(batch, n_frames, n_bands)).astype(np.float32),
    }


@pytest.mark.parametrize("frame_rate,n_harmonics", [(250, 60), (50, 40)])
def test_harmonic_matches_ddsp(frame_rate, n_harmonics):
    rng = np.random.default_rng(1)
    hop = SR // frame_rate
    n_frames = 2 * frame_rate
    c = random_controls(rng, 2, n_frames, n_harmonics, 8)
    synth = ddsp.synths.Harmonic(n_samples=n_frames * hop, sample_rate=SR, use_angular_cumsum=True)
    expected = synth(c["amplitudes"], c["harmonics"], c["f0_hz"]).numpy()

    amps, dist = safe_ops.harmonic_controls(c["amplitudes"], c["harmonics"], c["f0_hz"], SR)
    ref_controls = synth.get_controls(c["amplitudes"], c["harmonics"], c["f0_hz"])
    assert snr_db(ref_controls["harmonic_distribution"], dist) > 120
    # ddsp appends a copy of the last frame as the interpolation target
    with_end = [tf.concat([x, x[:, -1:]], axis=1) for x in (c["f0_hz"], amps, dist)]
    audio, phase = safe_ops.harmonic_audio(*with_end, hop=hop, sample_rate=SR)
    assert audio.shape == expected.shape
    assert snr_db(expected, audio) >= 100
    assert phase.shape == (2, n_harmonics)


def test_upsampling_matches_ddsp_resample():
    rng = np.random.default_rng(2)
    frames = rng.normal(size=(1, 50, 3)).astype(np.float32)
    for method, fn in (("window", safe_ops.upsample_window), ("linear", safe_ops.upsample_linear)):
        expected = ddsp.core.resample(frames, 50 * 64, method=method).numpy()
        got = fn(tf.concat([frames, frames[:, -1:]], axis=1), 64).numpy()
        assert snr_db(expected, got) > 130, method


@pytest.mark.parametrize("n_bands,frame_rate", [(65, 250), (40, 50), (200, 250)])
def test_filtered_noise_matches_ddsp(n_bands, frame_rate):
    rng = np.random.default_rng(3)
    hop = SR // frame_rate
    n_frames = frame_rate  # 1 s
    magnitudes = safe_ops.noise_controls(rng.normal(0, 2, size=(2, n_frames, n_bands)).astype(np.float32))
    noise = rng.uniform(-1, 1, size=(2, n_frames * hop)).astype(np.float32)
    expected = ddsp.core.frequency_filter(noise, magnitudes, window_size=257).numpy()
    got = safe_ops.filtered_noise(noise, magnitudes, hop, window_size=257).numpy()
    assert got.shape == expected.shape
    assert snr_db(expected, got) >= 100


def test_reverb_matches_ddsp():
    rng = np.random.default_rng(4)
    audio = rng.normal(size=(2, 4000)).astype(np.float32)
    ir = rng.normal(0, 0.1, size=(800,)).astype(np.float32)
    reverb = ddsp.effects.Reverb(trainable=False)
    expected = reverb(audio, np.tile(ir[None], [2, 1])).numpy()
    got = (audio + safe_ops.reverb_wet(audio, tf.constant(safe_ops.reverb_kernel(ir)))[:, :4000]).numpy()
    assert snr_db(expected, got) >= 100


def test_gru_matches_keras_gru_with_same_weights():
    rng = np.random.default_rng(5)
    layer = tf.keras.layers.GRU(24, return_sequences=True, return_state=True)
    x = rng.normal(size=(1, 300, 10)).astype(np.float32)
    h0 = rng.normal(size=(1, 24)).astype(np.float32)
    expected, expected_state = layer(x, initial_state=h0)
    kernel, recurrent, bias = layer.get_weights()
    assert bias.shape == (2, 72)  # reset_after=True
    got, state = safe_ops.gru_sequence(tf.constant(x), kernel, recurrent, bias, tf.constant(h0))
    assert snr_db(expected, got) >= 100
    assert snr_db(expected_state, state) >= 100
    # the state after a prefix equals running the prefix alone (what chunking relies on)
    _, state_100 = safe_ops.gru_sequence(tf.constant(x), kernel, recurrent, bias, tf.constant(h0), keep_state_at=100)
    _, prefix_state = layer(x[:, :100], initial_state=h0)
    assert snr_db(prefix_state, state_100) >= 100
    # a live graph's few steps, unrolled (no while loop), the state kept before the lookahead step
    short = x[:, :safe_ops.UNROLL_STEPS]
    expected_short, _ = layer(short, initial_state=h0)
    _, expected_kept = layer(short[:, :-1], initial_state=h0)
    got_short, kept = safe_ops.gru_sequence(tf.constant(short), kernel, recurrent, bias, tf.constant(h0),
                                            keep_state_at=safe_ops.UNROLL_STEPS - 1)
    assert snr_db(expected_short, got_short) >= 100 and snr_db(expected_kept, kept) >= 100


def test_noise_fir_matrix_is_ddsp_filter_design():
    rng = np.random.default_rng(6)
    for n_bands in (65, 200):
        mags = rng.uniform(0, 1, size=(1, 3, n_bands)).astype(np.float32)
        expected = ddsp.core.frequency_impulse_response(mags, window_size=257).numpy()
        got = (mags @ safe_ops.impulse_response_matrix(n_bands, 257))[..., ::-1]
        assert got.shape == expected.shape
        assert snr_db(expected, got) > 120


@pytest.mark.parametrize("n_bands", [16, 65, 200])
def test_noise_fir_matrix_built_in_graph(n_bands):
    """The in-graph cosine core (shipped as k, index, scales) equals the float64 reference matrix,
    and the FIR it gives matches the float32 constant's to well beyond the parity bars."""
    cosines, row_scale, gain = safe_ops.impulse_response_graph(n_bands, 257, tf.constant(-1.0))
    built = row_scale.numpy()[:, None] * cosines.numpy() * gain.numpy()[None, :]
    reference = safe_ops.impulse_response_matrix(n_bands, 257, dtype=np.float64)
    assert built.shape == reference.shape
    assert np.abs(built - reference).max() < 1e-6 * np.abs(reference).max()
    mags = np.random.default_rng(7).uniform(0, 1, size=(1, 50, n_bands)).astype(np.float32)
    got = tf.matmul(mags * row_scale, cosines) * gain
    assert snr_db(mags.astype(np.float64) @ reference, got) > 120  # 129-138 dB (the float32 constant: 131-141)
