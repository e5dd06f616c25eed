"""What an architecture costs where it ships, before it is trained: bundle bytes and wasm speed.

A shipped bundle (``tonesweep export``) is the weights (exact: parameters x bytes per weight) plus
the graph: model.json topology and the DSP constants in the shard. Both depend only on the
architecture, so a linear model over a few architecture features predicts them; the same holds for
the milliseconds one call (one second of audio) takes in TF.js's wasm backend. The coefficients
below were fitted by ``bench/bundle_cost.py --fit`` (measured exports of sampled architectures, the
real converter and the lean model.json, Node's wasm backend on this project's 2-core machine); that
script also reports the model's error against measurement (bench/README.md has the figures).

No TensorFlow here: the sweep calls this before every trial.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from common.constants import BYTES_PER_WEIGHT, PRECISIONS, SAMPLE_RATE

NOISE_WINDOW = 257  # FilteredNoise's FIR window (trainers/model/synth.py)

# Fitted by bench/bundle_cost.py --fit; see the module docstring. Units: bytes, milliseconds. The intercepts
# (first coefficient of graph_* and gzip_*) were raised by 784 bytes (gzip: 50) when the graph gained its three
# control outputs (trainers/export/graph.py): the mean growth measured on a CNN (+882) and a GRU (+686) export.
COEFFICIENTS: dict[str, list[float]] = {
    "graph_float32": [784.362660565, 23448.847657461, -250.494758936, -1948.744059915, 1465.694352964, 118.227332658, 529.084897954, 67.389801064, 0.665172944, 24.864313449, 56.149887433],
    "graph_float16": [784.362687788, 23449.228024891, -248.973289216, -1944.179650754, 1466.074720394, 118.227332658, 590.704530523, 67.393763154, 0.665172944, 24.864313449, 56.154958908],
    "graph_uint8": [784.362815885, 23448.665890234, -247.089930375, -1940.247248909, 1465.487176753, 117.496815465, 644.277622124, 67.408483823, 0.636745308, 24.821412184, 56.181887597],
    "gzip_float32": [50.068364642, 2211.141914595, 29.513402926, -219.904634773, 368.340855515, 151.840125171, 58.954223086, 15.959288153, 2.052167553, 12.871451359, 8.041198657, 0.924597743],
    "gzip_float16": [50.083593153, 1232.08883721, -141.030644535, -67.545191963, 195.948434489, -114.946607135, 53.706762609, 18.48730992, -0.234647157, 14.213498468, 10.634735125, 0.920928046],
    "gzip_uint8": [50.033571599, 4160.34212544, 453.27963028, -495.086524773, 79.54376902, 951.064481566, 112.100404634, 12.063409861, 13.996532699, 11.440908542, 0.646940857, 0.89206944],
    "ms_per_call": [46.104670065, 4.17e-07, 5.1288e-05, 7.045e-06, 1.01160258, 1.803e-06],
}
GRAPH_FEATURES = ("one", "gru", "cnn_layers", "gru_fc_layers", "reverb", "causal_cnn", "weight_tensors", "hop",
                  "harmonics", "noise_bands", "frames")
SPEED_FEATURES = ("one", "decoder_macs", "oscillator_samples", "noise_macs", "gru_steps", "reverb_macs")


def fir_length(n_noise_bands: int) -> int:
    """Taps of the noise filter's FIR: the irfft size 2(N-1), cut to the window when shorter."""
    return min(2 * (n_noise_bands - 1), NOISE_WINDOW)


