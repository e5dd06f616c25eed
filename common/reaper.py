"""A watchdog for the processes a command starts: they end with the command, however it ends.

A command that starts long-lived processes (Ray's head and workers, ``mlflow server``, PostgreSQL)
stops them itself when it ends normally, on Ctrl-C or on SIGTERM. A SIGKILL leaves it no time: the
reaper, a small process started first, kills them then. It reads lines from the command's pipe:
"pid:starttime" items (processes to kill, told as they appear), or "done" (the command stopped them
itself: the reaper exits). When the pipe closes without a "done", the command died: the reaper kills
the processes it was told about (the same ones: the start time tells a reused PID apart) and, in
rounds until none is left, every process whose environment carries its tag (``Reaper.environment``:
children inherit it, so a process started between two reports, or by a child, is found too).
"""

from __future__ import annotations

import subprocess
import sys
import uuid

_REAPER = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)      # a Ctrl-C is for the driver; the reaper waits for it
tag = sys.argv[1].encode()
known = {}
def start_time(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None
def tagged():
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    if tag in handle.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                pass
    return found
def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
for line in sys.stdin:
    if line.strip() == "done":
        sys.exit(0)
    for item in line.split():
        pid, started = item.split(":")
        known[int(pid)] = started
for pid, started in known.items():
    if start_time(pid) == started:                 # the same process, not a reused PID
        kill(pid)
for _ in range(20):                                # a raylet may start a worker while it is dying
    left = tagged()
    if not left:
        break
    for pid in left:
        kill(pid)
    time.sleep(0.25)
"""


class Reaper:
    """The reaper process of one command; ``environment`` is the tag its children are to carry."""

    def __init__(self, variable: str):
        self.variable, self.tag = variable, uuid.uuid4().hex
        self.process = subprocess.Popen([sys.executable, "-c", _REAPER, f"{variable}={self.tag}"],
                                        stdin=subprocess.PIPE, text=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def environment(self) -> dict[str, str]:
        return {self.variable: self.tag}

    def report(self, items: list[str]) -> None:
        """Processes to kill if the command dies: "pid:starttime" items."""
        try:
            self.process.stdin.write(" ".join(items) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError):
            pass

    def dismiss(self) -> None:
        """The command stopped its processes itself: the reaper exits without killing anything."""
        try:
            self.process.stdin.write("done\n")
            self.process.stdin.close()
        except (OSError, ValueError):
            pass
        self.process.wait(timeout=10)
