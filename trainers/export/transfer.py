"""`tonesweep transfer --model DIR INPUT OUTPUT`: tone transfer of any length with an exported bundle.

1. Features of the input (trainers.data.features: pYIN f0 + confidence, loudness or RMS at the model's
   frame rate).
2. Fit them to the instrument (model card statistics): f0 shifted by whole octaves so the
   input's median voiced pitch lands nearest the instrument's median; the level shifted so the
   input's voiced 95th percentile equals the instrument's; unvoiced frames lowered by
   UNVOICED_ATTENUATION_DB (the model only learned voiced, pitched sound).
3. Render with the SavedModel, frames_per_call frames per call, passing the carries (harmonic
   phase, the noise FIR's spill, GRU state, reverb tail) from call to call. The chunks' lookahead
   and context frames (see trainers/export/graph.py) make the concatenation equal to rendering
   the whole signal at once: no clicks at chunk edges, no phase drift.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import UserError
from trainers.export.card import CARD, check_bundle_files, read_card
from common.paths import check_apart, check_output_file, contained

UNVOICED_ATTENUATION_DB = 20.0
SILENCE_DB = -70.0  # inputs whose loudest frame is below this are refused as silent
AUDIO_OUTPUTS = (".wav", ".flac", ".ogg", ".aiff", ".aif")  # what soundfile writes on every platform
NOISE_SEED = 0  # noise of a rendering (any seed works; a fixed one makes transfer repeatable)


def read_bundle_card(model_dir: str | Path) -> dict[str, Any]:
    """The bundle's model card (``trainers.export.card``), and its SavedModel present: what `transfer` reads."""
    card = read_card(model_dir)
    if not (Path(model_dir) / "saved_model" / "saved_model.pb").exists():
        raise UserError(f"{Path(model_dir) / 'saved_model'}: missing; re-export the model with `tonesweep export`")
    check_bundle_files(model_dir, card)  # every file whole, as export wrote it
    return card


def check_agreement(model_dir: Path, layout, signature: dict) -> None:
    """Card, SavedModel signature and TF.js weights must describe one model: a card edited or copied
    from another bundle fails here with one line, not deep inside TensorFlow."""
    expected = {"f0_hz": [1, layout.input_frames, 1], "feature_db": [1, layout.input_frames, 1],
                "noise": [1, layout.input_frames * layout.hop], "phase": [1, layout.n_harmonics],
                "noise_tail": [1, layout.noise_tail]}
    if layout.state_size:
        expected["state"] = [1, layout.state_size]
    if layout.reverb_tail:
        expected["reverb_tail"] = [1, layout.reverb_tail]
    found = {name: list(spec.shape) for name, spec in signature.items()}
    if found != expected:
        raise UserError(f"{model_dir / CARD}: its layout does not match saved_model's inputs "
                        f"(card {expected}, graph {found}); the card belongs to another model: re-export the bundle")
    tfjs_json = model_dir / "tfjs" / "model.json"
    if tfjs_json.is_file():
        from trainers.export.lean import weight_bytes  # noqa: PLC0415

        manifest = json.loads(tfjs_json.read_text())["weightsManifest"]
        shards = [contained(model_dir / "tfjs", name, f"{tfjs_json}: weightsManifest paths")
                  for group in manifest for name in group["paths"]]
        missing = [p for p in shards if not p.is_file()]
        present = sum(p.stat().st_size for p in shards if p.is_file())
        if missing or present != weight_bytes(manifest):
            raise UserError(f"{tfjs_json}: the weight shards do not match it ({'missing ' + missing[0].name if missing else f'{present} bytes, it lists {weight_bytes(manifest)}'}); "
                            "re-export the bundle")


