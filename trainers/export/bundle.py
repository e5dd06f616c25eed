"""`tonesweep export`: the registry's champion (or one run) -> a self-contained, parity-checked bundle.

    DIR/saved_model/     TF SavedModel of ExportedSynth (weights as shipped: quantized+dequantized)
    DIR/tfjs/            model.json + weight shards (real tensorflowjs converter, weights quantized)
    DIR/tfjs/live/       the same model at a live block per call (the page's live mode; no reverb models)
    DIR/model-card.json  what a runtime needs (layout, scaling stats) and what was verified

The chain is explicit: ResolvedTrial -> load_trained -> ExportedSynth -> check vs training graph
-> SavedModel -> convert -> check TF.js in Node -> model card. Every check raises
ExportParityError below its bar, so a bundle on disk has passed them all.

trainers/ never imports MLflow: finding the champion or a run in the tracking store, downloading
its ``trial/`` folder and deciding ``--precision auto`` is ``results.champion``'s job (joined to
this module by the CLI handler, ``cli.commands.export``); this module starts from a local trial
folder (`ResolvedTrial`) and a concrete precision.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from common.locks import sibling_lock, writer_lock
from common.constants import PRECISIONS
from common.errors import UserError
from common.files import (
    check_replaceable,
    give_umask_modes,
    file_digests,
    listed_files,
    private_tempdir,
    remove_stale_tempdirs,
    replace_owned,
    scratch_dir,
    write_json_atomic,
)
from common.paths import check_apart, check_name, check_output_folder, contained
from common.trial import ResolvedTrial
from trainers.export import runtime
from trainers.export.card import CARD, CARD_FORMAT, FILE_DIGESTS, owned_files

TF_PARITY_DB = 100.0  # export-safe graph vs training graph; TF.js vs TF (any precision)
# synth.mjs vs the graph's own synthesis over the first 20 ms of a call: a guard against a broken synthesizer
# (a wrong partial or noise frame costs tens of dB); how close it is, is tests/test_js_synth.py's
JS_SYNTH_DB = 45.0


def synth_spec() -> dict[str, Any]:
    """The card's "synth": what js/synth.mjs needs beyond the layout to synthesize from the graph's controls."""
    from trainers.model import synth  # noqa: PLC0415

    return {"noise_window": synth.NOISE_WINDOW_SIZE}


class ExportParityError(RuntimeError):
    """An exported graph does not reproduce its reference closely enough; nothing was shipped."""


def local_trial(path: str | Path) -> ResolvedTrial:
    """A trial folder on disk (the --out of `tonesweep train`, or a sweep's trial folder)."""
    local = Path(path)
    if not (local / "config.json").exists():
        raise UserError(f"{local}: not a trial folder (no config.json); pass the --out folder of `tonesweep train`")
    return ResolvedTrial(local, local.resolve().name)


# ---------------------------------------------------------------------- building and checking

def parity_inputs(module, manifest: dict[str, Any] | None, feature: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs in the instrument's range (dataset statistics) for the parity checks."""
    from trainers.export import graph  # noqa: PLC0415

    stats = (manifest or {}).get("stats", {}).get(str(module.layout.frame_rate), {})
    feature_stats = stats.get(f"{feature}_db", {})
    low, high = feature_stats.get("p5", -60.0), feature_stats.get("p95", -10.0)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        low, high = -60.0, -10.0
    return graph.random_inputs(module.layout, seed=seed, feature_range=(low, high))


def check_against_training(module, model, inputs) -> float:
    """SNR (dB) of the export-safe graph against the training graph; raises below the bar."""
    from trainers.export import graph  # noqa: PLC0415

    exported = module(**inputs)["audio"]
    snr = graph.snr_db(graph.training_reference(model, module.layout, inputs), exported)
    if not snr >= TF_PARITY_DB:
        raise ExportParityError(f"export-safe graph vs training graph: {snr:.1f} dB < {TF_PARITY_DB} dB")
    return snr


def quantize_module_weights(module, precision: str) -> None:
    """Replace every weight by its value after TF.js quantization (as evaluation does)."""
    from trainers.model.quantize import quantize_dequantize  # noqa: PLC0415

    for var in module.variables:
        var.assign(quantize_dequantize(var.numpy(), precision))


def write_saved_model(module, path: Path) -> None:
    import tensorflow as tf  # noqa: PLC0415

    tf.saved_model.save(module, str(path), signatures={"serving_default": module.render})


CARRY_PARITY_DB = 40.0  # next_* carries: float32 sums over a whole call differ more than the audio, far less than a mix-up


def check_tfjs(tfjs_dir: Path, tf_outputs: dict[str, np.ndarray], inputs, repeat: int = 2) -> dict[str, Any]:
    """Run the converted model in Node (wasm backend); SNR per output vs TF; raises below the bar."""
    from trainers.export import graph, tfjs  # noqa: PLC0415

    try:
        js_outputs, info = tfjs.run_node(tfjs_dir, inputs, backend="wasm", repeat=repeat)
    except RuntimeError as err:
        raise ExportParityError(str(err)) from None
    if set(js_outputs) != set(tf_outputs):  # the carries must reach a runtime under their names
        raise ExportParityError(f"TF.js model outputs {sorted(js_outputs)}, the SavedModel {sorted(tf_outputs)}")
    runtime.check_kernels(info["kernels"])
    snr = graph.snr_db(tf_outputs["audio"], js_outputs["audio"])
    if not snr >= TF_PARITY_DB:
        raise ExportParityError(f"TF.js (Node, wasm) vs TF: {snr:.1f} dB < {TF_PARITY_DB} dB")
    for name in tf_outputs:  # carries under the right names (a swap of two same-shaped ones is ~0 dB)
        carry = _carry_snr_db(name, tf_outputs[name], js_outputs[name]) if name != "audio" else snr
        if not carry >= CARRY_PARITY_DB:
            raise ExportParityError(f"TF.js (Node, wasm) vs TF, output {name}: {carry:.1f} dB < {CARRY_PARITY_DB} dB")
    return {"snr_db": round(snr, 2), "backend": info["backend"],
            "ms_per_call": round(float(np.median(info["timings_ms"][1:] or info["timings_ms"])), 1)}


def parity_signal(inputs, layout) -> dict[str, np.ndarray]:
    """Two calls' worth of frames from the parity inputs (repeated), as a signal for runner.mjs, with noise."""
    frames = np.tile(inputs["f0_hz"][0, :, 0], 3)[:2 * layout.frames_per_call]
    level = np.tile(inputs["feature_db"][0, :, 0], 3)[:len(frames)]
    return {"f0_hz": frames.astype(np.float32), "feature_db": level.astype(np.float32),
            "noise": np.random.default_rng(0).uniform(-1, 1, len(frames) * layout.hop).astype(np.float32)}


def check_js_synth(tfjs_dir: Path, layout, signal) -> tuple[float, np.ndarray]:
    """Render a signal (``parity_signal``) in Node with the synthesis in the graph and in synth.mjs; raises when
    they part where a call starts (the phase is handed over exactly there; within a call the graph's float32
    phase drifts, docs/architecture.md "Synthesis outside the graph"). Returns the lowest of those SNRs (dB) and
    the audio synth.mjs rendered (what the page renders offline; the live graph's check compares with it)."""
    from trainers.export import graph, tfjs  # noqa: PLC0415

    frames = signal["f0_hz"]
    try:
        in_graph, _ = tfjs.run_node(tfjs_dir, signal, signal_layout=layout.to_dict())
        outside, _ = tfjs.run_node(tfjs_dir, signal, signal_layout=layout.to_dict(), synth=synth_spec())
    except RuntimeError as err:
        raise ExportParityError(str(err)) from None
    head = layout.samples_per_call // 50  # the first 20 ms of each call
    starts = [graph.snr_db(in_graph["audio"][c:c + head], outside["audio"][c:c + head])
              for c in range(0, len(frames) * layout.hop, layout.samples_per_call)]
    if not min(starts) >= JS_SYNTH_DB:
        raise ExportParityError(f"synth.mjs vs the graph's synthesis where a call starts: {min(starts):.1f} dB "
                                f"< {JS_SYNTH_DB} dB")
    return round(min(starts), 2), outside["audio"]


# ---------------------------------------------------------------------- the live graph

LIVE_DIR = "tfjs/live"  # the live graph's model.json and shard, beside the whole-second graph
LIVE_BLOCK_SECONDS = 0.01  # the page's live block: what a block adds to the delay (twice: waiting and margin)
# Live blocks against whole calls, both with the synthesis in JavaScript: the same graph ops on windows of
# other lengths (the wasm kernels may tile them differently), so agreement to float32 rounding is expected
LIVE_PARITY_DB = 100.0
IDENTICAL_DB = 300.0  # what the card records for identical samples (an infinite SNR; JSON has no infinity)


def live_frames(frame_rate: int) -> int:
    """Frames per call of the live graph: LIVE_BLOCK_SECONDS, at least one frame."""
    return max(1, int(LIVE_BLOCK_SECONDS * frame_rate + 0.5))


def export_live_graph(config, model, manifest, precision: str, staging: Path, signal, whole_audio) -> dict[str, Any]:
    """staging/tfjs/live/: the same decoder and weights exported at a live block per call, which the page's
    live mode renders natively (docs/architecture.md §6 "Live mode"): a one-second graph would decode its
    whole window for every block. Returns the card's "live": its layout, bytes and, given ``whole_audio`` (what
    whole calls of the bundle's graph render from ``signal`` in Node, synthesis in JavaScript), how closely
    its blocks render the same."""
    from trainers.export import graph, tfjs  # noqa: PLC0415

    module = graph.ExportedSynth(config, model, live_frames(config["frame_rate"]))
    # Checked against the training graph only when not in Node: there its blocks are checked against the
    # bundle's graph (what the page plays), which was itself checked against the training graph
    if whole_audio is None:
        check_against_training(module, model, parity_inputs(module, manifest, config["feature"]))
    with scratch_dir("tonesweep-live-graph-") as scratch:
        write_saved_model(module, scratch / "saved_model")
        sizes = tfjs.convert(scratch / "saved_model", staging / LIVE_DIR, precision)
    runtime.check_graph_ops(staging / LIVE_DIR / "model.json")
    record = {"frames_per_call": module.layout.frames_per_call, "layout": module.layout.to_dict(),
              "model": f"{LIVE_DIR}/model.json", "bytes": sizes}
    if whole_audio is not None:
        record["live_vs_whole_db"] = check_live_graph(staging, module.layout, signal, whole_audio)
    return record


def check_live_graph(staging: Path, live, signal, whole_audio: np.ndarray) -> float:
    """SNR (dB) of the live graph's blocks against whole calls of the bundle's graph (``whole_audio``), both in
    Node with the synthesis in JavaScript, over the parity signal; raises below LIVE_PARITY_DB."""
    from trainers.export import graph, tfjs  # noqa: PLC0415

    try:
        blocks, info = tfjs.run_node(staging / LIVE_DIR, signal, signal_layout=live.to_dict(), synth=synth_spec(),
                                     live_block=live.frames_per_call)
    except RuntimeError as err:
        raise ExportParityError(str(err)) from None
    runtime.check_kernels(info["kernels"])
    n = len(blocks["audio"])  # the last frames wait for features past the signal's end
    snr = graph.snr_db(whole_audio[:n], blocks["audio"])
    if not snr >= LIVE_PARITY_DB:
        raise ExportParityError(f"the live graph's blocks vs whole calls (Node, wasm): {snr:.1f} dB "
                                f"< {LIVE_PARITY_DB} dB")
    return round(min(snr, IDENTICAL_DB), 2)


def _carry_snr_db(name: str, reference: np.ndarray, estimate: np.ndarray) -> float:
    """SNR of a carry; phases compare on the circle (6.2831 and 0.0001 rad are the same phase)."""
    from trainers.export import graph  # noqa: PLC0415

    if name == "next_phase":
        error = np.angle(np.exp(1j * (np.asarray(reference, np.float64) - np.asarray(estimate, np.float64))))
        return graph.snr_db(reference, np.asarray(reference, np.float64) - error)
    if not np.any(reference) and not np.any(estimate):
        return float("inf")
    return graph.snr_db(reference, estimate)


# ---------------------------------------------------------------------- the bundle

def export_bundle(source: ResolvedTrial, out_dir: str | Path, instrument: str, precision: str,
                  js_parity: bool = True, frames_per_call: int | None = None, force: bool = False,
                  extra_files: Mapping[str, bytes] | None = None) -> dict[str, Any]:
    """Write DIR/saved_model, DIR/tfjs, DIR/model-card.json and ``extra_files`` (relative path ->
    content: `tonesweep export` passes the page, ``web.assets.page_files()``, so the folder plays the
    model wherever it is hosted) for one trial; returns the card.

    Built in a staging folder next to DIR and moved in only after every check passed, replacing
    only the files an earlier bundle's card lists. A DIR holding other files is refused unless
    ``force`` (they are then kept, e.g. a page that hosts the bundle).
    """
    out_dir = Path(out_dir).absolute()
    check_name(instrument, "--instrument")
    check_apart(out_dir, [source.trial_dir], "--out")
    check_output_folder(out_dir, "--out")
    with writer_lock(sibling_lock(out_dir), f"bundle {out_dir}", "--out"):  # one writer at a time
        return _export_locked(source, out_dir, instrument, precision, js_parity, frames_per_call, force, extra_files)


def _export_locked(source: ResolvedTrial, out_dir: Path, instrument: str, precision: str, js_parity: bool,
                   frames_per_call: int | None, force: bool, extra_files: Mapping[str, bytes] | None) -> dict[str, Any]:
    from trainers.export import graph, tfjs  # noqa: PLC0415
    from trainers.model.trained import load_trained  # noqa: PLC0415

    owned = owned_files(out_dir)
    check_replaceable(out_dir, owned, "bundle", "--out", force)
    remove_stale_tempdirs(_staging_prefix(out_dir), out_dir.parent)
    config, model = load_trained(source.trial_dir)
    metrics = _read_json(source.trial_dir / "metrics.json", required=False)
    manifest = _read_json(source.trial_dir / "dataset_manifest.json", required=False)
    trained_on = (manifest or {}).get("instrument")
    if trained_on and trained_on != instrument:
        raise UserError(f"--instrument {instrument}: run {source.run_id} was trained on {trained_on}; "
                        f"pass --instrument {trained_on} (the card and page name the instrument)")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")
    # 1 s per call: the float32 phase error grows within a call (~50 dB vs float64 after 1 s,
    # ~40 dB after 4 s), while transfer carries the phase between calls exactly.
    module = graph.ExportedSynth(config, model, frames_per_call or config["frame_rate"])
    inputs = parity_inputs(module, manifest, config["feature"])
    tf_vs_training = check_against_training(module, model, inputs)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = private_tempdir(_staging_prefix(out_dir), out_dir.parent)
    try:
        write_saved_model(module, staging / "float32_saved_model")  # what the converter quantizes
        sizes = tfjs.convert(staging / "float32_saved_model", staging / "tfjs", precision)
        runtime.check_graph_ops(staging / "tfjs" / "model.json")  # the page's runtime can run it
        shutil.rmtree(staging / "float32_saved_model")
        quantize_module_weights(module, precision)  # the SavedModel ships what TF.js runs
        write_saved_model(module, staging / "saved_model")
        tf_outputs = _run_saved_model(staging / "saved_model", inputs)
        js = check_tfjs(staging / "tfjs", tf_outputs, inputs) if js_parity else None
        signal, whole_audio = parity_signal(inputs, module.layout), None
        if js_parity and not module.layout.reverb_tail:  # what the page runs: the decoder in TF.js, synth.mjs
            js["js_synth_call_start_db"], whole_audio = check_js_synth(staging / "tfjs", module.layout, signal)
        live = None if module.layout.reverb_tail else export_live_graph(
            config, model, manifest, precision, staging, signal, whole_audio)
        card = model_card(instrument, config, module.layout, source, precision, metrics, manifest, sizes,
                          {"tf_vs_training_db": round(tf_vs_training, 2), "tfjs_node_wasm": js,
                           "tf_ms_per_call": _tf_ms_per_call(staging / "saved_model", inputs)})
        if live:
            card["live"] = live
        _write_files(staging, extra_files or {})
        card["files"] = sorted(listed_files(staging) + [CARD])  # what a later export may replace
        card[FILE_DIGESTS] = file_digests(staging, listed_files(staging))  # what readers check (card.check_bundle_files)
        json.dumps(card, allow_nan=False)  # raises on an infinity or NaN, which a browser's JSON.parse refuses
        write_json_atomic(staging / CARD, card)
        give_umask_modes(staging)
        replace_owned(staging, out_dir, owned, CARD)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return card


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    for name, data in files.items():
        path = contained(folder, name, "bundle file")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _staging_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}.tmp-"


def _run_saved_model(path: Path, inputs) -> dict[str, np.ndarray]:
    """One call of the SavedModel's serving signature (what `transfer` runs)."""
    import tensorflow as tf  # noqa: PLC0415

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def _tf_ms_per_call(path: Path, inputs, repeat: int = 3) -> float:
    import time  # noqa: PLC0415

    import tensorflow as tf  # noqa: PLC0415

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    feeds = {k: tf.constant(v) for k, v in inputs.items()}
    fn(**feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(**feeds)["audio"].numpy()
        times.append(time.perf_counter() - start)
    return round(1000 * float(np.median(times)), 1)


def model_card(instrument, config, layout, source: ResolvedTrial, precision, metrics, manifest, sizes, parity
               ) -> dict[str, Any]:
    """model-card.json: what a runtime needs to drive the model and what was verified."""
    import tensorflow as tf  # noqa: PLC0415

    from trainers.export import tfjs  # noqa: PLC0415

    stats = (manifest or {}).get("stats", {}).get(str(config["frame_rate"]), {})
    feature_key = f"{config['feature']}_db"
    return {
        "format": CARD_FORMAT,
        "instrument": instrument,
        "decoder": config["decoder"],
        "feature": config["feature"],
        "sample_rate": layout.sample_rate,
        "frame_rate": layout.frame_rate,
        "frames_per_call": layout.frames_per_call,
        "layout": layout.to_dict(),
        # how a runtime synthesizes outside the graph from its control outputs (js/synth.mjs; graph.py)
        "synth": synth_spec(),
        "inputs": {
            "f0_hz": "fundamental frequency in Hz per frame, 0 when unvoiced",
            "feature_db": f"{config['feature']} in dB per frame (0 dB ref, floor -80 dB)",
            "noise": "white noise, uniform in [-1, 1), one value per sample of all input frames",
            "carries": "phase, noise_tail, state, reverb_tail: zeros for the first call, then the "
                       "previous call's next_* outputs",
        },
        "features": {"f0_min_hz": (manifest or {}).get("features", {}).get("f0_min_hz"),
                     "f0_max_hz": (manifest or {}).get("features", {}).get("f0_max_hz"),
                     "voicing": "pyin's decoded voicing"},
        "input_scaling": {
            "in_graph": "f0_scaled = midi(f0_hz)/127, feature_scaled = feature_db/80 + 1",
            "f0_midi": stats.get("f0_midi"),
            "feature_db": stats.get(feature_key),
            "how": "tone transfer: shift f0 by whole octaves so its median midi is nearest f0_midi.p50; "
                   "shift feature_db so its voiced p95 equals feature_db.p95",
        },
        "config": config,
        "run_id": source.run_id,
        "registry": source.registry,
        "precision": precision,
        "quality": {"metric": "held-out multi-scale spectral loss (lower is better)",
                    "value": metrics.get(f"quality_{precision}"),
                    "pitch_error_cents": metrics.get(f"pitch_error_cents_{precision}")},
        "bytes": {**sizes, "selector_estimate": metrics.get(f"bytes_{precision}")},
        "parity": parity,
        "speed": speed_record(layout, parity, metrics),
        "versions": {"tonesweep": _tonesweep_version(), "tensorflow": tf.__version__,
                     "tensorflowjs_converter": tfjs.converter_version(), "format": CARD_FORMAT},
    }


def speed_record(layout, parity: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The wasm real-time factor measured during export (Node, one call) beside the cost model's estimate."""
    js = parity.get("tfjs_node_wasm")
    seconds = layout.frames_per_call / layout.frame_rate
    measured = round(1000.0 * seconds / js["ms_per_call"], 2) if js and js.get("ms_per_call") else None
    estimate = metrics.get("rtf_wasm")
    return {"rtf_wasm": measured, "rtf_wasm_estimate": None if estimate is None else round(float(estimate), 2),
            "measured_on": f"Node.js, @tensorflow/tfjs-backend-wasm, median ms of one call of "
                           f"{layout.frames_per_call} frames ({seconds:g} s of audio)"}


def _tonesweep_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("tonesweep")
    except PackageNotFoundError:
        return "unknown"


def _read_json(path: Path, required: bool = True) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise UserError(f"{path}: missing")
        return {}
    return json.loads(path.read_text())


# ---------------------------------------------------------------------- summary

def summary_text(out_dir, card: dict[str, Any]) -> str:
    """What `tonesweep export` prints: where, what, how big, how exact."""
    size, parity = card["bytes"], card["parity"]
    js = parity["tfjs_node_wasm"]
    estimate = size["selector_estimate"]
    js_text = f"TF.js Node wasm vs TF {js['snr_db']} dB, {js['ms_per_call']} ms/call" if js else "TF.js check skipped"
    return "\n".join([
        f"exported {card['instrument']} (run {card['run_id']}, {card['decoder']}/{card['feature']}, "
        f"{card['precision']}) to {out_dir}",
        f"  bundle bytes: {size['total']:,} (model.json {size['model_json']:,} + shards {size['shards']:,}; "
        f"gzip {size.get('total_gzip', 0):,}); selector estimate {estimate if estimate is None else f'{int(estimate):,}'}",
        f"  speed: wasm real-time factor {card.get('speed', {}).get('rtf_wasm')} (estimate "
        f"{card.get('speed', {}).get('rtf_wasm_estimate')})",
        f"  parity: TF vs training graph {parity['tf_vs_training_db']} dB; {js_text}",
        f"  quality ({card['precision']}): {card['quality']['value']}",
        *_live_line(card),
        f"  play it in a browser: tonesweep serve --models {out_dir} (or host the folder as it is: play.html)",
    ])


def _live_line(card: dict[str, Any]) -> list[str]:
    live = card.get("live")
    if not live:
        return ["  live mode: no live graph (a reverb model: its graph synthesizes; record a take instead)"]
    lay, db = live["layout"], live.get("live_vs_whole_db")
    checked = ("not checked in Node" if db is None else "its blocks identical to whole calls" if db >= IDENTICAL_DB
               else f"its blocks vs whole calls {db:g} dB")
    block_ms = 1000 * lay["samples_per_call"] / lay["sample_rate"]
    return [f"  live graph: {lay['frames_per_call']} frame(s), {block_ms:g} ms per call; {checked}"]
