"""`tonesweep sweep`: fan a search space out over Ray Tune, one experiment per instrument.

Flow of ``run_sweep``:

1. datasets → instruments (from each ``manifest.json``); the space (built-in or ``--space``) and
   its fixed values are checked with the trainer's ``validate_config`` before anything starts;
2. MLflow: experiment ``tonesweep-<instrument>`` and the sweep's parent run, created once per
   instrument before fan-out (``results.tracking``);
3. Ray: local (127.0.0.1, all cores) unless ``--address``/``RAY_ADDRESS`` names a cluster;
4. per instrument, a ``Tuner`` (or ``Tuner.restore`` with ``--resume``): KerasTuner-oracle
   searcher, ASHA on ``val_loss`` against ``step``, reused workers, a driver-side MLflow callback
   and a progress callback;
5. summary lines and where to browse the results; Ray is shut down if this process started it.

On a cluster (``--address``, or ``ray job submit -- tonesweep sweep ...``), trials write their
output folders under ``--storage``, which must then be a folder every node sees (a shared
filesystem): the driver reads finished trials' files from there to log them as artifacts.

Instruments run one after another because ASHA compares ``val_loss`` across the trials of one
experiment, and spectral losses of different instruments are not on one scale; within an
instrument, trials run side by side on all the CPUs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trainers.errors import UserError
from trainers.files import write_json_atomic

# Ray reads these when the Tune controller starts. Save the experiment state every second so a
# killed driver loses at most ~1 s of bookkeeping (the default ~10 s re-ran finished trials,
# ../shared/notes/data-and-engines.md).
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

METRIC, MODE = "val_loss", "min"


@dataclass
class SweepSettings:
    """Everything a sweep needs; ``settings_from_args`` builds it from the CLI."""

    datasets: list[str]
    trials: int
    space: str | None = None
    algorithm: str = "random"
    scheduler: str = "asha"
    address: str | None = None
    tracking_uri: str | None = None
    name: str | None = None
    resume: bool = False
    cpus_per_trial: float = 1.0
    steps: int | None = None
    max_params: int | None = None
    max_bytes: int | None = None
    storage: str | None = None
    seed: int = 0
    report_every: int | None = None   # None: about 10 reports per trial (at most every 50 steps)
    train_fn: str | Callable = "trainers.train:train_trial"
    size_fn: str | Callable = "trainers.size:size_report"


@dataclass
class InstrumentResult:
    """What one instrument's sweep produced (also what the final summary prints)."""

    instrument: str
    dataset: str
    experiment_id: str
    parent_run_id: str
    outcomes: dict[str, str] = field(default_factory=dict)  # trial id -> status
    run_ids: dict[str, str] = field(default_factory=dict)   # trial id -> MLflow run id
    summary_line: str = ""
    tracking_s_per_trial: float = 0.0
    wall_s: float = 0.0


def cli_sweep(args) -> int:
    settings = settings_from_args(args)
    run_sweep(settings)
    return 0


def settings_from_args(args) -> SweepSettings:
    return SweepSettings(
        datasets=list(args.dataset), trials=args.trials, space=args.space, algorithm=args.algorithm,
        scheduler=args.scheduler, address=args.address, tracking_uri=args.tracking_uri, name=args.name,
        resume=args.resume, cpus_per_trial=args.cpus_per_trial, steps=args.steps,
        max_params=args.max_params, max_bytes=args.max_bytes, storage=args.storage, seed=args.seed,
    )


