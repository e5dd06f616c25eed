"""The model: config -> decoder -> controls -> synth -> audio, its size before training, and how
its weights look once TF.js has quantized them.

``config`` and ``size`` import no TensorFlow (the sweep driver uses them cheaply).
"""
