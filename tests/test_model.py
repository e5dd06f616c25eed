"""Decoders, input scaling and the synth: shapes, causality, control invariants, fast-synth equivalence."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from trainers.model import synth
from trainers.model.config import validate_config
from trainers.ddsp_compat import ddsp
from trainers.model.decoders import build_decoder, n_outputs, preprocess_inputs
from trainers.model.trained import make_loss

SR = 16000


def test_preprocess_scales_like_ddsp():
    f0, db = preprocess_inputs(tf.constant([440.0, 0.0]), tf.constant([-80.0, 0.0]))
    np.testing.assert_allclose(f0.numpy(), [69.0 / 127.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(db.numpy(), [0.0, 1.0])


@pytest.mark.parametrize("config", [{"decoder": "gru"}, {"decoder": "cnn"}, {"decoder": "cnn", "causal": True}])
def test_decoder_maps_frames_to_raw_controls(config):
    cfg = validate_config({**config, "n_harmonics": 7, "n_noise_bands": 5})
    decoder = build_decoder(cfg)
    for frames in (13, 50):  # any number of frames
        raw = decoder([tf.zeros([2, frames, 1]), tf.zeros([2, frames, 1])])
        assert raw.shape == (2, frames, n_outputs(cfg)) == (2, frames, 13)


@pytest.mark.parametrize("decoder, causal", [("gru", None), ("cnn", True)])
def test_causal_decoders_ignore_the_future(decoder, causal):
    cfg = validate_config({"decoder": decoder, **({"causal": causal} if causal is not None else {})})
    model = build_decoder(cfg)
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(1, 40, 1)).astype(np.float32)
    b = a.copy()
    b[:, 25:] += 0.5  # change only frames 25+
    out_a = model([a, a]).numpy()
    out_b = model([b, b]).numpy()
    np.testing.assert_allclose(out_a[:, :25], out_b[:, :25], atol=1e-5)
    assert np.abs(out_a[:, 25:] - out_b[:, 25:]).max() > 1e-4


def test_non_causal_cnn_sees_the_future():
    model = build_decoder(validate_config({"decoder": "cnn", "causal": False}))
    a = np.zeros((1, 40, 1), np.float32)
    b = a.copy()
    b[:, 25:] = 1.0
    assert np.abs(model([a, a]).numpy()[:, 24] - model([b, b]).numpy()[:, 24]).max() > 1e-4


def _random_controls(batch=2, frames=100, harmonics=20, noise_bands=9, seed=0):
    rng = np.random.default_rng(seed)
    raw = tf.constant(rng.normal(size=(batch, frames, 1 + harmonics + noise_bands)).astype(np.float32))
    f0 = np.repeat(rng.uniform(100.0, 900.0, size=(batch, 10, 1)), frames // 10, axis=1).astype(np.float32)
    return synth.get_controls(raw, tf.constant(f0), harmonics), raw


def test_controls_are_positive_and_bandlimited():
    controls, _ = _random_controls()
    assert set(controls) == {"amplitudes", "harmonic_distribution", "f0_hz", "noise_magnitudes"}
    assert controls["amplitudes"].shape == (2, 100, 1) and controls["noise_magnitudes"].shape == (2, 100, 9)
    hd, f0 = controls["harmonic_distribution"].numpy(), controls["f0_hz"].numpy()
    above = f0 * np.arange(1, 21) >= SR / 2
    assert above.any() and np.all(hd[above] == 0.0)
    np.testing.assert_allclose(hd.sum(-1), 1.0, rtol=1e-5)
    assert (controls["amplitudes"].numpy() > 0).all() and (controls["noise_magnitudes"].numpy() > 0).all()


def test_signal_is_deterministic_given_noise_and_reverb_adds_a_tail():
    controls, _ = _random_controls()
    n = 100 * 64
    noise = synth.white_noise(2, n, (3, 4))
    dry = synth.get_signal(controls, n, noise).numpy()
    assert dry.shape == (2, n)
    np.testing.assert_array_equal(dry, synth.get_signal(controls, n, synth.white_noise(2, n, (3, 4))).numpy())
    ir = np.zeros(800, np.float32)
    ir[400] = 0.5
    wet = synth.get_signal(controls, n, noise, reverb_ir=tf.constant(ir)).numpy()
    np.testing.assert_allclose(wet[:, 400:] - dry[:, 400:], 0.5 * dry[:, :-400], atol=1e-4)


def _exact_harmonic_audio(controls, n_samples):
    """Straightforward float64 synthesis of the same envelopes (numpy), sharing no code with the fast path."""
    f0 = controls["f0_hz"].numpy().astype(np.float64)  # [B, T, 1]
    frames = f0.shape[1]
    # ddsp's linear frequency envelope (tf.compat.v1 resize, align_corners=False, edge held)
    position = np.arange(n_samples) * frames / n_samples
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, frames - 1)
    frac = (position - lo)[None, :, None]
    f_env = f0[:, lo] * (1 - frac) + f0[:, hi] * frac  # [B, n, 1]
    ks = np.arange(1, controls["harmonic_distribution"].shape[-1] + 1)
    phase = np.cumsum(2 * np.pi * f_env / SR, axis=1) * ks
    amp_env = ddsp.core.resample(controls["amplitudes"] * controls["harmonic_distribution"], n_samples,
                                 method="window").numpy().astype(np.float64)
    return amp_env, (f_env * ks < SR / 2) * np.sin(phase)


def test_fast_harmonics_match_exact_synthesis_better_than_ddsp():
    """Measured against float64 synthesis of the same envelopes, the fast path is near-exact
    (phase error ~1e-5 rad); ddsp's float32 chunked cumsum drifts at high harmonics."""
    controls, _ = _random_controls(frames=250, harmonics=30)
    n = 250 * 64
    args = (controls["amplitudes"], controls["harmonic_distribution"], controls["f0_hz"])
    amp_env, waves = _exact_harmonic_audio(controls, n)
    exact = np.sum(amp_env * waves, axis=-1)
    fast = synth.harmonic_synthesis_fast(*args, n_samples=n).numpy()
    ref = synth._harmonic(n, SR).get_signal(*args).numpy()
    assert _snr_db(exact, fast) > 60.0
    assert _snr_db(exact, fast) > _snr_db(exact, ref)
    target = tf.constant(exact.astype(np.float32) * 0.5)
    loss = make_loss()
    assert float(loss(target, fast)) == pytest.approx(float(loss(target, exact.astype(np.float32))), rel=1e-3)