def run_sweep(settings: SweepSettings, stream=None) -> list[InstrumentResult]:
    """Run (or resume) a sweep; returns one ``InstrumentResult`` per dataset."""
    stream = stream or sys.stdout
    check_settings(settings)
    instruments = instruments_of(settings.datasets)
    name = settings.name or default_sweep_name()
    sweep_dir = Path(settings.storage or "runs").resolve() / name
    check_sweep_dir(sweep_dir, name, settings.resume)
    spaces = {inst: load_checked_space(settings, inst) for inst, _ in instruments}

    import ray
    from results import tracking

    uri = tracking.resolve_tracking_uri(settings.tracking_uri)
    client = tracking.make_client(uri)
    parents = {}
    for instrument, dataset in instruments:  # experiments + parent runs, once, before fan-out
        experiment_id = tracking.ensure_experiment(client, instrument)
        run_id = tracking.start_parent_run(client, experiment_id, name, instrument, dataset,
                                           settings.algorithm, sweep_params(settings, spaces[instrument]))
        parents[instrument] = (experiment_id, run_id)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    _write_sweep_file(sweep_dir, settings, name, instruments)

    started_ray = start_ray(settings.address)
    results = []
    try:
        print(f"sweep {name}: {len(instruments)} instrument(s) × {settings.trials} trials, "
              f"{settings.algorithm} search, scheduler {settings.scheduler}, tracking {uri}", file=stream, flush=True)
        for instrument, dataset in instruments:
            experiment_id, parent_run_id = parents[instrument]
            result = sweep_instrument(settings, name, sweep_dir, instrument, dataset, spaces[instrument],
                                      client, uri, experiment_id, parent_run_id, stream)
            results.append(result)
    finally:
        if started_ray:
            ray.shutdown()
    print_summary(results, name, uri, stream)
    return results


def sweep_instrument(settings, name, sweep_dir, instrument, dataset, space, client, uri,
                     experiment_id, parent_run_id, stream) -> InstrumentResult:
    """One instrument's Tune experiment, from start or from its saved state, tracked in MLflow."""
    from ray import tune

    from results import tracking
    from search.progress import InstrumentTally, SweepProgress
    from search.trainable import TrialSpec, run_trial

    start = time.perf_counter()
    spec = TrialSpec(dataset_dir=dataset, trials_dir=str(sweep_dir / "trials"),
                     threads=max(1, int(settings.cpus_per_trial)), report_every=report_every(settings, space),
                     max_params=settings.max_params, max_bytes=settings.max_bytes,
                     train_fn=settings.train_fn, size_fn=settings.size_fn)
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec),
                                    {"cpu": settings.cpus_per_trial})
    tracker = tracking.TrialTracker(uri, experiment_id, parent_run_id, name, instrument,
                                    config_defaults=_trainer_defaults())
    tally = InstrumentTally(instrument, settings.trials)
    tally.preload(tracker.existing_outcomes())
    callbacks = [tracker, SweepProgress(tally, stream)]

    experiment_path = sweep_dir / instrument
    if settings.resume and tune.Tuner.can_restore(str(experiment_path)):
        print(f"[{instrument}] resuming from {experiment_path}", file=stream, flush=True)
        tuner = tune.Tuner.restore(str(experiment_path), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False)
        _replace_callbacks(tuner, callbacks)
    else:
        tuner = tune.Tuner(trainable, tune_config=tune_config(settings, space),
                           run_config=tune.RunConfig(name=instrument, storage_path=str(sweep_dir),
                                                     callbacks=callbacks, verbose=0,
                                                     failure_config=tune.FailureConfig(max_failures=0)))
    failed = False
    try:
        tuner.fit()
    except Exception:
        failed = True
        raise
    finally:
        # Runs left RUNNING by a killed driver whose trial Ray had not saved are over: say so.
        lost = tracking.end_stale_runs(client, experiment_id, parent_run_id, keep=(),
                                       reason="lost when the sweep driver stopped; not resumed")
        if lost:
            print(f"[{instrument}] ended {len(lost)} run(s) left RUNNING by the previous driver", file=stream)
        tracking.finish_parent_run(client, parent_run_id, _parent_summary(tally, tracker), failed)
    return InstrumentResult(instrument, dataset, experiment_id, parent_run_id,
                            outcomes=dict(tally.outcomes), run_ids=tracker.run_ids(),
                            summary_line=tally.line(), tracking_s_per_trial=tracker.seconds_per_trial(),
                            wall_s=time.perf_counter() - start)


