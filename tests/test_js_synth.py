"""The synthesizer outside the graph (trainers/export/js/synth.mjs) against a float64 reference of ddsp's
synthesis, and an exported bundle's two runtime paths (synthesis in the graph, or in JavaScript) against
each other on the demo voice."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from trainers.export.safe_ops import impulse_response_matrix, noise_fir_delay

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SR = 16000


def ddsp_reference(f0, amplitudes, distribution, magnitudes, noise, hop, window=257):
    """ddsp's Harmonic (linear frequency resampling, Hann-window amplitude resampling, cumsum phase, silence at
    Nyquist) + FilteredNoise (each frame convolved with its FIR of ddsp's filter design, overlap-added, 'same'
    delay), whole signal at once, in float64. Controls carry one frame beyond the T rendered (ddsp's
    endpoint), magnitudes and noise as many as the FIR reaches."""
    frames, k = len(f0) - 1, distribution.shape[1]
    n = np.arange(frames * hop)
    j, r = n // hop, n % hop
    f = f0[j] + (f0[j + 1] - f0[j]) * r / hop
    window2 = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2 * hop) / (2 * hop))
    partials = amplitudes[:, None] * distribution
    envelopes = partials[j] * window2[hop + r][:, None] + partials[j + 1] * window2[r][:, None]
    frequencies = f[:, None] * np.arange(1, k + 1)[None, :]
    envelopes = np.where(frequencies < SR / 2, envelopes, 0.0)
    phases = np.cumsum(2 * np.pi * frequencies / SR, axis=0)
    harmonic = np.sum(envelopes * np.sin(phases), axis=1)
    fir = impulse_response_matrix(magnitudes.shape[1], window, dtype=np.float64)  # [N, J], reversed taps
    full = np.zeros((len(magnitudes) + 4) * hop + fir.shape[1])
    for t in range(len(magnitudes)):
        segment = np.convolve(noise[t * hop:(t + 1) * hop], (magnitudes[t] @ fir)[::-1])
        full[t * hop:t * hop + len(segment)] += segment
    delay = noise_fir_delay(magnitudes.shape[1], window)
    return harmonic + full[delay:delay + frames * hop]


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-300))


@pytest.mark.parametrize("hop, harmonics, bands, per_call, block", [
    (64, 60, 65, 250, None), (320, 32, 32, 50, None), (320, 16, 100, 50, None),
    # the page's live mode: a few frames per call (fewer samples than the noise filter spills, at hop 64)
    (64, 60, 65, 250, 3), (320, 32, 32, 50, 2)])
def test_js_synth_equals_a_float64_reference_of_ddsp(tmp_path, hop, harmonics, bands, per_call, block):
    rng = np.random.default_rng(hop + bands)
    frames = 3 * per_call + per_call // 2  # three whole calls and a part
    lookahead = max(1, -(-noise_fir_delay(bands, 257) // hop))
    fir_len = impulse_response_matrix(bands, 257).shape[1]
    total = frames + lookahead
    f0 = 110 * 2 ** (np.cumsum(rng.normal(0, 0.01, total)) + 1.5 * np.sin(np.arange(total) / 40.0))  # glides up to ~300 Hz
    f0[frames // 3:frames // 3 + 20] = 0.0  # an unvoiced stretch: every harmonic below Nyquist at 0 Hz
    amplitudes = np.abs(rng.normal(0.3, 0.1, total))
    distribution = rng.dirichlet(np.ones(harmonics), total)
    magnitudes = np.abs(rng.normal(0, 0.02, (total, bands)))
    noise = rng.uniform(-1, 1, total * hop)
    layout = {"hop": hop, "frames_per_call": per_call, "lookahead": lookahead, "n_harmonics": harmonics,
              "n_noise_bands": bands, "sample_rate": SR, "noise_tail": fir_len - 1 - noise_fir_delay(bands, 257)}
    (tmp_path / "spec.json").write_text(json.dumps({"layout": layout, "synth": {"noise_window": 257}, "frames": frames,
                                                    "block": block}))
    for name, array in (("f0", f0), ("amplitudes", amplitudes), ("distribution", distribution),
                        ("magnitudes", magnitudes), ("noise", noise)):
        np.asarray(array, "<f8").tofile(tmp_path / f"{name}.f64")
    subprocess.run(["node", str(ROOT / "tests" / "support" / "js" / "synth_check.mjs"), str(tmp_path)], check=True,
                   timeout=120)
    js = np.fromfile(tmp_path / "audio.f64", "<f8")
    reference = ddsp_reference(f0[:frames + 1], amplitudes[:frames + 1], distribution[:frames + 1], magnitudes,
                               noise, hop)
    # call by call, with carried phase and noise tail, the float32 output is the float64 whole-signal synthesis
    print(f"js synth vs float64 reference: {snr_db(reference, js):.1f} dB")
    assert snr_db(reference, js) >= 100, snr_db(reference, js)


def test_an_exported_bundle_sounds_the_same_synthesized_in_javascript_as_in_its_graph(small_bundle, rendered_audio):
    """The same bundle on the same voice, call by call in Node's TF.js: the graph synthesizing (the audio
    output) and the graph decoding only, synth.mjs synthesizing. They differ by the graph's float32 phase:
    ddsp's angular cumsum adds each sample's phase step in float32 to sums of up to 1,000 steps (1e-4 rad
    rounding per addition near 3,000 rad), chunk after chunk, so within a 1-s call the graph's oscillators
    drift from the exact phase by up to ~0.1 rad at high partials (the training graph's do the same over its
    4-s examples); synth.mjs sums in float64 (the test above holds it to the float64 reference at ~149 dB).
    So the two agree where a call starts (the phase is handed over exactly, 50+ dB over its first 20 ms),
    part as the call goes on (13-38 dB by its end on this bundle), and agree on pitch throughout."""
    from trainers.data.audio import load_audio
    from trainers.export import tfjs
    from trainers.export.transfer import extract_features, fit_to_instrument
    from trainers.training.evaluate import track_f0

    card = json.loads((small_bundle / "model-card.json").read_text())
    assert card["synth"] == {"noise_window": 257}
    voice = load_audio(rendered_audio / "voice" / "voice-0.wav", SR)[:SR * 6]
    feats = extract_features(voice, card["frame_rate"], card["feature"], card.get("features"))
    f0, level, _ = fit_to_instrument(feats["f0_hz"], feats["feature_db"], feats["voiced"], card)
    noise = np.random.default_rng(0).uniform(-1, 1, len(f0) * card["layout"]["hop"]).astype(np.float32)
    inputs = {"f0_hz": f0, "feature_db": level, "noise": noise}
    graph, _ = tfjs.run_node(small_bundle / "tfjs", inputs, signal_layout=card["layout"])
    js, _ = tfjs.run_node(small_bundle / "tfjs", inputs, signal_layout=card["layout"], synth=card["synth"])
    graph, js = graph["audio"].astype(np.float64), js["audio"].astype(np.float64)
    call = card["layout"]["samples_per_call"]
    starts = [snr_db(graph[c:c + call // 50], js[c:c + call // 50]) for c in range(0, len(graph) - call, call)]
    whole = snr_db(graph, js)
    print(f"graph vs js synthesis: {whole:.1f} dB over 6 s; the first 20 ms of each call: {[round(s) for s in starts]} dB")
    assert min(starts) >= 50, starts
    frames = len(f0)
    pitch_graph, pitch_js = (track_f0(x[None].astype(np.float32), card["frame_rate"], frames)[0] for x in (graph, js))
    voiced = (f0 > 0) & (pitch_graph > 0) & (pitch_js > 0)
    cents = 1200 * np.abs(np.log2(pitch_js[voiced] / pitch_graph[voiced]))
    assert voiced.sum() > frames // 3 and np.median(cents) <= 5, np.median(cents)


def test_live_blocks_sound_like_whole_calls(small_bundle, rendered_audio):
    """The page's live mode (js/live.mjs) on a bundle without a live graph decodes each block of 2 frames on the
    window whose outputs end with it: a CNN's controls depend on its receptive field alone, so with the same
    features and noise the blocks equal renderSignal's second-long calls (the float32 graph on other windows;
    float64 synthesis alike). The bundle's live graph, a block per call, renders the same."""
    from trainers.data.audio import load_audio
    from trainers.export import tfjs
    from trainers.export.transfer import extract_features, fit_to_instrument

    card = json.loads((small_bundle / "model-card.json").read_text())
    voice = load_audio(rendered_audio / "voice" / "voice-0.wav", SR)[:SR * 4]
    feats = extract_features(voice, card["frame_rate"], card["feature"], card.get("features"))
    f0, level, _ = fit_to_instrument(feats["f0_hz"], feats["feature_db"], feats["voiced"], card)
    noise = np.random.default_rng(0).uniform(-1, 1, len(f0) * card["layout"]["hop"]).astype(np.float32)
    inputs = {"f0_hz": f0, "feature_db": level, "noise": noise}
    whole, _ = tfjs.run_node(small_bundle / "tfjs", inputs, signal_layout=card["layout"], synth=card["synth"])
    live, _ = tfjs.run_node(small_bundle / "tfjs", inputs, signal_layout=card["layout"], synth=card["synth"], live_block=2)
    lay = card["layout"]
    ahead = lay["lookahead"] + lay["context_after"]
    assert len(live["block_ms"]) == (len(f0) - ahead) // 2  # every block whose features had all arrived
    n = len(live["audio"])
    assert n == 2 * lay["hop"] * len(live["block_ms"])
    reference, blocks = whole["audio"][:n].astype(np.float64), live["audio"].astype(np.float64)
    print(f"live blocks vs whole calls: {snr_db(reference, blocks):.1f} dB over {n / SR:.2f} s")
    assert snr_db(reference, blocks) >= 100  # identical here (the same float32 kernels over the same frames)
    # the bundle's live graph (what the page runs now: a block per call, here one frame of 20 ms)
    graph = card["live"]
    native, _ = tfjs.run_node(small_bundle / "tfjs" / "live", inputs, signal_layout=graph["layout"],
                              synth=card["synth"], live_block=graph["frames_per_call"])
    n = len(native["audio"])
    assert n == graph["frames_per_call"] * lay["hop"] * len(native["block_ms"]) >= 0.9 * len(whole["audio"])
    print(f"live graph vs whole calls: {snr_db(whole['audio'][:n], native['audio']):.1f} dB over {n / SR:.2f} s")
    assert snr_db(whole["audio"][:n], native["audio"]) >= 100
