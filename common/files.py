"""Files every package writes the same way: atomic JSON, folders that tonesweep owns, this account's
node-local folders, and the temporary folders a killed run leaves behind.

Temporary folders have one scheme: ``<prefix><pid>-<random>`` (``private_tempdir``), a staging
folder beside its output (``.<out>.tmp-``, so the final rename stays on one filesystem) or a scratch
folder in the system temp folder (``tonesweep-<kind>-``, ``scratch_dir``). The next run that uses a
prefix removes the folders of that prefix whose process is gone (``remove_stale_tempdirs``).

Ownership rule: tonesweep deletes or replaces only files it wrote. A dataset folder and an export
bundle are marked as tonesweep's by a file (``manifest.json``, ``model-card.json``) that lists what
tonesweep put there. Replacing such a folder removes exactly those files; a folder that holds
anything else is refused unless the user passes ``--force``, and even then the other files stay.

Modes: what tonesweep writes gets the user's umask (``mkstemp``/``mkdtemp`` alone would leave
0600/0700), so a teammate or a web server can read a published dataset or bundle.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from common.errors import UserError


def umask() -> int:
    """This process's umask (read from /proc where possible: setting it to read it is racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def give_umask_modes(path: str | Path) -> None:
    """``path`` (and, for a folder, everything under it) gets the modes a plain ``open``/``mkdir``
    would have given it under the user's umask."""
    mask, path = umask(), Path(path)
    items = [path, *path.rglob("*")] if path.is_dir() else [path]
    for item in items:
        if not item.is_symlink():
            os.chmod(item, (0o777 if item.is_dir() else 0o666) & ~mask)


def write_bytes(path: str | Path, data: bytes) -> None:
    """``path.write_bytes(data)``, and an ``OSError`` that names ``path`` whatever failed (a write
    that fills the disk raises one without a file name)."""
    path = Path(path)
    try:
        path.write_bytes(data)
    except OSError as err:
        if err.filename:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None


def write_json_atomic(path: str | Path, payload: Any, *, indent: int | None = 2, sort_keys: bool = False,
                      temp_dir: str | Path | None = None) -> None:
    """Write `payload` as JSON so readers see the old file or the whole new one, never a part.

    The temporary file has a unique name (so concurrent writers do not clobber each other's
    temporaries) in the same folder, or in ``temp_dir`` when a temporary file must never appear
    beside ``path`` (a folder another process is copying); it is fsynced before it replaces `path`
    (a ``temp_dir`` on another filesystem falls back to the same folder). The file gets the user's
    umask, not mkstemp's 0600.
    """
    path = Path(path)
    if temp_dir is not None:
        try:
            return _write_json_via(Path(temp_dir), path, payload, indent, sort_keys)
        except OSError as err:
            if err.errno != errno.EXDEV:  # only a rename across filesystems falls back
                raise
    _write_json_via(path.parent, path, payload, indent, sort_keys)


def _write_json_via(folder: Path, path: Path, payload: Any, indent: int | None, sort_keys: bool) -> None:
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=indent, sort_keys=sort_keys)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- folders tonesweep owns


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of the file's bytes (a dataset's inputs and shards, a bundle's files: their identity)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """{relative name: sha256} of files below ``folder`` (what a card or manifest records)."""
    return {name: sha256_file(folder / name) for name in names}


def damaged_files(folder: Path, digests: dict[str, str]) -> tuple[list[str], list[str]]:
    """(missing, changed): the recorded files below ``folder`` that are gone or whose bytes differ."""
    missing = [name for name in digests if not (folder / name).is_file()]
    changed = [name for name, digest in digests.items() if name not in missing and sha256_file(folder / name) != digest]
    return missing, changed


def listed_files(folder: Path) -> list[str]:
    """Every file below ``folder`` as a relative POSIX path, sorted (what a marker file lists)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def foreign_files(folder: Path, owned: Iterable[str]) -> list[str]:
    """Files below ``folder`` that are not in ``owned`` (relative POSIX paths)."""
    owned = set(owned)
    return [name for name in listed_files(folder) if name not in owned] if folder.is_dir() else []


def check_replaceable(folder: str | Path, owned: Iterable[str], what: str, flag: str, force: bool) -> None:
    """Refuse to write ``what`` into ``folder`` when it is a file, or holds files tonesweep did not
    write (not in ``owned``) and ``force`` is off. Call before any work starts."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: {flag} is an existing file, not a folder; choose a folder path for the {what}")
    others = foreign_files(folder, owned)
    if others and not force:
        more = f" and {len(others) - 1} more" if len(others) > 1 else ""
        raise UserError(f"{folder}: {flag} holds files tonesweep did not write ({others[0]}{more}); "
                        f"choose another folder, or pass --force to write the {what} beside them (they are kept)")


def replace_owned(staging: Path, folder: Path, old_owned: Iterable[str], marker: str) -> None:
    """Move the finished ``staging`` folder's files into ``folder``, replacing only ``old_owned``.

    ``folder`` missing: one rename. Otherwise the old marker goes first (the folder then reads as
    incomplete, never as a mix), then the old owned files, then the new files move in, the new
    marker last. Files tonesweep did not write are never touched. ``staging`` is removed.
    """
    if not folder.exists():
        os.rename(staging, folder)
        return
    (folder / marker).unlink(missing_ok=True)
    for name in old_owned:
        _remove_file(folder, name)
    new_files = listed_files(staging)
    for name in sorted(new_files, key=lambda n: n == marker):  # the marker moves last
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, target)
    shutil.rmtree(staging, ignore_errors=True)


def _remove_file(folder: Path, name: str) -> None:
    """Remove ``folder/name`` (a listed file) and the folders it leaves empty, up to ``folder``."""
    path = folder / name
    if folder.resolve() not in path.resolve().parents:
        return  # a listed name that leads outside: not ours to touch
    path.unlink(missing_ok=True)
    parent = path.parent
    while parent != folder and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


# ---------------------------------------------------------------------------- this account's folders on this node


def account_folder(kind: str) -> Path:
    """``<tmp>/tonesweep-<uid>/<kind>``: what tonesweep keeps on a node between processes (dataset copies,
    a sweep driver's bookkeeping). Mode 0700; refused when another account owns it or it is a link."""
    base = Path(tempfile.gettempdir()) / f"tonesweep-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.getuid():
        raise UserError(f"{base}: not this account's own folder; remove it or set TMPDIR to another folder")
    (base / kind).mkdir(mode=0o700, exist_ok=True)
    return base / kind


# ---------------------------------------------------------------------------- temporaries of killed runs


def private_tempdir(prefix: str, parent: str | Path | None = None) -> Path:
    """A new folder ``<parent>/<prefix><pid>-<random>`` (system temp folder by default), so that
    ``remove_stale_tempdirs`` can tell a live run's folder from a killed one's."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def remove_stale_tempdirs(prefix: str, parent: str | Path | None = None) -> list[Path]:
    """Remove ``<prefix><pid>-*`` folders whose process is gone; returns what was removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    for leftover in parent.glob(f"{_glob_escape(prefix)}*-*"):
        pid_text = leftover.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not process_alive(int(pid_text)):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: str | Path | None = None) -> Iterator[Path]:
    """A private temporary folder for the duration of a block, removed after it (also on error).

    Folders of the same ``prefix`` left by killed processes are removed first, so interrupted work
    cleans up after itself on the next run of the same command.
    """
    remove_stale_tempdirs(prefix, parent)
    folder = private_tempdir(prefix, parent)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)