def tune_config(settings: SweepSettings, space):
    """TuneConfig: the KerasTuner searcher, ASHA (or none), reused actors."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.searcher import KerasTunerSearcher

    overrides = {"seed": settings.seed}
    if settings.steps is not None:
        overrides["steps"] = settings.steps
    searcher = KerasTunerSearcher(space, settings.algorithm, max_trials=settings.trials, seed=settings.seed,
                                  overrides=overrides, max_concurrent=max_concurrent(settings),
                                  metric=METRIC, mode=MODE)
    if settings.scheduler == "asha":
        steps = trial_steps(settings, space)
        # time_attr "step" (not Ray's iteration count) keeps rungs right when a resumed trial
        # continues from its trainer checkpoint; the grace period gives every trial 2 reports.
        # (The trainable holds back the report at the last step, so no rung decision can fall
        # between a trial's training and its evaluation.)
        scheduler = ASHAScheduler(time_attr="step", max_t=steps,
                                  grace_period=min(steps, 2 * report_every(settings, space)), reduction_factor=3)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=settings.trials,
                           metric=METRIC, mode=MODE, reuse_actors=True, trial_dirname_creator=trial_dirname)


def trial_dirname(trial) -> str:
    """Ray's per-trial folder: the trial id (Ray's default spells out the whole config)."""
    return trial.trial_id


def trial_steps(settings: SweepSettings, space) -> int:
    """Training steps of every trial: --steps, else the space's fixed steps, else the trainer's default."""
    return settings.steps or _fixed_steps(space) or _trainer_default_steps()


def report_every(settings: SweepSettings, space) -> int:
    """Steps between progress reports: ~10 per trial, at most every 50 steps (the trainer's default).

    Each report costs the trainer a small validation pass, and gives ASHA a point to decide on.
    """
    if settings.report_every:
        return settings.report_every
    return max(1, min(50, trial_steps(settings, space) // 10))


def max_concurrent(settings: SweepSettings) -> int:
    """Trials that fit side by side: the cluster's CPUs over CPUs per trial (at least 1)."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1) if ray.is_initialized() else (os.cpu_count() or 1)
    return max(1, int(cpus // settings.cpus_per_trial))


def start_ray(address: str | None) -> bool:
    """Connect to ``address`` (or $RAY_ADDRESS, as ``ray job submit`` sets), else start Ray locally.

    Returns True when this process started Ray (and must shut it down).
    """
    import ray

    if ray.is_initialized():
        return False
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env})
        return True
    # Local: all cores, loopback only, no dashboard (it would listen on a port and cost memory).
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": env})
    return True


# ---------------------------------------------------------------------------- checks


def check_settings(settings: SweepSettings) -> None:
    if settings.trials < 1:
        raise UserError(f"--trials: {settings.trials} must be at least 1")
    if settings.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial: {settings.cpus_per_trial} must be positive")
    if settings.resume and not settings.name:
        raise UserError("--resume: needs --name NAME of the sweep to continue")
    if settings.steps is not None and settings.steps < 1:
        raise UserError(f"--steps: {settings.steps} must be at least 1")


def instruments_of(datasets: list[str]) -> list[tuple[str, str]]:
    """(instrument, absolute dataset path) per --dataset, from each dataset's manifest.json."""
    out, seen = [], {}
    for dataset in datasets:
        path = Path(dataset).resolve()
        manifest = path / "manifest.json"
        try:
            instrument = json.loads(manifest.read_text())["instrument"]
        except FileNotFoundError:
            raise UserError(f"{manifest}: missing (dataset incomplete or not prepared); "
                            f"run `tonesweep prepare --out {dataset} ...` first") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{manifest}: not a tonesweep dataset manifest; prepare the dataset again") from None
        if instrument in seen:
            raise UserError(f"--dataset {dataset}: instrument {instrument} already given by {seen[instrument]}; "
                            "give one dataset per instrument")
        seen[instrument] = dataset
        out.append((instrument, str(path)))
    return out


def load_checked_space(settings: SweepSettings, instrument: str):
    """The space for an instrument, its fixed values and overrides validated by the trainer."""
    from spaces import default_space, load_space
    from trainers.config import validate_config

    space = load_space(settings.space) if settings.space else default_space(instrument)
    fixed = {**space.fixed, **({"steps": settings.steps} if settings.steps else {})}
    try:
        validate_config(fixed)
    except UserError as err:
        raise UserError(f"{settings.space or 'built-in space'}: fixed {err}") from None
    return space


def check_sweep_dir(sweep_dir: Path, name: str, resume: bool) -> None:
    exists = (sweep_dir / "sweep.json").exists()
    if exists and not resume:
        raise UserError(f"--name {name}: a sweep of that name exists in {sweep_dir.parent}; "
                        "add --resume to continue it or choose another --name")
    if resume and not exists:
        raise UserError(f"--name {name}: no sweep of that name in {sweep_dir.parent}; "
                        "check --name and --storage")


def default_sweep_name() -> str:
    return "sweep-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def sweep_params(settings: SweepSettings, space) -> dict:
    """The parent run's params: the sweep's own settings, and the space's fixed values."""
    params = {"trials": settings.trials, "algorithm": settings.algorithm, "scheduler": settings.scheduler,
              "space": space.source, "cpus_per_trial": settings.cpus_per_trial, "seed": settings.seed,
              "steps": settings.steps, "max_params": settings.max_params, "max_bytes": settings.max_bytes}
    params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
    return {k: v for k, v in params.items() if v is not None}


# ---------------------------------------------------------------------------- output


def print_summary(results: list[InstrumentResult], name: str, uri: str, stream) -> None:
    print(f"\nsweep {name} done", file=stream)
    for result in results:
        print(f"  {result.summary_line}", file=stream)
        print(f"    {result.wall_s:.0f} s; MLflow logging {result.tracking_s_per_trial:.2f} s per trial "
              f"(driver); parent run {result.parent_run_id}", file=stream)
    print(f"MLflow: {uri} (browse: `tonesweep ui`"
          + (f" --tracking-uri {uri}" if uri != "sqlite:///mlflow.db" else "")
          + ", then http://127.0.0.1:5000)", file=stream, flush=True)


def _parent_summary(tally, tracker) -> dict:
    best, small = tally.best(), tally.smallest_acceptable()
    return {
        "trials_finished": tally.count("FINISHED"), "trials_failed": tally.count("FAILED"),
        "trials_rejected": tally.count("REJECTED"), "trials_stopped": tally.count("STOPPED"),
        "best_quality": best.quality if best else math.nan,
        "smallest_acceptable_bytes": small.bytes if small else math.nan,
        "tracking_s_per_trial": tracker.seconds_per_trial(),
    }


def _trainer_defaults() -> dict:
    from trainers.config import DEFAULTS  # light: no TensorFlow

    return dict(DEFAULTS)


def _trainer_default_steps() -> int:
    return int(_trainer_defaults()["steps"])


def _fixed_steps(space) -> int | None:
    steps = space.fixed.get("steps")
    return int(steps) if steps else None


def _write_sweep_file(sweep_dir: Path, settings: SweepSettings, name: str, instruments) -> None:
    """sweep.json: what was asked for (marks the folder as a sweep; read back by nothing critical)."""
    path = sweep_dir / "sweep.json"
    if path.exists():
        return
    record = {"name": name, "instruments": dict(instruments), "trials": settings.trials,
              "algorithm": settings.algorithm, "scheduler": settings.scheduler, "space": settings.space,
              "steps": settings.steps, "seed": settings.seed,
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(path, record)


def _replace_callbacks(tuner, callbacks) -> None:
    """Give a restored Tuner this driver's callbacks.

    ``Tuner.restore`` brings back the RunConfig pickled at the first launch, callbacks included,
    and has no parameter for new ones; the old callbacks hold the dead driver's bookkeeping.
    """
    tuner._local_tuner.get_run_config().callbacks = callbacks  # noqa: SLF001 - no public API
