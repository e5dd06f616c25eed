"""The lean model.json rewrite: short names everywhere a name is used, only the attributes TF.js
reads, identical constants stored once; and what it does to a real export's size."""

from __future__ import annotations

import json
import struct

import pytest

from trainers.export.lean import is_trained_weight, rewrite

OP_ATTRS = {"AddV2": (), "Conv2D": ("strides", "padding", "dilations"), "StridedSlice": ("begin_mask",)}


def small_model():
    """x + w (a quantized weight) and two identical int32 slice bounds (converter names, every attribute)."""
    nodes = [
        {"name": "f0_hz", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": {}},
                                                         "_user_specified_name": {"s": "ZjA="}}},
        {"name": "StatefulPartitionedCall/dense/ReadVariableOp", "op": "Const",
         "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {"tensor": {"dtype": "DT_FLOAT"}}}},
        {"name": "StatefulPartitionedCall/strided_slice/stack", "op": "Const", "attr": {"dtype": {"type": "DT_INT32"}}},
        {"name": "StatefulPartitionedCall/strided_slice_1/stack", "op": "Const", "attr": {"dtype": {"type": "DT_INT32"}}},
        {"name": "StatefulPartitionedCall/add", "op": "AddV2",
         "input": ["f0_hz", "StatefulPartitionedCall/dense/ReadVariableOp", "^StatefulPartitionedCall/strided_slice/stack"],
         "attr": {"T": {"type": "DT_FLOAT"}, "_grappler_ArithmeticOptimizer": {"b": True}}},
        {"name": "StatefulPartitionedCall/slice", "op": "StridedSlice",
         "input": ["StatefulPartitionedCall/add", "StatefulPartitionedCall/strided_slice_1/stack:0"],
         "attr": {"begin_mask": {"i": "1"}, "T": {"type": "DT_FLOAT"}, "Index": {"type": "DT_INT32"}}},
        {"name": "Identity", "op": "Identity", "input": ["StatefulPartitionedCall/slice"]},
    ]
    weights = [
        {"name": "StatefulPartitionedCall/dense/ReadVariableOp", "shape": [2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "min": -1.0, "scale": 0.01}},
        {"name": "StatefulPartitionedCall/strided_slice/stack", "shape": [2], "dtype": "int32"},
        {"name": "StatefulPartitionedCall/strided_slice_1/stack", "shape": [2], "dtype": "int32"},
    ]
    model = {"modelTopology": {"node": nodes, "library": {}}, "weightsManifest": [{"paths": ["s.bin"], "weights": weights}],
             "signature": {"inputs": {"f0_hz:0": {"name": "f0_hz:0"}}, "outputs": {"audio": {"name": "Identity:0"}}}}
    data = bytes([7, 9]) + struct.pack("<2i", 0, 1) + struct.pack("<2i", 0, 1)
    return model, data


def test_names_shrink_consistently_and_inputs_keep_theirs():
    model, data = small_model()
    lean, _ = rewrite(model, OP_ATTRS, data)
    nodes = {n["name"]: n for n in lean["modelTopology"]["node"]}
    assert "f0_hz" in nodes and max(len(n) for n in nodes if n != "f0_hz") <= 2
    weight = [n for n in nodes if is_trained_weight(n)]
    assert len(weight) == 1 and weight[0].startswith("w")
    add = next(n for n in nodes.values() if n["op"] == "AddV2")
    assert add["input"][0] == "f0_hz" and add["input"][1] == weight[0] and add["input"][2].startswith("^")
    assert all(ref.lstrip("^").split(":")[0] in nodes for n in nodes.values() for ref in n.get("input", []))
    output = lean["signature"]["outputs"]["audio"]["name"]
    assert output.endswith(":0") and nodes[output[:-2]]["op"] == "Identity"
    assert {w["name"] for w in lean["weightsManifest"][0]["weights"]} <= set(nodes)


def test_only_attributes_tfjs_reads_are_kept():
    model, data = small_model()
    lean, _ = rewrite(model, OP_ATTRS, data)
    by_op = {n["op"]: n for n in lean["modelTopology"]["node"]}
    assert "attr" not in by_op["AddV2"] and "attr" not in by_op["Const"]
    assert by_op["StridedSlice"]["attr"] == {"begin_mask": {"i": "1"}}
    assert set(by_op["Placeholder"]["attr"]) == {"dtype", "shape"}


