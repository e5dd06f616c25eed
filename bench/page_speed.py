"""The tone-transfer page in headless Chromium: real-time factor per exported model, first-load bytes.

    .venv/bin/python bench/page_speed.py --models demo/export --wav demo/audio/voice/voice-0.wav
        [--backend wasm] [--repeat 3] [--live 20]

Serves the page and every bundle under --models exactly as `tonesweep serve` does (on 127.0.0.1,
a free port), then bench/page_speed.mjs opens the page once per model, loads it on the backend,
transfers the WAV --repeat times (features in JavaScript, then chunked rendering) and records
every response the page received on its first load. Prints, per model, the median real-time factor
of the rendering (seconds of audio / seconds of rendering; goal >= 50x on wasm), with the synthesis in
the TF.js graph (the old path) and in JavaScript (the new one) in the same run, and the first-load
bytes: page + TF.js runtime + model, raw and gzip -9, and beside them the same first load with the stock
TF.js files the page loaded before the custom runtime (tf.min.js + tf-backend-wasm.min.js, from npm, in
place of tf-runtime.mjs; computed from the files, not loaded). With --live, each model also plays live for
that many seconds on a fake microphone playing the WAV (the page's live mode): the delay from the voice to
the instrument inside the page, what the browser reports for its audio buffers, the blocks that arrived
late, and the render's headroom, with the bundle's live graph (now) and with its graph slid a block at a time
(before bundles had a live graph) in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


STOCK = {"tf.min.js": "@tensorflow/tfjs/dist/tf.min.js",
         "tf-backend-wasm.min.js": "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js"}


def _sizes(path: Path) -> tuple[int, int]:
    import gzip

    data = path.read_bytes()
    return len(data), len(gzip.compress(data, 9))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="demo/export", help="a folder of export bundles (default: demo/export)")
    parser.add_argument("--wav", default="demo/audio/voice/voice-0.wav", help="input recording (default: the demo voice)")
    parser.add_argument("--backend", default="", help="TF.js backend (default: the page's runtime's own)")
    parser.add_argument("--repeat", type=int, default=3, help="transfers per model; the median is reported (default: 3)")
    parser.add_argument("--live", type=float, default=20, help="seconds of live mode per model (0: none; default: 20)")
    args = parser.parse_args()

    from web.server import find_bundles, start_server

    server = start_server(args.models, port=0)
    names = list(find_bundles(Path(args.models)))
    paths = {}
    try:
        for synth in ("graph", "js"):  # the old path and the new one, in the same run
            proc = subprocess.run(["node", str(REPO / "bench" / "page_speed.mjs"), "--url", server.url, "--wav", args.wav,
                                   "--models", ",".join(names), "--backend", args.backend, "--repeat", str(args.repeat),
                                   "--synth", synth, "--live", str(args.live),
                                   # live mode before bundles had a live graph: their graph slid a block at a time
                                   "--live-graph", "1" if synth == "js" else "0"],
                                  capture_output=True, text=True, timeout=1800, cwd=REPO)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            paths[synth] = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        server.shutdown()
        server.server_close()
    results = paths["js"]
    print("render speed, synthesis in the TF.js graph (before) vs in JavaScript (js/synth.mjs), median real-time factor:")
    for name in names:
        old, new = (statistics.median(paths[p][name]["rtf"]) for p in ("graph", "js"))
        print(f"  {name:<10} graph {old:6.1f}x   js {new:6.1f}x ({paths['js'][name]['synth']})   {new / old:4.1f}x faster")
    print()
    print(f"{'model':<10} {'audio s':>7} {'render ms (median)':>18} {'RTF (median)':>12} {'RTF runs':>22} "
          f"{'first load raw':>15} {'gzip':>10} {'model raw':>10} {'model gzip':>10}")
    for name, r in results.items():
        load = r["first_load"]
        print(f"{name:<10} {r['seconds']:>7.1f} {statistics.median(r['render_ms']):>18.0f} "
              f"{statistics.median(r['rtf']):>11.1f}x {', '.join(f'{x:.1f}' for x in r['rtf']):>22} "
              f"{load['total_raw']:>15,} {load['total_gzip']:>10,} {load['model_raw']:>10,} {load['model_gzip']:>10,}")
    stock = {name: _sizes(REPO / "node_modules" / path) for name, path in STOCK.items()}
    print("\nwith the stock TF.js in place of tf-runtime.mjs (the page before; raw / gzip):")
    for name, r in results.items():
        files = r["first_load"]["files"]
        custom = next((v for p, v in files.items() if p.endswith("tf-runtime.mjs")), {"raw": 0, "gzip": 0})
        raw = r["first_load"]["total_raw"] - custom["raw"] + sum(v[0] for v in stock.values())
        packed = r["first_load"]["total_gzip"] - custom["gzip"] + sum(v[1] for v in stock.values())
        print(f"  {name:<10} {raw:>10,} / {packed:>9,}  (now {r['first_load']['total_raw']:,} / "
              f"{r['first_load']['total_gzip']:,}: runtime {custom['raw']:,} / {custom['gzip']:,} instead of "
              f"{sum(v[0] for v in stock.values()):,} / {sum(v[1] for v in stock.values()):,})")
    first = next(iter(results.values()))["first_load"]["files"]
    print("\nfirst-load files of the first model (raw / gzip bytes):")
    for path, size in sorted(first.items(), key=lambda item: -item[1]["raw"]):
        print(f"  {path:<60} {size['raw']:>10,} {size['gzip']:>10,}")
    if args.live:
        print_live(paths["graph"], "before: the bundle's graph slid a block at a time")
        print_live(results, "now: the bundle's live graph, a block per call")
    print(f"\nbackend {next(iter(results.values()))['backend']}; features (pitch, loudness) in JS took "
          + ", ".join(f"{name} {statistics.median(r['feature_ms']):.0f} ms" for name, r in results.items()))
    return 0


def print_live(results: dict, how: str) -> None:
    seconds = next(iter(results.values()))["live"]["seconds"]
    print(f"\nlive mode, {how} ({seconds:.0f} s on a fake microphone per model):")
    print(f"  {'model':<10} {'block':>12} {'voice to instrument in the page':>32} {'+ browser audio':>15} "
          f"{'late blocks':>12} {'least slack':>11} {'render ms per block (median / p95)':>35} {'headroom':>9}")
    for name, r in results.items():
        live = r["live"]
        ms = sorted(live["blockMs"])
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        block_ms = 1000 * live["block"] / r["frame_rate"] if r.get("frame_rate") else float("nan")
        print(f"  {name:<10} {live['block']:>3} ({block_ms:4.0f} ms) {live['delayMs']:>29.1f} ms {live['deviceMs']:>12.1f} ms "
              f"{live['late']:>5} / {live['blocks']:<5} {live['minSlackMs']:>8.1f} ms {statistics.median(ms):>22.2f} / {p95:5.2f} "
              f"{live['rtf']:>8.1f}x")


if __name__ == "__main__":
    sys.exit(main())
