"""The trained model: decoder (+ reverb impulse response) and the synth, frames in, audio out.

    build_model(config) -> TrainedModel          fresh weights, every variable created
    load_trained(out_dir) -> (config, TrainedModel)   a finished trial's config.json + weights
    make_loss() -> ddsp's multi-scale spectral loss (training, validation and evaluation share it)

Training (``trainers.training``) and export (``trainers.export``) both build on this module;
neither imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from common.constants import SAMPLE_RATE, VAL_NOISE_SEED
from trainers.ddsp_compat import ddsp
from common.errors import UserError
from common.files import sha256_file
from trainers.model import synth
from trainers.model.config import validate_config
from trainers.model.decoders import build_decoder, preprocess_inputs
from trainers.model.size import reverb_length

keras = tf.keras
WEIGHTS_DIGEST = "weights_sha256"  # metrics.json key: the sha256 of weights.weights.h5 as the trial wrote it


class ReverbIR(keras.layers.Layer):
    """Holds the trainable reverb impulse response [n] (init N(0, 1e-6) as ddsp's Reverb)."""

    def __init__(self, n_samples: int, **kwargs):
        super().__init__(**kwargs)
        self.ir = self.add_weight(
            name="ir", shape=(n_samples,), initializer=keras.initializers.RandomNormal(stddev=1e-6)
        )
        self.built = True  # the weight exists now; nothing depends on the input shape

    def call(self, _unused=None):
        return self.ir


class TrainedModel(keras.Model):
    """Decoder (+ reverb IR) and the synth: frames in, audio out.

    `decoder` is the Keras functional model of trainers.model.decoders.build_decoder; `reverb`
    (a ReverbIR layer) exists only when config["reverb"].
    """

    def __init__(self, config: dict[str, Any], **kwargs):
        super().__init__(name="tonesweep_model", **kwargs)
        self.config = config
        self.decoder = build_decoder(config)
        n_ir = reverb_length(config)
        self.reverb = ReverbIR(n_ir, name="reverb") if n_ir else None
        self._compiled_synthesize: dict[bool, Any] = {}  # per fast_harmonics: render's tf.functions

    def controls(self, f0_hz: tf.Tensor, feature_db: tf.Tensor) -> dict[str, tf.Tensor]:
        """f0_hz, feature_db [B,T,1] -> synth controls (see trainers.model.synth.get_controls)."""
        f0_scaled, feature_scaled = preprocess_inputs(f0_hz, feature_db)
        raw = self.decoder([f0_scaled, feature_scaled])
        return synth.get_controls(raw, f0_hz, self.config["n_harmonics"])

    def synthesize(self, f0_hz: tf.Tensor, feature_db: tf.Tensor, noise: tf.Tensor,
                   fast_harmonics: bool = False) -> tf.Tensor:
        """f0_hz, feature_db [B,T,1], noise [B,n_samples] -> audio [B,n_samples] (differentiable).

        The reference synth (ddsp's Harmonic) unless `fast_harmonics` (training step only; see
        trainers.model.synth.harmonic_synthesis_fast).
        """
        ir = self.reverb.ir if self.reverb is not None else None
        controls = self.controls(f0_hz, feature_db)
        return synth.get_signal(controls, int(noise.shape[-1]), noise, ir, fast_harmonics=fast_harmonics)

    def call(self, inputs):
        f0_hz, feature_db, noise = inputs
        return self.synthesize(f0_hz, feature_db, noise)

    def render(self, f0_hz: np.ndarray, feature_db: np.ndarray, seconds_per_frame: float | None = None,
               noise_seed: int = VAL_NOISE_SEED, noise: tf.Tensor | None = None,
               fast_harmonics: bool = False) -> np.ndarray:
        """Frames -> audio, for evaluation and listening.

        Args:
          f0_hz, feature_db: [B, T] or [B, T, 1] frames at config["frame_rate"].
          noise_seed: the stateless noise seed; the same seed gives the same audio.
          noise: [B, n_samples] noise to use instead (then noise_seed is not used).
          fast_harmonics: the training step's harmonic synth instead of ddsp's (held-out metrics,
            trainers.training.evaluate says why); ``transfer`` and the bundles use ddsp's.
        Returns:
          audio [B, T * 16000 / frame_rate] float32 numpy.
        """
        f0_hz, feature_db = _frames3(f0_hz), _frames3(feature_db)
        batch, frames = f0_hz.shape[0], f0_hz.shape[1]
        n_samples = frames * SAMPLE_RATE // self.config["frame_rate"]
        if noise is None:
            noise = synth.white_noise(batch, n_samples, (noise_seed, 0))
        if fast_harmonics not in self._compiled_synthesize:  # graph mode: ~10x faster than eager for the ddsp synth
            self._compiled_synthesize[fast_harmonics] = tf.function(  # ddsp needs static shapes: no relaxing
                lambda f0, feature, noise_: self.synthesize(f0, feature, noise_, fast_harmonics=fast_harmonics),
                autograph=False)
        synthesize = self._compiled_synthesize[fast_harmonics]
        return synthesize(tf.constant(f0_hz), tf.constant(feature_db), noise).numpy()

    def build_all(self, frames: int = 8) -> None:
        """Create every weight by running a tiny forward pass (needed before loading weights)."""
        hop = SAMPLE_RATE // self.config["frame_rate"]
        zeros = tf.zeros([1, frames, 1])
        self((zeros + 220.0, zeros - 40.0, tf.zeros([1, frames * hop])))


def _frames3(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[..., np.newaxis] if x.ndim == 2 else x


def build_model(config: dict[str, Any]) -> TrainedModel:
    """A freshly initialized model for a validated config, with all weights created."""
    model = TrainedModel(config)
    model.build_all()
    return model


def load_trained(out_dir: str | Path) -> tuple[dict[str, Any], TrainedModel]:
    """Rebuild the model of a finished trial from `out_dir/config.json` + `weights.weights.h5`."""
    out_dir = Path(out_dir)
    config_path, weights_path = out_dir / "config.json", out_dir / "weights.weights.h5"
    for path in (config_path, weights_path):
        if not path.exists():
            raise UserError(f"{path}: missing; pass the out_dir of a finished `tonesweep train` trial")
    config = validate_config(json.loads(config_path.read_text()))
    expected = _recorded_weights_digest(out_dir)
    if expected and sha256_file(weights_path) != expected:
        raise UserError(f"{weights_path}: damaged (its bytes differ from those the trial wrote); train the trial "
                        "again or export another run")
    model = build_model(config)
    try:
        model.load_weights(str(weights_path))
    except (OSError, ValueError) as err:  # h5py: truncated or not HDF5; Keras: another architecture's weights
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise UserError(f"{weights_path}: cannot be read ({reason}); the weights are damaged or belong to another "
                        "configuration: train the trial again or export another run") from None
    return config, model


def _recorded_weights_digest(out_dir: Path) -> str | None:
    """The weights' sha256 the trial recorded in its metrics.json (trials before it did not; None)."""
    try:
        digest = json.loads((out_dir / "metrics.json").read_text()).get(WEIGHTS_DIGEST)
    except (OSError, ValueError, AttributeError):
        return None
    return digest if isinstance(digest, str) else None


def make_loss() -> "ddsp.losses.SpectralLoss":
    """ddsp's multi-scale spectral loss: FFT 2048..64, 75% overlap, L1 on mag + log-mag."""
    return ddsp.losses.SpectralLoss(
        fft_sizes=(2048, 1024, 512, 256, 128, 64), loss_type="L1", mag_weight=1.0, logmag_weight=1.0
    )
