"""The command line as a user meets it: one line per error on stderr, nothing from TensorFlow's C++ start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.parser import build_parser
from trainers.runtime import is_start_up_notice

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell has it
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_command_that_loads_tensorflow_prints_only_its_own_error(tmp_path):
    proc = run_cli("transfer", "--model", str(tmp_path / "nowhere"), "in.wav", "out.wav", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("tonesweep: error: ") and "nowhere" in lines[0], proc.stderr
    assert not [line for line in lines if is_start_up_notice(line)]
    assert proc.stdout == ""


def test_every_command_has_a_handler():
    from cli import commands

    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public listing
    for name in names:
        assert callable(getattr(commands, name.replace("-", "_"))), name


def test_every_option_says_what_it_does_and_its_default():
    import argparse

    parser = build_parser()
    missing = []
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001 - as above
        for action in sub._actions:  # noqa: SLF001
            if isinstance(action, argparse._HelpAction) or action.required or not action.option_strings:  # noqa: SLF001
                continue
            flag = isinstance(action, argparse._StoreTrueAction)  # noqa: SLF001 - off unless given
            if not action.help or len(action.help) < 12 or not (flag or "default" in action.help):
                missing.append(f"{name} {action.option_strings[0]}: {action.help!r}")
    assert not missing, "\n".join(missing)


def test_libraries_log_to_a_file_not_to_the_terminal(tmp_path):
    """MLflow logs INFO lines as it creates a store's tables (and Ray its start-up notices): a command
    shows only its own lines; the libraries' go to their log file."""
    from common.logs import library_log_path

    log = library_log_path("pareto")
    before = log.read_text() if log.exists() else ""
    (tmp_path / "new.db").touch()  # an empty SQLite file: MLflow creates its tables in it (pareto reads only a store that exists)
    proc = run_cli("pareto", "--instrument", "oboe", "--tracking-uri", f"sqlite:///{tmp_path / 'new.db'}", cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("tonesweep: error: "), proc.stderr
    assert "Creating initial MLflow database tables" in log.read_text()[len(before):]


def test_library_logging_is_routed_while_a_command_runs_and_restored_after(tmp_path, capsys):
    import logging

    import mlflow  # noqa: F401 - configures its loggers as it imports (INFO), as in a command

    from common.logs import libraries_logging_to

    ray_logger = logging.getLogger("ray")
    handlers = list(ray_logger.handlers)
    with libraries_logging_to(tmp_path / "libs.log"):
        ray_logger.warning("a notice from a library")
        logging.getLogger("mlflow.store").info("an INFO line")
    assert capsys.readouterr().err == ""
    text = (tmp_path / "libs.log").read_text()
    assert "a notice from a library" in text and "an INFO line" in text
    assert ray_logger.handlers == handlers
