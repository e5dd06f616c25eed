"""The exported graph: decoder + synthesizer as a tf.Module with one fixed input signature.

One call renders F frames (``frames_per_call``) of audio and carries everything that crosses a
chunk boundary, so a caller can render any length chunk after chunk without clicks or drift:

  inputs (batch 1; P context frames before, A = La + R frames after the F rendered frames):
    f0_hz       [1, P+F+A, 1]  Hz (0 = unvoiced)        feature_db [1, P+F+A, 1]  loudness or RMS, dB
    noise       [1, (P+F+A)*H] white noise, uniform [-1, 1): an explicit input (not a random op)
                               so TF, TF.js and the training graph can be fed the same noise
    phase       [1, K]         harmonic phases before the first sample (radians)
    noise_tail  [1, Ln]        filtered noise the previous chunk's frames spill into this chunk
    state       [1, U]         GRU state (gru decoders only)
    reverb_tail [1, Lr-1]      reverb of earlier chunks still ringing (reverb models only)
  outputs:
    audio [1, F*H]; next_phase, next_noise_tail, next_state, next_reverb_tail: the carries;
    amplitudes [1, F+1, 1], harmonic_distribution [1, F+1, K], noise_magnitudes [1, F+La, N]: the
    synthesizer's controls for the rendered frames (and those after them that the synth reads), so a
    runtime can run the decoder alone and synthesize outside the graph (js/synth.mjs).

Why lookahead frames (La): the harmonic amplitude/frequency envelopes interpolate from frame j
to frame j+1, and each noise frame's FIR also spills (L-1)/2 samples before its start. The
next chunk recomputes those frames from the same inputs and carried state, so each frame's
contributions are counted once. Why context (P, R): a CNN decoder's controls at a frame depend
on its receptive field; a GRU's on the carried state (P = R = 0).

With zero carries and the rendered frames first, the output equals the training graph
(trainers.model.trained.TrainedModel.synthesize) on the same frames; `training_reference` computes that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from trainers.export import safe_ops
from trainers.model import synth
from trainers.model.decoders import preprocess_inputs

LAYER_NORM_EPSILON = 1e-3  # Keras LayerNormalization default (trainers.model does not change it)
LEAKY_SLOPE = 0.2  # trainers.model._fc_stack


@dataclass(frozen=True)
class Layout:
    """Frame/sample layout of one call of the exported graph (written to the model card)."""

    sample_rate: int
    frame_rate: int
    hop: int  # H: samples per frame
    frames_per_call: int  # F: frames rendered per call
    context_before: int  # P
    lookahead: int  # La: frames after F the synth needs (interpolation target, noise pre-spill)
    context_after: int  # R: frames after those the decoder needs (non-causal CNN)
    n_harmonics: int
    n_noise_bands: int
    noise_tail: int  # Ln
    state_size: int  # U (0: no state input)
    reverb_tail: int  # Lr - 1 (0: no reverb)

    @property
    def input_frames(self) -> int:
        return self.context_before + self.frames_per_call + self.lookahead + self.context_after

    @property
    def samples_per_call(self) -> int:
        return self.frames_per_call * self.hop

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "input_frames": self.input_frames, "samples_per_call": self.samples_per_call}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Layout":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def decoder_context(config: dict[str, Any]) -> tuple[int, int]:
    """(frames before, frames after) a decoder output depends on; Keras 'same'/'causal' padding."""
    if config["decoder"] == "gru":
        return 0, 0
    kernel = config["conv_kernel"]
    dilations = [1] + [2**i for _ in range(config["conv_stacks"]) for i in range(config["conv_layers"])]
    before = after = 0
    for d in dilations:
        pad = (kernel - 1) * d
        left = pad if config["causal"] else pad // 2
        before, after = before + left, after + pad - left
    return before, after


def make_layout(config: dict[str, Any], frames_per_call: int, reverb_length: int) -> Layout:
    """The layout for a validated trial config."""
    hop = synth.SAMPLE_RATE // config["frame_rate"]
    fir_len = safe_ops.impulse_response_matrix(config["n_noise_bands"], synth.NOISE_WINDOW_SIZE).shape[1]
    delay = safe_ops.noise_fir_delay(config["n_noise_bands"], synth.NOISE_WINDOW_SIZE)
    before, after = decoder_context(config)
    return Layout(
        sample_rate=synth.SAMPLE_RATE, frame_rate=config["frame_rate"], hop=hop,
        frames_per_call=frames_per_call, context_before=before,
        lookahead=max(1, -(-delay // hop)), context_after=after,
        n_harmonics=config["n_harmonics"], n_noise_bands=config["n_noise_bands"],
        noise_tail=fir_len - 1 - delay,
        state_size=config["gru_units"] if config["decoder"] == "gru" else 0,
        reverb_tail=max(reverb_length - 1, 0),
    )


class ExportedSynth(tf.Module):
    """Decoder + harmonic + filtered noise (+ reverb) of one trained model, export-safe.

    Weights are copied from the trained Keras model into tf.Variables named after its layers, so
    the converter sees them as ``*ReadVariableOp*`` nodes and quantizes only them.
    """

    def __init__(self, config: dict[str, Any], model, frames_per_call: int):
        super().__init__(name="tonesweep_export")
        self.config = dict(config)
        reverb_ir = model.reverb.ir.numpy() if getattr(model, "reverb", None) is not None else None
        self.layout = make_layout(config, frames_per_call, 0 if reverb_ir is None else len(reverb_ir))
        self.weights = {}
        for layer in model.decoder.layers:
            for weight in layer.weights:
                key = f"{layer.name}/{weight.name.split('/')[-1]}"
                value = weight.numpy()
                if isinstance(layer, tf.keras.layers.Conv1D) and value.ndim == 3:
                    value = value[np.newaxis]  # [1,k,in,out]: consumed by conv2d as is (see _conv)
                self.weights[key] = tf.Variable(value, name=key.replace("/", "_"), trainable=False)
        self.reverb_kernel = None if reverb_ir is None else tf.Variable(
            safe_ops.reverb_kernel(reverb_ir), name="reverb_kernel", trainable=False)
        # The SavedModel's serving signature (see bundle.write_saved_model).
        self.render = tf.function(self._render, input_signature=self.input_signature(), autograph=False)

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """Run one call eagerly from numpy inputs keyed by input name; numpy outputs."""
        outputs = self.render(*[tf.constant(inputs[name]) for name in self.input_names()])
        return {k: v.numpy() for k, v in outputs.items()}

    # ------------------------------------------------------------------ signature

    def input_signature(self) -> list[tf.TensorSpec]:
        lay = self.layout
        specs = [
            tf.TensorSpec([1, lay.input_frames, 1], tf.float32, name="f0_hz"),
            tf.TensorSpec([1, lay.input_frames, 1], tf.float32, name="feature_db"),
            tf.TensorSpec([1, lay.input_frames * lay.hop], tf.float32, name="noise"),
            tf.TensorSpec([1, lay.n_harmonics], tf.float32, name="phase"),
            tf.TensorSpec([1, lay.noise_tail], tf.float32, name="noise_tail"),
        ]
        if lay.state_size:
            specs.append(tf.TensorSpec([1, lay.state_size], tf.float32, name="state"))
        if lay.reverb_tail:
            specs.append(tf.TensorSpec([1, lay.reverb_tail], tf.float32, name="reverb_tail"))
        return specs

    def input_names(self) -> list[str]:
        return [spec.name for spec in self.input_signature()]

    def zero_carries(self) -> dict[str, np.ndarray]:
        """Carry inputs for the first chunk of a signal (all zeros)."""
        lay = self.layout
        carries = {"phase": np.zeros([1, lay.n_harmonics], np.float32),
                   "noise_tail": np.zeros([1, lay.noise_tail], np.float32)}
        if lay.state_size:
            carries["state"] = np.zeros([1, lay.state_size], np.float32)
        if lay.reverb_tail:
            carries["reverb_tail"] = np.zeros([1, lay.reverb_tail], np.float32)
        return carries

    # ------------------------------------------------------------------ graph

    def _render(self, f0_hz, feature_db, noise, phase, noise_tail, *optional):
        lay = self.layout
        optional = list(optional)
        state = optional.pop(0) if lay.state_size else None
        reverb_tail = optional.pop(0) if lay.reverb_tail else None
        raw, next_state = self._decode(f0_hz, feature_db, state)
        outputs = self._synthesize(raw, f0_hz, noise, phase, noise_tail, reverb_tail)
        if next_state is not None:
            outputs["next_state"] = tf.identity(next_state, name="next_state")
        return outputs

    def _decode(self, f0_hz, feature_db, state):
        """Raw decoder outputs [1, P+F+A, 1+K+N] and the GRU state after P+F frames."""
        f0_scaled, feature_scaled = preprocess_inputs(f0_hz, feature_db)
        if self.config["decoder"] == "gru":
            x, next_state = self._gru_body(f0_scaled, feature_scaled, state)
        else:
            x, next_state = self._cnn_body(f0_scaled, feature_scaled), None
        return self._dense(x, "head"), next_state

    def _dense(self, x, name):
        w = self.weights
        return tf.matmul(x, w[f"{name}/kernel"]) + w[f"{name}/bias"]

    def _layer_norm(self, x, name):
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        inv = tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * self.weights[f"{name}/gamma"]
        return x * inv + (-mean * inv + self.weights[f"{name}/beta"])  # Keras' arithmetic order

    def _fc_stack(self, x, prefix):
        for i in range(self.config["fc_layers"]):
            x = self._dense(x, f"{prefix}_fc_{i}")
            x = self._layer_norm(x, f"{prefix}_ln_{i}")
            x = tf.nn.leaky_relu(x, alpha=LEAKY_SLOPE)
        return x

    def _gru_body(self, f0_scaled, feature_scaled, state):
        w = self.weights
        stacks = [self._fc_stack(f0_scaled, "f0"), self._fc_stack(feature_scaled, "feature")]
        x = tf.concat(stacks, axis=-1)
        keep = self.layout.context_before + self.layout.frames_per_call
        hidden, next_state = safe_ops.gru_sequence(
            x, w["gru/kernel"], w["gru/recurrent_kernel"], w["gru/bias"], state, keep_state_at=keep)
        x = tf.concat(stacks + [hidden], axis=-1)
        return self._fc_stack(x, "out"), next_state

    def _conv(self, x, name, dilation):
        """Keras Conv1D ('same' or 'causal', dilated) as conv2d on [1,1,T,C].

        conv1d would expand the kernel's dims inside the graph, and the converter would fold that
        into an anonymous constant that weight quantization misses; the variable is 4-D instead.
        """
        kernel = self.weights[f"{name}/kernel"]  # [1,k,in,out]
        pad = (int(kernel.shape[1]) - 1) * dilation
        left = pad if self.config["causal"] else pad // 2
        # expand_dims/squeeze rather than x[:, tf.newaxis] / y[:, 0]: a fixed-index slice costs a
        # StridedSlice and three constants in model.json per layer, squeeze none
        x = tf.expand_dims(tf.pad(x, [[0, 0], [left, pad - left], [0, 0]]), 1)
        y = tf.nn.conv2d(x, kernel, strides=1, padding="VALID", dilations=[1, 1, dilation, 1])
        return tf.squeeze(y, 1) + self.weights[f"{name}/bias"]

    def _cnn_body(self, f0_scaled, feature_scaled):
        x = self._conv(tf.concat([f0_scaled, feature_scaled], axis=-1), "conv_in", 1)
        for s in range(self.config["conv_stacks"]):
            for i in range(self.config["conv_layers"]):
                y = self._conv(tf.nn.relu(x), f"conv_s{s}_l{i}", 2**i)
                x = x + self._layer_norm(y, f"ln_s{s}_l{i}")
        return x

    def _synthesize(self, raw, f0_hz, noise, phase, noise_tail, reverb_tail):
        lay = self.layout
        first, n_synth = lay.context_before, lay.frames_per_call + lay.lookahead
        hop, frames = lay.hop, lay.frames_per_call
        raw = raw[:, first:first + n_synth]
        f0_hz = f0_hz[:, first:first + n_synth]
        noise = noise[:, first * hop:(first + n_synth) * hop]
        amps_raw, harm_raw, noise_raw = tf.split(raw, [1, lay.n_harmonics, lay.n_noise_bands], axis=-1)

        amps, dist = safe_ops.harmonic_controls(amps_raw, harm_raw, f0_hz, lay.sample_rate)
        harmonic, next_phase = safe_ops.harmonic_audio(
            f0_hz[:, :frames + 1], amps[:, :frames + 1], dist[:, :frames + 1], hop, lay.sample_rate, phase)

        magnitudes = safe_ops.noise_controls(noise_raw, synth.NOISE_INITIAL_BIAS)
        segments = safe_ops.filter_frames(noise, magnitudes, hop, synth.NOISE_WINDOW_SIZE)
        delay = safe_ops.noise_fir_delay(lay.n_noise_bands, synth.NOISE_WINDOW_SIZE)
        end = delay + lay.samples_per_call
        filtered = safe_ops.overlap_add(segments, hop)[:, delay:end]
        filtered = filtered + tf.pad(noise_tail, [[0, 0], [0, lay.samples_per_call - lay.noise_tail]])
        # Spill of this chunk's frames only (the lookahead frames spill again in the next call).
        next_noise_tail = safe_ops.overlap_add(segments[:, :frames], hop)[:, end:end + lay.noise_tail]

        audio = harmonic + filtered
        outputs = {"next_phase": next_phase, "next_noise_tail": next_noise_tail,
                   # the controls, for a runtime that synthesizes outside the graph (trainers/export/js/synth.mjs):
                   # fetching only these (and next_state) runs the decoder alone
                   "amplitudes": amps[:, :frames + 1], "harmonic_distribution": dist[:, :frames + 1],
                   "noise_magnitudes": magnitudes}
        if self.reverb_kernel is not None:
            wet = safe_ops.reverb_wet(audio, self.reverb_kernel)  # [1, F*H + Lr - 1]
            wet = wet + tf.pad(reverb_tail, [[0, 0], [0, lay.samples_per_call]])
            audio = audio + wet[:, :lay.samples_per_call]
            outputs["next_reverb_tail"] = wet[:, lay.samples_per_call:]
        outputs["audio"] = audio
        return {name: tf.identity(t, name=name) for name, t in outputs.items()}


# ---------------------------------------------------------------------- references and inputs

def random_inputs(layout: Layout, seed: int = 0, feature_range: tuple[float, float] = (-60.0, -10.0)
                  ) -> dict[str, np.ndarray]:
    """Plausible inputs for parity checks: a gliding f0 with unvoiced gaps, a loudness contour,
    uniform noise, and zero carries (the first chunk of a signal)."""
    rng = np.random.default_rng(seed)
    n = layout.input_frames
    t = np.arange(n) / layout.frame_rate
    f0 = 220.0 * 2 ** (np.sin(2 * np.pi * 0.7 * t) + rng.normal(0, 0.01, n).cumsum() * 0.1)
    f0[(t % 1.3) > 1.15] = 0.0  # unvoiced frames
    feature = np.interp(np.sin(2 * np.pi * 0.4 * t), [-1, 1], feature_range) + rng.normal(0, 1, n)
    inputs = {
        "f0_hz": f0.astype(np.float32)[None, :, None],
        "feature_db": feature.astype(np.float32)[None, :, None],
        "noise": rng.uniform(-1, 1, size=(1, n * layout.hop)).astype(np.float32),
        "phase": np.zeros([1, layout.n_harmonics], np.float32),
        "noise_tail": np.zeros([1, layout.noise_tail], np.float32),
    }
    if layout.state_size:
        inputs["state"] = np.zeros([1, layout.state_size], np.float32)
    if layout.reverb_tail:
        inputs["reverb_tail"] = np.zeros([1, layout.reverb_tail], np.float32)
    return inputs


def training_reference(model, layout: Layout, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """What the training graph renders for the F frames of one call with zero carries.

    The trained decoder runs on all input frames (so a CNN sees the same context), then
    trainers.model.synth renders the F + La synthesized frames with the same noise; the first F*H
    samples are the comparison target. Returns float32 [1, F*H].
    """
    first, n_synth = layout.context_before, layout.frames_per_call + layout.lookahead
    ir = model.reverb.ir if getattr(model, "reverb", None) is not None else None

    # Traced like the SavedModel: grappler rewrites some arithmetic (e.g. the phase increment),
    # and eager vs graph execution of the same ddsp code differ by ~60 dB over a 4 s chunk.
    @tf.function(autograph=False)
    def render(f0_hz, feature_db, noise):
        controls = model.controls(f0_hz, feature_db)
        controls = {k: v[:, first:first + n_synth] for k, v in controls.items()}
        noise = noise[:, first * layout.hop:(first + n_synth) * layout.hop]
        return synth.get_signal(controls, n_synth * layout.hop, noise, ir)

    audio = render(*(tf.constant(inputs[k]) for k in ("f0_hz", "feature_db", "noise")))
    return audio.numpy()[:, :layout.samples_per_call]


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2) in float64; inf when identical."""
    reference = np.asarray(reference, np.float64)
    error = float(np.sum((reference - np.asarray(estimate, np.float64)) ** 2))
    return float("inf") if error == 0.0 else float(10.0 * np.log10(np.sum(reference**2) / error))
