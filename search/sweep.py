"""`tonesweep sweep`: fan a search space out over Ray Tune, one experiment per instrument.

Flow of ``run_sweep``:

1. ``search.settings.preflight``: flags, names, datasets, spaces (every value they can produce),
   storage, the tracking store and the cluster address, all checked before anything is created;
2. MLflow: experiment ``tonesweep-<instrument>`` and the sweep's parent run, created once per
   instrument before fan-out, with the hypervolume reference point of its dataset;
3. Ray: local (127.0.0.1, all cores) unless ``--address``/``RAY_ADDRESS`` names a cluster
   (``cluster.local_ray``);
4. per instrument, an ``InstrumentSweep``: a ``Tuner`` (new, or restored on ``--resume``;
   ``search.tuner``) with the searcher of ``--algorithm`` and the scheduler of ``--scheduler``
   (multi-objective ASHA by default), the driver-side MLflow and progress callbacks, and the parent
   run's summary when it ends, however it ends;
5. one ``InstrumentResult`` per instrument (``search.summary``); Ray is shut down if this process
   started it.

Instruments run one after another because (MO-)ASHA compares ``val_loss`` across the trials of one
experiment, and spectral losses of different instruments are not on one scale; within an
instrument, trials run side by side on all the CPUs.

On a cluster (``--address``, or ``ray job submit -- tonesweep sweep ...``), ``--storage`` must be a
place every node reaches: an object store or a shared folder (``search.place``).

Library code: ``run_sweep`` returns results and reports progress through ``say`` (one line at a
time); it never prints. ``cli.commands.sweep`` is the handler that prints.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from common.constants import FAILED, FINISHED, INTERRUPTED, REJECTED, STOPPED
from common.values import finite
from results.layout import WARM_START_TAG
from search import tuner
from search.algorithms.ledger import write_ended
from search.front import FrontRecord, record_name
from search.interrupts import InterruptCatcher, SignalsInterrupt, StoreLost, SweepInterrupted
from search.limits import REFUSALS
from search.recycling import recycling
from search.trainable import resolve
from search.settings import (Checked, SweepSettings, check_resume_matches, preflight, report_every, sweep_params,
                             sweep_record)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from results.pareto import ReferencePoint
    from search.summary import InstrumentResult
    from spaces.translate import SearchSpace

Say = Callable[[str], None]
log = logging.getLogger(__name__)


def run_sweep(settings: SweepSettings, say: Say | None = None) -> list[InstrumentResult]:
    """Run (or resume) a sweep; returns one ``search.summary.InstrumentResult`` per dataset.

    Everything a user can get wrong is checked before anything is created (``preflight``; then,
    once Ray is up, whether a trial fits the cluster). ``say`` receives progress lines; by default
    nothing is printed. Sets the driver's environment (``search.tuner.DRIVER_ENVIRONMENT``) before
    Ray Tune starts. Ctrl-C or SIGTERM end the sweep with its state saved: ``SweepInterrupted``.
    """
    from search.place import check_sweep_place

    say = say or _quiet
    with SignalsInterrupt() as signals:  # SIGTERM as Ctrl-C from here on: the lock and the runs are released
        checked = preflight(settings)
        tuner.set_driver_environment()
        place = checked.place
        with place.writer_lock(took_over=say):
            check_sweep_place(place, settings.resume)  # again: another driver may have started it since the checks
            return _run_locked(settings, checked, say, signals)


def _run_locked(settings: SweepSettings, checked: Checked, say: Say, signals: SignalsInterrupt) -> list[InstrumentResult]:
    """``run_sweep`` once this driver holds the sweep's lock; an interruption before, between or
    during the instruments' Tuners is ``SweepInterrupted`` with no parent run left RUNNING."""
    from cluster import local_ray
    from results import tracking
    from search.place import read_sweep_file, write_sweep_file

    place = checked.place
    place.open([instrument for instrument, _ in checked.instruments], list(tuner.DRIVER_FILES), settings.resume)
    if settings.resume:
        try:  # the sweep to continue, whole (a damaged one is one line), asked to do what it was started with
            check_resume_matches(read_sweep_file(place.folder), settings, checked.name, checked.instruments)
        except BaseException:
            place.close()
            raise
    experiments: list[Experiment] = []
    sweep: Sweep | None = None
    ray_handle = None
    recorded = completed = False  # recorded: sweep.json written; from then on, `--resume` finds the sweep
    try:
        ray_handle = local_ray.start(settings.address, tuner.worker_environment(settings.xla_cache))
        local_ray.check_fits(settings.cpus_per_trial)
        place.folder.mkdir(parents=True, exist_ok=True)
        write_sweep_file(place.folder, sweep_record(settings, checked.name, checked.instruments))
        recorded = True
        sweep = Sweep(settings, checked, tracking.make_client(checked.tracking_uri), say)
        for instrument, dataset in checked.instruments:
            experiments.append(sweep.open_experiment(instrument, dataset))
        say(f"sweep {checked.name}: {len(experiments)} instrument(s) × {settings.trials} trials, "
            f"{settings.algorithm} search, scheduler {settings.scheduler}, tracking {checked.tracking_uri}")
        results = [InstrumentSweep(sweep, experiment).run() for experiment in experiments]
        completed = True
        return results
    except KeyboardInterrupt:
        if not recorded:  # nothing of the sweep exists yet: a plain interruption, nothing to resume
            raise
        raise SweepInterrupted(checked.name, signals.number or signal.SIGINT) from None
    finally:
        if sweep is not None:  # parent runs left RUNNING by an interruption or a failure: ended, not lost
            end_running_parents(sweep.client, experiments)
        if ray_handle is not None:
            ray_handle.stop()
        close_place(place, failing=not completed)


