"""Reading numbers that may be missing, text, NaN or infinite (metrics, reports, MLflow values)."""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, not a number, NaN, inf, or a bool)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
