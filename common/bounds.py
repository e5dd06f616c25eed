"""The numbers a flag may take, one rule per kind of value, checked the same way wherever they enter.

The CLI's parser applies a rule when it reads the command line (``Bound.argument``: before anything
heavy is imported, so a wrong number is answered at once), and the library checks of each command
apply the same rule to the value they are given (``Bound.check``: the Python API gets the same
answer). The message names the flag, the value and what would work:

    --max-bytes: -1 must be a whole number from 1
    --min-rtf: nan must be a finite number from 0 (times faster than real time; 0 = no bar)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Callable

from common.errors import UserError


@dataclass(frozen=True)
class Bound:
    """A whole number or a finite number, with an optional lower and upper end."""

    whole: bool                  # an int (a count, bytes, a port) or a float
    low: float | None = None
    high: float | None = None
    low_open: bool = False       # above ``low`` rather than at least
    high_open: bool = False      # below ``high`` rather than at most
    hint: str = ""               # what the value means, e.g. "(0 = no bar)"

    def describe(self) -> str:
        """What a value must be, e.g. "a whole number from 1", "a finite number above 0 and below 1"."""
        kind = "a whole number" if self.whole else "a finite number"
        ends = []
        if self.low is not None:
            ends.append(f"{'above' if self.low_open else 'from'} {self.low:g}")
        if self.high is not None:
            joiner = "and below" if self.high_open or self.low_open else "to"
            ends.append(f"{joiner if ends else ('below' if self.high_open else 'up to')} {self.high:g}")
        text = " ".join([kind, *ends])
        return f"{text} {self.hint}".strip()

    def fits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.whole and (not isinstance(value, int) and not float(value).is_integer()):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def check(self, value: Any, flag: str) -> Any:
        """``value`` itself when it fits; else UserError naming ``flag``."""
        if not self.fits(value):
            raise UserError(f"{flag}: {value} must be {self.describe()}")
        return value

    def parse(self, text: str) -> int | float:
        """The value of ``text`` when it fits; else ValueError with what would work."""
        try:
            value: int | float = int(text) if self.whole else float(text)
        except ValueError:
            raise ValueError(f"{text!r} must be {self.describe()}") from None
        if not self.fits(value):
            raise ValueError(f"{text} must be {self.describe()}")
        return value

    def argument(self) -> Callable[[str], int | float]:
        """An argparse ``type``: the error argparse reports names the flag and says what would work."""

        def parse(text: str) -> int | float:
            try:
                return self.parse(text)
            except ValueError as err:
                raise argparse.ArgumentTypeError(str(err)) from None

        parse.__name__ = "whole number" if self.whole else "number"
        return parse


COUNT = Bound(whole=True, low=1)                        # trials, steps, workers, parameters, bytes
PORT = Bound(whole=True, low=1, high=65535)
PORT_OR_ANY = Bound(whole=True, low=0, high=65535, hint="(0 picks a free one)")
POSITIVE = Bound(whole=False, low=0, low_open=True)     # seconds, minutes, CPUs, a loss
AT_LEAST_ZERO = Bound(whole=False, low=0)               # tolerances, cents
SPEED_BAR = Bound(whole=False, low=0, hint="(times faster than real time; 0 = no bar)")
WHOLE_OR_OFF = Bound(whole=True, low=0, hint="(0 = off)")
ABOVE_ONE = Bound(whole=False, low=1, low_open=True, hint="(e.g. 3)")
FRACTION = Bound(whole=False, low=0, high=1, low_open=True, high_open=True, hint="(e.g. 0.15)")
