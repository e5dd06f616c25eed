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

On a cluster (``--address``, or ``ray job submit -- tonesweep sweep ...``), ``--storage`` must be
a place every node reaches: an object store (``s3://bucket/prefix``, ``search.storage``: Ray's state,
trial folders and the driver's bookkeeping all live there, so the driver and the trials share no
disk) or a folder on a shared filesystem. The driver reads finished trials' folders from there to
log them as artifacts.

Library code: ``run_sweep`` returns results and reports progress through ``say`` (one line at a
time); it never prints. ``search.commands.sweep`` is the CLI handler that prints.

Instruments run one after another because ASHA compares ``val_loss`` across the trials of one
experiment, and spectral losses of different instruments are not on one scale; within an
instrument, trials run side by side on all the CPUs.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import shutil
import signal
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from search import local_ray, storage
from search.ledger import LEDGER, write_ended
from trainers.constants import FAILED, FINISHED, INTERRUPTED, REJECTED, STOPPED
from trainers.errors import UserError
from trainers.files import write_json_atomic
from trainers.paths import check_apart, check_name, contained

METRIC, MODE = "val_loss", "min"
ALGORITHMS = ("random", "bayesian", "nsga2", "motpe")   # KerasTuner oracles, then Optuna samplers
MULTI_OBJECTIVE_ALGORITHMS = ("nsga2", "motpe")           # over (model bytes, val_loss)
SCHEDULERS = ("moasha", "asha", "none")
REDUCTION_FACTOR = 3                                       # ASHA's eta: 1 in 3 trials goes on at a rung
MOASHA_STATE = "moasha-state.json"                         # MO-ASHA's rungs, beside Ray's experiment state
Say = Callable[[str], None]

