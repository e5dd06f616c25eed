"""Size before training: the analytic count equals what Keras builds; TF.js byte arithmetic."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from trainers.model.config import validate_config
from trainers.model.size import count_params, size_report

CONFIGS = [
    {},
    {"fc_layers": 0, "gru_units": 8},
    {"fc_layers": 3, "hidden": 16, "gru_units": 24, "n_harmonics": 10, "n_noise_bands": 5},
    {"decoder": "cnn"},
    {"decoder": "cnn", "conv_channels": 8, "conv_layers": 3, "conv_stacks": 2, "conv_kernel": 5, "causal": True},
    {"decoder": "cnn", "conv_channels": 4, "conv_layers": 1, "conv_stacks": 1, "conv_kernel": 1, "reverb": True},
    {"reverb": True, "reverb_seconds": 0.25},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_analytic_count_matches_built_model(config):
    from trainers.model.trained import build_model

    model = build_model(validate_config(config))
    weights = model.trainable_weights
    report = size_report(config)
    assert report["params"] == count_params(config) == sum(int(np.prod(w.shape)) for w in weights)
    assert report["weight_tensors"] == len(weights)


def test_reverb_adds_one_tensor_of_its_length():
    plain, reverb = size_report({}), size_report({"reverb": True, "reverb_seconds": 0.5})
    assert reverb["params"] - plain["params"] == 8000
    assert reverb["weight_tensors"] - plain["weight_tensors"] == 1


def test_bytes_per_precision_follow_tfjs_shards():
    report = size_report({"decoder": "cnn", "conv_channels": 8, "n_harmonics": 20, "n_noise_bands": 10})
    p = report["params"]
    # conv_in 2*3*8+8=56; 6 residual layers of 8*3*8+8+16=216; head 8*31+31=279
    assert p == 56 + 6 * 216 + 279
    weights = (report["bytes_weights_float32"], report["bytes_weights_float16"], report["bytes_weights_uint8"])
    assert weights == (4 * p, 2 * p, p)
    # what ships is more: the graph's topology and DSP constants (trainers/model/cost.py)
    assert all(report[f"bytes_{q}"] > report[f"bytes_weights_{q}"] for q in ("float32", "float16", "uint8"))
    assert report["bytes_gzip_float32"] < report["bytes_float32"] and report["rtf_wasm"] > 1


def _tfjs_quantization():
    """tensorflowjs/quantization.py loaded alone (the package __init__ pulls in the converter)."""
    spec = importlib.util.find_spec("tensorflowjs")
    if spec is None:
        pytest.skip("tensorflowjs not installed")
    path = Path(spec.submodule_search_locations[0]) / "quantization.py"
    module_spec = importlib.util.spec_from_file_location("_tfjs_quantization", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("low, high", [(-0.7, 1.3), (0.2, 0.9), (-2.0, -0.5), (0.0, 0.0)])
def test_uint8_round_trip_matches_tfjs_converter(low, high):
    from trainers.model.quantize import quantize_dequantize, quantize_uint8

    tfjs = _tfjs_quantization()
    w = np.random.default_rng(0).uniform(low, high, size=(37, 5)).astype(np.float32)
    q_ref, meta = tfjs.quantize_weights(w, np.uint8)
    q, scale, minimum = quantize_uint8(w)
    np.testing.assert_array_equal(q, q_ref)
    assert np.isclose(scale, meta["scale"]) and np.isclose(minimum, meta["min"])
    expected = tfjs.dequantize_weights(q_ref, meta)
    np.testing.assert_allclose(quantize_dequantize(w, "uint8"), expected, rtol=1e-6, atol=1e-7)
    if high > low:
        assert np.max(np.abs(quantize_dequantize(w, "uint8") - w)) <= scale / 2 + 1e-6


def test_float16_round_trip_and_zero_exact():
    from trainers.model.quantize import quantize_dequantize

    w = np.array([0.0, 1e-3, -0.5, 3.14159], np.float32)
    np.testing.assert_array_equal(quantize_dequantize(w, "float16"), w.astype(np.float16).astype(np.float32))
    assert quantize_dequantize(np.array([-1.0, 0.0, 2.0], np.float32), "uint8")[1] == 0.0
    with pytest.raises(ValueError):
        quantize_dequantize(w, "int4")