def test_oscillator_banks_polynomial_sine_is_within_a_micro_of_sin():
    """The fast bank's sinusoids (one XLA loop, a polynomial sine): within 1e-6 of sin, in float64, of the
    same float32 arguments k * phase, for every harmonic up to the 256 a config allows; 0 at and above
    Nyquist, as ddsp.core.remove_above_nyquist."""
    rng = np.random.default_rng(5)
    phase = rng.uniform(0.0, 2 * np.pi, (2, 4000, 1)).astype(np.float32)
    f0 = rng.uniform(30.0, 300.0, (2, 4000, 1)).astype(np.float32)
    ratios = np.arange(1, 257, dtype=np.float32)
    waves = synth._harmonic_waves(tf.constant(phase), tf.constant(f0), tf.constant(ratios), SR / 2.0).numpy()
    below = f0 * ratios < SR / 2
    exact = np.sin((phase * ratios).astype(np.float64)) * below
    assert 0.2 < below.mean() < 0.8  # both sides of Nyquist are exercised
    assert np.max(np.abs(waves - exact)) < 1e-6
    assert np.all(waves[~below] == 0.0)


def test_fast_gradients_match_exact_synthesis():
    """Gradient of the spectral loss w.r.t. the decoder's raw outputs: fast path vs a plain
    oscillator bank on exact (float64, precomputed) sinusoids."""
    controls, raw = _random_controls(frames=100, harmonics=20)
    raw, f0, n = tf.Variable(raw), controls["f0_hz"], 6400
    _, waves = _exact_harmonic_audio(controls, n)
    waves = tf.constant(waves.astype(np.float32))
    target = tf.random.stateless_normal([2, n], seed=(1, 2)) * 0.05
    loss = make_loss()

    def plain(c):
        amp_env = ddsp.core.resample(c["amplitudes"] * c["harmonic_distribution"], n, method="window")
        return tf.reduce_sum(amp_env * waves, axis=-1)

    def fast(c):
        return synth.harmonic_synthesis_fast(c["amplitudes"], c["harmonic_distribution"], c["f0_hz"], n)

    # A little noise as in the real synth: log-magnitudes of near-silent bins would amplify rounding.
    noise = tf.random.stateless_normal([2, n], seed=(3, 4)) * 0.01
    grads = []
    for harmonic in (plain, fast):
        with tf.GradientTape() as tape:
            loss_value = loss(target, harmonic(synth.get_controls(raw, f0, 20)) + noise)
        grads.append(tape.gradient(loss_value, raw).numpy().ravel())
    cosine = grads[0] @ grads[1] / np.linalg.norm(grads[0]) / np.linalg.norm(grads[1])
    assert cosine > 0.999


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - test) ** 2)))


