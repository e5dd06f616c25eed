"""Libraries' own log records go to a file, not to the user's terminal.

Ray, MLflow (and the alembic migrations it runs), Optuna and the AWS and HTTP clients log INFO
lines and warnings ("Started a local Ray instance", "Creating initial MLflow database tables",
token-authentication notices) and, when something inside them fails, tracebacks. A tonesweep command
shows its own lines and one-line errors; while it runs, these loggers write to a log file in this
account's folder (``<tmp>/tonesweep-<uid>/logs/<command>.log``, rotated), where a failure can still
be read. Their own handlers are put back when the command ends.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
from pathlib import Path
from typing import Iterator

from common.files import account_folder

LIBRARIES = ("ray", "mlflow", "alembic", "optuna", "keras_tuner", "urllib3", "botocore", "boto3", "filelock",
             "absl", "numba", "matplotlib", "fsspec", "pyarrow")
MAX_BYTES, BACKUPS = 5 * 2**20, 1


def library_log_path(name: str) -> Path:
    """Where a command's library log goes: ``<tmp>/tonesweep-<uid>/logs/<name>.log``."""
    return account_folder("logs") / f"{name}.log"


@contextlib.contextmanager
def libraries_logging_to(path: Path, libraries: tuple[str, ...] = LIBRARIES) -> Iterator[Path]:
    """While the block runs, the libraries' loggers write only to ``path`` (appended, rotated)."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = {}
    for name in libraries:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate)
        logger.handlers = [handler]
        logger.propagate = False
    try:
        yield path
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
        handler.close()
