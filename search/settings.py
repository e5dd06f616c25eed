"""What a sweep is asked to do (``SweepSettings``), and every check that needs no Ray (``preflight``).

Everything a user can get wrong is checked here, before anything is created: flags, names, datasets,
spaces (every value they can produce, through the trainer's own ``validate_config``), the storage
place, the tracking store (reachable within seconds) and the cluster address. Light at import (no
Ray, no TensorFlow, no MLflow): the CLI takes its choices and defaults from here.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from common.bounds import ABOVE_ONE, COUNT, POSITIVE, SPEED_BAR, WHOLE_OR_OFF
from common.errors import UserError
from common.paths import check_name
from search.algorithms import ALGORITHMS, DEFAULT_ALGORITHM, DEFAULT_SCHEDULER, SCHEDULERS
from search.recycling import DEFAULT_WORKER_MEMORY_MIB

if TYPE_CHECKING:
    from search.place import SweepPlace
    from spaces.translate import SearchSpace

# XLA's persistent compilation cache for trial workers: off unless asked for (docs/architecture.md, section 3).
XLA_CACHE_ENV = "TONESWEEP_XLA_CACHE"
DEFAULT_STORAGE = "runs"
# (MO-)ASHA's defaults, chosen by replaying recorded pools (bench/README.md, "MO-ASHA's settings"): the first
# rung at the first progress report, 1 in 4 goes on at a rung, and MO-ASHA keeps each rung's front so far.
DEFAULT_GRACE_REPORTS = 1
DEFAULT_REDUCTION_FACTOR = 4.0
DEFAULT_KEEP_FRONT = True


def default_xla_cache() -> str:
    """$TONESWEEP_XLA_CACHE, else "off"."""
    return os.environ.get(XLA_CACHE_ENV) or "off"


def default_sweep_name() -> str:
    return "sweep-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")


@dataclass
class SweepSettings:
    """Everything a sweep needs; the CLI builds it from the command line."""

    datasets: list[str]
    trials: int
    space: str | None = None
    algorithm: str = DEFAULT_ALGORITHM
    scheduler: str = DEFAULT_SCHEDULER
    address: str | None = None
    tracking_uri: str | None = None
    name: str | None = None
    resume: bool = False
    cpus_per_trial: float = 1.0
    steps: int | None = None
    max_params: int | None = None
    max_bytes: int | None = None
    min_rtf: float | None = None      # reject configurations estimated slower than this (wasm real-time factor)
    storage: str | None = None        # None: DEFAULT_STORAGE
    seed: int = 0
    report_every: int | None = None   # None: about 20 reports per trial (at most every 50 steps)
    grace_period: int | None = None   # (MO-)ASHA's first rung in steps; None: DEFAULT_GRACE_REPORTS reports
    reduction_factor: float = DEFAULT_REDUCTION_FACTOR  # (MO-)ASHA's eta: 1 in eta trials goes on at a rung
    keep_front: bool = DEFAULT_KEEP_FRONT  # MO-ASHA: a trial on its rung's front so far goes on beyond the quota
    train_fn: str | Callable = "trainers.training.train:train_trial"
    size_fn: str | Callable = "trainers.model.size:size_report"
    reference_fn: str | Callable = "trainers.training.reference:reference_point"  # hypervolume box, per dataset
    xla_cache: str | None = field(default_factory=default_xla_cache)  # folder on each node; "off" or None: none
    worker_memory_mib: int | None = DEFAULT_WORKER_MEMORY_MIB  # recycle a trial worker above this after a trial
    # False: every finished trial evaluates every precision, even one that cannot matter (search.front);
    # what a recorded benchmark pool needs (bench/record_pool.py), not a CLI flag.
    evaluation_in_proportion: bool = True
    warm_start: bool = False          # each instrument's search first tries the fronts of the ones swept before it
    warm_start_from: list[str] = field(default_factory=list)  # ... and those of these earlier sweeps' instruments
    time_budget_s: float | None = None  # per instrument: no trial starts after it, running ones stop (search.budget)


@dataclass
class Checked:
    """What ``preflight`` found: the sweep's name and place, its instruments with their dataset and
    space, and the tracking URI."""

    name: str
    place: SweepPlace
    instruments: list[tuple[str, str]]   # (instrument, absolute dataset path), one per --dataset
    spaces: dict[str, SearchSpace]
    tracking_uri: str


def preflight(settings: SweepSettings) -> Checked:
    """Every check that needs no Ray; nothing is created before they all pass."""
    from cluster.local_ray import check_address
    from results.layout import resolve_tracking_uri
    from results.tracking import check_tracking_uri
    from search.place import check_sweep_place, sweep_place
    from trainers.data.dataset import check_dataset_files, read_manifest  # light: numpy only

    check_settings(settings)
    instruments = instruments_of(settings.datasets)
    name = check_name(settings.name or default_sweep_name(), "--name")
    place = sweep_place(settings.storage or DEFAULT_STORAGE, name, [dataset for _, dataset in instruments])
    check_sweep_place(place, settings.resume)
    spaces = {inst: load_checked_space(settings, inst) for inst, _ in instruments}
    for instrument, dataset in instruments:
        check_dataset_files(dataset, read_manifest(dataset))  # whole before any trial reads it
        check_frame_rates(dataset, spaces[instrument], settings.space or "built-in space")
        check_enough_configurations(spaces[instrument], settings.trials, settings.space or "built-in space")
    uri = check_tracking_uri(resolve_tracking_uri(settings.tracking_uri))
    if settings.warm_start_from:
        from results.tracking import make_client
        from results.warm_start import check_warm_sources

        check_warm_sources(make_client(uri), settings.warm_start_from, uri)
    check_address(settings.address)
    return Checked(name, place, instruments, spaces, uri)


def early_checks(settings: SweepSettings) -> None:
    """What ``preflight`` checks that needs nothing heavy (no Ray, TensorFlow or MLflow): the flags, the
    datasets, the name and the space file's presence; the CLI runs it before those load."""
    check_settings(settings)
    instruments_of(settings.datasets)
    if settings.name:
        check_name(settings.name, "--name")
    if settings.space and not Path(settings.space).is_file():
        raise UserError(f"--space {settings.space}: no such file; give a TOML search space (docs/architecture.md)")