def test_held_out_metrics_on_the_fast_synth_equal_those_on_ddsps():
    """Evaluation renders with the training step's harmonic synth: on a whole 4-second example at 60
    harmonics (where ddsp's float32 phase drifts most), quality and pitch error equal those of ddsp's
    synth within 0.1 % and 0.05 cents (measured on trained demo models: 0.03 %, 0.01 cents)."""
    from trainers.model.trained import build_model
    from trainers.training import evaluate

    model = build_model(validate_config({"decoder": "cnn", "conv_channels": 4, "conv_layers": 2, "frame_rate": 50,
                                         "n_harmonics": 60, "n_noise_bands": 4}))
    frames = 200
    f0 = np.tile(np.linspace(180, 360, frames, dtype=np.float32)[None, :, None], (2, 1, 1))
    split = {"f0_hz": f0, "feature_db": np.full((2, frames, 1), -25.0, np.float32), "f0_voiced": np.ones((2, frames), bool)}
    noise = synth.white_noise(2, frames * 320, (7, 0))
    reference = model.render(split["f0_hz"], split["feature_db"], noise=noise)
    fast = model.render(split["f0_hz"], split["feature_db"], noise=noise, fast_harmonics=True)
    assert not np.array_equal(reference, fast)  # two formulations, not one
    target = np.roll(reference, 37, axis=1)  # something else to compare against
    assert evaluate.spectral_quality(target, fast) == pytest.approx(evaluate.spectral_quality(target, reference), rel=1e-3)
    assert evaluate.pitch_error_cents(fast, split, 50) == pytest.approx(evaluate.pitch_error_cents(reference, split, 50), abs=0.05)


