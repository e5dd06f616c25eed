"""Model size before training: parameter count, weight bytes, and the whole shipped bundle.

Computed from the configuration (no TensorFlow import, microseconds per call), so the sweep can
reject oversized configurations and rank sizes before a trial starts. tests/test_size.py checks
the parameter formulas against the Keras models that `trainers.model.decoders.build_decoder` builds.

Weight bytes (``bytes_weights_<precision>``) are those of the trained weights in the TF.js shards
when only the trainable variables are quantized (``--quantize_float16='*ReadVariableOp*'`` etc.):
float32 4 B, float16 2 B, uint8 1 B per weight (uint8's per-tensor ``{"min", "scale"}`` pair is JSON
in ``model.json``; ``weight_tensors`` says how many). What ships is more: model.json's topology and
the DSP constants; ``bytes_<precision>`` is that whole bundle, from trainers/model/cost.py.
"""

from __future__ import annotations

from typing import Any

from common.constants import BYTES_PER_WEIGHT, PRECISIONS, SAMPLE_RATE
from trainers.model import cost
from trainers.model.config import validate_config


def reverb_length(config: dict[str, Any]) -> int:
    """Samples in the trainable reverb impulse response (0 without reverb)."""
    return int(round(config["reverb_seconds"] * SAMPLE_RATE)) if config["reverb"] else 0


def _dense(n_in: int, n_out: int) -> tuple[int, int]:
    return n_in * n_out + n_out, 2  # (params, tensors): kernel + bias


def _fc_stack(n_in: int, width: int, n_layers: int) -> tuple[int, int, int]:
    """(params, tensors, output width) of n_layers x (Dense + LayerNorm)."""
    params = tensors = 0
    for _ in range(n_layers):
        p, t = _dense(n_in, width)
        params, tensors, n_in = params + p + 2 * width, tensors + t + 2, width
    return params, tensors, n_in


def _gru_decoder(cfg: dict[str, Any], n_out: int) -> tuple[int, int]:
    width, n_fc, units = cfg["hidden"], cfg["fc_layers"], cfg["gru_units"]
    p_in, t_in, d_in = _fc_stack(1, width, n_fc)  # one stack per input (f0, feature)
    concat = 2 * d_in
    # Keras GRU, reset_after=True: kernel [in, 3U], recurrent [U, 3U], bias [2, 3U].
    p_gru = 3 * units * (concat + units + 2)
    p_out, t_out, d_out = _fc_stack(concat + units, width, n_fc)
    p_head, t_head = _dense(d_out, n_out)
    return 2 * p_in + p_gru + p_out + p_head, 2 * t_in + 3 + t_out + t_head


def _cnn_decoder(cfg: dict[str, Any], n_out: int) -> tuple[int, int]:
    ch, k = cfg["conv_channels"], cfg["conv_kernel"]
    n_res = cfg["conv_stacks"] * cfg["conv_layers"]
    p_conv_in = 2 * k * ch + ch
    p_res = ch * k * ch + ch + 2 * ch  # conv kernel + bias, LayerNorm gamma + beta
    p_head, t_head = _dense(ch, n_out)
    return p_conv_in + n_res * p_res + p_head, 2 + 4 * n_res + t_head


def _params_and_tensors(config: dict[str, Any]) -> tuple[int, int]:
    cfg = validate_config(config)
    n_out = 1 + cfg["n_harmonics"] + cfg["n_noise_bands"]
    body = _gru_decoder if cfg["decoder"] == "gru" else _cnn_decoder
    params, tensors = body(cfg, n_out)
    n_reverb = reverb_length(cfg)
    return params + n_reverb, tensors + (1 if n_reverb else 0)


def count_params(config: dict[str, Any]) -> int:
    """Trainable weights of the model (decoder + reverb IR) for `config` (validated here)."""
    return _params_and_tensors(config)[0]


def size_report(config: dict[str, Any]) -> dict[str, Any]:
    """What the architecture costs where it ships, before training:

    - ``params``, ``weight_tensors``;
    - ``bytes_weights_<precision>``: the weight shards' share, exact (see the module doc);
    - ``bytes_<precision>``: the whole shipped bundle (model.json + shards: weights, DSP constants
      and graph topology), from the calibrated cost model (trainers/model/cost.py);
    - ``rtf_wasm``: real-time factor of one call in TF.js's wasm backend (cost model).
    """
    cfg = validate_config(config)
    params, tensors = _params_and_tensors(cfg)
    report: dict[str, Any] = {"params": params, "weight_tensors": tensors}
    report.update({f"bytes_weights_{p}": params * BYTES_PER_WEIGHT[p] for p in PRECISIONS})
    report.update(cost.bundle_bytes(cfg, params, tensors))
    report["rtf_wasm"] = cost.rtf_wasm(cfg, params, reverb_length(cfg))
    return report
