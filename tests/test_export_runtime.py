"""The page's TF.js runtime holds only what tonesweep's graphs use; export refuses a graph it cannot run."""

from __future__ import annotations

import json

import pytest

from common.errors import UserError
from trainers.export.runtime import check_graph_ops, check_kernels, graph_ops, runtime_spec


def model_json(tmp_path, ops, loop_ops=()):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"modelTopology": {
        "node": [{"name": f"n{i}", "op": op} for i, op in enumerate(ops)],
        "library": {"function": [{"nodeDef": [{"name": f"l{i}", "op": op} for i, op in enumerate(loop_ops)]}]}}}))
    return path


def test_a_graph_within_the_runtime_passes_and_one_beyond_it_is_refused_in_one_line(tmp_path):
    ok = model_json(tmp_path, ["Placeholder", "Conv2D", "Sin"], loop_ops=["TensorScatterUpdate"])
    assert graph_ops(ok) == {"Placeholder", "Conv2D", "Sin", "TensorScatterUpdate"}
    check_graph_ops(ok)
    beyond = model_json(tmp_path, ["Placeholder", "RFFT"], loop_ops=["IRFFT"])  # a loop body counts too
    with pytest.raises(UserError) as err:
        check_graph_ops(beyond)
    assert "IRFFT, RFFT" in str(err.value) and "\n" not in str(err.value) and "runtime.json" in str(err.value)


def test_kernels_a_run_called_must_all_be_in_the_runtime():
    check_kernels(["Sin", "Mod", "Tile", "Conv2D"])
    with pytest.raises(UserError, match="FFT"):
        check_kernels(["Sin", "FFT"])
    spec = runtime_spec()
    assert spec["backends"] == ["wasm"] and len(spec["kernels"]) == len(set(spec["kernels"]))