def test_pitch_tracking_one_example_at_a_time_equals_librosas_batch_call():
    """evaluate.track_f0 runs YIN per example (a batch call holds [N, frames, 1024] and its FFT at once):
    the f0 is bit-identical to librosa's batch call, at the dataset's frame rates."""
    import librosa

    from trainers.training import evaluate

    t = np.arange(16000 * 2) / 16000
    audio = np.stack([0.3 * np.sin(2 * np.pi * f * t) for f in (110.0, 247.0, 523.0)]).astype(np.float32)
    for frame_rate in (50, 250):
        batch = librosa.yin(audio, fmin=evaluate.YIN_FMIN, fmax=evaluate.YIN_FMAX, sr=16000,
                            frame_length=evaluate.YIN_FRAME, hop_length=16000 // frame_rate, center=True)
        tracked = evaluate.track_f0(audio, frame_rate, batch.shape[1])
        assert np.array_equal(tracked, batch), frame_rate
        assert np.median(tracked[2]) == pytest.approx(523.0, rel=0.01)


def _test_signals(seconds: float = 1.5) -> np.ndarray:
    """Rows of what evaluation measures: a vibrato tone with harmonics, one over noise, one that falls
    silent half-way (loudness's -80 dB floor, YIN's frames without a trough), and low-level noise."""
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(3)
    f0 = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    tone = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    gated = np.where(t < seconds / 2, 0.2 * np.sin(2 * np.pi * 523.0 * t), 0.0)
    rows = [tone, tone + 0.05 * rng.standard_normal(t.size), gated, 1e-3 * rng.standard_normal(t.size)]
    return np.stack(rows).astype(np.float32)


def test_evaluation_measures_equal_librosas_yin_and_ddsps_loudness_bit_for_bit():
    """trainers.training.measures re-assembles librosa.yin and ddsp's numpy loudness without their numba
    kernels: the same numbers to the last bit, at both of the dataset's frame rates."""
    import librosa

    from trainers.training import evaluate, measures

    audio = _test_signals()
    for frame_rate in (50, 250):
        hop = 16000 // frame_rate
        for row in audio:
            expected = librosa.yin(row, fmin=evaluate.YIN_FMIN, fmax=evaluate.YIN_FMAX, sr=16000,
                                   frame_length=evaluate.YIN_FRAME, hop_length=hop, center=True)
            got = measures.yin(row, evaluate.YIN_FMIN, evaluate.YIN_FMAX, 16000, evaluate.YIN_FRAME, hop)
            assert got.dtype == expected.dtype and np.array_equal(got, expected), frame_rate
        expected = np.asarray(ddsp.spectral_ops.compute_loudness(audio, sample_rate=16000, frame_rate=frame_rate,
                                                                 use_tf=False))
        got = measures.loudness_db(audio, 16000, frame_rate)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), frame_rate
        assert got[2, -1] == -80.0 and got[0].min() > -60.0  # the silent tail is on the floor, the tone is not
    batch = librosa.yin(audio, fmin=evaluate.YIN_FMIN, fmax=evaluate.YIN_FMAX, sr=16000,
                        frame_length=evaluate.YIN_FRAME, hop_length=64, center=True)
    assert np.array_equal(measures.yin(audio, evaluate.YIN_FMIN, evaluate.YIN_FMAX, 16000, evaluate.YIN_FRAME, 64), batch)
    wide = audio[0].astype(np.float64)  # float64 audio too
    assert np.array_equal(measures.yin(wide, evaluate.YIN_FMIN, evaluate.YIN_FMAX, 16000, evaluate.YIN_FRAME, 64),
                          librosa.yin(wide, fmin=evaluate.YIN_FMIN, fmax=evaluate.YIN_FMAX, sr=16000,
                                      frame_length=evaluate.YIN_FRAME, hop_length=64, center=True))
    broken = audio.copy()
    broken[1, 100] = np.nan  # as librosa and ddsp do, audio that is not finite is refused, not measured around
    with pytest.raises(ValueError, match="not finite"):
        measures.yin(broken[1], evaluate.YIN_FMIN, evaluate.YIN_FMAX, 16000, evaluate.YIN_FRAME, 64)
    with pytest.raises(ValueError, match="not finite"):
        measures.loudness_db(broken, 16000, 250)


