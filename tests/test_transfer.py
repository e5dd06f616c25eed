"""`tonesweep transfer`: chunked rendering of long input against a float64 reference, tone-transfer
scaling, and one-line errors for bad input.

The reference synthesizes the same controls (the trained decoder run over the whole signal at
once) with the same noise in float64 numpy, whole-signal, following ddsp's definitions: linear
frequency / Hann-window amplitude upsampling with the last frame held, exact cumulative phase,
per-frame FIR noise (ddsp's windowed filter design), causal FIR reverb.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli.main import main as tonesweep
from support.trials import STATS, make_trial

SR = 16000


# ---------------------------------------------------------------------- float64 reference

def reference_harmonic(f0_hz, amplitudes, distribution, hop, block=500):
    """Float64 [T*H] harmonic synthesis; f0 [T,1], amplitudes [T,1], distribution [T,K]."""
    n_frames, n_harmonics = distribution.shape
    freqs = f0_hz * np.arange(1, n_harmonics + 1)
    envelope = amplitudes * distribution
    freqs, envelope = (np.concatenate([x, x[-1:]]) for x in (freqs, envelope))  # hold last frame
    r = np.arange(hop)[:, None]
    rise = 0.5 - 0.5 * np.cos(np.pi * r / hop)  # first half of a periodic Hann of 2H
    out, phase = [], np.zeros(n_harmonics)
    for j0 in range(0, n_frames, block):
        j = np.arange(j0, min(j0 + block, n_frames))
        f = freqs[j][:, None] + (freqs[j + 1] - freqs[j])[:, None] * (r / hop)  # [b,H,K]
        a = envelope[j][:, None] * (1 - rise) + envelope[j + 1][:, None] * rise
        f, a = f.reshape(-1, n_harmonics), a.reshape(-1, n_harmonics)
        a = a * (f < SR / 2)
        phases = phase + np.cumsum(2 * np.pi * f / SR, axis=0)
        phase = phases[-1] % (2 * np.pi)
        out.append(np.sum(a * np.sin(phases), axis=1))
    return np.concatenate(out)


def reference_noise(noise, magnitudes, hop):
    """Float64 ddsp.core.frequency_filter(noise, magnitudes, 257): per-frame FIR, overlap-add."""
    from trainers.export import safe_ops

    n_frames, n_bands = magnitudes.shape
    fir = (magnitudes @ safe_ops.impulse_response_matrix(n_bands, 257, dtype=np.float64))[:, ::-1]
    size = hop + fir.shape[1] - 1
    n_fft = 1 << (size - 1).bit_length()
    frames = np.fft.irfft(np.fft.rfft(noise.reshape(n_frames, hop), n_fft) * np.fft.rfft(fir, n_fft), n_fft)[:, :size]
    full = np.zeros(n_frames * hop + size)
    for k in range(-(-size // hop)):  # overlap-add block by block
        part = frames[:, k * hop:(k + 1) * hop]
        full[k * hop:k * hop + n_frames * hop].reshape(n_frames, hop)[:, :part.shape[1]] += part
    delay = (fir.shape[1] - 1) // 2 - 1
    return full[delay:delay + n_frames * hop]


def reference_render(model, f0_hz, feature_db, noise):
    """Float64 synthesis of the trained model's controls for the whole signal at once."""
    import scipy.signal
    import tensorflow as tf

    controls = tf.function(model.controls)(tf.constant(f0_hz[None, :, None]), tf.constant(feature_db[None, :, None]))
    c = {k: v.numpy()[0].astype(np.float64) for k, v in controls.items()}
    hop = SR // model.config["frame_rate"]
    audio = reference_harmonic(c["f0_hz"], c["amplitudes"], c["harmonic_distribution"], hop)
    audio = audio + reference_noise(noise.astype(np.float64), c["noise_magnitudes"], hop)
    if model.reverb is not None:
        ir = model.reverb.ir.numpy().astype(np.float64)
        ir[0] = 0.0  # ddsp masks the dry tap
        audio = audio + scipy.signal.fftconvolve(audio, ir)[:len(audio)]
    return audio


