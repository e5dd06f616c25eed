"""`tonesweep <command>`: argument parsing only; each command's work lives in its own module.

The command names and flags are a contract with users and scripts: add, never rename.
Modules are imported lazily so `tonesweep --help` stays fast (TensorFlow, Ray and MLflow
each take seconds to import).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from trainers.errors import UserError

# command -> "module:function"; each function takes the parsed argparse.Namespace, returns an exit code.
_HANDLERS = {
    "demo-data": "trainers.demo_audio:cli_demo_data",
    "prepare": "trainers.dataset:cli_prepare",
    "train": "trainers.train:cli_train",
    "sweep": "search.sweep:cli_sweep",
    "ui": "results.tracking:cli_ui",
    "pareto": "results.report:cli_pareto",
    "export": "results.champion:cli_export",
    "transfer": "trainers.export.transfer:cli_transfer",
}


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tonesweep", description="Hyperparameter sweeps for small DDSP tone-transfer models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo-data", help="render demo instrument audio (and ground-truth f0) with fluidsynth")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--minutes", type=float, default=3.0, help="minutes of audio per instrument")
    p.add_argument("--instruments", type=_csv, default=["bansuri", "shehnai", "sarangi", "voice"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--soundfont", default=None, help="a .sf2 file (default: FluidR3_GM, else TimGM6mb)")

    p = sub.add_parser("prepare", help="recordings of one instrument -> cached features dataset")
    p.add_argument("--instrument", required=True)
    p.add_argument("--out", required=True, help="dataset folder to write")
    p.add_argument("audio", nargs="+", help="audio files or folders")
    p.add_argument("--frame-rates", type=lambda s: [int(x) for x in _csv(s)], default=[250, 50])
    p.add_argument("--example-seconds", type=float, default=4.0)
    p.add_argument("--hop-seconds", type=float, default=1.0, help="hop between consecutive examples")
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--workers", type=int, default=None, help="processes for feature extraction (default: all cores)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="train one model from one configuration")
    p.add_argument("--dataset", required=True)
    p.add_argument("--config", required=True, help="TOML file of hyperparameters")
    p.add_argument("--out", required=True)

    p = sub.add_parser("sweep", help="Ray Tune sweep over a search space, tracked in MLflow")
    p.add_argument("--dataset", action="append", required=True, help="prepared dataset (repeat for several instruments)")
    p.add_argument("--trials", type=int, required=True, help="trials per instrument")
    p.add_argument("--space", default=None, help="TOML search space (default: the built-in space)")
    p.add_argument("--algorithm", choices=["random", "bayesian"], default="random")
    p.add_argument("--scheduler", choices=["asha", "none"], default="asha")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start Ray on this machine)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--name", default=None, help="sweep name (default: generated)")
    p.add_argument("--resume", action="store_true", help="continue the sweep NAME after its driver died")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=None, help="override training steps per trial")
    p.add_argument("--max-params", type=int, default=None, help="reject configurations with more parameters")
    p.add_argument("--max-bytes", type=int, default=None, help="reject configurations whose float32 weights exceed this")
    p.add_argument("--storage", default=None, help="folder for Ray Tune state (default: ./runs)")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("ui", help="MLflow UI on the default store, bound to 127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--tracking-uri", default=None)

    p = sub.add_parser("pareto", help="size-vs-quality Pareto front and the smallest acceptable model")
    p.add_argument("--instrument", required=True)
    p.add_argument("--sweep", default=None, help="sweep name (default: the latest sweep)")
    p.add_argument("--tolerance", type=float, default=0.05, help="relative quality tolerance vs the best")
    p.add_argument("--max-loss", type=float, default=None, help="absolute quality bar instead of --tolerance")
    p.add_argument("--max-pitch-error", type=float, default=None, help="also require pitch error <= this (cents)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--plot", default=None, help="where to save the size-vs-quality plot (PNG)")
    p.add_argument("--no-register", action="store_true", help="do not register the winner in the MLflow Model Registry")

    p = sub.add_parser("export", help="export the champion to a TensorFlow.js bundle")
    p.add_argument("--instrument", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--run-id", default=None)
    p.add_argument("--precision", choices=["auto", "float32", "float16", "uint8"], default="auto")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--skip-js-parity", action="store_true", help="skip the Node parity check (not recommended)")

    p = sub.add_parser("transfer", help="render audio with an exported model (tone transfer)")
    p.add_argument("--model", required=True, help="exported bundle folder")
    p.add_argument("input")
    p.add_argument("output")
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries the progress lines;
    # set before TF loads, and inherited by the Ray workers this process starts. Users can override.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    module_name, func_name = _HANDLERS[args.command].split(":")
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
        return int(handler(args) or 0)
    except UserError as err:
        print(f"tonesweep: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tonesweep: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
