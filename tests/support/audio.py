"""Synthetic audio for tests."""

from __future__ import annotations

import numpy as np


def synth_tone(seconds: float, sample_rate: int = 16000, f0_hz: float = 330.0, amplitude: float = 0.3,
               vibrato_cents: float = 30.0) -> np.ndarray:
    """A harmonic tone with 5.5 Hz vibrato and a slow tremolo: float64 [seconds * sample_rate]."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    f0 = f0_hz * 2 ** (vibrato_cents / 1200 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t) ** 2
    return amplitude * tone * envelope / np.max(np.abs(tone))
