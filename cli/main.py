"""`tonesweep <command>`: parse the command line, run its handler, and turn what a user can fix into
one line on stderr (exit 2), an interruption into exit 130.

The parser (``cli.parser``) and this module import nothing heavy, so `tonesweep --help` stays fast
(tests/test_layering.py checks it); each handler (``cli.commands``) imports what its command needs.
"""

from __future__ import annotations

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
    for key, value in CLI_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    if args.command in USES_TENSORFLOW:
        from trainers.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    for library in LOGGING_LIBRARIES.get(args.command, ()):
        importlib.import_module(library)
    from cli import commands

    handler = getattr(commands, args.command.replace("-", "_"))
    try:
        with libraries_logging_to(library_log_path(args.command)):  # their INFO lines and tracebacks: a file
            return int(handler(args) or 0)
    except UserError as err:
        print(f"tonesweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tonesweep: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # disk full, permission denied, ... while writing: one line naming the path
        where = err.filename or "tonesweep"
        print(f"tonesweep: error: {where}: {err.strerror or err}; check free space and permissions there",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
