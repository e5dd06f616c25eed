"""The built-in search space: GRU and CNN decoders × loudness and RMS inputs × sizes.

Sizes run from a few thousand parameters (a causal 8-channel CNN with 16 harmonics at 50 Hz, in
the spirit of DDSP-CNN-Tiny) to about ddsp's ``tiny_instrument`` (~232 k): the largest GRU point
(192 units, two 64-wide FC layers per stack, 60 harmonics, 65 bands) has ~228 k parameters.
The output head (width × (1 + harmonics + noise bands)) dominates tiny models, so harmonics and
noise bands are searched too (docs/references.md).

Trials train on 1-second windows of the 4-second examples (``crop_seconds``, fixed): a step then
costs a third to a quarter as much, and held-out quality (on whole examples) at 150 steps came out
within 2.1 % (a small CNN) and 0.3 % (a GRU-16) of whole-example training (docs/architecture.md,
"Training windows"). A space file may fix another length, or 0 for whole examples.

Every instrument gets its own oracle over this same space: what differs per instrument is the
data and therefore the results, not the set of models worth trying.
"""

from __future__ import annotations

import keras_tuner as kt

from spaces.translate import SearchSpace

TRAINING_WINDOW_SECONDS = 1.0  # the module docstring says why


def default_space(instrument: str | None = None) -> SearchSpace:
    """The built-in space (identical for every instrument; ``instrument`` only labels its source)."""
    hp = kt.HyperParameters()
    hp.Choice("decoder", ["gru", "cnn"])
    hp.Choice("feature", ["loudness", "rms"])
    hp.Choice("frame_rate", [50, 250])
    with hp.conditional_scope("decoder", ["gru"]):
        hp.Choice("hidden", [16, 32, 64])
        hp.Int("fc_layers", 0, 2)
        hp.Choice("gru_units", [16, 32, 64, 128, 192])
    with hp.conditional_scope("decoder", ["cnn"]):
        hp.Choice("conv_channels", [8, 16, 32, 64])
        hp.Int("conv_layers", 2, 5)
        hp.Int("conv_stacks", 1, 2)
        hp.Choice("conv_kernel", [3, 5])
        hp.Boolean("causal")
    hp.Choice("n_harmonics", [16, 32, 60])
    hp.Choice("n_noise_bands", [16, 32, 65])
    hp.Float("learning_rate", 3e-4, 3e-3, sampling="log")
    label = f"built-in ({instrument})" if instrument else "built-in"
    return SearchSpace(hp, fixed={"crop_seconds": TRAINING_WINDOW_SECONDS}, source=label)