def snr_db(reference, estimate):
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def melody(seconds, frame_rate, seed=0):
    """Gliding f0 (Hz) with vibrato and short unvoiced gaps, and a phrased loudness contour (dB)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * frame_rate)
    t = np.arange(n) / frame_rate
    notes = 62 + np.repeat(rng.integers(0, 12, size=n // frame_rate + 1), frame_rate)[:n]
    midi = np.convolve(notes, np.ones(frame_rate // 10) / (frame_rate // 10), mode="same") + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    loudness = -20 - 15 * np.sin(np.pi * (t % 3.0) / 3.0) ** 0.5 + rng.normal(0, 0.5, n)
    loudness[(t % 3.0) > 2.85] = -70.0
    return f0.astype(np.float32), loudness.astype(np.float32)


# ---------------------------------------------------------------------- fixtures

def export(trial: Path, out: Path) -> Path:
    from trainers.export import bundle

    source = bundle.local_trial(trial)
    bundle.export_bundle(source, out, "bansuri", "float32", js_parity=False)
    return out


@pytest.fixture(scope="module")
def gru_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    trial = make_trial(root / "trial", seed=1)
    return trial, export(trial, root / "bundle")


# ---------------------------------------------------------------------- tests

def test_sixty_seconds_in_chunks_match_float64_reference(gru_bundle):
    from trainers.export.transfer import BundleRenderer
    from trainers.model.trained import load_trained

    trial, bundle_dir = gru_bundle
    renderer = BundleRenderer(bundle_dir)
    f0, loudness = melody(60.0, 250)
    noise = np.random.default_rng(9).uniform(-1, 1, len(f0) * 64).astype(np.float32)
    audio = renderer.render(f0, loudness, noise=noise)
    assert audio.shape == (60 * SR,)
    _, model = load_trained(trial)
    reference = reference_render(model, f0, loudness, noise)
    assert snr_db(reference, audio) >= 40
    # no drift: the last 4 s are as accurate as the whole
    assert snr_db(reference[-4 * SR:], audio[-4 * SR:]) >= 40
    # no clicks: the sample-to-sample step at chunk edges is like the steps elsewhere
    step = np.abs(np.diff(audio))
    edges = np.arange(1, 60 * SR // renderer.layout.samples_per_call) * renderer.layout.samples_per_call - 1
    assert step[edges].max() <= 4 * np.percentile(step, 99.9)


def test_cnn_with_reverb_chunks_match_reference(tmp_path):
    """Non-causal CNN (context frames on both sides), 50 Hz frames, reverb tail carried."""
    from trainers.export.transfer import BundleRenderer
    from trainers.model.trained import load_trained

    trial = make_trial(tmp_path / "trial", seed=2, decoder="cnn", frame_rate=50, reverb=True,
                       reverb_seconds=0.25, n_harmonics=40, n_noise_bands=40)
    renderer = BundleRenderer(export(trial, tmp_path / "bundle"))
    f0, loudness = melody(13.0, 50, seed=4)
    noise = np.random.default_rng(3).uniform(-1, 1, len(f0) * 320).astype(np.float32)
    audio = renderer.render(f0, loudness, noise=noise)
    _, model = load_trained(trial)
    reference = reference_render(model, f0, loudness, noise)
    # At the signal's two ends the whole-signal decoder sees Keras' zero padding, the chunked
    # renderer copies of the edge frame: compare where the receptive field is inside the signal.
    lay = renderer.layout
    inside = slice(lay.context_before * lay.hop, len(audio) - (lay.context_after + 1) * lay.hop)
    assert snr_db(reference[inside], audio[inside]) >= 40


def test_fit_to_instrument_shifts_octaves_and_level():
    from trainers.export.transfer import fit_to_instrument

    card = {"input_scaling": {"f0_midi": STATS["f0_midi"], "feature_db": STATS["loudness_db"]}}
    f0 = np.full(100, 110.0, np.float32)  # A2 = midi 45; instrument median 67 -> +2 octaves (midi 69)
    level = np.linspace(-60, -30, 100).astype(np.float32)
    confidence = np.ones(100, np.float32)
    confidence[:10] = 0.0
    f0_out, level_out, fit = fit_to_instrument(f0, level, confidence, card)
    assert fit["octaves"] == 2 and np.allclose(f0_out, 440.0)
    assert np.isclose(np.percentile(level_out[10:], 95), STATS["loudness_db"]["p95"], atol=1e-4)
    assert np.all(level_out[:10] < level[:10] + fit["level_shift_db"] - 19.9)  # unvoiced lowered


def test_transfer_cli_renders_a_file(gru_bundle, tmp_path, make_tone, capsys):
    _, bundle_dir = gru_bundle
    source = make_tone(tmp_path / "in.wav", 5.0, sample_rate=22050, f0_hz=180.0)
    out = tmp_path / "out.wav"
    assert tonesweep(["transfer", "--model", str(bundle_dir), str(source), str(out)]) == 0
    audio, rate = sf.read(str(out))
    assert rate == SR and len(audio) == 5 * SR and np.all(np.isfinite(audio)) and np.std(audio) > 1e-3
    assert "octaves" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing", "not_a_bundle", "other_version", "silent"])
def test_bad_input_gives_one_line_error(case, gru_bundle, tmp_path, make_tone, capsys):
    _, bundle_dir = gru_bundle
    model, source = bundle_dir, make_tone(tmp_path / "in.wav", 2.0)
    if case == "missing":
        model = tmp_path / "nope"
    elif case == "not_a_bundle":
        model = tmp_path
    elif case == "other_version":
        model = tmp_path / "old"
        (model / "saved_model").mkdir(parents=True)
        card = json.loads((bundle_dir / "model-card.json").read_text())
        (model / "model-card.json").write_text(json.dumps({**card, "format": "tonesweep-model-card/0"}))
    elif case == "silent":
        source = tmp_path / "silence.wav"
        sf.write(str(source), np.zeros(SR * 2), SR)
    code = tonesweep(["transfer", "--model", str(model), str(source), str(tmp_path / "out.wav")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("tonesweep: error: ")
    expected = {"missing": "nope", "not_a_bundle": "model-card.json", "other_version": "format",
                "silent": "silent"}[case]
    assert expected in err
    assert not (tmp_path / "out.wav").exists()


def test_node_streaming_matches_python_transfer(gru_bundle):
    """runner.mjs's renderSignal (the browser-side chunk loop) renders what BundleRenderer does."""
    from trainers.export import tfjs
    from trainers.export.transfer import BundleRenderer

    _, bundle_dir = gru_bundle
    renderer = BundleRenderer(bundle_dir)
    f0, loudness = melody(6.5, 250, seed=8)
    noise = np.random.default_rng(5).uniform(-1, 1, len(f0) * 64).astype(np.float32)
    expected = renderer.render(f0, loudness, noise=noise)
    got, _ = tfjs.run_node(bundle_dir / "tfjs", {"f0_hz": f0, "feature_db": loudness, "noise": noise},
                           signal_layout=renderer.card["layout"])
    assert got["audio"].shape == expected.shape
    assert snr_db(expected.astype(np.float64), got["audio"]) >= 100
