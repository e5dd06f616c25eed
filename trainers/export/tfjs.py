"""SavedModel -> TF.js graph model with the real ``tensorflowjs`` converter (4.22).

Why the import shims live here (and only here): the converter module imports
``tensorflow_decision_forests`` and ``tensorflowjs.converters.jax_conversion`` (which imports jax)
at top level. Neither is installed (TF-DF pins an older TensorFlow; jax is not needed) and neither
is used for ``tf_saved_model`` input, so empty placeholder modules are registered under exactly
those two names before the converter is imported. An empty ``jax`` must NOT be registered:
Keras 3 probes ``jax.monitoring`` and breaks (docs/stack.md).

Quantization touches weights only: the pattern ``*ReadVariableOp*`` matches the frozen reads of
the module's tf.Variables (the decoder weights and the reverb impulse response) and none of the
DSP constants (windows, the noise filter's DFT factors), which lose the audio when quantized (SNR -3 dB).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

from common.constants import PRECISIONS
from common.node import PROJECT_ROOT, node_binary, npm_path
from trainers.export.js import JS_DIR

if TYPE_CHECKING:
    import numpy as np

WEIGHT_PATTERN = "*ReadVariableOp*"


def _jax_unavailable(*_args, **_kwargs):
    raise RuntimeError("JAX conversion is not available in tonesweep (see trainers/export/tfjs.py)")


def _register_converter_placeholders() -> None:
    for name in ("tensorflow_decision_forests", "tensorflowjs.converters.jax_conversion"):
        if name not in sys.modules:
            placeholder = types.ModuleType(name)
            placeholder.__doc__ = "Placeholder: unused for SavedModel input; see trainers/export/tfjs.py."
            sys.modules[name] = placeholder
    # tensorflowjs.converters/__init__ re-exports this name
    sys.modules["tensorflowjs.converters.jax_conversion"].convert_jax = _jax_unavailable


def converter_version() -> str:
    """The installed tensorflowjs version (written to the model card)."""
    _register_converter_placeholders()
    from tensorflowjs import version  # noqa: PLC0415  (after the placeholders)

    return version.version


def convert(saved_model_dir: str | Path, out_dir: str | Path, precision: str) -> dict[str, int]:
    """Convert the ``serving_default`` signature to ``out_dir/model.json`` + weight shards.

    The converter's model.json is then made lean (trainers/export/lean.py): short node names and only
    the attributes TF.js reads.

    Args:
      precision: float32 | float16 | uint8 (weights only; the DSP constants stay float32).
    Returns: ``bundle_bytes`` of the result.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {PRECISIONS}")
    _register_converter_placeholders()
    from tensorflowjs.converters import tf_saved_model_conversion_v2  # noqa: PLC0415

    quantization = None if precision == "float32" else {precision: [WEIGHT_PATTERN]}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tf_saved_model_conversion_v2.convert_tf_saved_model(
        str(saved_model_dir), str(out_dir),
        signature_def="serving_default", saved_model_tags="serve",
        quantization_dtype_map=quantization, control_flow_v2=True,
        # one shard: the weights are small, and fewer requests load faster in a browser
        weight_shard_size_bytes=64 * 1024 * 1024)
    restore_signature_keys(out_dir / "model.json", saved_model_dir)
    from trainers.export import lean  # noqa: PLC0415

    lean.rewrite_file(out_dir)
    return bundle_bytes(out_dir)


def restore_signature_keys(model_json: Path, saved_model_dir: str | Path) -> None:
    """Key model.json's signature by the SavedModel's signature keys (``audio``, ``next_phase``, ...).

    The converter keys an entry by its signature key only when the frozen graph kept that name, and
    otherwise by the frozen graph's tensor name: ``f0_hz:0`` for an input, ``Identity_k:0`` for the
    k-th output of the frozen function, whose outputs are the signature's dict flattened in sorted key
    order (``tf.nest``). Some exported CNNs came out with ``Identity_1:0``/``Identity_2:0`` and lost
    their carries in a browser (``next_*`` not found); this maps such keys back.
    """
    import re  # noqa: PLC0415

    from tensorflow.core.protobuf import saved_model_pb2  # noqa: PLC0415

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    signature = next(g.signature_def["serving_default"] for g in proto.meta_graphs if "serving_default" in g.signature_def)
    model = json.loads(model_json.read_text())
    for side, declared in (("inputs", sorted(signature.inputs)), ("outputs", sorted(signature.outputs))):

        def key_of(key: str, declared=declared) -> str:
            bare = key.split(":")[0]
            identity = re.fullmatch(r"Identity(?:_(\d+))?", bare)
            if bare in declared:
                return bare
            if identity and int(identity.group(1) or 0) < len(declared):
                return declared[int(identity.group(1) or 0)]
            return key

        entries = model["signature"].get(side, {})
        renamed = {key_of(key): spec for key, spec in entries.items()}
        if sorted(renamed) != declared:
            raise RuntimeError(f"{model_json}: signature {side} {sorted(entries)} do not map onto the SavedModel's {declared}")
        model["signature"][side] = renamed
    model_json.write_text(json.dumps(model))


