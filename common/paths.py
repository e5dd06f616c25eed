"""Names stay names, paths stay inside their roots, outputs stay apart from inputs.

- ``check_name``: instrument, sweep and run names are checked against one safe pattern where they
  enter (command line, dataset manifest); a name can then never be a path (no ``/``, no ``..``,
  no leading dot).
- ``contained``: every path built from a name, or read from a file (a manifest's shard list, a
  model card's file list), is checked to stay inside its root, after resolving symlinks.
- ``check_apart``: an output equal to an input, inside an input folder, or holding an input is
  refused before any work starts, so no command can overwrite or delete what it reads;
- ``check_output_folder`` / ``check_output_file``: an output that cannot be written (read-only
  place, a file where a folder goes or the reverse, an extension the writer cannot produce) is
  refused before the heavy work, not after it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from common.errors import UserError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_safe_name(value: object) -> bool:
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def check_name(value: object, field: str) -> str:
    """``value`` when it is a safe name, else a one-line ``UserError`` naming ``field``."""
    if not is_safe_name(value):
        raise UserError(f"{field} {value!r}: not a usable name; use {NAME_RULE}")
    return value  # type: ignore[return-value]


def contained(root: str | Path, relative: str | Path, field: str) -> Path:
    """``root / relative``, refused (``UserError`` naming ``field``) unless it resolves inside ``root``."""
    root = Path(root)
    path = root / relative
    if Path(relative).is_absolute() or not _within(path.resolve(), root.resolve()):
        raise UserError(f"{field} {str(relative)!r}: leads outside {root}; use a plain name inside it")
    return path


def check_apart(output: str | Path, inputs: Iterable[str | Path], field: str) -> None:
    """Refuse an output that is an input, lies inside an input folder, or contains an input."""
    out = Path(output).resolve()
    for item in inputs:
        source = Path(item).resolve()
        if out == source or _within(out, source) or _within(source, out):
            relation = ("is" if out == source else "is inside" if _within(out, source) else "contains")
            raise UserError(f"{field} {output}: {relation} the input {item}; write the output somewhere else")


def _within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or below it (both resolved)."""
    return path == folder or folder in path.parents


# ---------------------------------------------------------------------------- output locations


def is_uri(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` other than ``file://`` (an object-store or server URI, not a folder)."""
    text = str(location)
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text)) and not text.startswith("file://")


def local_path(location: str) -> Path:
    """A folder given as a path or a ``file://`` URI, as a path."""
    return Path(location[len("file://"):] if location.startswith("file://") else location)


def check_output_folder(path: str | Path, field: str) -> Path:
    """Refuse, before any work, a folder output that cannot be written: a file in its place, or a
    nearest existing ancestor that is not a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{field} {path}: is an existing file, not a folder; choose a folder path")
    _check_writable_ancestor(path, field)
    return path


def check_output_file(path: str | Path, field: str, extensions: Iterable[str]) -> Path:
    """Refuse, before any work, a file output with an extension the writer cannot produce, a folder
    in its place, or a location that cannot be written."""
    path = Path(path)
    allowed = tuple(e.lower() for e in extensions)
    if path.is_dir():
        raise UserError(f"{field} {path}: is a folder, not a file; give a file name")
    if not path.name.lower().endswith(allowed):
        raise UserError(f"{field} {path}: cannot write this file type; use a name ending in {', '.join(allowed)}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{field} {path}: exists and is not writable; choose another name or fix its permissions")
    _check_writable_ancestor(path.parent, field, for_file=path)
    return path


def _check_writable_ancestor(folder: Path, field: str, for_file: Path | None = None) -> None:
    """The nearest existing ancestor of ``folder`` (itself included) must be a writable folder."""
    probe = folder.absolute()
    while not probe.exists():
        probe = probe.parent
    target = for_file or folder
    if not probe.is_dir():
        raise UserError(f"{field} {target}: {probe} is a file, so nothing can be created below it; choose another path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{field} {target}: {probe} is not writable; choose a folder you can write to")
