"""The servers team-mode tests start (`tonesweep tracking-server`, `tonesweep ui`) as subprocesses in
their own session, and the fixtures that stop them by PID at the end, also when a test fails
(PostgreSQL's backends call setsid, so the session alone does not find them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from support.sweeps import REPO, session_pids

START_S = 240  # the first start creates MLflow's schema in PostgreSQL: ~20-45 s on 2 busy cores


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def is_loopback(address: str) -> bool:
    return address in ("::1", "::ffff:127.0.0.1") or address.startswith("127.")


class Server:
    """`tonesweep ARGS` in its own session, output to a file; ``seen`` holds every process of its tree."""

    def __init__(self, args: list[str], cwd: Path):
        self.log = cwd / f"server-{time.monotonic_ns()}.out"
        self._out = open(self.log, "w")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=cwd, env=env,
                                        stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        try:
            leader = psutil.Process(self.process.pid)
            found = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            found = []
        self.seen.update((p.pid, p) for p in found)
        return found

    def wait_for(self, text: str, timeout: float) -> str:
        """The first output line holding ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tree()
            lines = [line for line in self.output().splitlines() if text in line]
            if lines:
                return lines[0]
            if self.process.poll() is not None:
                pytest.fail(f"tonesweep exited ({self.process.returncode}) before {text!r}:\n{self.output()[-3000:]}")
            time.sleep(0.3)
        pytest.fail(f"no {text!r} within {timeout} s:\n{self.output()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL, by PID, whatever is left of everything it started."""
        left = [p for p in [*self.seen.values(), *self.tree()] if p.is_running()]
        for pid in session_pids(self.process.pid):
            try:
                left.append(psutil.Process(pid))
            except psutil.Error:
                pass
        for process in left:
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=10)
        self.process.wait()
        self._out.close()


@pytest.fixture
def servers():
    started = []

    def start(*args: str, cwd: Path) -> Server:
        server = Server(list(args), cwd)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()


@contextlib.contextmanager
def reachable_folder():
    """A temp folder the postgres account can enter: under root PostgreSQL runs as postgres, and
    pytest's own folders are 0700."""
    folder = Path(tempfile.mkdtemp(prefix="tonesweep-test-pg-"))
    try:
        folder.chmod(0o711)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def reachable_dir():
    with reachable_folder() as folder:
        yield folder


class TrackingServer:
    """A `tonesweep tracking-server` (its own PostgreSQL, artifacts in ``artifacts``) at ``uri``, in a
    folder of its own; ``start`` waits until it answers, ``stop`` kills what is left by PID and removes
    the folder."""

    def __init__(self):
        from common.net import free_port

        self.folder = Path(tempfile.mkdtemp(prefix="tonesweep-test-pg-"))
        self.folder.chmod(0o711)  # under root PostgreSQL runs as postgres and must enter it
        self.port, self.artifacts = free_port(), self.folder / "artifacts"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.server: Server | None = None

    def start(self) -> "TrackingServer":
        self.server = Server(["tracking-server", "--port", str(self.port), "--pg-data", str(self.folder / "postgres"),
                              "--artifact-root", str(self.artifacts)], self.folder)
        try:
            self.server.wait_for("no tonesweep experiments yet", START_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
