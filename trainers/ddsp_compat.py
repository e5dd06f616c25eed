"""The one place tonesweep imports ddsp.

Why this module exists: ddsp 3.7.0 is installed with ``--no-deps`` (its metadata pins
TensorFlow <= 2.11, which has no Python 3.11 build). Its core runs on TF 2.21, but
``ddsp/losses.py`` does ``import crepe`` at module level, and crepe cannot be installed
offline (its setup downloads model weights). Only ddsp's ``PretrainedCREPE`` loss uses
crepe, and tonesweep never uses that loss, so an empty placeholder module named ``crepe``
is registered before the first ``import ddsp``. Everything else in tonesweep does
``from trainers.ddsp_compat import ddsp`` and never imports ddsp directly.
"""

from __future__ import annotations

import sys
import types

if "crepe" not in sys.modules:
    _placeholder = types.ModuleType("crepe")
    _placeholder.__doc__ = "Placeholder: crepe is unavailable offline; tonesweep never calls it."
    sys.modules["crepe"] = _placeholder

import ddsp  # noqa: E402  (must follow the placeholder above)
import ddsp.core  # noqa: E402,F401
import ddsp.effects  # noqa: E402,F401
import ddsp.losses  # noqa: E402,F401
import ddsp.spectral_ops  # noqa: E402,F401
import ddsp.synths  # noqa: E402,F401

__all__ = ["ddsp"]
