"""A lean model.json: the converter's graph, with short node names and only what TF.js reads.

The tensorflowjs converter writes a model.json that is mostly names and bookkeeping: every node is
named after its place in the traced Python (``StatefulPartitionedCall/strided_slice_26/stack``,
~40 bytes, repeated wherever it is an input and in the weights manifest), and carries every
attribute TensorFlow had (grappler notes, cuDNN switches, the dtype of every op, the shape and
dtype of every constant although the weights manifest states both again). For the small models
tonesweep ships, that was 90 % of a bundle (a 4,770-parameter model: 123 KB model.json, 12.5 KB of
weights). ``rewrite`` makes it lean, without changing what the graph computes:

- every node but the inputs (``Placeholder``: the signature's input names) gets a short name
  (base 62, in file order), consistently in node inputs, the weights manifest and the signature's
  output entries; the signature's keys stay (``audio``, ``next_phase``, ...). The trained weights
  (the converter's ``*ReadVariableOp*`` constants, what quantization touches) are named ``w<id>``
  and nothing else starts with ``w``, so a reader still tells weights from DSP constants;
- a node keeps only the attributes TF.js's op mapper reads for its op (the ``attrs`` lists of
  ``@tensorflow/tfjs-converter``'s op definitions, read from node_modules, ``op_attributes``; an
  attribute's deprecated TensorFlow name counts too: Squeeze reads ``squeeze_dims`` by it);
  ``Const`` nodes keep none (TF.js takes a constant's value, shape and dtype from the weights);
- inside the function library (the GRU's while loop) names stay (they are local to each function),
  constants keep their attributes (there they hold the values) and other attributes are pruned;
- constants with the same dtype, shape and bytes are stored once (the converter writes one per use:
  a demo model had 117 duplicates among its 217 constants, mostly slice bounds), their users pointed
  at the one kept; trained weights too, where the same weight is stored twice (an unrolled GRU's recurrent
  kernel, once per step). The function library's constants (which the converter also stores as weights,
  under their function's names) are never merged or renamed.

Export's parity checks run on the rewritten file, so a rewrite TF.js could not run never ships.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from common.node import node_binary, npm_path

DIGITS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
OP_LISTS = "@tensorflow/tfjs-converter/dist/operations/op_list"  # in node_modules/
_READ_OP_LISTS = r"""
import { readdirSync } from 'fs';
const dir = process.argv[1];
const out = {};
for (const file of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
  const module = await import(dir + '/' + file);
  for (const op of module.json) {
    out[op.tfOpName] = (op.attrs || []).flatMap((a) => [a.tfName, a.tfDeprecatedName].filter(Boolean));
  }
}
console.log(JSON.stringify(out));
"""
KEEP_ALWAYS = {"Placeholder": ("shape", "dtype")}
WEIGHT_PREFIX = "w"
CONVERTER_WEIGHT_MARK = "ReadVariableOp"  # what the converter's names of variable reads contain


def is_trained_weight(name: str) -> bool:
    """A weight the model learned, by the converter's name or by the lean name given to it."""
    return CONVERTER_WEIGHT_MARK in name or name.startswith(WEIGHT_PREFIX)


