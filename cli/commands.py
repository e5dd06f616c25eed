"""Every `tonesweep <command>` handler: arguments in, one library call, printing out.

This is the only layer that reads argparse namespaces and prints; the libraries below take typed
arguments, return values, report progress through callbacks, and raise ``UserError`` for anything
the user can fix (``cli.main`` prints those as one line on stderr, exit code 2). Heavy libraries
(TensorFlow, Ray, MLflow) are imported inside each handler so `tonesweep --help` stays fast.

Exit codes: 0 done; 1 the work ran but its result is a "no" (a failed trial, a parity check below
its bar, no acceptable candidate); 2 a user error; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
from pathlib import Path


def say(text: str) -> None:
    """A result or progress line (stdout)."""
    print(text, flush=True)


def note(prefix: str):
    """A printer of informational lines on stderr, e.g. ``prepare: cache hit ...``."""
    return lambda text: print(f"{prefix}: {text}", file=sys.stderr, flush=True)


def warn(text: str) -> None:
    print(f"tonesweep: warning: {text}", file=sys.stderr, flush=True)


def fail(text: str) -> None:
    """A "no" that is not a user error (exit code 1): one line on stderr."""
    print(f"tonesweep: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- data


def demo_data(args) -> int:
    from trainers.data.demo import render_demo

    render_demo(args.out, args.minutes, list(args.instruments), seed=args.seed, soundfont=args.soundfont,
                info=note("demo-data"))
    return 0


def prepare(args) -> int:
    from trainers.data.features import FeatureParams, parse_pitch
    from trainers.data.prepare import PrepareOptions, prepare_dataset

    pitch = {"f0_min_hz": parse_pitch(args.fmin, "--fmin"), "f0_max_hz": parse_pitch(args.fmax, "--fmax")}
    options = PrepareOptions(
        instrument=args.instrument, example_seconds=args.example_seconds, hop_seconds=args.hop_seconds,
        validation_fraction=args.validation_fraction, seed=args.seed,
        features=FeatureParams(frame_rates=tuple(args.frame_rates), **pitch),
    )
    prepare_dataset(args.audio, args.out, options, workers=args.workers, warn=warn, info=note("prepare"),
                    force=args.force)
    return 0


# ---------------------------------------------------------------------------- training and search


def train(args) -> int:
    from trainers.model.config import load_config_file
    from trainers.training.train import TrialFailed, train_trial

    config = load_config_file(args.config)  # fails fast, naming the field

    def progress(d: dict) -> None:
        say(f"step {d['step']:>6}  train_loss {d['train_loss']:.4f}  val_loss {d['val_loss']:.4f}  "
            f"{d['elapsed_s']:.1f}s")

    try:
        m = train_trial(args.dataset, config, args.out, report=progress)
    except TrialFailed as err:
        fail(f"trial FAILED: {err.reason} (see {Path(args.out) / 'metrics.json'})")
        return 1
    say(f"finished {m['steps']} steps in {m['train_time_s']:.1f}s: quality {m['quality_float32']:.4f} "
        f"(float16 {m['quality_float16']:.4f}, uint8 {m['quality_uint8']:.4f}), "
        f"pitch error {m['pitch_error_cents_float32']:.1f} cents, {m['params']} params; wrote {args.out}")
    return 0


def sweep_settings(args):
    """The ``SweepSettings`` of a `sweep` command line (a generated name unless --name or --resume)."""
    from search.settings import SweepSettings, default_sweep_name

    if not hasattr(args, "generated_name"):  # once per command: the early checks and the sweep see one name
        args.generated_name = None if args.name or args.resume else default_sweep_name()
    return SweepSettings(
        datasets=list(args.dataset), trials=args.trials, space=args.space, algorithm=args.algorithm,
        scheduler=args.scheduler, address=args.address, tracking_uri=args.tracking_uri,
        name=args.name or args.generated_name,  # --resume without --name: refused by the checks
        resume=args.resume, cpus_per_trial=args.cpus_per_trial, steps=args.steps,
        max_params=args.max_params, max_bytes=args.max_bytes, min_rtf=args.min_rtf, storage=args.storage,
        seed=args.seed, worker_memory_mib=args.worker_memory_mib, grace_period=args.grace_period,
        reduction_factor=args.reduction_factor, keep_front=args.keep_front,
        warm_start=args.warm_start, warm_start_from=list(args.warm_start_from), time_budget_s=args.time_budget,
        **({"xla_cache": args.xla_cache} if args.xla_cache else {}),
    )


def _resume_command(args, name: str) -> str:
    """The command line that continues this sweep."""
    again = ["tonesweep", *sys.argv[1:]] + ([] if args.name else ["--name", name]) + ([] if args.resume else ["--resume"])
    return shlex.join(again)


def sweep(args) -> int:
    from results.layout import resolve_tracking_uri
    from search.interrupts import StoreLost, SweepInterrupted
    from search.summary import format_summary
    from search.sweep import run_sweep

    settings = sweep_settings(args)
    name = settings.name
    try:
        results = run_sweep(settings, say=say)
    except SweepInterrupted as stop:
        fail(f"sweep {name} interrupted ({signal.Signals(stop.signal_number).name}); finished trials are kept and "
             f"running ones marked INTERRUPTED; continue with: {_resume_command(args, name)}")
        return 128 + stop.signal_number
    except StoreLost as lost:
        from cluster.object_store import store_place

        fail(f"--storage {args.storage}: the object store {store_place()} stopped answering ({lost.reason}); the "
             f"sweep stopped, running trials marked INTERRUPTED; once it answers, continue with: "
             f"{_resume_command(args, name)}")
        return 2
    say(format_summary(results, name, resolve_tracking_uri(args.tracking_uri)))
    return 0


# ---------------------------------------------------------------------------- checks before heavy imports


def check_early(args) -> None:
    """What a command can check of its flags and paths without TensorFlow, Ray or MLflow, run before
    they are imported (``cli.main``): a mistake is answered in about a second. The command's own
    checks run the same functions again, for callers of the library."""
    check = EARLY_CHECKS.get(args.command)
    if check is not None:
        check(args)


def _sweep_early(args) -> None:
    from search.settings import early_checks

    early_checks(sweep_settings(args))


def _train_early(args) -> None:
    from trainers.data.dataset import check_dataset_files, read_manifest
    from trainers.model.config import load_config_file

    load_config_file(args.config)
    check_dataset_files(args.dataset, read_manifest(args.dataset))  # its shards whole, before TensorFlow loads


def _export_early(args) -> None:
    from common.paths import check_name, check_output_folder

    check_name(args.instrument, "--instrument")
    check_output_folder(Path(args.out).absolute(), "--out")


def _transfer_early(args) -> None:
    from trainers.export.transfer import check_transfer_paths

    check_transfer_paths(args.model, args.input, args.output)


EARLY_CHECKS = {"sweep": _sweep_early, "train": _train_early, "export": _export_early, "transfer": _transfer_early}


# ---------------------------------------------------------------------------- results


def ui(args) -> int:
    from results.layout import resolve_tracking_uri
    from server.mlflow_server import run_ui

    with stop_requests() as stopped, server_log("ui") as log:
        ended = run_ui(resolve_tracking_uri(args.tracking_uri), args.port, say, log, stopped)
    return _served(ended)


def tracking_server(args) -> int:
    from server.mlflow_server import TrackingServerSettings, run_tracking_server

    settings = TrackingServerSettings(host=args.host, port=args.port, backend_store_uri=args.backend_store_uri,
                                      artifact_root=args.artifact_root, pg_data=args.pg_data, pg_port=args.pg_port)
    with stop_requests() as stopped, server_log("tracking-server") as log:
        ended = run_tracking_server(settings, say, note("tracking-server"), warn, log, stopped)
    return _served(ended)


@contextlib.contextmanager
def server_log(command: str):
    """Where the lines a server command's children print go (MLflow's and uvicorn's INFO lines, their
    warnings): the command's log file beside the libraries' (``common.logs``), named once on the
    terminal; a child that dies is still reported in one line with its last words."""
    from common.logs import library_log_path

    path = library_log_path(command)
    say(f"{command}: the servers' own log: {path}")
    with open(path, "a", encoding="utf-8") as handle:
        def write(line: str) -> None:
            try:
                handle.write(line)
                handle.flush()
            except ValueError:  # a child's last lines, read after the command closed the log
                pass

        yield write


@contextlib.contextmanager
def stop_requests():
    """A ``stopped()`` poll that Ctrl-C, SIGTERM (a supervisor) and SIGHUP (the terminal closed) turn
    true. A flag, not an exception: a server's children are stopped in order, by the code that
    started them, whatever line the signal lands on."""
    requested = []
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, lambda number, _: requested.append(number)) for number in handled}
    try:
        yield lambda: bool(requested)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _served(ended: str | None) -> int:
    """Exit code of a server command: 0 when asked to stop, 1 when a process it ran died."""
    if ended is None:
        return 0
    fail(f"{ended}; every other process it started was stopped")
    return 1


def serve(args) -> int:
    import threading

    from web.server import serve as serve_page

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a supervisor's stop frees the port too
    try:
        serve_page(args.models, args.host, args.port, say, stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def pareto(args) -> int:
    from results.criteria import Criteria
    from results.report import run_pareto

    criteria = Criteria(args.tolerance, args.max_loss, args.max_pitch_error, args.min_rtf, args.max_bytes)
    report = run_pareto(args.instrument, args.sweep, criteria,
                        args.tracking_uri, args.plot, register=not args.no_register)
    say(report.render(args.format))
    for line in report.notes:  # stdout stays machine-readable for csv and json
        print(line, file=sys.stdout if args.format == "table" else sys.stderr)
    if report.selection.winner is None:
        fail(f"no candidate qualifies: {report.selection.reason}")
        return 1
    return 0


# ---------------------------------------------------------------------------- export and transfer


def export(args) -> int:
    from common.files import scratch_dir
    from results.champion import choose_precision, resolve_trial
    from trainers.export.bundle import ExportParityError, export_bundle, local_trial, summary_text
    from web.assets import page_files

    with scratch_dir("tonesweep-export-") as tmp:
        if args.run_id and Path(args.run_id).is_dir():
            source = local_trial(args.run_id)
        else:
            source = resolve_trial(args.instrument, args.run_id, args.tracking_uri, tmp / "download")
        precision = choose_precision(args.precision, source.precision, source.trial_dir)
        try:  # the bundle carries the page (play.html, page/), so it plays wherever it is hosted
            card = export_bundle(source, args.out, args.instrument, precision, js_parity=not args.skip_js_parity,
                                 force=args.force, extra_files=page_files())
        except ExportParityError as err:
            fail(f"export FAILED parity check: {err}")
            return 1
    say(summary_text(args.out, card))
    return 0


def transfer(args) -> int:
    from trainers.export.transfer import transfer_file

    summary = transfer_file(args.model, args.input, args.output)
    say(f"wrote {args.output}: {summary['seconds']:.1f} s rendered in {summary['render_s']} s "
        f"(pitch shifted {summary['octaves']:+d} octaves, level {summary['level_shift_db']:+.1f} dB)")
    return 0
