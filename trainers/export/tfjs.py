"""SavedModel -> TF.js graph model with the real ``tensorflowjs`` converter (4.22).

Why the import shims live here (and only here): the converter module imports
``tensorflow_decision_forests`` and ``tensorflowjs.converters.jax_conversion`` (which imports jax)
at top level. Neither is installed (TF-DF pins an older TensorFlow; jax is not needed) and neither
is used for ``tf_saved_model`` input, so empty placeholder modules are registered under exactly
those two names before the converter is imported. An empty ``jax`` must NOT be registered:
Keras 3 probes ``jax.monitoring`` and breaks (../shared/notes/stack.md).

Quantization touches weights only: the pattern ``*ReadVariableOp*`` matches the frozen reads of
the module's tf.Variables (the decoder weights and the reverb impulse response) and none of the
DSP constants (DFT matrix, windows), which lose the audio when quantized (SNR -3 dB).
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

PRECISIONS = ("float32", "float16", "uint8")
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

    Args:
      precision: float32 | float16 | uint8 (weights only; the DSP constants stay float32).
    Returns: {"model_json": bytes, "shards": bytes, "total": bytes}.
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
    return bundle_bytes(out_dir)


def bundle_bytes(tfjs_dir: str | Path) -> dict[str, int]:
    """Bytes of model.json and of the weight shards it lists."""
    tfjs_dir = Path(tfjs_dir)
    model_json = tfjs_dir / "model.json"
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    shards = sum((tfjs_dir / path).stat().st_size for group in manifest for path in group["paths"])
    size = model_json.stat().st_size
    return {"model_json": size, "shards": shards, "total": size + shards}


def quantized_weight_names(tfjs_dir: str | Path) -> dict[str, str]:
    """{weight name: dtype as stored} for the converted model (to check what was quantized)."""
    manifest = json.loads((Path(tfjs_dir) / "model.json").read_text())["weightsManifest"]
    out = {}
    for group in manifest:
        for w in group["weights"]:
            out[w["name"]] = w.get("quantization", {}).get("dtype", w["dtype"])
    return out


# ---------------------------------------------------------------------- running in Node

JS_DIR = Path(__file__).resolve().parent / "js"
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # where node_modules/ is


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
    """Outputs written by node_parity.mjs -> ({name: array}, {"backend", "timings_ms"})."""
    import numpy as np  # noqa: PLC0415

    index = json.loads((io_dir / "outputs.json").read_text())
    arrays = {name: np.fromfile(io_dir / spec["file"], dtype="<f4").reshape(spec["shape"])
              for name, spec in index["outputs"].items()}
    return arrays, {"backend": index["backend"], "timings_ms": index["timings_ms"]}


def run_node(tfjs_dir: str | Path, inputs: dict[str, "np.ndarray"], backend: str = "wasm",
             repeat: int = 1, timeout_s: float = 600.0) -> tuple[dict[str, "np.ndarray"], dict]:
    """Run the converted model once (or `repeat` times, for timings) in Node with @tensorflow/tfjs.

    Returns the outputs keyed by signature name and {"backend", "timings_ms"}.
    Raises RuntimeError with Node's last error line when Node or the model fails.
    """
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node: not found on PATH; install Node.js 20 (make install) or pass --skip-js-parity")
    if not (PROJECT_ROOT / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        raise RuntimeError(f"{PROJECT_ROOT / 'node_modules'}: @tensorflow/tfjs missing; run `npm install` (make install)")
    with tempfile.TemporaryDirectory(prefix="tonesweep-node-") as tmp:
        io_dir = Path(tmp)
        write_tensors(io_dir, inputs)
        proc = subprocess.run(
            [node, str(JS_DIR / "node_parity.mjs"), "--model", str(Path(tfjs_dir).resolve()),
             "--io", str(io_dir), "--backend", backend, "--repeat", str(repeat)],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
            raise RuntimeError(f"TF.js in Node failed: {lines[0][:300]}")
        return read_outputs(io_dir)
