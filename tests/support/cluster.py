"""A Ray cluster on this machine, as a team's cluster is started: `ray start --head`, then
`ray start --address` for each further node, each a separate set of processes, on 127.0.0.1.

The two-node cluster of tests/test_cluster.py is one; the test run's shared head (``ray_head`` in
tests/conftest.py: one node, the machine's cores) is another, which the stand-in sweeps join with
``address`` and ``client_env`` instead of each starting a Ray of their own.

Every process the cluster starts inherits a marker variable; ``stop()`` kills each process that
carries it, by PID (Ray daemonizes its processes, so they are not children of the test), and waits
until none is left. Ray's token authentication is on (its default for `ray start`), with a token
file of the cluster's own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common.net import free_port
from support.sweeps import REPO, kill_until_gone

RAY = str(Path(sys.executable).parent / "ray")
# Ports Ray would otherwise take at fixed defaults (two nodes on one machine must not collide).
NODE_PORT_FLAGS = ("--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port",
                   "--runtime-env-agent-port")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first, session id fourth); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def live_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def marked_pids(marker: bytes) -> list[int]:
    """Live processes whose environment holds ``marker``. Ray's Python processes overwrite their
    environment with their new process title, so this finds its binaries (GCS, raylets) and the
    sessions they lead; ``RayCluster.pids`` adds the other members of those sessions."""
    pids = []
    for pid in live_pids():
        try:
            if pid != os.getpid() and marker in Path(f"/proc/{pid}/environ").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


class RayCluster:
    def __init__(self, cpus_per_node: int = 1, env: dict | None = None, nodes: int = 2, dashboard: bool = True):
        # short: Ray's socket paths live under it and a Unix socket path is at most 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="ts-ray-", dir="/tmp"))
        token = self.root / "token"
        token.write_text(secrets.token_hex(32))
        self.marker = f"TONESWEEP_TEST_CLUSTER={self.root.name}"
        # what a client needs to join: the same token (Ray's token authentication is on)
        self.client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        # workers import the code under test, whatever is installed
        self.env = {**os.environ, **self.client_env, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO),
                    "TONESWEEP_TEST_CLUSTER": self.root.name, **(env or {})}
        self.env.pop("RAY_ADDRESS", None)
        self.gcs_port, self.dashboard_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}" if dashboard else None  # `ray job submit` goes there
        self.cpus_per_node, self.nodes, self.with_dashboard = cpus_per_node, nodes, dashboard
        self.log = self.root / "ray-start.log"
        self.sessions: set[int] = set()

    def _ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        with open(self.log, "a") as log:
            # a session of its own: whatever Ray leaves running is found by session, never the test's
            return subprocess.run([RAY, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=True, start_new_session=True)

    def _node_ports(self) -> list[str]:
        return [f"{flag}={free_port()}" for flag in NODE_PORT_FLAGS]

    def start(self) -> RayCluster:
        dashboard = (["--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"] if self.with_dashboard
                     else ["--include-dashboard=false"])
        self._ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={self.gcs_port}",
                  f"--num-cpus={self.cpus_per_node}", f"--temp-dir={self.root}", *dashboard,
                  f"--ray-client-server-port={free_port()}", "--disable-usage-stats", *self._node_ports())
        for _ in range(self.nodes - 1):
            self.add_node()
        self.pids()  # remember the nodes' sessions while their leaders live
        return self

    def add_node(self) -> None:
        self._ray("start", f"--address={self.address}", "--node-ip-address=127.0.0.1",
                  f"--num-cpus={self.cpus_per_node}", *self._node_ports())

    def pids(self) -> list[int]:
        """Every live process of the cluster: marked ones, and members of their sessions (Ray starts
        each node's processes in a session of their own), including sessions seen earlier whose
        leader has died."""
        marked = marked_pids(self.marker.encode())
        self.sessions |= {int(fields[3]) for fields in map(_stat, marked) if fields}
        self.sessions.discard(os.getsid(0))  # never the test's own session
        members = [pid for pid in live_pids() if (fields := _stat(pid)) and int(fields[3]) in self.sessions]
        return sorted(pid for pid in set(marked) | set(members)
                      if pid != os.getpid() and (fields := _stat(pid)) and fields[0] != "Z")

    def raylet_pids(self) -> list[int]:
        """The raylet of each node, in start order (the head's first)."""
        found = []
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/exe").resolve().name == "raylet":
                    found.append((Path(f"/proc/{pid}").stat().st_mtime, pid))
            except OSError:
                continue
        return [pid for _, pid in sorted(found)]

    def stop(self) -> None:
        kill_until_gone(self.pids, tries=100)
        shutil.rmtree(self.root, ignore_errors=True)
