"""Ctrl-C and SIGTERM during a sweep: stop it the way Ray stops it on its own stop signal.

``InterruptCatcher`` turns the first signal into Ray's stop (SIGUSR1: trials stopped, experiment
state saved) and remembers it, so the sweep can mark its open trials INTERRUPTED and say how to
resume (``SweepInterrupted``); a second signal interrupts at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any


class SweepInterrupted(Exception):
    """A sweep ended by Ctrl-C or SIGTERM: its state is saved, ``--resume`` continues it."""

    def __init__(self, name: str, signal_number: int):
        super().__init__(f"sweep {name} interrupted")
        self.name, self.signal_number = name, signal_number


class _SignalHandlers:
    """SIGINT and SIGTERM go to ``self._handle`` while the block runs (from the main thread only: Python
    delivers signals there), and the previous handlers come back after."""

    def __init__(self):
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _handle(self, number: int, frame) -> None:
        raise NotImplementedError


class StoreLost(Exception):
    """A sweep in an object store stopped because the store stopped answering: Ray's state and the
    bookkeeping are where the store had them, ``--resume`` continues once it answers again."""

    def __init__(self, name: str, store: str, reason: str):
        super().__init__(f"sweep {name}: the object store stopped answering ({reason})")
        self.name, self.store, self.reason = name, store, reason


class InterruptCatcher(_SignalHandlers):
    """Ctrl-C (SIGINT) and SIGTERM during ``Tuner.fit`` end the run the way Ray ends it on its own
    stop signal (SIGUSR1: trials stopped, experiment state saved) and are remembered, so the sweep can
    mark its open trials INTERRUPTED and say how to resume. A second signal interrupts at once.
    Ray's own SIGINT handler is off (``TUNE_DISABLE_SIGINT_HANDLER``), and so is its advice to call
    ``Tuner.restore`` (tonesweep prints its own ``--resume`` command)."""

    def __init__(self):
        super().__init__()
        self.signal_number: int | None = None

    def __enter__(self) -> "InterruptCatcher":
        super().__enter__()
        self._ray_logger = logging.getLogger("ray.tune.tune")
        self._ray_level = self._ray_logger.level
        self._ray_logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        self._ray_logger.setLevel(self._ray_level)

    def _handle(self, number: int, frame) -> None:
        ray_stop = signal.getsignal(signal.SIGUSR1)
        if self.signal_number is not None or not callable(ray_stop):
            raise KeyboardInterrupt  # a second signal, or Ray's loop not running yet
        self.signal_number = number
        os.kill(os.getpid(), signal.SIGUSR1)

    def reason(self) -> str:
        return f"interrupted ({signal.Signals(self.signal_number).name}); `--resume` continues it"


class SignalsInterrupt(_SignalHandlers):
    """Outside ``Tuner.fit`` (Ray starting, the parent runs opening, between instruments): SIGTERM
    interrupts as Ctrl-C does, and the signal is remembered (``number``) so the sweep can say which one
    ended it and how to resume. Inside ``fit``, ``InterruptCatcher`` takes over (and hands back)."""

    def __init__(self):
        super().__init__()
        self.number: int | None = None

    def _handle(self, number: int, frame) -> None:
        self.number = number
        raise KeyboardInterrupt
