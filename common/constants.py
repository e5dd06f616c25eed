"""Names every package shares, spelled once. No TensorFlow, no numpy: anything may import this.

- audio: 16 kHz mono everywhere (datasets, synth, export, transfer);
- weight precisions as TF.js ships them (the converter quantizes weights only);
- trial statuses, as the trainable reports them, MLflow tags record them and the results table
  reads them back;
- the fixed noise seeds behind every evaluation and validation render (same weights + same data
  give the same numbers);
- the voicing rule: a frame is voiced when pYIN's voiced probability is at least this.
"""

from __future__ import annotations

SAMPLE_RATE = 16000  # Hz
DB_RANGE = 80.0  # loudness and RMS are dB with 0 dB reference, floored this far below (ddsp.core.DB_RANGE)

PRECISIONS = ("float32", "float16", "uint8")  # smallest last; bytes per weight 4, 2, 1
BYTES_PER_WEIGHT = {"float32": 4, "float16": 2, "uint8": 1}

# Trial statuses. FINISHED/FAILED/REJECTED come from the trainable's final report; STOPPED is a
# trial the scheduler ended early; INTERRUPTED one that a Ctrl-C of the sweep ended; RUNNING is
# MLflow's status while a trial is still going.
FINISHED, FAILED, REJECTED, STOPPED, INTERRUPTED, RUNNING = (
    "FINISHED", "FAILED", "REJECTED", "STOPPED", "INTERRUPTED", "RUNNING")
TERMINAL_STATUSES = (FINISHED, FAILED, REJECTED, STOPPED, INTERRUPTED)
REPORTED_STATUSES = (FINISHED, FAILED, REJECTED)  # statuses a trial's own final report can carry

VAL_NOISE_SEED = 1234  # synthesis noise of the validation loss and of every evaluation render
VOICED_THRESHOLD = 0.5  # f0_confidence >= this: the frame is voiced
