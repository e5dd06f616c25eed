"""Small file-writing helpers shared by every package (trainers/ is the bottom layer)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: str | Path, payload: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write `payload` as JSON so readers see the old file or the whole new one, never a part.

    The temporary file has a unique name in the same folder (so concurrent writers do not
    clobber each other's temporaries, and the final rename stays on one filesystem) and is
    fsynced before it replaces `path`.
    """
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=indent, sort_keys=sort_keys)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
