"""One writer at a time: a lock file beside what a command writes (a dataset, a bundle, a sweep).

``writer_lock(path, what, field)`` holds ``path`` (e.g. ``runs/.demo.lock``) while the block runs. The
lock is the kernel's (``flock`` on the open file), so it goes with its process however that process
ends; the file holds who took it (PID, host, command, time), so a second writer is told whom it waits
for, and one that finds a file whose holder is gone takes it over and says so (``took_over``). The
file is removed when the holder is done (removed while still locked, and a waiter re-checks that the
file it locked is still the one at the path, so two writers can never both hold it).

Like Git's ``index.lock``, the second writer does not wait: it gets one line naming the holder and
exits 2. The kernel's lock holds on local folders (and NFSv4); a sweep kept in an object store is
locked there too, by a lock object written with S3's conditional writes (``cluster.object_store.object_lock``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from common.errors import UserError


def holder_record() -> dict:
    """Who holds a lock: this process."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["tonesweep", *sys.argv[1:]])[:300],
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


@contextmanager
def writer_lock(path: Path, what: str, field: str, took_over: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock file ``path`` for ``what`` (e.g. "dataset demo/datasets/bansuri") while the block
    runs; a ``UserError`` naming ``field`` and the holder when another process holds it."""
    path = Path(path).absolute()
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]  # deepest first
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = _locked_fd(path, what, field)
    except BaseException:
        _remove_if_empty(made)
        raise
    try:
        previous = _read_holder(fd)
        if previous and previous.get("pid") != os.getpid() and took_over is not None:
            took_over(f"{what}: took over the lock of PID {previous.get('pid')} on {previous.get('host')} "
                      f"({previous.get('command', '?')}, since {previous.get('since', '?')}), which has ended")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder_record()).encode(), 0)
        yield
    finally:
        try:
            path.unlink()  # while still locked: a waiter that opened it sees it is gone and starts over
        except FileNotFoundError:
            pass
        os.close(fd)  # releases the lock
        _remove_if_empty(made)  # folders made for the lock alone, when the command left nothing in them


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:  # not empty (the command wrote there), or gone
            return


def _locked_fd(path: Path, what: str, field: str) -> int:
    """An open, exclusively locked descriptor of the file now at ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd) or {}
            os.close(fd)
            raise busy_error(field, what, holder) from None
        except OSError:
            os.close(fd)
            raise
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed it as we locked it: lock the new one


def holder_gone(record: dict) -> bool:
    """Whether a lock's holder has certainly ended: a process of this machine that no longer runs (on
    another machine nobody here can tell)."""
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return False
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another account's live process
        return False
    return False


def busy_error(field: str, what: str, holder: dict, remedy: str = "wait for it to end, or stop it") -> UserError:
    """The one line a second writer gets."""
    return UserError(f"{field}: {what} is being written by PID {holder.get('pid', '?')} on {holder.get('host', '?')} "
                     f"({holder.get('command', '?')}, since {holder.get('since', '?')}); {remedy}")


def _read_holder(fd: int) -> dict | None:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def sibling_lock(folder: Path) -> Path:
    """The lock file of a folder a command writes: ``.<name>.lock`` beside it (the folder itself may
    be built elsewhere and moved in)."""
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"