def test_evaluating_a_model_does_not_load_numba():
    """A trial's held-out evaluation loads no numba (librosa's kernels cost +132 MiB and 1.3 s in every worker
    that evaluated a trial): a tiny model evaluated at two precisions in a fresh interpreter."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from trainers.model.config import validate_config\n"
            "from trainers.model.trained import build_model\n"
            "from trainers.training.evaluate import evaluate_precisions\n"
            "model = build_model(validate_config({'decoder': 'cnn', 'conv_channels': 4, 'conv_layers': 2, "
            "'frame_rate': 50, 'n_harmonics': 4, 'n_noise_bands': 4}))\n"
            "t = np.arange(20 * 320) / 16000\n"
            "split = {'f0_hz': np.full((2, 20, 1), 220.0, np.float32), 'feature_db': np.full((2, 20, 1), -30.0, np.float32),"
            " 'audio': np.stack([0.3 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32),"
            " 'f0_voiced': np.ones((2, 20), bool)}\n"
            "metrics = evaluate_precisions(model, split, ['float32', 'uint8'])\n"
            "assert len(metrics) == 6 and all(np.isfinite(v) for k, v in metrics.items() if 'pitch' not in k), metrics\n"
            "print(sorted(m for m in ('numba', 'llvmlite') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_spectral_quality_in_one_graph_equals_ddsps_eager_loss():
    """evaluate.spectral_quality runs ddsp's loss as one traced graph: the quality of eager ddsp to float32
    rounding (measured on demo models: within 1.1e-7 relative), traced once per batch shape and process."""
    from trainers.training import evaluate
    from trainers.training.loss import spectral_loss

    target = _test_signals(4.0)
    resynth = np.roll(target, 91, axis=1) * 0.8
    original, other = np.concatenate([target] * 3), np.concatenate([resynth] * 3)  # 12: a batch of 8 and one of 4
    eager, total = make_loss(), 0.0
    for start in range(0, len(original), evaluate.EVAL_BATCH):
        a, b = original[start:start + evaluate.EVAL_BATCH], other[start:start + evaluate.EVAL_BATCH]
        total += float(eager(tf.constant(a), tf.constant(b))) * len(a)
    assert evaluate.spectral_quality(original, other) == pytest.approx(total / len(original), rel=1e-6, abs=0)
    traced = spectral_loss().experimental_get_tracing_count()
    evaluate.spectral_quality(original[::-1], other[::-1])  # other audio of the same shapes: no new trace
    assert spectral_loss().experimental_get_tracing_count() == traced


def test_a_split_renders_with_one_trace_and_the_same_audio_as_one_batch_each():
    """evaluate.render_split pads its last, shorter batch: one trace of the synth per model, and each
    example's audio equal, to float32 rounding, to rendering its batch unpadded: within 1e-5 (-100 dB
    of full scale; the batch size may change how a vectorised kernel rounds, and the phase sums carry
    it along). Another noise or another example would differ by far more."""
    from trainers.model.trained import build_model
    from trainers.training.evaluate import EVAL_BATCH, EVAL_NOISE_SEED, render_split

    model = build_model(validate_config({"decoder": "cnn", "conv_channels": 4, "conv_layers": 2, "frame_rate": 50,
                                         "n_harmonics": 4, "n_noise_bands": 4}))
    rng = np.random.default_rng(0)
    n, frames = EVAL_BATCH + 3, 20
    split = {"f0_hz": rng.uniform(200, 400, (n, frames, 1)).astype(np.float32),
             "feature_db": rng.uniform(-60, -20, (n, frames, 1)).astype(np.float32),
             "audio": np.zeros((n, frames * 320), np.float32)}
    audio = render_split(model, split)
    assert audio.shape == (n, frames * 320)
    assert model._compiled_synthesize[True].experimental_get_tracing_count() == 1  # evaluation's synth: the fast one
    last = build_model(model.config)
    last.set_weights(model.get_weights())
    alone = last.render(split["f0_hz"][EVAL_BATCH:], split["feature_db"][EVAL_BATCH:], noise_seed=EVAL_NOISE_SEED + EVAL_BATCH,
                        fast_harmonics=True)
    np.testing.assert_allclose(audio[EVAL_BATCH:], alone, rtol=0, atol=1e-5)
    assert np.max(np.abs(alone)) > 1e-2  # the audio is not silence, so the tolerance means something
    np.testing.assert_array_equal(audio, render_split(model, split))  # and deterministic