def bundle_bytes(tfjs_dir: str | Path) -> dict[str, int]:
    """Bytes of model.json and of the weight shards it lists, raw and gzipped (-9, what a web server
    with compression sends): {"model_json", "shards", "total", "model_json_gzip", "shards_gzip", "total_gzip"}."""
    import gzip  # noqa: PLC0415

    tfjs_dir = Path(tfjs_dir)
    model_json = tfjs_dir / "model.json"
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    shard_data = [(tfjs_dir / path).read_bytes() for group in manifest for path in group["paths"]]
    raw = model_json.read_bytes()
    sizes = {"model_json": len(raw), "shards": sum(map(len, shard_data)),
             "model_json_gzip": len(gzip.compress(raw, 9)), "shards_gzip": sum(len(gzip.compress(d, 9)) for d in shard_data)}
    sizes["total"] = sizes["model_json"] + sizes["shards"]
    sizes["total_gzip"] = sizes["model_json_gzip"] + sizes["shards_gzip"]
    return sizes


def quantized_weight_names(tfjs_dir: str | Path) -> dict[str, str]:
    """{weight name: dtype as stored} for the converted model (to check what was quantized)."""
    manifest = json.loads((Path(tfjs_dir) / "model.json").read_text())["weightsManifest"]
    out = {}
    for group in manifest:
        for w in group["weights"]:
            out[w["name"]] = w.get("quantization", {}).get("dtype", w["dtype"])
    return out


# ---------------------------------------------------------------------- running in Node


def write_tensors(io_dir: Path, tensors: dict[str, "np.ndarray"]) -> None:
    """io_dir/inputs.json + <name>.f32 (little-endian float32), the layout node_parity.mjs reads."""
    import numpy as np  # noqa: PLC0415

    io_dir.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, value in tensors.items():
        value = np.ascontiguousarray(value, dtype="<f4")
        (io_dir / f"{name}.f32").write_bytes(value.tobytes())
        index[name] = {"shape": list(value.shape), "file": f"{name}.f32"}
    (io_dir / "inputs.json").write_text(json.dumps(index))


def read_outputs(io_dir: Path) -> tuple[dict[str, "np.ndarray"], dict]:
    """Outputs written by node_parity.mjs -> ({name: array}, {"backend", "timings_ms", "kernels"})."""
    import numpy as np  # noqa: PLC0415

    index = json.loads((io_dir / "outputs.json").read_text())
    arrays = {name: np.fromfile(io_dir / spec["file"], dtype="<f4").reshape(spec["shape"])
              for name, spec in index["outputs"].items()}
    return arrays, {"backend": index["backend"], "timings_ms": index["timings_ms"], "kernels": index.get("kernels", [])}


def run_node(tfjs_dir: str | Path, inputs: dict[str, "np.ndarray"], backend: str = "wasm",
             repeat: int = 1, timeout_s: float = 600.0, signal_layout: dict | None = None,
             synth: dict | None = None, live_block: int | None = None) -> tuple[dict[str, "np.ndarray"], dict]:
    """Run the converted model once (or `repeat` times, for timings) in Node with @tensorflow/tfjs.

    With `signal_layout` (a model card's "layout"), `inputs` is a whole signal {f0_hz [T],
    feature_db [T], noise [T*hop]} rendered call by call by runner.mjs's renderSignal (with `synth` and
    `live_block`: block by block by live.mjs, as the page's live mode; then also {"block_ms"}).
    Returns the outputs keyed by signature name ({"audio"} for a signal) and
    {"backend", "timings_ms"}. Raises RuntimeError with Node's first error line on failure.
    """
    import subprocess  # noqa: PLC0415

    from common.files import scratch_dir  # noqa: PLC0415

    node = node_binary()
    npm_path("@tensorflow/tfjs")
    with scratch_dir("tonesweep-node-") as io_dir:
        write_tensors(io_dir, inputs)
        extra = []
        if signal_layout is not None:
            (io_dir / "layout.json").write_text(json.dumps(signal_layout))
            extra = ["--signal", str(io_dir / "layout.json")]
            if synth is not None:  # the decoder in TF.js, the synthesizer in JavaScript (js/synth.mjs)
                (io_dir / "synth.json").write_text(json.dumps(synth))
                extra += ["--synth", str(io_dir / "synth.json")]
                if live_block:  # as the page's live mode renders: live_block frames at a time (js/live.mjs)
                    extra += ["--live", str(live_block)]
        proc = subprocess.run(
            [node, str(JS_DIR / "node_parity.mjs"), "--model", str(Path(tfjs_dir).resolve()),
             "--io", str(io_dir), "--backend", backend, "--repeat", str(repeat), *extra],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
            raise RuntimeError(f"TF.js in Node failed: {lines[0][:300]}")
        return read_outputs(io_dir)
