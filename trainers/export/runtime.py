"""What the browser runtime a bundle ships can run, and the export's check that a graph needs no more.

The page (web/page/) runs a bundle in TF.js's wasm backend through a custom TF.js module holding only the
converter ops and kernels listed in trainers/export/js/runtime.json (built at install by
build_runtime.mjs). A graph needing anything else would load and then fail in a user's browser on a
missing kernel; export refuses it instead, in one line: first on the graph's ops (model.json, library
functions included), then, when the Node parity check runs, on the kernels that run called (tf.profile).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from common.errors import UserError
from trainers.export.js import JS_DIR

RUNTIME_SPEC = JS_DIR / "runtime.json"
WIDEN = "add it to trainers/export/js/runtime.json and run `make install` again (docs/export-notes.md)"


@cache
def runtime_spec() -> dict:
    return json.loads(RUNTIME_SPEC.read_text())


def graph_ops(model_json: Path) -> set[str]:
    """Every op of a converted graph: its nodes and the nodes of its library functions (loop bodies)."""
    topology = json.loads(Path(model_json).read_text())["modelTopology"]
    ops = {node["op"] for node in topology.get("node", [])}
    for function in topology.get("library", {}).get("function", []):
        ops |= {node["op"] for node in function.get("nodeDef", [])}
    return ops


def check_graph_ops(model_json: Path) -> None:
    """UserError unless the runtime's converter holds every op of the graph."""
    missing = sorted(graph_ops(model_json) - set(runtime_spec()["graph_ops"]))
    if missing:
        raise UserError(f"export: the graph uses {', '.join(missing)}, which the page's TF.js runtime does not "
                        f"include, so the bundle would fail in a browser; {WIDEN}")


def check_kernels(kernels: list[str]) -> None:
    """UserError unless the runtime holds every kernel a run of the graph called."""
    missing = sorted(set(kernels) - set(runtime_spec()["kernels"]))
    if missing:
        raise UserError(f"export: running the graph calls the TF.js kernel(s) {', '.join(missing)}, which the page's "
                        f"runtime does not include, so the bundle would fail in a browser; {WIDEN}")