@functools.lru_cache(maxsize=1)
def op_attributes() -> dict[str, tuple[str, ...]]:
    """{TF op name: attribute names TF.js reads}, from the installed tfjs-converter's op lists."""
    folder = npm_path(OP_LISTS)
    proc = subprocess.run([node_binary(), "--input-type=module", "-e", _READ_OP_LISTS, str(folder)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"reading TF.js op lists failed: {proc.stderr.strip()[:300]}")
    return {op: tuple(attrs) for op, attrs in json.loads(proc.stdout).items()}


def short_name(index: int) -> str:
    """0 -> 'a', 61 -> '9', 62 -> 'ba', ... (base 62; ``rewrite`` skips any that is an input's name)."""
    text = ""
    while True:
        text = DIGITS[index % 62] + text
        index //= 62
        if index == 0:
            return text


def rewrite(model: dict, op_attrs: dict[str, tuple[str, ...]], weights: bytes) -> tuple[dict, bytes]:
    """The lean version of a converted model.json and its weight bytes (all shards, in manifest order).

    Returns new objects; ``model`` is not changed.
    """
    model = json.loads(json.dumps(model))
    weights = _merge_duplicate_constants(model, weights)
    topology = model["modelTopology"]
    nodes = topology["node"]
    kept = {n["name"] for n in nodes if n["op"] == "Placeholder"}
    names, counters = {}, {"weight": 0, "other": 0}
    for node in nodes:
        if node["name"] in kept:
            names[node["name"]] = node["name"]
        elif is_trained_weight(node["name"]):
            names[node["name"]] = WEIGHT_PREFIX + short_name(counters["weight"])
            counters["weight"] += 1
        else:
            while (candidate := short_name(counters["other"])).startswith(WEIGHT_PREFIX) or candidate in kept:
                counters["other"] += 1
            names[node["name"]] = candidate
            counters["other"] += 1
    for node in nodes:
        node["name"] = names[node["name"]]
        if "input" in node:
            node["input"] = [_renamed(ref, names) for ref in node["input"]]
        _prune(node, op_attrs)
    for function in topology.get("library", {}).get("function", []):
        for node in function.get("nodeDef", []):
            if node["op"] != "Const":  # a function's constants keep their values in their attributes
                _prune(node, op_attrs)
    for group in model["weightsManifest"]:
        for weight in group["weights"]:  # constants of the function library keep their names
            weight["name"] = names.get(weight["name"], weight["name"])
    for spec in model["signature"].get("outputs", {}).values():
        spec["name"] = _renamed(spec["name"], names)
    return model, weights


def rewrite_file(tfjs_dir: str | Path) -> None:
    """Rewrite ``tfjs_dir``'s model.json (compact JSON) and weights (one shard) in place."""
    tfjs_dir = Path(tfjs_dir)
    path = tfjs_dir / "model.json"
    model = json.loads(path.read_text())
    if len(model["weightsManifest"]) != 1:
        raise RuntimeError(f"{path}: expected one weight group, found {len(model['weightsManifest'])}")
    group = model["weightsManifest"][0]
    shards = [tfjs_dir / name for name in group["paths"]]
    lean, weights = rewrite(model, op_attributes(), b"".join(p.read_bytes() for p in shards))
    for extra in shards[1:]:
        extra.unlink()
    lean["weightsManifest"][0]["paths"] = [shards[0].name]
    shards[0].write_bytes(weights)
    path.write_text(json.dumps(lean, separators=(",", ":")))


def _merge_duplicate_constants(model: dict, weights: bytes) -> bytes:
    """Keep one of each identical constant (trained weights included); point users of the others at it."""
    entries = [w for group in model["weightsManifest"] for w in group["weights"]]
    spans, offset = [], 0
    for entry in entries:
        size = _byte_size(entry)
        spans.append((offset, offset + size))
        offset += size
    if offset != len(weights):
        raise RuntimeError(f"weights manifest describes {offset} bytes, the shards hold {len(weights)}")
    top_level = {n["name"] for n in model["modelTopology"]["node"] if n["op"] == "Const"}
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    kept_entries, kept_bytes = [], []
    for entry, (start, end) in zip(entries, spans):
        blob = weights[start:end]
        # the same stored bytes under the same quantization are the same values (an unrolled GRU reads its
        # recurrent kernel once per step, and the converter stores it once per read)
        key = (entry["dtype"], tuple(entry["shape"]), blob, json.dumps(entry.get("quantization"), sort_keys=True))
        mergeable = entry["name"] in top_level  # never a function's constant
        if mergeable and key in first:
            alias[entry["name"]] = first[key]
            continue
        if mergeable:
            first[key] = entry["name"]
        kept_entries.append(entry)
        kept_bytes.append(blob)
    if not alias:
        return weights
    kept_names = {e["name"] for e in kept_entries}
    for group in model["weightsManifest"]:
        group["weights"] = [w for w in group["weights"] if w["name"] in kept_names]
    topology = model["modelTopology"]
    topology["node"] = [n for n in topology["node"] if n["name"] not in alias]
    for node in topology["node"]:
        if "input" in node:
            node["input"] = [_renamed(ref, alias) for ref in node["input"]]
    return b"".join(kept_bytes)


_DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "float16": 2, "uint8": 1, "int8": 1, "uint16": 2, "int16": 2}


def weight_bytes(manifest: list[dict]) -> int:
    """Bytes the weights manifest of a model.json describes (what its shards must hold)."""
    return sum(_byte_size(entry) for group in manifest for entry in group["weights"])


def _byte_size(entry: dict) -> int:
    count = 1
    for dim in entry["shape"]:
        count *= int(dim)
    dtype = entry.get("quantization", {}).get("dtype", entry["dtype"])
    if dtype not in _DTYPE_BYTES:
        raise RuntimeError(f"weight {entry['name']}: dtype {dtype} not handled")
    return count * _DTYPE_BYTES[dtype]


def _renamed(ref: str, names: dict[str, str]) -> str:
    """A node reference ``name``, ``name:k`` or ``^name`` (control input) with the node renamed."""
    control = ref.startswith("^")
    base, colon, index = ref.lstrip("^").partition(":")
    return ("^" if control else "") + names.get(base, base) + colon + index


def _prune(node: dict, op_attrs: dict[str, tuple[str, ...]]) -> None:
    if node["op"] == "Const":
        node.pop("attr", None)
        return
    allowed = set(op_attrs.get(node["op"], ())) | set(KEEP_ALWAYS.get(node["op"], ()))
    attrs = {key: value for key, value in node.get("attr", {}).items() if key in allowed}
    if attrs:
        node["attr"] = attrs
    else:
        node.pop("attr", None)
