"""The JavaScript side of export, run in Node.js: ``runner.mjs`` (the chunked renderer, shared with the
browser page) and ``node_parity.mjs`` (export's parity check in TF.js's wasm backend)."""

from pathlib import Path

JS_DIR = Path(__file__).resolve().parent
