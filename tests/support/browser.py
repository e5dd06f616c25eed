"""Headless Chromium for the tests: a static site holding a bundle and its expected outputs, served on
127.0.0.1 and stopped by PID, and the playwright-core script (js/browser_check.mjs) that runs the
bundle on each TF.js backend. The flags every Chromium driver shares are in js/chromium.mjs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from common.net import free_port, port_answers, wait_until
from common.node import PROJECT_ROOT, node_binary, npm_path
from trainers.export.js import JS_DIR
from trainers.export.tfjs import write_tensors

HARNESS = Path(__file__).resolve().parent / "js"
CHROMIUM = "/usr/bin/chromium"
TFJS_FILES = {  # served next to the check page -> its npm file
    "tf.min.js": "@tensorflow/tfjs/dist/tf.min.js",
    "tf-backend-wasm.min.js": "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
    "tfjs-backend-wasm.wasm": "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
    "tfjs-backend-wasm-simd.wasm": "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
    "tfjs-backend-wasm-threaded-simd.wasm": "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm",
}


def stage_check_site(site: Path, tfjs_dir: str | Path, inputs: dict, expected: dict) -> Path:
    """A folder to serve: index.html (js/browser.html) + runner.mjs + TF.js files, model/ (the bundle's
    tfjs/), io/inputs.json with the model inputs and io/expected.json with TF's outputs for them."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HARNESS / "browser.html", site / "index.html")
    shutil.copyfile(JS_DIR / "runner.mjs", site / "runner.mjs")
    shutil.copyfile(JS_DIR / "synth.mjs", site / "synth.mjs")  # runner.mjs imports it
    for name, source in TFJS_FILES.items():
        (site / name).symlink_to(npm_path(source))
    (site / "model").symlink_to(Path(tfjs_dir).resolve(), target_is_directory=True)
    write_tensors(site / "io", inputs)
    expected_dir = site / "io" / "expected"
    write_tensors(expected_dir, expected)
    index = json.loads((expected_dir / "inputs.json").read_text())
    (site / "io" / "expected.json").write_text(json.dumps(
        {name: {**spec, "file": f"expected/{spec['file']}"} for name, spec in index.items()}))
    return site


class StaticServer:
    """``python -m http.server`` for ``site`` on 127.0.0.1 (a free port), stopped by its PID."""

    def __init__(self, site: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.process = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                         "--directory", str(site)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

        def answers() -> str | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"http.server on port {self.port} exited with {self.process.returncode}")
            return port_answers("127.0.0.1", self.port, 0.5)

        if wait_until(answers, 20, interval_s=0.1) is not None:
            self.stop()
            raise RuntimeError(f"http.server on 127.0.0.1:{self.port} did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "StaticServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_browser_check(url: str, backends: tuple[str, ...] = ("wasm", "cpu", "webgl"),
                      timeout_s: float = 600.0) -> dict:
    """js/browser_check.mjs (playwright-core + headless Chromium) on the check page -> {"results", "errors"}."""
    proc = subprocess.run([node_binary(), str(HARNESS / "browser_check.mjs"), "--url", url, "--backends",
                           ",".join(backends), "--chromium", CHROMIUM], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout_s)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise RuntimeError(f"headless Chromium check failed: {lines[0][:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
