"""The tone-transfer page: the one list of its files, as `tonesweep serve` serves them and `export` copies
them into every bundle (so a bundle folder plays its model wherever it is hosted).

The page (web/page/) is the bundle format's browser runtime: it reads model-card.json and tfjs/ the
way `tonesweep transfer` reads them and renders with the same chunked renderer as export's Node
check (trainers/export/js/runner.mjs, copied in as page/runner.mjs). Its third-party JavaScript comes
from npm (package.json, installed by `make install`), never from a CDN: TF.js and its wasm backend (as one
module with only the ops and kernels tonesweep's graphs use, built at install: trainers/export/runtime.py),
and pitchy (MIT) for pitch with fft.js (MIT), pitchy's FFT. fft.js is a CommonJS module; browsers
import only ES modules, so its file is wrapped in three lines that turn ``module.exports`` into a
default export (the code itself is unchanged). The sources import the npm packages by name (so Node
runs them as they are); the copies name the vendored files instead (``BARE_IMPORTS``), because the
page's workers, which compute features too, have no import map.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from common.node import PROJECT_ROOT, node_binary, npm_path
from trainers.export.js import JS_DIR

PAGE_DIR = Path(__file__).resolve().parent / "page"
RUNNER = JS_DIR / "runner.mjs"  # the chunked renderer, shared with export's checks in Node
SYNTH = JS_DIR / "synth.mjs"    # the synthesizer outside the graph, which the renderer imports
LIVE = JS_DIR / "live.mjs"      # the block-by-block renderer of the page's live mode
PAGE_SOURCES = ("app.mjs", "worker-client.mjs", "audio-in.mjs", "draw.mjs", "render-worker.mjs", "features.mjs",
                "wav.mjs", "live-session.mjs", "live-worklet.mjs")
# The page's entry in a bundle. Not index.html: a user hosting the folder may put their own index.html
# beside the bundle, and export must never replace a file it did not write (docs/architecture.md §5).
ENTRY = "play.html"
VENDORED = {  # page/vendor/NAME -> node_modules path
    # built by make install (trainers/export/js/build_runtime.mjs): TF.js and its wasm binaries with only
    # the ops and kernels of tonesweep's graphs (SIMD, and the plain build for browsers without it)
    "tf-runtime.mjs": ".tonesweep/tf-runtime.min.mjs",
    "tfjs-backend-wasm.wasm": ".tonesweep/tfjs-backend-wasm.wasm",
    "tfjs-backend-wasm-simd.wasm": ".tonesweep/tfjs-backend-wasm-simd.wasm",
    "pitchy.mjs": "pitchy/index.js",
    "fft.mjs": "fft.js/lib/fft.js",
}
COMMONJS = {"fft.mjs"}
# page/NAME -> {package imported by name: the vendored file it names in the copy}
BARE_IMPORTS = {"features.mjs": {"pitchy": "./vendor/pitchy.mjs", "fft.js": "./vendor/fft.mjs"},
                "vendor/pitchy.mjs": {"fft.js": "./fft.mjs"}}


def page_files() -> dict[str, bytes]:
    """Relative path -> content of every file of the page: ENTRY and page/..."""
    files = {ENTRY: (PAGE_DIR / "index.html").read_bytes(),
             "page/runner.mjs": RUNNER.read_bytes(), "page/synth.mjs": SYNTH.read_bytes(), "page/live.mjs": LIVE.read_bytes()}
    for name in PAGE_SOURCES:
        files[f"page/{name}"] = (PAGE_DIR / name).read_bytes()
    for name, source in VENDORED.items():
        data = npm_path(source).read_bytes()
        files[f"page/vendor/{name}"] = _as_es_module(data) if name in COMMONJS else data
    for name, imports in BARE_IMPORTS.items():
        files[f"page/{name}"] = _name_files(files[f"page/{name}"], imports, name)
    built = "page/vendor/tf-runtime.mjs"  # minified by build_runtime.mjs already
    modules = {name: data for name, data in files.items() if name.endswith(".mjs") and name != built}
    return {**files, **_minified(modules)}


def _minified(modules: dict[str, bytes]) -> dict[str, bytes]:
    """The modules minified by esbuild (web/minify.mjs), one node call for all: a first load ~17 KB gzip
    lighter (comments, whitespace, local names). The sources on disk stay as they are (Node runs them)."""
    proc = subprocess.run([node_binary(), str(Path(__file__).resolve().parent / "minify.mjs")],
                          input=json.dumps({name: data.decode("utf-8") for name, data in modules.items()}),
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"web/minify.mjs failed: {(proc.stderr or proc.stdout).strip()[:300]}")
    return {name: code.encode("utf-8") for name, code in json.loads(proc.stdout).items()}


def _name_files(module: bytes, imports: dict[str, str], label: str) -> bytes:
    """``from 'package'`` -> ``from './file.mjs'`` for each package of ``imports`` (both quote styles)."""
    for package, file in imports.items():
        found = False
        for quote in (b"'", b'"'):
            old = b"from " + quote + package.encode() + quote
            found = found or old in module
            module = module.replace(old, b"from '" + file.encode() + b"'")
        if not found:  # an upgraded package that no longer imports it: look at this table again
            raise RuntimeError(f"web.assets: {label} does not import {package}")
    return module


def _as_es_module(commonjs: bytes) -> bytes:
    return (b"const module = { exports: {} };\nconst exports = module.exports;\n" + commonjs
            + b"\nexport default module.exports;\n")
