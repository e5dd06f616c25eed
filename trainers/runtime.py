"""Start-up of a process that will use TensorFlow (the CLI, a trial worker): call before TF loads.

TensorFlow's C++ side prints notices before its logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL``
does not reach them: "All log messages before absl::InitializeLog() ...", the CUDA stub probing
("Could not find cuda drivers ..."). ``TF_CPP_MIN_LOG_LEVEL=3`` (set by the CLI and passed to Ray
workers) hides the rest, the ``cuInit`` "error" and the oneDNN/CPU-feature notices included.
``import_tensorflow_quietly`` imports TensorFlow with its stderr captured and passes on every line
that is not one of those known notices, so real errors still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# Start-up notices of TensorFlow's C++ runtime on a machine without a GPU (seen with TF 2.21).
_START_UP_NOTICE = re.compile(
    r"absl::InitializeLog\(\)|cudart_stub\.cc|cuda_(platform|executor|dnn|fft|blas)\.cc|cpu_feature_guard\.cc"
    r"|oneDNN custom operations|rebuild TensorFlow with the appropriate compiler flags|Unable to register cu")


def import_tensorflow_quietly() -> None:
    """``import tensorflow`` with its pre-logging C++ notices filtered out of stderr (fd 2)."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode(errors="replace").splitlines():
            if line.strip() and not _START_UP_NOTICE.search(line):
                print(line, file=sys.stderr)


def is_start_up_notice(line: str) -> bool:
    """True for a line of TensorFlow's C++ start-up chatter (what the tests look for in stderr)."""
    return bool(_START_UP_NOTICE.search(line))