def graph_features(config: dict[str, Any], weight_tensors: int) -> list[float]:
    gru = config["decoder"] == "gru"
    cnn_layers = 0 if gru else config["conv_stacks"] * config["conv_layers"]
    return [1.0, float(gru), float(cnn_layers), float(config["fc_layers"] if gru else 0), float(config["reverb"]),
            float(config["causal"] and not gru), float(weight_tensors), float(SAMPLE_RATE // config["frame_rate"]),
            float(config["n_harmonics"]), float(config["n_noise_bands"]), float(config["frame_rate"])]


def speed_features(config: dict[str, Any], params: int, reverb_taps: int) -> list[float]:
    """Work per second of audio: decoder multiply-adds (each weight once per frame), oscillator
    samples (one sine per harmonic per sample), noise-filter multiply-adds (each frame's FIR over
    hop + taps), GRU loop iterations, reverb multiply-adds."""
    frames, hop, taps = config["frame_rate"], SAMPLE_RATE // config["frame_rate"], fir_length(config["n_noise_bands"])
    return [1.0, float((params - reverb_taps) * frames), float(SAMPLE_RATE * config["n_harmonics"]),
            float(frames * (hop + taps) * taps), float(frames if config["decoder"] == "gru" else 0),
            float(SAMPLE_RATE * reverb_taps)]


def bundle_bytes(config: dict[str, Any], params: int, weight_tensors: int) -> dict[str, int]:
    """Shipped bundle bytes (model.json + shards) per precision, raw and gzipped:
    {"bytes_float32", "bytes_gzip_float32", ...}. Without coefficients: the weights alone."""
    features = graph_features(config, weight_tensors)
    out = {}
    for precision in PRECISIONS:
        weights = params * BYTES_PER_WEIGHT[precision]
        graph = _linear(COEFFICIENTS[f"graph_{precision}"], features)
        out[f"bytes_{precision}"] = int(round(weights + max(graph, 0.0)))
        gzipped = _linear(COEFFICIENTS[f"gzip_{precision}"], features + [float(weights)])
        out[f"bytes_gzip_{precision}"] = int(round(gzipped)) if gzipped > 0 else out[f"bytes_{precision}"]
    return out


def _linear(coefficients: Sequence[float], features: Sequence[float]) -> float:
    return float(np.dot(coefficients, features)) if coefficients else 0.0


def rtf_wasm(config: dict[str, Any], params: int, reverb_taps: int) -> float:
    """Real-time factor in TF.js's wasm backend: seconds of audio rendered per second (higher is faster)."""
    coef = COEFFICIENTS["ms_per_call"]
    if not coef:
        return float("nan")
    ms = float(np.array(speed_features(config, params, reverb_taps)) @ np.array(coef))
    return 1000.0 / max(ms, 1e-3)


def fit(rows: Sequence[dict]) -> dict[str, list[float]]:
    """Least-squares coefficients from bench/bundle_cost.py's measurements (each row: "config",
    "params", "weight_tensors", "reverb_taps", per-precision sizes, "ms_per_call")."""
    graph_x, graph_y = [], {p: [] for p in PRECISIONS}
    gzip_x, gzip_y = {p: [] for p in PRECISIONS}, {p: [] for p in PRECISIONS}
    speed_x, speed_y = [], []
    for row in rows:
        config, params = row["config"], row["params"]
        features = graph_features(config, row["weight_tensors"])
        graph_x.append(features)
        for precision in PRECISIONS:
            weights = params * BYTES_PER_WEIGHT[precision]
            graph_y[precision].append(row[precision]["total"] - weights)
            gzip_x[precision].append(features + [float(weights)])
            gzip_y[precision].append(row[precision]["total_gzip"])
        speed_x.append(speed_features(config, params, row["reverb_taps"]))
        speed_y.append(row["ms_per_call"])

    def solve(x, y) -> list[float]:
        return np.linalg.lstsq(np.array(x), np.array(y, dtype=float), rcond=None)[0].tolist()

    out = {f"graph_{p}": solve(graph_x, graph_y[p]) for p in PRECISIONS}
    out.update({f"gzip_{p}": solve(gzip_x[p], gzip_y[p]) for p in PRECISIONS})
    out["ms_per_call"] = solve(speed_x, speed_y)
    return out
