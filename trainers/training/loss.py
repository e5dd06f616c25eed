"""ddsp's multi-scale spectral loss as graphs a process traces once and every architecture shares.

    spectral_loss()(target, audio) -> loss                      validation loss, held-out quality
    spectral_loss_and_gradient(jit_compile=True)(target, audio) -> (loss, d loss / d audio)   the training step

The loss sees only audio, never the model, so its graph is the same for every architecture of a
sweep that trains on windows of one shape (the built-in space's: batch x 1 s). A training step or a
validation pass calls these functions inside its own graph: tracing the step then traces the decoder
and the synth but finds the loss and its gradient (most of the step's ops) already traced for those
shapes, in the first trial of the process or in an earlier architecture's: a later architecture's
first step call 1.5-1.8 s instead of 2.3-2.5 s, its first validation 0.65-0.73 s instead of 1.1-1.5 s
(docs/engines.md "Start-up"). Without XLA TensorFlow inlines the call when it optimises the step's graph,
so the step runs the ops it ran before: the same losses and weights bit for bit (tests/test_train.py).

The training step's loss and gradient are compiled with XLA (``jit_compile``, the default): one program per
shape and process, compiled in the first trial's first call (~1 s), after which it costs half as much
(8 x 1 s: 35 ms against 67 ms), and the same float32 arithmetic to rounding (docs/engines.md, "The training
step"). The validation loss and held-out quality keep TensorFlow's kernels: their numbers are comparable
with every sweep's before.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from trainers.model.trained import make_loss


@functools.cache
def spectral_loss():
    """(target [B, n], audio [B, n]) -> ddsp's spectral loss, one graph per shape and process.

    Run eagerly, op by op, it took 0.62 s of a held-out precision's ~2 s on a demo split (21 examples of
    4 s), in graph 0.25 s; the loss is the eager loss's to float32 rounding (the graph may sum in another
    order: within 1.1e-7 relative on demo models; tests/test_model.py)."""
    loss_fn = make_loss()
    return tf.function(lambda target, audio: loss_fn(target, audio), autograph=False)


def spectral_loss_and_gradient(jit_compile: bool = True):
    """(target [B, n], audio [B, n]) -> (loss, its gradient with respect to ``audio``), one graph per
    shape and process; a step chains the gradient into the model's (``tape.gradient(audio, variables,
    output_gradients=...)``)."""
    return _loss_and_gradient(bool(jit_compile))  # one cached function whether called f() or f(jit_compile=True)


@functools.cache
def _loss_and_gradient(jit_compile: bool):
    loss_fn = make_loss()

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loss_and_gradient(target, audio):
        with tf.GradientTape() as tape:
            tape.watch(audio)
            loss = loss_fn(target, audio)
        return loss, tape.gradient(loss, audio)

    return loss_and_gradient


__all__ = ["spectral_loss", "spectral_loss_and_gradient"]