class BundleRenderer:
    """Renders frames of any length with a bundle's SavedModel, chunk by chunk."""

    def __init__(self, model_dir: str | Path):
        import tensorflow as tf  # noqa: PLC0415

        from trainers.export.graph import Layout  # noqa: PLC0415

        self.card = read_bundle_card(model_dir)
        try:
            self.layout = Layout.from_dict(self.card["layout"])
        except (KeyError, TypeError):
            raise UserError(f"{Path(model_dir) / CARD}: its layout is incomplete; re-export the model "
                            "with `tonesweep export`") from None
        self._fn = tf.saved_model.load(str(Path(model_dir) / "saved_model")).signatures["serving_default"]
        self._input_names = set(self._fn.structured_input_signature[1])
        check_agreement(Path(model_dir), self.layout, self._fn.structured_input_signature[1])

    def render(self, f0_hz: np.ndarray, feature_db: np.ndarray, noise: np.ndarray | None = None,
               seed: int = NOISE_SEED) -> np.ndarray:
        """Frames [T] -> audio float32 [T * hop].

        noise: uniform [-1, 1) of T * hop samples (default: drawn from `seed`); passing it lets a
        reference synthesis use the very same noise.
        """
        lay = self.layout
        n_frames = len(f0_hz)
        if noise is None:
            noise = np.random.default_rng(seed).uniform(-1.0, 1.0, n_frames * lay.hop).astype(np.float32)
        n_calls = -(-n_frames // lay.frames_per_call)
        f0, feature, noise = self._pad(f0_hz, feature_db, noise, n_calls)
        carries = self._zero_carries()
        pieces = []
        for call in range(n_calls):
            first = call * lay.frames_per_call  # in padded frames, context included
            window = slice(first, first + lay.input_frames)
            outputs = self._call(f0[window], feature[window],
                                 noise[first * lay.hop:(first + lay.input_frames) * lay.hop], carries)
            pieces.append(outputs.pop("audio")[0])
            phase = carries["phase"]
            carries = {name[len("next_"):]: value for name, value in outputs.items() if name.startswith("next_")}
            # The graph's next_phase carries its float32 error (~1e-3 rad per 4 s) into the next
            # call, and those errors add up over minutes; the phase advance is exact in float64.
            rendered = f0[first + lay.context_before:first + lay.context_before + lay.frames_per_call + 1]
            carries["phase"] = advance_phase(phase, rendered, lay.hop, lay.sample_rate)
        return np.concatenate(pieces)[:n_frames * lay.hop]

    def _pad(self, f0_hz, feature_db, noise, n_calls):
        """Context frames before the first frame (copies of it) and after the last (copies of it,
        as ddsp holds the last frame), up to a whole number of calls plus lookahead."""
        lay = self.layout
        n_frames = len(f0_hz)
        after = n_calls * lay.frames_per_call + lay.lookahead + lay.context_after - n_frames

        def pad(x):
            x = np.asarray(x, np.float32).reshape(-1)
            return np.concatenate([np.full(lay.context_before, x[0]), x, np.full(after, x[-1])]).astype(np.float32)

        noise = np.concatenate([np.zeros(lay.context_before * lay.hop), np.asarray(noise, np.float32).reshape(-1),
                                np.zeros(after * lay.hop)]).astype(np.float32)
        return pad(f0_hz), pad(feature_db), noise

    def _zero_carries(self) -> dict[str, np.ndarray]:
        lay = self.layout
        sizes = {"phase": lay.n_harmonics, "noise_tail": lay.noise_tail, "state": lay.state_size,
                 "reverb_tail": lay.reverb_tail}
        return {name: np.zeros([1, size], np.float32) for name, size in sizes.items() if name in self._input_names}

    def _call(self, f0, feature, noise, carries) -> dict[str, np.ndarray]:
        import tensorflow as tf  # noqa: PLC0415

        feeds = {"f0_hz": f0[None, :, None], "feature_db": feature[None, :, None], "noise": noise[None], **carries}
        return {k: v.numpy() for k, v in self._fn(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def advance_phase(phase: np.ndarray, f0_frames: np.ndarray, hop: int, sample_rate: int) -> np.ndarray:
    """Harmonic phases after the F frames of one call, in float64.

    The graph interpolates each harmonic's frequency linearly from frame j to j+1 and sums the
    per-sample increments (phase[n] = phase_in + sum_{s<=n} 2 pi f_s / sr), so over frame j the
    phase advances by 2 pi k (H f_j + (f_{j+1} - f_j)(H - 1)/2) / sr.
    Args: phase [1,K] radians before the call; f0_frames [F+1] Hz (the rendered frames and the
    one after them). Returns [1,K] float32 in [0, 2 pi).
    """
    f = np.asarray(f0_frames, np.float64)
    f0_cycles = np.sum(hop * f[:-1] + (f[1:] - f[:-1]) * (hop - 1) / 2.0) / sample_rate
    harmonics = np.arange(1, phase.shape[-1] + 1)
    advanced = phase.astype(np.float64) + 2.0 * np.pi * np.mod(harmonics * f0_cycles, 1.0)
    return np.mod(advanced, 2.0 * np.pi).astype(np.float32)


# ---------------------------------------------------------------------- features -> instrument range

def extract_features(audio: np.ndarray, frame_rate: int, feature: str, f0_range: dict | None = None
                     ) -> dict[str, np.ndarray]:
    """{"f0_hz", "confidence", "voiced", "feature_db"} [n * frame_rate / 16000] of 16 kHz audio, with
    the pitch range the instrument's dataset was prepared with (``f0_min_hz``/``f0_max_hz``)."""
    from trainers.data import features  # noqa: PLC0415

    pitch = {k: float(v) for k, v in (f0_range or {}).items() if k in ("f0_min_hz", "f0_max_hz") and v}
    params = features.FeatureParams(frame_rates=(frame_rate,), **pitch)
    f0, confidence, voiced = features.f0_voicing(audio, params)[frame_rate]
    level = features.loudness_db if feature == "loudness" else features.rms_db
    return {"f0_hz": f0, "confidence": confidence, "voiced": voiced, "feature_db": level(audio, frame_rate, params)}


def fit_to_instrument(f0_hz: np.ndarray, feature_db: np.ndarray, voiced: np.ndarray,
                      card: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Octave-shift f0 and level-match the feature to the card's dataset statistics.

    ``voiced``: per-frame voiced flags (pYIN's decoded voicing; any 0/1 array).

    Returns: f0_hz, feature_db (float32, same shapes) and {"octaves", "level_shift_db"}.
    Raises UserError when no frame is voiced (nothing to transfer).
    """
    scaling = card.get("input_scaling", {})
    voiced = (np.asarray(voiced, dtype=np.float32) > 0.5) & (f0_hz > 0)
    if not voiced.any():
        raise UserError("input: no pitched (voiced) frames found; use a recording of a voice or a melodic instrument")
    input_midi = float(np.median(69.0 + 12.0 * np.log2(f0_hz[voiced] / 440.0)))
    target_midi = (scaling.get("f0_midi") or {}).get("p50")
    octaves = 0 if target_midi is None or not np.isfinite(target_midi) else int(np.round((target_midi - input_midi) / 12.0))
    input_p95 = float(np.percentile(feature_db[voiced], 95))
    target_p95 = (scaling.get("feature_db") or {}).get("p95")
    shift = 0.0 if target_p95 is None or not np.isfinite(target_p95) else float(target_p95 - input_p95)
    fitted = feature_db + shift - np.where(voiced, 0.0, UNVOICED_ATTENUATION_DB)
    f0_out = f0_hz * 2.0**octaves
    return (f0_out.astype(np.float32), np.clip(fitted, -80.0, 0.0).astype(np.float32),
            {"octaves": octaves, "level_shift_db": round(shift, 2)})


def check_pitched(input_path: str | Path, feats: dict[str, np.ndarray]) -> None:
    """Refuse an input without pitched content by the rule `prepare` skips such a file with (white
    noise, speech-like clicks): a rendering of it would be noise with exit 0."""
    from trainers.data.features import MIN_STEADY_FRACTION, steady_fraction  # noqa: PLC0415

    fraction = steady_fraction(feats["f0_hz"], feats["voiced"])
    if fraction < MIN_STEADY_FRACTION:
        raise UserError(f"{input_path}: no pitched content ({100 * fraction:.1f}% of frames steadily voiced, "
                        f"{100 * MIN_STEADY_FRACTION:.0f}% needed); use a recording of a voice or a melodic instrument")


# ---------------------------------------------------------------------- a whole file

def check_transfer_paths(model_dir: str | Path, input_path: str | Path, output_path: str | Path) -> None:
    """The bundle's card, the input's presence and the output's place, before any work (light: no
    TensorFlow)."""
    read_bundle_card(model_dir)  # a one-line error for a wrong --model first
    if not Path(input_path).is_file():
        what = "a folder; give one recording" if Path(input_path).is_dir() else "no such file; check the path"
        raise UserError(f"{input_path}: {what}")
    check_apart(output_path, [input_path, model_dir], "OUTPUT")
    check_output_file(output_path, "OUTPUT", AUDIO_OUTPUTS)


def transfer_file(model_dir: str | Path, input_path: str | Path, output_path: str | Path) -> dict[str, Any]:
    """INPUT audio -> OUTPUT WAV in the bundle's instrument; returns a summary dict."""
    import time  # noqa: PLC0415

    from trainers.data.audio import load_audio, write_wav  # noqa: PLC0415

    check_transfer_paths(model_dir, input_path, output_path)
    renderer = BundleRenderer(model_dir)  # loads the bundle before the slow feature extraction
    card = renderer.card
    audio = load_audio(input_path, card["sample_rate"])
    peak_db = 20 * np.log10(max(float(np.max(np.abs(audio))) if audio.size else 0.0, 1e-10))
    if peak_db < SILENCE_DB:
        raise UserError(f"{input_path}: silent (peak {peak_db:.0f} dBFS); pass a recording with audible sound")
    feats = extract_features(audio, card["frame_rate"], card["feature"], card.get("features"))
    if float(np.max(feats["feature_db"])) < SILENCE_DB:
        raise UserError(f"{input_path}: silent (loudest frame {np.max(feats['feature_db']):.0f} dB); pass a recording with audible sound")
    check_pitched(input_path, feats)
    f0, level, fit = fit_to_instrument(feats["f0_hz"], feats["feature_db"], feats["voiced"], card)
    start = time.perf_counter()
    out = renderer.render(f0, level)
    seconds = time.perf_counter() - start
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(f".{output_path.name}.partial{output_path.suffix}")
    try:  # a killed or failed write never leaves half a file under the output's name
        write_wav(partial, out, card["sample_rate"])
        os.replace(partial, output_path)
    finally:
        partial.unlink(missing_ok=True)
    return {"seconds": len(out) / card["sample_rate"], "render_s": round(seconds, 2), **fit}
