"""Child processes a server command runs (MLflow's server, PostgreSQL): each leads its own process
group in the command's session, its output is forwarded line by line, and ``stop`` leaves nothing of
it running. ``wait_ready`` waits for a service while watching the children that provide it.

Every child leads its own process group (same session, so a test or a supervisor that kills the
session still reaches it): Ctrl-C in a terminal reaches tonesweep only, and tonesweep stops the
groups in order, whatever is left of a group with SIGKILL, so the ports are free when the command
returns. The caller turns signals into ``should_stop()`` polls (no exception can land between a
fork and the line that records the child).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from typing import Callable

from common.errors import UserError
from common.net import STOPPED, wait_until

STOP_GRACE_S = 10.0


class ChildGroup:
    """A child process leading its own process group; its output is forwarded line by line to
    ``echo`` (when given) and its last lines are kept for an error message."""

    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None,
                 echo: Callable[[str], None] | None = None):
        self.name = name
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, errors="replace", process_group=0)
        self.tail: deque[str] = deque(maxlen=40)
        self._pump = threading.Thread(target=self._read, args=(echo,), daemon=True)
        self._pump.start()

    def _read(self, echo) -> None:
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            if echo is not None:
                echo(line)

    def running(self) -> bool:
        return self.process.poll() is None

    def last_words(self) -> str:
        """The last exception line it printed, else its last line (SQLAlchemy ends a traceback with a
        "(Background on this error ...)" line after the one that says what went wrong)."""
        self._pump.join(timeout=1.0)
        lines = [line.strip() for line in self.tail if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|FATAL|PANIC)\b", line)]
        return (errors or lines or [f"exit code {self.process.poll()}"])[-1][:400]

    def descendants(self) -> list:
        """Its live processes, leader first (psutil, so a recycled PID is never mistaken for one)."""
        import psutil  # noqa: PLC0415

        try:
            leader = psutil.Process(self.process.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self, grace_s: float = STOP_GRACE_S, polite: Callable[[], object] | None = None) -> None:
        """``polite()`` (default: SIGTERM to the group), SIGKILL after ``grace_s``; returns once no process
        of the group is left, nor any descendant that left it (PostgreSQL's backends each call setsid)."""
        import psutil  # noqa: PLC0415

        pgid, tree = self.process.pid, self.descendants()
        if polite is not None:
            polite()
        else:
            self._signal(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._group_alive(pgid):
            if time.monotonic() > deadline:
                self._signal(pgid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        _, left = psutil.wait_procs(tree, timeout=max(0.0, min(grace_s, deadline - time.monotonic())))
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(left, timeout=5)
        self._pump.join(timeout=2.0)

    def _group_alive(self, pgid: int) -> bool:
        self.process.poll()  # reap the leader: a zombie still counts as a member
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    @staticmethod
    def _signal(pgid: int, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, number)


def wait_ready(ready: Callable[[], bool], children: list[ChildGroup], should_stop: Callable[[], bool],
               timeout_s: float, what: str) -> bool:
    """Poll ``ready`` until true (True), a stop request (False), a child's death or the timeout (UserError)."""

    def check() -> str | None:
        if ready():
            return None
        for child in children:
            if not child.running():
                raise UserError(f"{what}: {child.name} exited before it was ready: {child.last_words()}")
        return "not ready"

    reason = wait_until(check, timeout_s, interval_s=0.3, should_stop=should_stop)
    if reason == STOPPED:
        return False
    if reason is not None:
        raise UserError(f"{what}: not ready after {timeout_s:g} s; its last output: {children[-1].last_words()}")
    return True