def close_place(place, failing: bool) -> None:
    """Upload the last bookkeeping and drop the scratch copy. When the sweep is ``failing`` (the store
    may be what failed), a failed upload must not hide why it stopped: ``--resume`` finds Ray's state
    and the bookkeeping uploaded as the sweep went in the store."""
    try:
        place.close()
    except OSError:
        if not failing:
            raise
        log.debug("could not upload the last bookkeeping", exc_info=True)


def end_running_parents(client, experiments: list[Experiment]) -> None:
    """Parent runs still RUNNING (the sweep stopped before or while their instrument ran) end KILLED;
    ``--resume`` reopens them."""
    from results import tracking

    for experiment in experiments:
        try:
            if client.get_run(experiment.parent_run_id).info.status == "RUNNING":
                tracking.finish_parent_run(client, experiment.parent_run_id, {}, "KILLED")
        except Exception:  # noqa: BLE001 - the store itself may be what failed; the original error matters more
            log.debug("could not end parent run %s", experiment.parent_run_id, exc_info=True)


@dataclass
class Sweep:
    """A sweep under way: what was asked for, what the checks found, the tracking client, the printer."""

    settings: SweepSettings
    checked: Checked
    client: MlflowClient
    say: Say

    @property
    def name(self) -> str:
        return self.checked.name

    def open_experiment(self, instrument: str, dataset: str) -> Experiment:
        """The instrument's MLflow experiment and the sweep's parent run in it (reopened on resume),
        with the hypervolume reference point recorded as its params."""
        from results import browse, tracking

        experiment_id = tracking.ensure_experiment(self.client, instrument)
        reference = hypervolume_reference(self.settings, self.client, experiment_id, self.name, dataset)
        space = self.checked.spaces[instrument]
        params = {**sweep_params(self.settings, space), **reference.to_params()}
        run_id = tracking.start_parent_run(self.client, experiment_id, self.name, instrument, dataset_label(dataset),
                                           self.settings.algorithm, params)
        browse.write_landing_view(self.client, experiment_id)  # what `tonesweep ui`'s link opens on
        return Experiment(instrument, dataset, space, experiment_id, run_id, reference)


@dataclass
class Experiment:
    """One instrument of a sweep: its dataset and space, its MLflow experiment and parent run."""

    instrument: str
    dataset: str
    space: SearchSpace
    experiment_id: str
    parent_run_id: str
    reference: ReferencePoint


