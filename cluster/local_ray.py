"""The Ray a sweep uses: a cluster named by ``--address``/``$RAY_ADDRESS``, else one started here.

A Ray started here listens on loopback only and does not outlive its driver:

- **Loopback.** ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough: Ray replaces a
  loopback node address by the machine's reachable address, and its GCS, raylet, workers and
  agents then listen on every interface. With ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` Ray runs as it
  does on a laptop (macOS/Windows): the node address stays 127.0.0.1 and every server binds it
  (measured with Ray 2.60: 12 listening sockets, all loopback, instead of 10 of 12 on ``::``/
  ``0.0.0.0``). The variable is read when ``ray`` is imported, so it is set before the import;
  if the caller imported Ray already, the constant it was read into is set as well.
- **No orphans.** Ray's head processes share the driver's fate, but its agents survive a SIGKILL
  of the driver (and ignore SIGTERM for seconds). A small reaper process, started before Ray,
  learns the PIDs of everything the driver starts (every 2 s) and kills them when the driver's
  pipe closes without a goodbye (the driver died); ``stop`` says goodbye after ``ray.shutdown``.
  A worker started between two reports would escape a PID list, so Ray is also started with a
  tag in its environment (``TONESWEEP_RAY_TAG``, inherited by everything the raylet starts): the
  reaper kills every process of this user whose /proc/PID/environ carries the tag, in rounds until
  none is left.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass, field

from common.errors import UserError
from common.reaper import Reaper
from common.net import wait_for_port

LOOPBACK_ENVIRONMENT = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
REPORT_EVERY_S = 2.0
REAPER_TAG_VARIABLE = "TONESWEEP_RAY_TAG"



@dataclass
class RayHandle:
    """What ``start`` did: whether this process started Ray (and must stop it), and its reaper."""

    started: bool
    reaper: Reaper | None = None
    _stop_reporting: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Shut Ray down if this process started it, then dismiss the reaper."""
        import ray

        self._stop_reporting.set()
        if self.started:
            ray.shutdown()
        if self.reaper is not None:
            self.reaper.dismiss()


ADDRESS_TIMEOUT_S = 20.0


def check_address(address: str | None, timeout_s: float | None = None) -> None:
    """Refuse, within ``timeout_s``, a cluster address that does not answer (``ray.init`` would retry
    for minutes without a word). ``auto`` and ``ray://`` addresses are left to Ray."""
    timeout_s = ADDRESS_TIMEOUT_S if timeout_s is None else timeout_s
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address}: expected HOST:PORT of a Ray head (e.g. 127.0.0.1:6379), or auto")
    wait_for_port(host, int(port), timeout_s, f"--address {address}")


def check_fits(cpus_per_trial: float) -> None:
    """Refuse a trial that asks for more CPUs than the whole cluster has (it would wait forever)."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus_per_trial > cpus:
        raise UserError(f"--cpus-per-trial {cpus_per_trial:g}: the Ray cluster has {cpus:g} CPUs in all; "
                        f"ask for at most {cpus:g}")


def start(address: str | None, worker_env: dict[str, str]) -> RayHandle:
    """Connect to ``address`` (or ``$RAY_ADDRESS``, as ``ray job submit`` sets), else start Ray on
    this machine: all cores, loopback only, no dashboard, reaped if the driver dies."""
    if address or os.environ.get("RAY_ADDRESS"):
        import ray

        if ray.is_initialized():
            return RayHandle(started=False)
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": worker_env})
        return RayHandle(started=True)
    _loopback_only()
    import ray

    if ray.is_initialized():
        return RayHandle(started=False)
    reaper = Reaper(REAPER_TAG_VARIABLE)
    handle = RayHandle(started=True, reaper=reaper)
    try:
        with _environment_tag(reaper.environment):
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     _node_ip_address="127.0.0.1", runtime_env={"env_vars": worker_env})
    except BaseException:
        handle.stop()
        raise
    _report_descendants(handle)
    threading.Thread(target=_keep_reporting, args=(handle,), daemon=True, name="ray-reaper-feed").start()
    return handle


@contextlib.contextmanager
def _environment_tag(tag: dict[str, str]):
    """Set the reaper's tag while Ray starts its head processes (which pass it on to every worker),
    and only then: later children of the driver are none of the reaper's business."""
    os.environ.update(tag)
    try:
        yield
    finally:
        for name in tag:
            os.environ.pop(name, None)


def _loopback_only() -> None:
    for key, value in LOOPBACK_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if "ray" in sys.modules and os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        from ray._private import ray_constants  # noqa: PLC2701 - read once at import; see the module doc

        ray_constants.ENABLE_RAY_CLUSTER = False


def _keep_reporting(handle: RayHandle) -> None:
    while not handle._stop_reporting.wait(REPORT_EVERY_S):
        _report_descendants(handle)


def _report_descendants(handle: RayHandle) -> None:
    """Tell the reaper every process below this one (Ray's head processes, agents, workers)."""
    import psutil

    me, reaper_pid = psutil.Process(), handle.reaper.pid
    items = []
    for child in me.children(recursive=True):
        if child.pid == reaper_pid:
            continue
        started = _start_time(child.pid)
        if started is not None:
            items.append(f"{child.pid}:{started}")
    handle.reaper.report(items)


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: when the process started (tells a reused PID apart)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


__all__ = ["RayHandle", "start", "LOOPBACK_ENVIRONMENT"]