def check_settings(settings: SweepSettings) -> None:
    """The flags' values, by the rules the CLI's parser applies too (``common.bounds``)."""
    COUNT.check(settings.trials, "--trials")
    POSITIVE.check(settings.cpus_per_trial, "--cpus-per-trial")
    ABOVE_ONE.check(settings.reduction_factor, "--reduction-factor")
    for value, bound, flag in ((settings.steps, COUNT, "--steps"), (settings.grace_period, COUNT, "--grace-period"),
                               (settings.max_params, COUNT, "--max-params"), (settings.max_bytes, COUNT, "--max-bytes"),
                               (settings.min_rtf, SPEED_BAR, "--min-rtf"), (settings.time_budget_s, POSITIVE, "--time-budget"),
                               (settings.worker_memory_mib, WHOLE_OR_OFF, "--worker-memory-mib")):
        if value is not None:
            bound.check(value, flag)
    if settings.resume and not settings.name:
        raise UserError("--resume: needs --name NAME of the sweep to continue")
    if settings.algorithm not in ALGORITHMS:
        raise UserError(f"--algorithm: {settings.algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if settings.scheduler not in SCHEDULERS:
        raise UserError(f"--scheduler: {settings.scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    cache = settings.xla_cache
    if cache and cache != "off" and Path(cache).expanduser().exists() and not Path(cache).expanduser().is_dir():
        raise UserError(f"--xla-cache: {cache} is not a folder; give a folder (created if missing) or 'off'")


def instruments_of(datasets: list[str]) -> list[tuple[str, str]]:
    """(instrument, absolute dataset path) per --dataset, read through the dataset reading API
    (format checked), one dataset per instrument."""
    from trainers.data.dataset import MANIFEST, read_manifest  # light: numpy only

    out, seen = [], {}
    for dataset in datasets:
        path = Path(dataset).resolve()
        if not (path / MANIFEST).is_file():
            raise UserError(f"{path / MANIFEST}: missing (dataset incomplete or not prepared); "
                            f"run `tonesweep prepare --out {dataset} ...` first")
        instrument = check_name(read_manifest(path).get("instrument"), f"{path / MANIFEST}: instrument")
        if instrument in seen:
            raise UserError(f"--dataset {dataset}: instrument {instrument} already given by {seen[instrument]}; "
                            "give one dataset per instrument")
        seen[instrument] = dataset
        out.append((instrument, str(path)))
    return out


def check_enough_configurations(space, trials: int, space_name: str) -> None:
    """Refuse more trials than a space without a continuous range has distinct configurations: the
    extra trials would train configurations already trained (same seed, same result)."""
    from spaces import discrete_size
    from spaces.translate import has_continuous

    if has_continuous(space.hyperparameters):
        return
    distinct = discrete_size(space.hyperparameters)
    if trials > distinct:
        raise UserError(f"--trials {trials}: {space_name} has only {distinct} distinct configuration"
                        f"{'s' if distinct != 1 else ''}, so trials would repeat one; use --trials {distinct} or "
                        "widen the space (more choices, or a float range)")


def check_frame_rates(dataset: str, space, space_name: str) -> None:
    """Stop before fan-out when the space can ask for a frame rate the dataset was not prepared at."""
    from spaces import possible_values
    from trainers.data.dataset import read_manifest
    from trainers.model.config import DEFAULTS  # light: no TensorFlow

    prepared = [int(rate) for rate in read_manifest(dataset).get("frame_rates", [])]
    wanted = possible_values(space, "frame_rate", default=DEFAULTS["frame_rate"])
    missing = sorted({int(rate) for rate in wanted} - set(prepared), reverse=True)
    if missing:
        raise UserError(f"{space_name}: frame_rate {missing[0]} Hz is not in {dataset}'s frame rates {prepared}; "
                        f"drop it from the space or prepare the dataset with --frame-rates "
                        f"{','.join(str(r) for r in sorted(set(prepared) | set(missing), reverse=True))}")


def load_checked_space(settings: SweepSettings, instrument: str):
    """The space for an instrument, every value it can produce validated by the trainer: its fixed
    values and overrides, each choice and both ends of each range (a learning rate of 5..10 or a
    decoder ``lstm`` stops here, not as a sweep of failed trials)."""
    from spaces import default_space, load_space, possible_values
    from trainers.model.config import validate_config

    source = settings.space or "built-in space"
    space = load_space(settings.space) if settings.space else default_space(instrument)
    fixed = {**space.fixed, **({"steps": settings.steps} if settings.steps else {})}
    try:
        validate_config(fixed)
    except UserError as err:
        raise UserError(f"{source}: fixed {err}") from None
    for hp in space.hyperparameters.space:
        for value in possible_values(space, hp.name):
            try:
                validate_config({**fixed, hp.name: value})
            except UserError as err:
                raise UserError(f"{source}: hyperparameters.{hp.name} can be {value!r}, which a trial refuses "
                                f"({err}); narrow the range or the choices") from None
    return space


def trial_steps(settings: SweepSettings, space) -> int:
    """Training steps of every trial: --steps, else the space's fixed steps, else the trainer's default."""
    from trainers.model.config import DEFAULTS  # light: no TensorFlow

    fixed = space.fixed.get("steps")
    return settings.steps or (int(fixed) if fixed else None) or int(DEFAULTS["steps"])


def report_every(settings: SweepSettings, space) -> int:
    """Steps between progress reports: ~20 per trial, at most every 50 steps (the trainer's default).

    Each report costs the trainer a small validation pass, and gives the scheduler a point to decide
    on. With the default grace period of one report and eta 4, (MO-)ASHA's rungs fall at 1/20, 1/5
    and 4/5 of a trial's steps. With ``--grace-period``, reports fall on it (150 steps, grace 50:
    every 10 steps, not 7).
    """
    if settings.report_every:
        return settings.report_every
    every = max(1, min(50, trial_steps(settings, space) // 20))
    grace = settings.grace_period
    if grace and grace % every:  # a rung on a report, not at the next one: the next divisor of --grace-period,
        every = next((d for d in range(every, grace + 1) if grace % d == 0), grace)  # or itself when shorter
    return every


def sweep_params(settings: SweepSettings, space) -> dict:
    """The parent run's params: the sweep's own settings, and the space's fixed values."""
    params = {"trials": settings.trials, "algorithm": settings.algorithm, "scheduler": settings.scheduler,
              "space": space.source, "cpus_per_trial": settings.cpus_per_trial, "seed": settings.seed,
              "steps": settings.steps, "max_params": settings.max_params, "max_bytes": settings.max_bytes,
              "min_rtf": settings.min_rtf, "grace_period": settings.grace_period,
              "reduction_factor": settings.reduction_factor if settings.scheduler != "none" else None,
              "keep_front": settings.keep_front if settings.scheduler == "moasha" else None,
              "time_budget_s": settings.time_budget_s}
    params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
    return {k: v for k, v in params.items() if v is not None}


def sweep_record(settings: SweepSettings, name: str, instruments: list[tuple[str, str]]) -> dict:
    """What ``sweep.json`` records of a sweep (``search.place.write_sweep_file``); ``space_sha256`` is
    the space file's content (None: the built-in space), so that a resume with an edited file is told."""
    return {"name": name, "instruments": dict(instruments), "trials": settings.trials,
            "algorithm": settings.algorithm, "scheduler": settings.scheduler, "space": settings.space,
            "space_sha256": space_digest(settings.space), "steps": settings.steps, "seed": settings.seed,
            "warm_start": settings.warm_start, "warm_start_from": list(settings.warm_start_from),
            "grace_period": settings.grace_period, "reduction_factor": settings.reduction_factor,
            "keep_front": settings.keep_front, "time_budget_s": settings.time_budget_s}


def space_digest(space: str | None) -> str | None:
    """sha256 of a space file's bytes (None for the built-in space or an unreadable file)."""
    import hashlib

    if not space:
        return None
    try:
        return hashlib.sha256(Path(space).read_bytes()).hexdigest()
    except OSError:
        return None


# What a resumed sweep must be asked to do as it was first: (sweep.json key, flag). A key an older
# sweep file lacks is not compared, unless ABSENT_MEANS says what its absence meant.
RESUME_MUST_MATCH = (("space", "--space"), ("space_sha256", "--space (its content)"), ("algorithm", "--algorithm"),
                     ("scheduler", "--scheduler"), ("trials", "--trials"), ("steps", "--steps"), ("seed", "--seed"),
                     ("instruments", "--dataset"), ("grace_period", "--grace-period"),
                     ("reduction_factor", "--reduction-factor"), ("keep_front", "--keep-front"),
                     ("time_budget_s", "--time-budget"))
ABSENT_MEANS = {"time_budget_s": None}  # sweeps recorded before --time-budget ran without one


def check_resume_matches(recorded: dict, settings: SweepSettings, name: str,
                         instruments: list[tuple[str, str]]) -> None:
    """Refuse a ``--resume`` whose flags differ from those the sweep was started with (its searcher,
    scheduler and trials would otherwise continue under the old ones without a word)."""
    now, recorded = sweep_record(settings, name, instruments), {**ABSENT_MEANS, **recorded}
    for key, flag in RESUME_MUST_MATCH:
        if key in recorded and _comparable(recorded[key]) != _comparable(now[key]):
            raise UserError(f"--resume: sweep {name} was started with {flag} {_shown(key, recorded[key])}, not "
                            f"{_shown(key, now[key])} (sweep.json); resume with the flags it was started with, or start "
                            "a new sweep with another --name")


def _comparable(value):
    """What must match of a recorded value: a file by its resolved path, the datasets by their
    instruments (a resume on another machine finds them at other paths)."""
    if isinstance(value, dict):
        return sorted(value)
    if isinstance(value, str) and value and not value.startswith("s3://") and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _shown(key: str, value) -> str:
    if isinstance(value, dict):
        return "for " + ", ".join(sorted(value)) if value else "none"
    if key == "space_sha256" and value:
        return value[:12] + "..."
    if value is None:
        return "the built-in space" if key.startswith("space") else "none" if key == "time_budget_s" else "the default"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
