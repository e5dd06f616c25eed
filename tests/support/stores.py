"""A new SQLite tracking store, made by copying one MLflow has already made.

MLflow makes a SQLite store by running its schema migrations (about 2 s of CPU a store), and the
tests make one for nearly every sweep they run. Each test process has MLflow make one empty store, the
first time a test asks for a new one; every new store is then a copy of it, which is what those
migrations would write. Tests whose subject is a store's creation (a typo'd path, a server's first
start) do not use this.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

_TEMPLATE: list[Path] = []  # the empty store MLflow made, once per test process


def sqlite_store(path: Path) -> str:
    """The sqlite URI of ``path``; a new ``path`` starts as an empty, already migrated store."""
    path = Path(path)
    if not path.exists():
        shutil.copyfile(_template(), path)
    return f"sqlite:///{path}"


def _template() -> Path:
    if not _TEMPLATE:
        from mlflow import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="tonesweep-tests-store-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "empty.db"
        MlflowClient(f"sqlite:///{template}").search_experiments()  # MLflow creates and migrates it
        _TEMPLATE.append(template)
    return _TEMPLATE[0]
