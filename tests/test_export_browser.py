"""Headless Chromium (Debian's chromium via playwright-core) runs an exported bundle served from
127.0.0.1: wasm and cpu backends within 100 dB of TF, WebGL (SwiftShader) within 50 dB.

WebGL cannot reproduce TF's float32 phase accumulation (TF sums 1000 samples in sequence, WebGL
in a parallel scan); TF's own phase is only ~50 dB from float64 after 1 s, mostly from the
harmonics near Nyquist, where the per-sample increment is largest. So the model here has an
instrument-like harmonic roll-off (-2 dB per harmonic; -1 dB gave 51-59 dB over seeds). With a flat random
harmonic spectrum (energy evenly up to Nyquist) WebGL measured 48-51 dB.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.browser import CHROMIUM, StaticServer, run_browser_check, stage_check_site
from support.trials import make_trial

BARS_DB = {"wasm": 100.0, "cpu": 100.0, "webgl": 50.0}

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
                                 reason="Debian chromium not installed (make install)")]


@pytest.fixture(scope="module")
def served_bundle(tmp_path_factory):
    """A float16 bundle plus inputs and TF's outputs, served on 127.0.0.1 (stopped by PID after)."""
    import tensorflow as tf

    from trainers.export import bundle, graph
    from trainers.export.graph import Layout

    root = tmp_path_factory.mktemp("browser")
    trial = make_trial(root / "trial", seed=7, harmonic_tilt=0.1)
    source = bundle.local_trial(trial)
    bundle.export_bundle(source, root / "bundle", "bansuri", "float16", js_parity=False)
    card = json.loads((root / "bundle" / "model-card.json").read_text())
    inputs = graph.random_inputs(Layout.from_dict(card["layout"]), seed=21)
    fn = tf.saved_model.load(str(root / "bundle" / "saved_model")).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    site = stage_check_site(root / "site", root / "bundle" / "tfjs", inputs, expected)
    with StaticServer(site) as server:
        yield f"{server.url}index.html"


def test_chromium_backends_match_tf(served_bundle):
    report = run_browser_check(served_bundle, tuple(BARS_DB))
    assert not report["errors"], report["errors"]
    by_backend = {r["backend"]: r for r in report["results"]}
    assert set(by_backend) == set(BARS_DB)
    for backend, bar in BARS_DB.items():
        snr = by_backend[backend]["snr_db"]
        assert snr["audio"] >= bar, (backend, snr)
        assert snr["next_state"] >= bar - 20, (backend, snr)  # the carries run in the browser too
    print({b: (round(r["snr_db"]["audio"], 1), [round(t) for t in r["timings_ms"]]) for b, r in by_backend.items()})