# What the driver process needs in its environment before Ray Tune's controller starts (Ray reads
# them then). TUNE_GLOBAL_CHECKPOINT_S: save the experiment state every second, so a killed driver
# loses at most ~1 s of bookkeeping (the default ~10 s re-ran finished trials, docs/engines.md#ray-tune).
# RAY_AIR_NEW_OUTPUT=0: Ray's own progress tables off (tonesweep prints its own lines).
# TUNE_DISABLE_SIGINT_HANDLER=1: Ctrl-C is handled by InterruptCatcher (below).
DRIVER_ENVIRONMENT = {"TUNE_GLOBAL_CHECKPOINT_S": "1", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1"}
# What every trial worker gets (through Ray's runtime_env): TensorFlow's C++ start-up notices off.
WORKER_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# XLA compiles each trial's training step once (most of a short trial's start-up, bench/README.md).
# Its persistent cache lets a process load a step that was compiled before instead. Off unless asked
# for: the learning rate and seed end up in the compiled program, so in a sweep every trial compiles
# its own (bench/sweep_overhead.py: 32 entries for 32 trials of 8 architectures, no time saved); it
# pays only when the same configuration runs again (a trial Ray retries, a sweep repeated). One folder
# per machine (each node's trials read and write their local disk).
XLA_CACHE_ENV = "TONESWEEP_XLA_CACHE"
# A trial's own failure never reaches Ray (execute_trial turns it into a FAILED result), so a trial Ray
# sees fail was lost to the infrastructure: its node died, its worker was killed for memory. Ray
# retries such a trial (same trial id, so the same MLflow run) this many times before it is FAILED.
INFRA_RETRIES = 2


def default_xla_cache() -> str:
    """$TONESWEEP_XLA_CACHE, else "off"."""
    return os.environ.get(XLA_CACHE_ENV) or "off"


def worker_environment(xla_cache: str | None) -> dict[str, str]:
    """WORKER_ENVIRONMENT plus XLA's persistent compilation cache in ``xla_cache`` (None or "off": none)."""
    env = dict(WORKER_ENVIRONMENT)
    if xla_cache and xla_cache != "off":
        flags = os.environ.get("TF_XLA_FLAGS", "")  # keep the user's own XLA flags
        folder = Path(xla_cache).expanduser().resolve()  # trials run in their own folder: absolute
        env["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()
    return env


@dataclass
class SweepSettings:
    """Everything a sweep needs; ``settings_from_args`` builds it from the CLI."""

    datasets: list[str]
    trials: int
    space: str | None = None
    algorithm: str = "random"
    scheduler: str = "moasha"
    address: str | None = None
    tracking_uri: str | None = None
    name: str | None = None
    resume: bool = False
    cpus_per_trial: float = 1.0
    steps: int | None = None
    max_params: int | None = None
    max_bytes: int | None = None
    min_rtf: float | None = None      # reject configurations estimated slower than this (wasm real-time factor)
    storage: str | None = None
    seed: int = 0
    report_every: int | None = None   # None: about 10 reports per trial (at most every 50 steps)
    train_fn: str | Callable = "trainers.training.train:train_trial"
    size_fn: str | Callable = "trainers.model.size:size_report"
    reference_fn: str | Callable = "trainers.training.reference:reference_point"  # hypervolume box, per dataset
    xla_cache: str | None = field(default_factory=default_xla_cache)  # folder on each node; "off" or None: none


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
    hypervolume: float | None = None
    trial_steps_used: int = 0
    rungs: dict[int, tuple[int, float]] = field(default_factory=dict)  # MO-ASHA: step -> (trials, best val_loss)


class SweepInterrupted(Exception):
    """A sweep ended by Ctrl-C or SIGTERM: its state is saved, ``--resume`` continues it."""

    def __init__(self, name: str, signal_number: int):
        super().__init__(f"sweep {name} interrupted")
        self.name, self.signal_number = name, signal_number


def run_sweep(settings: SweepSettings, say: Say | None = None) -> list[InstrumentResult]:
    """Run (or resume) a sweep; returns one ``InstrumentResult`` per dataset.

    Everything a user can get wrong is checked before anything is created (``preflight``; then,
    once Ray is up, whether a trial fits the cluster). ``say`` receives progress lines; by default
    nothing is printed. Sets ``DRIVER_ENVIRONMENT`` in this process (where missing) before Ray Tune
    starts. Ctrl-C or SIGTERM end the sweep with its state saved: ``SweepInterrupted``.
    """
    say = say or _quiet
    name, place, instruments, spaces, uri = preflight(settings)
    for key, value in DRIVER_ENVIRONMENT.items():
        os.environ.setdefault(key, value)

    from results import tracking

    place.open([instrument for instrument, _ in instruments], settings.resume)
    ray_handle = local_ray.start(settings.address, worker_environment(settings.xla_cache))
    results = []
    try:
        local_ray.check_fits(settings.cpus_per_trial)
        client = tracking.make_client(uri)
        parents, references = {}, {}
        for instrument, dataset in instruments:  # experiments + parent runs, once, before fan-out
            experiment_id = tracking.ensure_experiment(client, instrument)
            references[instrument] = hypervolume_reference(settings, client, experiment_id, name, dataset)
            params = {**sweep_params(settings, spaces[instrument]), **references[instrument].to_params()}
            run_id = tracking.start_parent_run(client, experiment_id, name, instrument, dataset, settings.algorithm,
                                               params)
            parents[instrument] = (experiment_id, run_id)
        place.folder.mkdir(parents=True, exist_ok=True)
        _write_sweep_file(place.folder, settings, name, instruments)
        say(f"sweep {name}: {len(instruments)} instrument(s) × {settings.trials} trials, "
            f"{settings.algorithm} search, scheduler {settings.scheduler}, tracking {uri}")
        for instrument, dataset in instruments:
            experiment_id, parent_run_id = parents[instrument]
            result = sweep_instrument(settings, name, place, instrument, dataset, spaces[instrument],
                                      client, uri, experiment_id, parent_run_id, say, references[instrument])
            results.append(result)
    finally:
        ray_handle.stop()
        place.close()
    return results


@dataclass
class SweepPlace:
    """Where a sweep's files live.

    Local ``--storage``: ``folder`` is the sweep's folder itself (Ray's state, trial folders, the
    driver's bookkeeping). Object store: ``remote`` is ``s3://bucket/prefix/<sweep>``, holding all of
    it, and ``folder`` is the driver's private scratch copy of its bookkeeping while it runs
    (downloaded by ``--resume``, uploaded by ``search.callbacks.StorageSync``, removed at the end).
    """

    name: str
    folder: Path | None
    root: storage.Remote | None = None  # the --storage URI

    @property
    def remote(self) -> storage.Remote | None:
        return self.root.child(self.name) if self.root is not None else None

    def open(self, instruments: list[str], resume: bool) -> None:
        if self.remote is None:
            return
        self.folder = storage.driver_folder(self.remote) / self.name
        self.folder.mkdir()
        if resume:
            wanted = ["sweep.json"] + [f"{i}/{f}" for i in instruments for f in (LEDGER, MOASHA_STATE)]
            storage.pull(self.remote, self.folder, wanted)

    def close(self) -> None:
        if self.remote is not None and self.folder is not None:
            self.callbacks()[0].sync()  # the last changes, then the scratch copy goes
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    def callbacks(self) -> list:
        """Ray callbacks the place needs: in a store, the one that uploads the bookkeeping."""
        from search.callbacks import StorageSync

        return [StorageSync(self.folder, self.remote)] if self.remote is not None else []

    @property
    def ray_storage(self) -> str:
        """Ray Tune's ``storage_path``: the sweep's folder or its object-store URI."""
        return self.remote.uri if self.remote is not None else str(self.folder)

    def experiment(self, instrument: str) -> str:
        """Where Ray keeps an instrument's experiment (what ``Tuner.restore`` reads)."""
        return f"{self.ray_storage}/{instrument}"

    @property
    def trials(self) -> str:
        return f"{self.ray_storage}/trials"

    def dataset(self, dataset: str) -> str:
        """Where trials read a dataset: its folder, or its copy published to the object store."""
        if self.root is None:
            return dataset
        return storage.publish_dataset(Path(dataset), self.root).uri

    def exists(self) -> bool:
        if self.remote is not None:
            return storage.exists(self.remote.child("sweep.json"))
        return (self.folder / "sweep.json").exists()

    def describe(self) -> str:
        return self.remote.uri.rsplit("/", 1)[0] if self.remote is not None else str(self.folder.parent)


def preflight(settings: SweepSettings):
    """Every check that needs no Ray: flags, names, datasets, spaces (every value they can produce),
    storage, the tracking store (reachable within seconds) and the cluster address.

    Returns (name, SweepPlace, [(instrument, dataset)], {instrument: space}, tracking URI).
    """
    from results import tracking

    check_settings(settings)
    instruments = instruments_of(settings.datasets)
    name = check_name(settings.name or default_sweep_name(), "--name")
    place = sweep_place(settings.storage or "runs", name, [dataset for _, dataset in instruments])
    check_sweep_place(place, settings.resume)
    spaces = {inst: load_checked_space(settings, inst) for inst, _ in instruments}
    for instrument, dataset in instruments:
        check_frame_rates(dataset, spaces[instrument], settings.space or "built-in space")
    uri = tracking.check_tracking_uri(tracking.resolve_tracking_uri(settings.tracking_uri))
    local_ray.check_address(settings.address)
    return name, place, instruments, spaces, uri


def sweep_place(location: str, name: str, datasets: list[str]) -> SweepPlace:
    """The checked ``--storage`` (a folder apart from the datasets, or a reachable bucket) and the
    sweep's place in it."""
    checked = storage.check_storage(location, "--storage")
    if isinstance(checked, storage.Remote):
        return SweepPlace(name, None, checked)
    sweep_dir = contained(checked, name, "--name")
    check_apart(sweep_dir, datasets, "--storage")
    return SweepPlace(name, sweep_dir)


def sweep_instrument(settings, name, place: SweepPlace, instrument, dataset, space, client, uri,
                     experiment_id, parent_run_id, say: Say, reference) -> InstrumentResult:
    """One instrument's Tune experiment, from start or from its saved state, tracked in MLflow."""
    from ray import tune

    from results import tracking
    from search.callbacks import MLflowCallback, SweepProgress
    from search.progress import InstrumentTally
    from search.trainable import TrialSpec, run_trial

    start = time.perf_counter()
    spec = TrialSpec(dataset_dir=place.dataset(dataset), trials_dir=place.trials,
                     threads=max(1, int(settings.cpus_per_trial)), report_every=report_every(settings, space),
                     max_params=settings.max_params, max_bytes=settings.max_bytes, min_rtf=settings.min_rtf,
                     train_fn=settings.train_fn, size_fn=settings.size_fn)
    trainable = tune.with_resources(tune.with_parameters(run_trial, spec=spec),
                                    {"cpu": settings.cpus_per_trial})
    tracker = tracking.TrialTracker(uri, experiment_id, parent_run_id, name, instrument,
                                    config_defaults=_trainer_defaults())
    tally = InstrumentTally(instrument, settings.trials, reference=reference)
    tally.preload(tracker.existing_outcomes())

    def log_front(tally: InstrumentTally) -> None:
        tracker.log_sweep_metrics({"hypervolume": tally.hypervolume(), "trial_steps_used": tally.trial_steps_used()},
                                  step=len(tally.outcomes))

    callbacks = [MLflowCallback(tracker), SweepProgress(tally, say, on_trial_end=log_front), *place.callbacks()]

    experiment_path = contained(place.folder, instrument, "instrument")  # the driver's files of the instrument
    experiment_path.mkdir(parents=True, exist_ok=True)
    if settings.resume and tune.Tuner.can_restore(place.experiment(instrument)):
        say(f"[{instrument}] resuming from {place.experiment(instrument)}")
        write_ended(experiment_path, tracker.run_ids())  # every trial suggested so far, ended or lost
        tuner = tune.Tuner.restore(place.experiment(instrument), trainable=trainable,
                                   resume_unfinished=True, resume_errored=False)
        _replace_callbacks(tuner, callbacks)
    else:
        tuner = tune.Tuner(trainable, tune_config=tune_config(settings, space, instrument, experiment_path),
                           run_config=tune.RunConfig(name=instrument, storage_path=place.ray_storage,
                                                     callbacks=callbacks, verbose=0,
                                                     failure_config=tune.FailureConfig(max_failures=INFRA_RETRIES)))
    status, catcher = "FINISHED", InterruptCatcher()
    try:
        with catcher:
            tuner.fit()
        if catcher.signal_number is not None:  # Ray stopped the trials and saved its state
            reason = f"interrupted ({signal.Signals(catcher.signal_number).name}); `--resume` continues it"
            for trial_id in tracker.open_trials():
                tracker.close(trial_id, {}, {}, errored=False, error_text=reason, status=INTERRUPTED)
            status = "KILLED"
    except Exception:
        status = "FAILED"
        raise
    finally:
        # Runs left RUNNING by a killed driver whose trial Ray had not saved are over: say so.
        lost = tracking.end_stale_runs(client, experiment_id, parent_run_id, keep=(),
                                       reason="lost when the sweep driver stopped; not resumed")
        if lost:
            say(f"[{instrument}] ended {len(lost)} run(s) left RUNNING by the previous driver")
        for trial_id in lost:  # they used up budget (search/ledger.py), so they count as ended: failed
            tally.end(trial_id, FAILED, {})
        tracking.finish_parent_run(client, parent_run_id, _parent_summary(tally, tracker), status)
    if catcher.signal_number is not None:
        raise SweepInterrupted(name, catcher.signal_number)
    from search.moasha import rung_summary

    return InstrumentResult(instrument, dataset, experiment_id, parent_run_id,
                            outcomes=dict(tally.outcomes), run_ids=tracker.run_ids(),
                            summary_line=tally.line(), tracking_s_per_trial=tracker.seconds_per_trial(),
                            wall_s=time.perf_counter() - start, hypervolume=tally.hypervolume(),
                            trial_steps_used=tally.trial_steps_used(),
                            rungs=rung_summary(experiment_path / MOASHA_STATE))


class InterruptCatcher:
    """Ctrl-C (SIGINT) and SIGTERM during ``Tuner.fit`` end the run the way Ray ends it on its own
    stop signal (SIGUSR1: trials stopped, experiment state saved) and are remembered, so the sweep can
    mark its open trials INTERRUPTED and say how to resume. A second signal interrupts at once.
    Ray's own SIGINT handler is off (``TUNE_DISABLE_SIGINT_HANDLER``), and so is its advice to call
    ``Tuner.restore`` (tonesweep prints its own ``--resume`` command)."""

    def __init__(self):
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "InterruptCatcher":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        self._ray_logger = logging.getLogger("ray.tune.tune")
        self._ray_level = self._ray_logger.level
        self._ray_logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._ray_logger.setLevel(self._ray_level)

    def _handle(self, number: int, frame) -> None:
        ray_stop = signal.getsignal(signal.SIGUSR1)
        if self.signal_number is not None or not callable(ray_stop):
            raise KeyboardInterrupt  # a second signal, or Ray's loop not running yet
        self.signal_number = number
        os.kill(os.getpid(), signal.SIGUSR1)


def tune_config(settings: SweepSettings, space, instrument: str, experiment_path: Path):
    """TuneConfig: the searcher (KerasTuner oracle or Optuna sampler), the scheduler, reused actors."""
    from ray import tune

    return tune.TuneConfig(search_alg=make_searcher(settings, space, instrument, experiment_path),
                           scheduler=make_scheduler(settings, space, experiment_path),
                           num_samples=settings.trials, metric=METRIC, mode=MODE, reuse_actors=True,
                           trial_dirname_creator=trial_dirname)


def instrument_seed(seed: int, instrument: str) -> int:
    """Each instrument's searcher gets its own seed (same --seed, other instrument: other first draws),
    stable across runs and independent of which other instruments share the sweep."""
    return seed * 1000 + zlib.crc32(instrument.encode()) % 1000


def make_searcher(settings: SweepSettings, space, instrument: str, experiment_path: Path):
    overrides = {"seed": settings.seed}
    if settings.steps is not None:
        overrides["steps"] = settings.steps
    common = dict(max_trials=settings.trials, seed=instrument_seed(settings.seed, instrument), overrides=overrides,
                  max_concurrent=max_concurrent(settings), ledger_path=str(experiment_path / LEDGER))
    if settings.algorithm in MULTI_OBJECTIVE_ALGORITHMS:
        from search.optuna_searcher import OptunaSearcher
        from search.trainable import SIZE_METRIC

        return OptunaSearcher(space, settings.algorithm, objectives=(SIZE_METRIC, METRIC), **common)
    from search.searcher import KerasTunerSearcher

    return KerasTunerSearcher(space, settings.algorithm, metric=METRIC, mode=MODE, **common)


def make_scheduler(settings: SweepSettings, space, experiment_path: Path):
    """MO-ASHA (default), ASHA on val_loss, or none.

    time_attr "step" (not Ray's iteration count) keeps rungs right when a resumed trial continues
    from its trainer checkpoint; the grace period gives every trial 2 reports. (The trainable holds
    back the report at the last step, so no rung decision can fall between a trial's training and
    its evaluation.)
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    steps = trial_steps(settings, space)
    grace = min(steps, 2 * report_every(settings, space))
    if settings.scheduler == "moasha":
        from search.moasha import MOASHAScheduler
        from search.trainable import SIZE_METRIC

        return MOASHAScheduler(time_attr="step", metric=METRIC, size_metric=SIZE_METRIC, max_t=steps,
                               grace_period=grace, reduction_factor=REDUCTION_FACTOR,
                               state_path=str(experiment_path / MOASHA_STATE))
    if settings.scheduler == "asha":
        return ASHAScheduler(time_attr="step", max_t=steps, grace_period=grace, reduction_factor=REDUCTION_FACTOR)
    return FIFOScheduler()


def trial_dirname(trial) -> str:
    """Ray's per-trial folder: the trial id (Ray's default spells out the whole config)."""
    return trial.trial_id


def trial_steps(settings: SweepSettings, space) -> int:
    """Training steps of every trial: --steps, else the space's fixed steps, else the trainer's default."""
    return settings.steps or _fixed_steps(space) or _trainer_default_steps()


def report_every(settings: SweepSettings, space) -> int:
    """Steps between progress reports: ~20 per trial, at most every 50 steps (the trainer's default).

    Each report costs the trainer a small validation pass, and gives the scheduler a point to decide
    on. With the grace period of 2 reports, (MO-)ASHA's rungs fall at 1/10, 3/10 and 9/10 of a
    trial's steps, so a search that stops most trials at the first rung spends about a quarter of
    the full budget (10 reports per trial put the first rung at 1/5 and cost about 0.38).
    """
    if settings.report_every:
        return settings.report_every
    return max(1, min(50, trial_steps(settings, space) // 20))


def max_concurrent(settings: SweepSettings) -> int:
    """Trials that fit side by side: the cluster's CPUs over CPUs per trial (at least 1)."""
    import ray

    cpus = ray.cluster_resources().get("CPU", 1) if ray.is_initialized() else (os.cpu_count() or 1)
    return max(1, int(cpus // settings.cpus_per_trial))


# ---------------------------------------------------------------------------- checks


def hypervolume_reference(settings: SweepSettings, client, experiment_id: str, sweep: str, dataset: str):
    """The sweep's hypervolume reference point: the one its parent run recorded (a resumed sweep),
    else ``reference_fn(dataset)`` (deterministic per dataset, so sweeps of a dataset compare)."""
    from results import tracking
    from results.pareto import ReferencePoint, reference_from_params
    from search.trainable import resolve

    parent = tracking.find_parent_run(client, experiment_id, sweep)
    recorded = reference_from_params(parent.data.params) if parent is not None else None
    return recorded or ReferencePoint(**resolve(settings.reference_fn)(dataset))


def check_settings(settings: SweepSettings) -> None:
    if settings.trials < 1:
        raise UserError(f"--trials: {settings.trials} must be at least 1")
    if settings.cpus_per_trial <= 0:
        raise UserError(f"--cpus-per-trial: {settings.cpus_per_trial} must be positive")
    if settings.resume and not settings.name:
        raise UserError("--resume: needs --name NAME of the sweep to continue")
    if settings.steps is not None and settings.steps < 1:
        raise UserError(f"--steps: {settings.steps} must be at least 1")
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


def check_frame_rates(dataset: str, space, space_name: str) -> None:
    """Stop before fan-out when the space can ask for a frame rate the dataset was not prepared at."""
    from spaces import possible_values
    from trainers.data.dataset import read_manifest

    prepared = [int(rate) for rate in read_manifest(dataset).get("frame_rates", [])]
    wanted = possible_values(space, "frame_rate", default=_trainer_defaults()["frame_rate"])
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


def check_sweep_place(place: SweepPlace, resume: bool) -> None:
    exists = place.exists()
    if exists and not resume:
        raise UserError(f"--name {place.name}: a sweep of that name exists in {place.describe()}; "
                        "add --resume to continue it or choose another --name")
    if resume and not exists:
        raise UserError(f"--name {place.name}: no sweep of that name in {place.describe()}; "
                        "check --name and --storage")


def default_sweep_name() -> str:
    return "sweep-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def sweep_params(settings: SweepSettings, space) -> dict:
    """The parent run's params: the sweep's own settings, and the space's fixed values."""
    params = {"trials": settings.trials, "algorithm": settings.algorithm, "scheduler": settings.scheduler,
              "space": space.source, "cpus_per_trial": settings.cpus_per_trial, "seed": settings.seed,
              "steps": settings.steps, "max_params": settings.max_params, "max_bytes": settings.max_bytes,
              "min_rtf": settings.min_rtf}
    params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
    return {k: v for k, v in params.items() if v is not None}


# ---------------------------------------------------------------------------- output


def format_summary(results: list[InstrumentResult], name: str, uri: str) -> str:
    """The closing lines of a sweep: one block per instrument, then where to browse."""
    lines = [f"\nsweep {name} done"]
    for result in results:
        lines.append(f"  {result.summary_line}")
        volume = "-" if result.hypervolume is None else f"{result.hypervolume:.4g}"
        lines.append(f"    hypervolume {volume}; {result.trial_steps_used:,} trial-steps; {result.wall_s:.0f} s; "
                     f"MLflow logging {result.tracking_s_per_trial:.2f} s per trial (driver); "
                     f"parent run {result.parent_run_id}")
        if result.rungs:
            lines.append("    best val_loss per rung: " + ", ".join(
                f"step {step}: {best:.4g} ({n} trials)" for step, (n, best) in sorted(result.rungs.items())))
    browse = "`tonesweep ui`" + (f" --tracking-uri {uri}" if uri != "sqlite:///mlflow.db" else "")
    lines.append(f"MLflow: {uri} (browse: {browse}, then http://127.0.0.1:5000)")
    return "\n".join(lines)


def _parent_summary(tally, tracker) -> dict:
    best, small = tally.best(), tally.smallest_acceptable()
    return {
        "trials_finished": tally.count(FINISHED), "trials_failed": tally.count(FAILED),
        "trials_rejected": tally.count(REJECTED), "trials_stopped": tally.count(STOPPED),
        "best_quality": best.quality if best else math.nan,
        "smallest_acceptable_bytes": small.bytes if small else math.nan,
        "tracking_s_per_trial": tracker.seconds_per_trial(),
    }


def _quiet(text: str) -> None:
    """The default ``say``: library code does not print."""


def _trainer_defaults() -> dict:
    from trainers.model.config import DEFAULTS  # light: no TensorFlow

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
