"""Prepare: features for 15 minutes of audio on this machine's cores, then the cached re-run.

    .venv/bin/python bench/prepare_speed.py [--minutes 15] [--instrument bansuri]

Renders ``--minutes`` of demo audio (``tonesweep demo-data``, fluidsynth; not timed), then times
the CLI as a user runs it, in a fresh process each time:

- ``tonesweep prepare`` into a new dataset folder (pYIN f0 at 250 Hz decimated to 50 Hz, loudness
  and RMS at both frame rates, TFRecords; all cores: ``--workers`` default);
- the same command again: the dataset's manifest matches, so nothing is recomputed (cache hit);
- ``python -c "import cli.main"``: what any CLI call pays before it does anything.

Figures: wall seconds, seconds of audio per wall second, and the cached re-run against the fresh one. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TONESWEEP = [sys.executable, "-m", "cli"]


def timed(command: list[str]) -> float:
    """Wall seconds of a command that must succeed."""
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {proc.stderr[-2000:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--instrument", default="bansuri")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tonesweep-bench-") as tmp:
        audio, dataset = Path(tmp) / "audio", Path(tmp) / "dataset"
        timed([*TONESWEEP, "demo-data", "--out", str(audio), "--minutes", str(args.minutes),
               "--instruments", args.instrument])
        prepare = [*TONESWEEP, "prepare", "--instrument", args.instrument, "--out", str(dataset),
                   str(audio / args.instrument)]
        fresh_wall = timed(prepare)
        cached_wall = timed(prepare)
        import_wall = timed([sys.executable, "-c", "import cli.main"])
    seconds = args.minutes * 60
    print(f"prepare {args.minutes:g} min of {args.instrument} on {__import__('os').cpu_count()} cores:")
    print(f"  fresh: {fresh_wall:.1f} s wall ({seconds / fresh_wall:.1f} s of audio per s)")
    print(f"  cached re-run: {cached_wall:.2f} s wall ({cached_wall / fresh_wall:.1%} of fresh); "
          f"a bare `import cli.main` takes: {import_wall:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
