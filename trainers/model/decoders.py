"""Decoders (Keras 3) and their input scaling.

Data flow of one model (shapes: B batch, T frames, H harmonics, N noise bands):

    f0_hz [B,T,1], feature_db [B,T,1]
      -> preprocess_inputs            -> f0_scaled [B,T,1], feature_scaled [B,T,1]
      -> decoder (build_decoder)      -> raw [B,T,1+H+N]   (order: amplitude | harmonics | noise)
      -> trainers.model.synth.get_controls  -> controls dict
      -> trainers.model.synth.get_signal    -> audio [B, n_samples]

Two decoder families, after ddsp's reference designs (ddsp/training/decoders.py):

- ``gru`` (RnnFcDecoder): one FC stack per input -> concat -> GRU -> concat(stacks, GRU) ->
  FC stack -> Dense head. An FC layer is Dense -> LayerNormalization -> leaky ReLU (ddsp's ``Fc``).
- ``cnn`` (DilatedConvDecoder): Conv1D in -> ``conv_stacks`` x ``conv_layers`` residual layers
  ``x += LayerNorm(Conv1D_dilated(relu(x)))`` with dilation 2**i -> Dense head.
  Difference from ddsp: LayerNormalization normalizes each frame over channels (ddsp's
  'layer' norm also averages over time), so the decoder stays causal when ``causal`` is set
  and can be run on chunks at export time.

Layer names are stable (``f0_fc_0``, ``gru``, ``conv_in``, ``conv_s0_l1``, ``head`` ...), because
the export engineer re-implements these layers from the same weights.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from common.constants import DB_RANGE
from trainers.ddsp_compat import ddsp

keras = tf.keras


def preprocess_inputs(f0_hz: tf.Tensor, feature_db: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Scale raw frame features to the decoder's input range, as ddsp does.

    Args:
      f0_hz: fundamental frequency in Hz, any shape (usually [B, T, 1]); 0 Hz means unvoiced.
      feature_db: loudness or RMS energy in dB (0 dB reference, floor -80 dB), same shape.
    Returns:
      f0_scaled = midi(f0_hz) / 127 (midi(0 Hz) := 0), feature_scaled = feature_db / 80 + 1;
      float32 tensors of the input shape, both roughly in [0, 1].
    """
    f0_hz = tf.cast(f0_hz, tf.float32)
    feature_db = tf.cast(feature_db, tf.float32)
    f0_scaled = ddsp.core.hz_to_midi(f0_hz) / 127.0
    feature_scaled = feature_db / DB_RANGE + 1.0
    return f0_scaled, feature_scaled


def n_outputs(config: dict[str, Any]) -> int:
    """Width of the decoder's raw output: 1 amplitude + harmonics + noise bands."""
    return 1 + config["n_harmonics"] + config["n_noise_bands"]


def build_decoder(config: dict[str, Any]) -> keras.Model:
    """A Keras functional model: [f0_scaled [B,T,1], feature_scaled [B,T,1]] -> raw [B,T,1+H+N].

    T may vary between calls (the time axis is None). `config` must be validated.
    """
    f0_in = keras.Input(shape=(None, 1), name="f0_scaled")
    feature_in = keras.Input(shape=(None, 1), name="feature_scaled")
    if config["decoder"] == "gru":
        x = _gru_body(config, f0_in, feature_in)
    else:
        x = _cnn_body(config, f0_in, feature_in)
    raw = keras.layers.Dense(n_outputs(config), name="head")(x)
    return keras.Model([f0_in, feature_in], raw, name=f"{config['decoder']}_decoder")


def _fc_stack(x: tf.Tensor, width: int, n_layers: int, prefix: str) -> tf.Tensor:
    """ddsp's FcStack: n_layers x (Dense -> LayerNorm -> leaky ReLU). Identity if n_layers == 0."""
    for i in range(n_layers):
        x = keras.layers.Dense(width, name=f"{prefix}_fc_{i}")(x)
        x = keras.layers.LayerNormalization(name=f"{prefix}_ln_{i}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"{prefix}_act_{i}")(x)
    return x


def _gru_body(config: dict[str, Any], f0_in: tf.Tensor, feature_in: tf.Tensor) -> tf.Tensor:
    width, n_fc = config["hidden"], config["fc_layers"]
    stacks = [_fc_stack(f0_in, width, n_fc, "f0"), _fc_stack(feature_in, width, n_fc, "feature")]
    x = keras.layers.Concatenate(name="concat_in")(stacks)
    # reset_after=True (Keras default): biases shaped [2, 3*units]; the export GRU cell follows it.
    x = keras.layers.GRU(config["gru_units"], return_sequences=True, name="gru")(x)
    x = keras.layers.Concatenate(name="concat_out")(stacks + [x])
    return _fc_stack(x, width, n_fc, "out")


def _cnn_body(config: dict[str, Any], f0_in: tf.Tensor, feature_in: tf.Tensor) -> tf.Tensor:
    channels, kernel = config["conv_channels"], config["conv_kernel"]
    padding = "causal" if config["causal"] else "same"
    x = keras.layers.Concatenate(name="concat_in")([f0_in, feature_in])
    x = keras.layers.Conv1D(channels, kernel, padding=padding, name="conv_in")(x)
    for s in range(config["conv_stacks"]):
        for i in range(config["conv_layers"]):
            y = keras.layers.ReLU(name=f"relu_s{s}_l{i}")(x)
            y = keras.layers.Conv1D(channels, kernel, dilation_rate=2**i, padding=padding, name=f"conv_s{s}_l{i}")(y)
            y = keras.layers.LayerNormalization(name=f"ln_s{s}_l{i}")(y)
            x = keras.layers.Add(name=f"res_s{s}_l{i}")([x, y])
    return x