def test_identical_constants_are_stored_once():
    model, data = small_model()
    lean, weights = rewrite(model, OP_ATTRS, data)
    manifest = lean["weightsManifest"][0]["weights"]
    assert len(manifest) == 2 and len(weights) == 2 + 8 and weights[:2] == bytes([7, 9])
    consts = [n["name"] for n in lean["modelTopology"]["node"] if n["op"] == "Const"]
    assert len(consts) == 2
    slice_node = next(n for n in lean["modelTopology"]["node"] if n["op"] == "StridedSlice")
    add_node = next(n for n in lean["modelTopology"]["node"] if n["op"] == "AddV2")
    kept = slice_node["input"][1].split(":")[0]
    assert kept in consts and add_node["input"][2] == "^" + kept  # both users point at the one kept
    assert model["modelTopology"]["node"][2]["name"].startswith("StatefulPartitionedCall")  # input not changed


def test_a_weight_stored_twice_is_kept_once_unless_quantized_otherwise():
    """An unrolled GRU reads its recurrent kernel once per step, and the converter stores each read: the same
    bytes under the same quantization are one weight; under other quantization parameters they are not."""
    model, data = small_model()
    weights = model["weightsManifest"][0]["weights"]
    reads = {"second": weights[0]["quantization"], "rescaled": {**weights[0]["quantization"], "scale": 0.02}}
    for name, quantization in reads.items():
        node = f"StatefulPartitionedCall/{name}/ReadVariableOp"
        model["modelTopology"]["node"].insert(2, {"name": node, "op": "Const"})
        model["modelTopology"]["node"].append({"name": f"use_{name}", "op": "AddV2",
                                               "input": ["f0_hz", f"StatefulPartitionedCall/{name}/ReadVariableOp"]})
        weights.insert(1, {"name": f"StatefulPartitionedCall/{name}/ReadVariableOp", "shape": [2], "dtype": "float32",
                           "quantization": quantization})
    data = bytes([7, 9, 7, 9, 7, 9]) + data[2:]  # the first weight's bytes, then the rescaled one's, the second's
    lean, packed = rewrite(model, OP_ATTRS, data)
    trained = [w for w in lean["weightsManifest"][0]["weights"] if is_trained_weight(w["name"])]
    assert len(trained) == 2 and {w["quantization"]["scale"] for w in trained} == {0.01, 0.02}
    assert packed[:4] == bytes([7, 9, 7, 9]) and len(packed) == 4 + 8
    first = next(w["name"] for w in trained if w["quantization"]["scale"] == 0.01)
    uses = [n["input"][1] for n in lean["modelTopology"]["node"] if n["op"] == "AddV2"]
    assert uses.count(first) == 2  # the second read points at the first


def test_a_real_export_is_lean(tmp_path):
    from support.trials import make_trial
    from trainers.export import bundle

    trial = make_trial(tmp_path / "trial", seed=2, decoder="cnn", frame_rate=50, conv_channels=8, conv_layers=2,
                       conv_stacks=1, n_harmonics=16, n_noise_bands=16)
    card = bundle.export_bundle(bundle.local_trial(trial), tmp_path / "b", "bansuri", "uint8")
    model = json.loads((tmp_path / "b" / "tfjs" / "model.json").read_text())
    names = [n["name"] for n in model["modelTopology"]["node"]]
    assert not any("StatefulPartitionedCall" in n for n in names)
    weights = model["weightsManifest"][0]["weights"]
    assert len({(w["dtype"], tuple(w["shape"])) for w in weights if not is_trained_weight(w["name"])}) >= 1
    assert card["parity"]["tfjs_node_wasm"]["snr_db"] >= 100  # what TF.js runs is the lean file
    assert card["parity"]["tfjs_node_wasm"]["js_synth_call_start_db"] >= 45  # and what the page synthesizes from it
    assert card["bytes"]["total"] < 48_000 and card["bytes"]["total_gzip"] < card["bytes"]["total"]
    assert card["speed"]["rtf_wasm"] > 1
    # its live graph renders what whole calls render (identical here, recorded as a number a browser parses)
    assert card["live"]["live_vs_whole_db"] >= 100
    text = (tmp_path / "b" / "model-card.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in model-card.json: a browser refuses it"))
    # one size everywhere: what the table, the selector and the search use before training is what ships
    from trainers.model.size import size_report

    estimate = size_report(card["config"])
    assert abs(estimate["bytes_uint8"] / card["bytes"]["total"] - 1) < 0.01, (estimate, card["bytes"])
    assert card["bytes"]["selector_estimate"] == estimate["bytes_uint8"]
    print(f"lean uint8 CNN bundle: {card['bytes']['total']:,} bytes ({card['bytes']['total_gzip']:,} gzip), "
          f"wasm real-time factor {card['speed']['rtf_wasm']}")