class InstrumentSweep:
    """One instrument's Tune experiment, from start or from its saved state, tracked in MLflow."""

    def __init__(self, sweep: Sweep, experiment: Experiment):
        from results import tracking
        from search.progress import InstrumentTally
        from trainers.model.config import DEFAULTS  # light: no TensorFlow

        self.sweep, self.experiment = sweep, experiment
        self.instrument = experiment.instrument
        size_fn = resolve(sweep.settings.size_fn)
        self.tracker = tracking.TrialTracker(sweep.checked.tracking_uri, experiment.experiment_id,
                                             experiment.parent_run_id, sweep.name, self.instrument,
                                             config_defaults=dict(DEFAULTS),
                                             run_namer=lambda config, trial_id: trial_run_name(
                                                 {**DEFAULTS, **config}, trial_id, size_fn))
        self.tally = InstrumentTally(self.instrument, sweep.settings.trials, reference=experiment.reference,
                                     refusals_path=str(self._driver_folder() / REFUSALS))
        self.tally.preload(self.tracker.existing_outcomes())
        self.record = FrontRecord(self._front_name())  # the measured candidates, while the Tuner runs
        self.storage_sync = None  # the bookkeeping upload of a sweep in an object store (and its watch)
        self.recycling = None     # which workers were too big to reuse (search.recycling), while the Tuner runs

    def run(self) -> InstrumentResult:
        """Fit the Tuner, close the parent run whatever happens, and return the instrument's result."""
        from search import budget
        from search.algorithms.moasha import rung_summary
        from search.summary import InstrumentResult

        start = time.perf_counter()
        catcher, status = InterruptCatcher(), "FINISHED"
        try:
            tuner_ = self._tuner()
            with catcher, self.record, recycling(self.sweep.settings.worker_memory_mib) as self.recycling:
                tuner_.fit()
            lost = self.storage_sync.lost if self.storage_sync is not None else None
            if catcher.signal_number is not None or lost:  # Ray stopped the trials and saved its state
                reason = catcher.reason() if lost is None else f"the object store stopped answering ({lost})"
                self._interrupt_open_trials(reason)
                status = "KILLED"
        except KeyboardInterrupt:  # a second Ctrl-C: Ray's loop was left at once
            status = "KILLED"
            raise
        except Exception:
            status = "FAILED"
            lost = self._store_lost()
            if lost is None:
                raise
            status = "KILLED"  # Ray's own storage calls failed on the store: the sweep stops, resumable
            self._interrupt_open_trials(f"the object store stopped answering ({lost})")
            raise StoreLost(self.sweep.name, self.sweep.checked.place.remote.uri, lost) from None
        finally:
            self._finish(status)
        if catcher.signal_number is not None:
            raise SweepInterrupted(self.sweep.name, catcher.signal_number)
        if lost:
            raise StoreLost(self.sweep.name, self.sweep.checked.place.remote.uri, lost)
        ended = len(self.tally.outcomes)
        if budget.held_back(self.instrument) or budget.stopped(self.instrument):
            running = budget.stopped(self.instrument)
            self.sweep.say(f"[{self.instrument}] the time budget ({self.sweep.settings.time_budget_s:g} s) ran out after "
                           f"{ended} of {self.sweep.settings.trials} trials: none started after it"
                           + (f", and the {running} running then stopped at their next step" if running else ""))
        elif ended < self.sweep.settings.trials:  # the searcher answered FINISHED early
            refused = self.tally.refused()
            self.sweep.say(f"[{self.instrument}] the search space ran out after {ended} of {self.sweep.settings.trials} "
                           f"trials" + (f" ({refused} configurations drawn were refused by the limits)" if refused else ""))
        return InstrumentResult(
            self.instrument, self.experiment.dataset, self.experiment.experiment_id, self.experiment.parent_run_id,
            outcomes=dict(self.tally.outcomes), run_ids=self.tracker.run_ids(), summary_line=self.tally.line(),
            tracking_s_per_trial=self.tracker.seconds_per_trial(), wall_s=time.perf_counter() - start,
            hypervolume=self.tally.hypervolume(), trial_steps_used=self.tally.trial_steps_used(),
            rungs=rung_summary(self._driver_folder() / tuner.MOASHA_STATE), quantised=self.record.counts,
            workers_recycled=self._workers_recycled(), time_split=self.tally.time_split())

    def _workers_recycled(self) -> int:
        return self.recycling.recycled if self.recycling is not None else 0

    def _interrupt_open_trials(self, reason: str) -> None:
        for trial_id in self.tracker.open_trials():
            self.tracker.close(trial_id, {}, {}, errored=False, error_text=reason, status=INTERRUPTED)

    def _store_lost(self) -> str | None:
        """Why the sweep's object store does not answer (None: it answers, or the sweep is local)."""
        from cluster.object_store import store_problem

        if self.storage_sync is None:
            return None
        return self.storage_sync.lost or store_problem(self.sweep.checked.place.remote)

    def _tuner(self):
        """The Tuner: restored (with the ledger of trials MLflow saw written first) or new."""
        from search import budget
        from search.trainable import TrialSpec

        settings, place = self.sweep.settings, self.sweep.checked.place
        budget.start(self.instrument, settings.time_budget_s)  # (again, on a resume); its trials get the deadline
        spec = TrialSpec(dataset_dir=place.dataset(self.experiment.dataset), trials_dir=place.trials,
                         threads=max(1, int(settings.cpus_per_trial)),
                         report_every=report_every(settings, self.experiment.space),
                         max_params=settings.max_params, max_bytes=settings.max_bytes, min_rtf=settings.min_rtf,
                         train_fn=settings.train_fn, size_fn=settings.size_fn,
                         front=self._front_name() if settings.evaluation_in_proportion else None,
                         deadline=budget.deadline(self.instrument))
        experiment = place.experiment(self.instrument)
        restore = tuner.restoring(settings, experiment)
        if restore:
            self.sweep.say(f"[{self.instrument}] resuming from {place.experiment_location(self.instrument)}")
            write_ended(self._driver_folder(), self.tracker.run_ids())  # every trial suggested so far, ended or lost
        return tuner.build_tuner(settings, self.experiment.space, self.instrument,
                                 tuner.trainable_for(settings, spec), experiment, restore, self._driver_folder(),
                                 self._callbacks(), place.ray_storage, None if restore else self._warm_start())

    def _warm_start(self) -> list[dict]:
        """Values the searcher tries first (``results.warm_start``): the front configurations of the
        instruments this sweep swept before this one (``--warm-start``) and of every instrument of the
        ``--warm-start-from`` sweeps, as many as a quarter of ``--trials`` (at least one)."""
        from results.warm_start import front_configs
        from spaces.translate import warm_values

        settings, sources, configs = self.sweep.settings, [], []
        if settings.warm_start:
            earlier = [inst for inst, _ in self.sweep.checked.instruments][:self._position()]
            configs += front_configs(self.sweep.client, self.sweep.name, earlier)
            sources += [f"{self.sweep.name}/{inst}" for inst in earlier]
        for name in settings.warm_start_from:
            configs += front_configs(self.sweep.client, name)
            sources.append(name)
        values = warm_values(configs, self.experiment.space, max(1, settings.trials // 4)) if configs else []
        if values:
            self.sweep.say(f"[{self.instrument}] warm start: {len(values)} configuration(s) from the fronts of "
                           f"{', '.join(sources)}")
            self.sweep.client.set_tag(self.experiment.parent_run_id, WARM_START_TAG,
                                      f"{len(values)} from {', '.join(sources)}")
        return values

    def _position(self) -> int:
        return [inst for inst, _ in self.sweep.checked.instruments].index(self.instrument)

    def _front_name(self) -> str:
        return record_name(self.sweep.name, self.instrument)

    def _callbacks(self) -> list:
        from search.callbacks import MLflowCallback, StorageSync, SweepProgress

        place = self.sweep.checked.place
        callbacks = [MLflowCallback(self.tracker), SweepProgress(self.tally, self.sweep.say, on_trial_end=self._log_front)]
        if place.remote is not None:
            self.storage_sync = StorageSync(place.folder, place.remote, place.own)
            callbacks.append(self.storage_sync)
        return callbacks

    def _log_front(self, tally) -> None:
        """After every ended trial: the front's hypervolume, the trial-steps spent and the share of the trials'
        time that trained (``InstrumentTally.time_split``), on the parent run."""
        split = tally.time_split()
        self.tracker.log_sweep_metrics({"hypervolume": tally.hypervolume(), "trial_steps_used": tally.trial_steps_used(),
                                        "trials_refused": tally.refused(),
                                        "training_share": split.training if split is not None else None},
                                       step=len(tally.outcomes))

    def _driver_folder(self):
        return self.sweep.checked.place.instrument_folder(self.instrument)

    def _finish(self, status: str) -> None:
        """End runs a killed driver left RUNNING that Ray did not resume, then the parent run."""
        from results import tracking

        lost = tracking.end_stale_runs(self.sweep.client, self.experiment.experiment_id,
                                       self.experiment.parent_run_id, keep=(),
                                       reason="lost when the sweep driver stopped; not resumed")
        if lost:
            self.sweep.say(f"[{self.instrument}] ended {len(lost)} run(s) left RUNNING by the previous driver")
        for trial_id in lost:  # they used up budget (search.algorithms.ledger), so they count as ended: failed
            self.tally.end(trial_id, FAILED, {})
        tracking.finish_parent_run(self.sweep.client, self.experiment.parent_run_id, self._parent_summary(), status)

    def _parent_summary(self) -> dict:
        tally = self.tally
        best, small = tally.best(), tally.smallest_acceptable()
        return {
            "trials_finished": tally.count(FINISHED), "trials_failed": tally.count(FAILED),
            "trials_rejected": tally.count(REJECTED), "trials_stopped": tally.count(STOPPED),
            "trials_refused": tally.refused(),
            "workers_recycled": self._workers_recycled(),
            "best_quality": best.quality if best else math.nan,
            "smallest_acceptable_bytes": small.bytes if small else math.nan,
            "tracking_s_per_trial": self.tracker.seconds_per_trial(),
            # evaluation in proportion (search.front): quantised candidates judged, and skipped as unable to matter
            "quantised_judged": self.record.counts[0], "quantised_skipped": self.record.counts[1],
        }


def dataset_label(dataset: str) -> str:
    """How the parent run names its dataset: instrument and content key, e.g. ``bansuri@3f9a0c1d2e4b``
    (a path would name one machine's disk; the key is the same wherever the dataset is copied)."""
    from trainers.data.dataset import read_manifest  # light: numpy only

    manifest = read_manifest(dataset)
    key = str(manifest.get("cache_key") or "")[:12]
    return f"{manifest.get('instrument')}@{key}" if key else str(manifest.get("instrument"))


def trial_run_name(config: dict, trial_id: str, size_fn) -> str | None:
    """What a trial's MLflow run is called in the runs table: decoder, feature, parameter count and the
    trial id's first characters, e.g. ``cnn-rms-4.7k-a819`` (None when the size cannot be told)."""
    try:
        params = finite(size_fn(dict(config)).get("params"))
    except Exception:  # noqa: BLE001 - a name is a convenience; the trial reports its own failure
        return None
    if params is None or not config.get("decoder") or not config.get("feature"):
        return None
    from results.layout import trial_run_name as name

    return name(str(config["decoder"]), str(config["feature"]), params, trial_id)


def hypervolume_reference(settings: SweepSettings, client, experiment_id: str, sweep: str, dataset: str):
    """The sweep's hypervolume reference point: the one its parent run recorded (a resumed sweep),
    else ``reference_fn(dataset)`` (deterministic per dataset, so sweeps of a dataset compare)."""
    from results import tracking
    from results.pareto import ReferencePoint, reference_from_params

    parent = tracking.find_parent_run(client, experiment_id, sweep)
    recorded = reference_from_params(parent.data.params) if parent is not None else None
    return recorded or ReferencePoint(**resolve(settings.reference_fn)(dataset))


def _quiet(text: str) -> None:
    """The default ``say``: library code does not print."""
