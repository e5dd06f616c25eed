"""Network helpers every package shares: ports, and waiting until a service answers.

One loop waits for anything (``wait_until``): a check returns None when the service is ready, or a
short reason why it is not yet, and the loop returns the last reason after its time is up. The
checks for a TCP port and for an HTTP endpoint are here too, so the tracking URI check, the Ray
address check and the servers tonesweep starts all wait the same way.
"""

from __future__ import annotations

import errno
import socket
import time
import urllib.error
import urllib.request
from typing import Callable

from common.errors import UserError

LOOPBACK = "127.0.0.1"
STOPPED = "stop requested"  # what ``wait_until`` returns when ``should_stop`` turned true


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port_free(host: str, port: int, field: str, host_field: str = "--host") -> None:
    """Refuse a port something already listens on (SO_REUSEADDR: a port in TIME_WAIT is free), or a
    host that is not an address of this machine, naming the flag at fault (``bind_error``)."""
    if not 0 < port < 65536:
        raise UserError(f"{field} {port}: not a TCP port; give 1-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise bind_error(host, port, err, field, host_field) from None


def bind_error(host: str, port: int, err: OSError, field: str = "--port", host_field: str = "--host") -> UserError:
    """Why ``host:port`` cannot be listened on, blaming the flag that is at fault: the host when it is
    not an address of this machine, the port when it is taken or privileged."""
    reason = err.strerror or str(err)
    if isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL:
        return UserError(f"{host_field} {host}: not an address of this machine ({reason}); use 127.0.0.1, "
                         "or 0.0.0.0 for every network interface")
    if err.errno == errno.EACCES and port < 1024:
        return UserError(f"{field} {port}: ports below 1024 need administrator rights; choose one from 1024 up")
    if err.errno == errno.EADDRINUSE:
        return UserError(f"{field} {port}: {host}:{port} is in use; stop what uses it or choose another port")
    return UserError(f"{field} {port}: cannot listen on {host}:{port} ({reason}); choose another port or host")


def wait_until(check: Callable[[], str | None], timeout_s: float, interval_s: float = 0.5,
               should_stop: Callable[[], bool] | None = None) -> str | None:
    """Call ``check`` every ``interval_s`` until it returns None (ready: returns None), ``should_stop()``
    turns true (returns ``STOPPED``) or ``timeout_s`` has passed (returns ``check``'s last reason).
    ``check`` may raise to give up at once (e.g. a child process died)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if should_stop is not None and should_stop():
            return STOPPED
        reason = check()
        if reason is None or time.monotonic() >= deadline:
            return reason
        time.sleep(interval_s)


def port_answers(host: str, port: int, timeout_s: float = 2.0) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return None
    except OSError as err:
        return err.strerror or str(err)


def http_answers(url: str, timeout_s: float = 5.0) -> str | None:
    """None when ``url`` answers HTTP 200, else why not (``"HTTP 401"``, a socket error, ...)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (OSError, ValueError) as err:
        return str(getattr(err, "reason", None) or err)


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    """Return once ``host:port`` accepts a TCP connection; a one-line ``UserError`` after ``timeout_s``."""
    reason = wait_until(lambda: port_answers(host, port, min(2.0, timeout_s)), timeout_s)
    if reason is not None:
        raise UserError(f"{what}: {host}:{port} does not answer ({reason}) after {timeout_s:g} s; "
                        "start the server or check the address")
