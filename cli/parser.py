"""The command line of `tonesweep`: every command, flag and default, as argparse spells them.

The command names and flags are a contract with users and scripts: add, never rename. Choices and
defaults come from the modules that own them (search algorithms and schedulers, weight precisions,
the selector's bars, the default tracking store); this module imports nothing heavy, so
`tonesweep --help` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import sys

from common.bounds import ABOVE_ONE, AT_LEAST_ZERO, COUNT, FRACTION, PORT, PORT_OR_ANY, POSITIVE, SPEED_BAR, WHOLE_OR_OFF
from common.constants import PRECISIONS
from results.criteria import DEFAULT_MIN_RTF, DEFAULT_TOLERANCE
from results.layout import DEFAULT_TRACKING_URI
from search.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, DEFAULT_SCHEDULER, SCHEDULERS
from search.recycling import DEFAULT_WORKER_MEMORY_MIB
from search.settings import DEFAULT_KEEP_FRONT, DEFAULT_REDUCTION_FACTOR, DEFAULT_STORAGE

TRACKING_HELP = f"MLflow store (default: $MLFLOW_TRACKING_URI or {DEFAULT_TRACKING_URI})"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _frame_rates(text: str) -> list[int]:
    """Comma-separated frame rates, each a whole number of at least 1 (prepare checks they fit 16 kHz)."""
    try:
        rates = [COUNT.parse(part) for part in _csv(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err} (frames per second, e.g. 250,50)") from None
    if not rates:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one rate, e.g. 250,50")
    return rates


class Parser(argparse.ArgumentParser):
    """argparse, answering a wrong command line in one line (as every other user error): what is wrong,
    and where the command's flags are listed; exit 2."""

    def error(self, message: str):
        message = message.removeprefix("argument ")
        print(f"tonesweep: error: {message}; see `{self.prog} --help`", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tonesweep", description="Hyperparameter sweeps for small DDSP tone-transfer models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-data", help="render demo instrument audio (and ground-truth f0) with fluidsynth")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--minutes", type=POSITIVE.argument(), default=3.0, help="minutes of audio per instrument (default: 3)")
    p.add_argument("--instruments", type=_csv, default=["bansuri", "shehnai", "sarangi", "voice"],
                   help="comma-separated instruments to render (default: bansuri,shehnai,sarangi,voice)")
    p.add_argument("--seed", type=int, default=0, help="composition seed: same seed, same audio (default: 0)")
    p.add_argument("--soundfont", default=None, help="a .sf2 file (default: FluidR3_GM, else TimGM6mb)")

    p = sub.add_parser("prepare", help="recordings of one instrument -> cached features dataset")
    p.add_argument("--instrument", required=True, help="the instrument's name (letters, digits, . _ -), e.g. bansuri")
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("audio", nargs="+", help="audio files or folders")
    p.add_argument("--frame-rates", type=_frame_rates, default=[250, 50],
                   help="control frames per second to compute features at, comma-separated (default: 250,50)")
    p.add_argument("--fmin", default="C2", help="lowest pitch tracked, Hz or a note name (default: C2 = 65.4 Hz)")
    p.add_argument("--fmax", default="C7", help="highest pitch tracked, Hz or a note name (default: C7 = 2093 Hz)")
    p.add_argument("--example-seconds", type=POSITIVE.argument(), default=4.0, help="length of a training example (default: 4)")
    p.add_argument("--hop-seconds", type=POSITIVE.argument(), default=1.0, help="seconds between the starts of consecutive examples (default: 1)")
    p.add_argument("--validation-fraction", type=FRACTION.argument(), default=0.15,
                   help="share of the audio held out for validation, in whole regions (default: 0.15)")
    p.add_argument("--workers", type=COUNT.argument(), default=None, help="processes for feature extraction (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split (default: 0)")
    p.add_argument("--force", action="store_true",
                   help="write into a --out folder that holds other files too (they are kept; default: refuse)")

    p = sub.add_parser("train", help="train one model from one configuration")
    p.add_argument("--dataset", required=True, help="a folder written by `tonesweep prepare`")
    p.add_argument("--config", required=True, help="TOML file of hyperparameters")
    p.add_argument("--out", required=True, help="trial folder to write (resumes from its checkpoint if present)")

    p = sub.add_parser("sweep", help="Ray Tune sweep over a search space, tracked in MLflow")
    p.add_argument("--dataset", action="append", required=True, help="prepared dataset (repeat for several instruments)")
    p.add_argument("--trials", type=COUNT.argument(), required=True, help="trials per instrument")
    p.add_argument("--space", default=None, help="TOML search space (default: the built-in space)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=DEFAULT_ALGORITHM,
                   help="suggestions: KerasTuner random/bayesian (val_loss), or Optuna NSGA-II / NSGA-III / multi-objective "
                        f"TPE over (model bytes, val_loss) (default: {DEFAULT_ALGORITHM})")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=DEFAULT_SCHEDULER,
                   help="early stopping: multi-objective ASHA over (model bytes, val_loss), ASHA on val_loss, "
                        f"or none (default: {DEFAULT_SCHEDULER})")
    p.add_argument("--grace-period", type=COUNT.argument(), default=None, metavar="STEPS",
                   help="(MO-)ASHA: the first rung, in training steps (default: one progress report, about 1/20 "
                        "of --steps)")
    p.add_argument("--reduction-factor", type=ABOVE_ONE.argument(), default=DEFAULT_REDUCTION_FACTOR, metavar="ETA",
                   help="(MO-)ASHA: 1 in ETA trials goes on at each rung; rungs at grace x ETA^k below --steps "
                        f"(default: {DEFAULT_REDUCTION_FACTOR:g})")
    p.add_argument("--keep-front", action=argparse.BooleanOptionalAction, default=DEFAULT_KEEP_FRONT,
                   help="MO-ASHA: a trial on its rung's size-quality front so far goes on even beyond the 1 in ETA "
                        "(default: on; --no-keep-front: the quota alone)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    p.add_argument("--tracking-uri", default=None, help=TRACKING_HELP)
    p.add_argument("--name", default=None, help="sweep name (default: generated)")
    p.add_argument("--resume", action="store_true", help="continue the sweep NAME after its driver died")
    p.add_argument("--worker-memory-mib", type=WHOLE_OR_OFF.argument(), default=DEFAULT_WORKER_MEMORY_MIB,
                   metavar="MIB", help="a trial worker holding more than MIB MiB after a trial is not reused: the next "
                                       f"trial starts in a fresh one (0 = always reuse; default: {DEFAULT_WORKER_MEMORY_MIB})")
    p.add_argument("--time-budget", type=POSITIVE.argument(), default=None, metavar="SECONDS",
                   help="per instrument: start no trial after SECONDS of its search and stop the running ones at "
                        "their next step (recorded STOPPED); with --trials, whichever comes first; a --resume "
                        "counts again from its start, and after a budget that ran out only finishes the trials "
                        "that were running (default: none)")
    p.add_argument("--cpus-per-trial", type=POSITIVE.argument(), default=1.0, help="CPUs each trial reserves (default: 1)")
    p.add_argument("--steps", type=COUNT.argument(), default=None, help="training steps per trial (default: the space's fixed steps, else the trainer's default)")
    p.add_argument("--max-params", type=COUNT.argument(), default=None, help="reject configurations with more parameters, before training (default: none)")
    p.add_argument("--max-bytes", type=COUNT.argument(), default=None,
                   help="reject configurations whose shipped float32 bundle would exceed this many bytes (default: none)")
    p.add_argument("--min-rtf", type=SPEED_BAR.argument(), default=None,
                   help="reject configurations estimated to run slower than this many times real time in TF.js's "
                        "wasm backend, before training (default: none)")
    p.add_argument("--storage", default=None,
                   help=f"where the sweep's Ray state, trial folders and bookkeeping live: a folder (default: ./{DEFAULT_STORAGE}) "
                        "or s3://BUCKET/PREFIX on an S3-compatible store (AWS_ENDPOINT_URL and credentials from "
                        "the environment); on a cluster, a place every node reaches")
    p.add_argument("--seed", type=int, default=0,
                   help="search seed; each instrument derives its own from it (default: 0)")
    p.add_argument("--warm-start", action="store_true",
                   help="each instrument's search first tries the configurations on the fronts of the instruments "
                        "this sweep swept before it (up to a quarter of --trials)")
    p.add_argument("--warm-start-from", action="append", default=[], metavar="SWEEP",
                   help="... and those on the fronts of every instrument of the earlier sweep SWEEP in the same "
                        "tracking store (repeat for several; default: none)")
    p.add_argument("--xla-cache", default=None,
                   help="folder for XLA's compiled training steps, reused when the same configuration runs again "
                        "(a retried trial, a repeated sweep); 'off' for none (default: $TONESWEEP_XLA_CACHE, else off)")

    p = sub.add_parser("ui", help="MLflow UI on the default store, bound to 127.0.0.1")
    p.add_argument("--port", type=PORT.argument(), default=5000, help="port on 127.0.0.1 (default: 5000)")
    p.add_argument("--tracking-uri", default=None, help=TRACKING_HELP)

    p = sub.add_parser("tracking-server",
                       help="a shared MLflow tracking server on PostgreSQL (team mode), bound to 127.0.0.1")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; another than 127.0.0.1 exposes every run to the network, without "
                        "a password (default: 127.0.0.1)")
    p.add_argument("--port", type=PORT.argument(), default=5000, help="port of the MLflow server (default: 5000)")
    p.add_argument("--backend-store-uri", default=None,
                   help="an existing database, e.g. postgresql+psycopg://USER@HOST:PORT/DB (default: run a "
                        "PostgreSQL here, in --pg-data)")
    p.add_argument("--artifact-root", default=None,
                   help="where run artifacts go: a folder or s3://BUCKET/PREFIX, served through the server "
                        "(default: ./tracking/artifacts)")
    p.add_argument("--pg-data", default=None,
                   help="data folder of the PostgreSQL tonesweep runs; created if missing or empty, reused "
                        "after (default: ./tracking/postgres)")
    p.add_argument("--pg-port", type=PORT.argument(), default=None,
                   help="port of that PostgreSQL, on 127.0.0.1 only (default: a free port)")

    p = sub.add_parser("serve", help="the tone-transfer page and exported bundles, on 127.0.0.1")
    p.add_argument("--models", default=".",
                   help="an export bundle folder, or a folder of them (e.g. demo/export) (default: .)")
    p.add_argument("--port", type=PORT_OR_ANY.argument(), default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; another than 127.0.0.1 exposes the page to the network (default: 127.0.0.1)")

    p = sub.add_parser("pareto", help="size-vs-quality Pareto front and the smallest acceptable model")
    p.add_argument("--instrument", required=True, help="instrument whose sweeps to read")
    p.add_argument("--sweep", default=None, help="sweep name (default: the latest sweep)")
    p.add_argument("--tolerance", type=AT_LEAST_ZERO.argument(), default=DEFAULT_TOLERANCE,
                   help=f"relative quality tolerance vs the best (default: {DEFAULT_TOLERANCE:g})")
    p.add_argument("--max-loss", type=POSITIVE.argument(), default=None, help="absolute quality bar instead of --tolerance (default: none)")
    p.add_argument("--min-rtf", type=SPEED_BAR.argument(), default=DEFAULT_MIN_RTF,
                   help="the winner must run at least this many times faster than real time in TF.js's wasm backend "
                        f"(one desktop core; about real time on a phone; 0 = no bar; default: {DEFAULT_MIN_RTF:g})")
    p.add_argument("--max-bytes", type=COUNT.argument(), default=None, help="the winner's shipped bundle must be at most this many bytes (default: none)")
    p.add_argument("--max-pitch-error", type=AT_LEAST_ZERO.argument(), default=None, help="also require pitch error <= this (cents) (default: none)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="output: table for people, csv or json for scripts (default: table)")
    p.add_argument("--tracking-uri", default=None, help=TRACKING_HELP)
    p.add_argument("--plot", default=None, help="where to save the size-vs-quality plot, PNG/SVG/PDF (default: ./pareto-INSTRUMENT-SWEEP.png)")
    p.add_argument("--no-register", action="store_true", help="do not register the winner in the MLflow Model Registry")

    p = sub.add_parser("export", help="export the champion to a TensorFlow.js bundle")
    p.add_argument("--instrument", required=True, help="instrument whose champion (or --run-id) to export")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--run-id", default=None,
                   help="an MLflow run id or a local trial folder (default: the registered champion)")
    p.add_argument("--precision", choices=["auto", *PRECISIONS], default="auto",
                   help="weight precision; auto = the registry's choice, else the smallest acceptable (default: auto)")
    p.add_argument("--tracking-uri", default=None, help=TRACKING_HELP)
    p.add_argument("--skip-js-parity", action="store_true", help="skip the Node parity check (not recommended)")
    p.add_argument("--force", action="store_true",
                   help="write into a --out folder that holds other files too (they are kept; default: refuse)")

    p = sub.add_parser("transfer", help="render audio with an exported model (tone transfer)")
    p.add_argument("--model", required=True, help="exported bundle folder")
    p.add_argument("input", help="a recording (voice or another instrument), any common audio format")
    p.add_argument("output", help="the rendering to write (.wav, .flac, .ogg, .aiff)")
    return parser
