"""Ray Tune assembly for one instrument: the trainable with its resources, the searcher, the scheduler,
the run config with tonesweep's callbacks, and the environment of the driver and of the workers.

``build_tuner`` returns a new ``Tuner``, or the one ``Tuner.restore`` brings back on ``--resume``.
Nothing here runs a trial; ``search.sweep`` drives the loop.
"""

from __future__ import annotations

import importlib
import os
import sys
import zlib
from pathlib import Path
from typing import Any

from search.algorithms import OBJECTIVE_SIZE, OPTUNA_ALGORITHMS
from search.algorithms.ledger import LEDGER
from search.limits import REFUSALS, Feasibility, Limits
from search.settings import DEFAULT_GRACE_REPORTS, SweepSettings, report_every, trial_steps
from search.trainable import resolve

METRIC, MODE = "val_loss", "min"
MOASHA_STATE = "moasha-state.json"     # MO-ASHA's rungs, beside Ray's experiment state
# What the driver process needs in its environment before Ray Tune's controller starts (Ray reads
# them then). TUNE_GLOBAL_CHECKPOINT_S: save the experiment state every second, so a killed driver
# loses at most ~1 s of bookkeeping (the default ~10 s re-ran finished trials, docs/engines.md#ray-tune).
# RAY_AIR_NEW_OUTPUT=0: Ray's own progress tables off (tonesweep prints its own lines).
# TUNE_DISABLE_SIGINT_HANDLER=1: Ctrl-C is handled by search.interrupts.InterruptCatcher.
DRIVER_ENVIRONMENT = {"TUNE_GLOBAL_CHECKPOINT_S": "1", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1"}
# What every trial worker gets (through Ray's runtime_env): TensorFlow's C++ start-up notices off.
WORKER_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# A trial's own failure never reaches Ray (execute_trial turns it into a FAILED result), so a trial Ray
# sees fail was lost to the infrastructure: its node died, its worker was killed for memory. Ray
# retries such a trial (same trial id, so the same MLflow run) this many times before it is FAILED.
INFRA_RETRIES = 2
# Modules that held classes Ray pickles into an experiment's state (searcher, scheduler) before they
# moved to search.algorithms: a sweep interrupted under the old layout still resumes.
MOVED_MODULES = {"search.searcher": "search.algorithms.kerastuner_searcher",
                 "search.optuna_searcher": "search.algorithms.optuna_searcher",
                 "search.moasha": "search.algorithms.moasha"}


def worker_environment(xla_cache: str | None) -> dict[str, str]:
    """WORKER_ENVIRONMENT plus XLA's persistent compilation cache in ``xla_cache`` (None or "off": none).

    XLA compiles each trial's training step once (most of a short trial's start-up, bench/README.md).
    Its persistent cache lets a process load a step that was compiled before instead. Off unless
    asked for: the learning rate and seed end up in the compiled program, so in a sweep every trial
    compiles its own (bench/sweep_overhead.py: 32 entries for 32 trials of 8 architectures, no time
    saved); it pays only when the same configuration runs again (a trial Ray retries, a sweep
    repeated). One folder per machine (each node's trials read and write their local disk).
    """
    env = dict(WORKER_ENVIRONMENT)
    if xla_cache and xla_cache != "off":
        flags = os.environ.get("TF_XLA_FLAGS", "")  # keep the user's own XLA flags
        folder = Path(xla_cache).expanduser().resolve()  # trials run in their own folder: absolute
        env["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()
    return env


def set_driver_environment() -> None:
    """DRIVER_ENVIRONMENT in this process, where not set already (before Ray Tune starts)."""
    for key, value in DRIVER_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def build_tuner(settings: SweepSettings, space, instrument: str, trainable, experiment: str, restore: bool,
                driver_folder: Path, callbacks: list, storage_path: str, warm_start: list[dict] | None = None):
    """A ``Tuner`` for one instrument: new, or restored from ``experiment`` (then given this driver's
    callbacks; its searcher keeps the warm start it was given). ``driver_folder`` holds the searcher's
    ledger and MO-ASHA's rungs; ``warm_start``: values a new searcher suggests first. The instrument's time
    budget (``search.budget.start``) has started: its searcher and stopper ask it by name."""
    from ray import tune

    from search import budget

    if restore:
        _alias_moved_modules()
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=False)
        # Tuner.restore brings back the RunConfig pickled at the first launch, callbacks included, and
        # has no parameter for new ones; the old callbacks hold the dead driver's bookkeeping.
        tuner._local_tuner.get_run_config().callbacks = callbacks  # noqa: SLF001 - no public API
        return tuner
    tune_config = tune.TuneConfig(search_alg=make_searcher(settings, space, instrument, driver_folder, warm_start),
                                  scheduler=make_scheduler(settings, space, driver_folder),
                                  num_samples=settings.trials, metric=METRIC, mode=MODE, reuse_actors=True,
                                  trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(name=instrument, storage_path=storage_path, callbacks=callbacks, verbose=0,
                                failure_config=tune.FailureConfig(max_failures=INFRA_RETRIES),
                                stop=budget.BudgetStopper(instrument) if settings.time_budget_s else None)
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def restoring(settings: SweepSettings, experiment: str) -> bool:
    """Whether a Tuner is to be restored: ``--resume`` and Ray's saved state of the experiment exists."""
    from ray import tune

    return settings.resume and tune.Tuner.can_restore(experiment)


def trainable_for(settings: SweepSettings, spec) -> Any:
    """``search.trainable.run_trial`` bound to ``spec``, reserving ``--cpus-per-trial`` CPUs."""
    from ray import tune

    from search.trainable import run_trial

    return tune.with_resources(tune.with_parameters(run_trial, spec=spec), {"cpu": settings.cpus_per_trial})


def instrument_seed(seed: int, instrument: str) -> int:
    """Each instrument's searcher gets its own seed (same --seed, other instrument: other first draws),
    stable across runs and independent of which other instruments share the sweep."""
    return seed * 1000 + zlib.crc32(instrument.encode()) % 1000


def make_searcher(settings: SweepSettings, space, instrument: str, driver_folder: Path,
                  warm_start: list[dict] | None = None):
    """The searcher of ``--algorithm``: a KerasTuner oracle on val_loss or an Optuna sampler over
    (uint8 bundle bytes, val_loss), with the sweep's budget, seed, overrides and concurrency; it refuses and
    redraws configurations outside the sweep's limits (``search.limits``) and starts none once the
    instrument's time budget ran out (``search.budget``)."""
    from search import budget

    overrides = {"seed": settings.seed}
    if settings.steps is not None:
        overrides["steps"] = settings.steps
    limits = Limits(settings.max_params, settings.max_bytes, settings.min_rtf)
    refuse = Feasibility(limits, resolve(settings.size_fn), str(driver_folder / REFUSALS)) if limits else None
    out_of_time = budget.OutOfTime(instrument) if settings.time_budget_s else None
    common = dict(max_trials=settings.trials, seed=instrument_seed(settings.seed, instrument), overrides=overrides,
                  max_concurrent=max_concurrent(settings), ledger_path=str(driver_folder / LEDGER), refuse=refuse,
                  warm_start=warm_start, out_of_time=out_of_time)
    if settings.algorithm in OPTUNA_ALGORITHMS:
        from search.algorithms.optuna_searcher import OptunaSearcher

        return OptunaSearcher(space, settings.algorithm, objectives=(OBJECTIVE_SIZE, METRIC), **common)
    from search.algorithms.kerastuner_searcher import KerasTunerSearcher

    return KerasTunerSearcher(space, settings.algorithm, metric=METRIC, mode=MODE, **common)


def make_scheduler(settings: SweepSettings, space, driver_folder: Path):
    """MO-ASHA (default), ASHA on val_loss, or none.

    time_attr "step" (not Ray's iteration count) keeps rungs right when a resumed trial continues
    from its trainer checkpoint. The defaults (first rung at one report, eta 4, MO-ASHA keeping its
    rung's front) were chosen by replaying recorded pools (bench/README.md, "MO-ASHA's settings"):
    99.7 % / 98.8 % of a full random search's hypervolume with 32 % / 28 % of its trial-steps. (The
    trainable holds back the report at the last step, so no rung decision can fall between a trial's
    training and its evaluation.)
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    steps = trial_steps(settings, space)
    grace = min(steps, settings.grace_period or DEFAULT_GRACE_REPORTS * report_every(settings, space))
    eta = settings.reduction_factor
    if settings.scheduler == "moasha":
        from search.algorithms.moasha import MOASHAScheduler

        return MOASHAScheduler(time_attr="step", metric=METRIC, size_metric=OBJECTIVE_SIZE, max_t=steps,
                               grace_period=grace, reduction_factor=eta, keep_front=settings.keep_front,
                               state_path=str(driver_folder / MOASHA_STATE))
    if settings.scheduler == "asha":
        return ASHAScheduler(time_attr="step", max_t=steps, grace_period=grace, reduction_factor=eta)
    return FIFOScheduler()


def trial_dirname(trial) -> str:
    """Ray's per-trial folder: the trial id (Ray's default spells out the whole config)."""
    return trial.trial_id


def max_concurrent(settings: SweepSettings) -> int:
    """Trials that fit side by side: the cluster's CPUs over CPUs per trial (at least 1)."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1) if ray.is_initialized() else (os.cpu_count() or 1)
    return max(1, int(cpus // settings.cpus_per_trial))


# The driver's bookkeeping files of each instrument, beside Ray's experiment state (what ``--resume``
# downloads from an object store and ``search.place.BookkeepingUpload`` uploads).
DRIVER_FILES = (LEDGER, MOASHA_STATE, REFUSALS)


def _alias_moved_modules() -> None:
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
