"""`tonesweep <command>`: parse the command line, run its handler, and turn what a user can fix into
one line on stderr (exit 2), an interruption into exit 130.

The parser (``cli.parser``) and this module import nothing heavy, so `tonesweep --help` stays fast
(tests/test_layering.py checks it); each handler (``cli.commands``) imports what its command needs.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys

from cli.parser import build_parser
from common.errors import UserError
from common.logs import libraries_logging_to, library_log_path

# What the CLI process (and the Ray workers and pool workers it starts, which inherit it) needs
# in its environment before TensorFlow loads: TensorFlow's C++ start-up chatter (CUDA probing,
# oneDNN notices) off, and MLflow's artifact download progress bars (tqdm, on stderr: export and
# champion download a run's files), so a user's terminal shows tonesweep's lines only. Users can
# override either.
CLI_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
# Commands whose process loads TensorFlow (directly, or through Keras via KerasTuner's spaces).
USES_TENSORFLOW = {"train", "sweep", "export", "transfer"}  # prepare imports it only to build (not on a cache hit)
# Libraries that configure their own logging when imported (replacing handlers): imported before the
# command's library log is set up, so that it stays in place.
LOGGING_LIBRARIES = {"sweep": ("ray", "mlflow"), "pareto": ("mlflow",), "export": ("mlflow",), "ui": ("mlflow",),
                     "tracking-server": ("mlflow",)}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # flag values are checked here (common.bounds)
    except SystemExit as done:  # --help, or a wrong command line (one line already printed)
        return done.code if isinstance(done.code, int) else 2
    from cli import commands

    handler = getattr(commands, args.command.replace("-", "_"))
    try:
        commands.check_early(args)  # paths and names, before the heavy imports below
        with quiet_libraries(args.command):
            return int(handler(args) or 0)
    except UserError as err:
        print(f"tonesweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tonesweep: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, permission denied, ... while writing: one line naming the path
        print(f"tonesweep: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - only the few kinds below become one line; the rest re-raise
        line = library_refusal(err)
        if line is None:
            raise
        print(f"tonesweep: error: {line}", file=sys.stderr)
        return 2


def quiet_libraries(command: str):
    """What a command's code needs around it so that a terminal shows tonesweep's lines only: the
    environment above, TensorFlow imported with its start-up notices filtered (commands that load it),
    the libraries that set up their own logging imported first, then their loggers writing to the
    command's library log (a context manager). Scripts that run a command's library code (bench/) use it too."""
    for key, value in CLI_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    if command in USES_TENSORFLOW:
        from trainers.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    for library in LOGGING_LIBRARIES.get(command, ()):
        importlib.import_module(library)
    return libraries_logging_to(library_log_path(command))  # their INFO lines and tracebacks: a file


SYMLINK_LOOP = "Symlink loop from"
LOOP_ADVICE = "a symbolic link that leads back to itself; fix or remove the link, or give another path"


def library_refusal(err: Exception) -> str | None:
    """The one line for an operating system's refusal that a library wraps in its own type: Python
    3.11's pathlib meeting a symlink loop (RuntimeError), TensorFlow writing a file onto a full disk or
    without permission (``ResourceExhaustedError``/``PermissionDeniedError``: "PATH; REASON"). None for
    anything else."""
    if isinstance(err, RuntimeError) and str(err).startswith(SYMLINK_LOOP):
        where = str(err).removeprefix(SYMLINK_LOOP).strip(" '")
        return f"{where}: {LOOP_ADVICE}"
    kind = type(err)
    if kind.__module__.startswith("tensorflow") and kind.__name__ in ("ResourceExhaustedError", "PermissionDeniedError"):
        where, _, reason = str(getattr(err, "message", err)).partition("; ")
        code = errno.ENOSPC if "No space left" in reason else errno.EACCES if "ermission" in reason else None
        if code is not None:
            return os_error_line(OSError(code, reason.strip(), where.strip()))
    return None


def os_error_line(err: OSError) -> str:
    """An operating system's refusal as one line: the path, what happened, what to check."""
    where = err.filename or "tonesweep"
    if err.errno == errno.ELOOP:
        return f"{where}: {LOOP_ADVICE}"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: {err.strerror}; free some space there and run the command again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where}: {err.strerror}; check the permissions there, or choose another path"
    return f"{where}: {err.strerror or err}; check free space and permissions there"


if __name__ == "__main__":
    sys.exit(main())
