"""The Ray Tune function trainable: one trial = one ``train_trial`` call on a worker.

The trainer knows nothing about Ray: it gets a plain ``report`` callable, and this module turns its
progress dicts into ``tune.report`` calls, the only thing ASHA looks at (``val_loss`` against
``step``). The trial's final report carries the whole metrics dict plus ``status``; a trial that
raises, diverges or is rejected for its size still ends with such a report, so it is recorded
with its reason and the sweep goes on (Ray only sees an error if the worker itself dies).

Resume: each trial writes to ``<trials_dir>/<ray trial id>/`` and the trainer resumes from that
folder's ``checkpoint/`` (in an object store, ``search.trial_folder.TrialFolder`` keeps that folder
there); the Ray trial id survives ``Tuner.restore``, so a trial interrupted by a killed driver
continues from its last trainer checkpoint instead of step 0. Weights are not copied into Ray
checkpoints as well: that would double the I/O of every report for nothing. Datasets reach the
workers by path (prepared once by ``tonesweep prepare``), never re-prepared; with an object store, by
a copy published there (``search.trial_folder.dataset_on_this_node``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from results.layout import NODE_KEY
from common.constants import FAILED, FINISHED, REJECTED
from common.values import finite
from search.limits import Limits, size_metrics
from search.recycling import RSS_KEY

# A trial's sizes (search.limits.size_metrics: the shown size and the search's size objective, which MO-ASHA and
# the multi-objective samplers read) are reported with every result (known before training, so equal at every report).


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one instrument's sweep shares (sent once to the workers).

    ``train_fn`` / ``size_fn`` are ``"module:function"`` names (or callables) so tests can run the
    sweep engine against a stand-in trainer; the CLI always uses the real one.
    """

    dataset_dir: str
    trials_dir: str
    threads: int = 1
    report_every: int = 50
    max_params: int | None = None
    max_bytes: int | None = None
    min_rtf: float | None = None
    train_fn: str | Callable = "trainers.training.train:train_trial"
    size_fn: str | Callable = "trainers.model.size:size_report"
    front: str | None = None  # the name of the instrument's record of measured candidates (search.front)
    deadline: float | None = None  # time.time() when the time budget runs out (search.budget): the trainer reports then


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Ray function trainable (bind ``spec`` with ``tune.with_parameters``)."""
    import ray
    from ray import tune

    from search.front import TrialFront
    from search.trial_folder import TrialFolder, dataset_on_this_node

    folder = TrialFolder(spec.trials_dir, tune.get_context().get_trial_id())
    node = {NODE_KEY: ray.get_runtime_context().get_node_id()}  # which node ran it: an MLflow tag

    def report(metrics: dict) -> None:
        folder.report()  # in an object store: the checkpoint (and audio example) written just before this report
        tune.report({**metrics, "out_dir": folder.location, **node})  # a stopped trial's audio is found there

    try:
        spec = dataclasses.replace(spec, dataset_dir=dataset_on_this_node(spec.dataset_dir))
        front = TrialFront(spec.front) if spec.front else None
        final = execute_trial(config, spec, folder.local, report=report, front=front)
        folder.finish()
        tune.report({**final, "out_dir": folder.location, **node})
    finally:  # also when the scheduler stops the trial at a rung
        folder.close()


def execute_trial(config: dict[str, Any], spec: TrialSpec, out_dir: Path,
                  report: Callable[[dict], None], front=None) -> dict[str, Any]:
    """Size check, training, and the final result dict; never raises for a trial's own failure.

    Kept free of Ray so it is tested directly. The final dict has ``final=True``, ``status``,
    ``failure_reason``, every metrics.json key, ``step``, ``val_loss`` (last reported, NaN if none)
    and ``out_dir``. ``front`` (``search.front``): the trainer asks its ``matter`` which quantised
    precisions to evaluate, and a finished trial's measured candidates are ``add``-ed to it.
    """
    last: dict[str, Any] = {}
    total_steps = _total_steps(config)
    sizes: dict[str, Any] = {}
    started = time.perf_counter()
    before_training = 0.0  # size check and imports, before train_fn starts

    memory = PeakRSS()

    def resources(metrics: dict) -> dict:
        """Memory and start-up so far: in every report, so a trial stopped at a rung has them too."""
        out = {"peak_rss_mib": memory.peak_mib,        # this worker process, while this trial ran
               "rss_at_start_mib": memory.start_mib,   # what it held before (a reused worker's leftovers)
               RSS_KEY: memory.now_mib()}              # what it holds now (search.recycling decides on it)
        if finite(metrics.get("first_step_s")) is not None:
            out["startup_s"] = before_training + float(metrics["first_step_s"])  # trial start to first step
        return out

    def forward(metrics: dict) -> None:
        last.update(metrics)
        # The report at the last step is held back and merged into the final result: a scheduler
        # deciding on it could stop the trial between training and evaluation, losing the
        # evaluation of a model that had already finished training.
        if int(metrics.get("step", 0)) < total_steps:
            report({**metrics, **size_metrics(sizes), **resources(metrics)})

    with memory:
        try:
            sizes.update(resolve(spec.size_fn)(config))
            reason = rejection_reason(sizes, spec.max_params, spec.max_bytes, spec.min_rtf)
            if reason:
                metrics = {"status": REJECTED, "failure_reason": reason, **sizes}
            else:
                train = resolve(spec.train_fn)  # imports TensorFlow in a fresh worker: part of start-up
                before_training = time.perf_counter() - started
                asks = {} if front is None else {"judge": front.matter}
                if spec.deadline is not None:
                    asks["deadline"] = spec.deadline
                metrics = dict(train(spec.dataset_dir, config, out_dir, report=forward,
                                     report_every=spec.report_every, threads=spec.threads, **asks))
                if front is not None and metrics.get("status") == FINISHED:
                    front.add(metrics)
        except Exception as err:  # noqa: BLE001 - a trial's failure is data for the sweep, not a crash
            metrics = {**sizes, **_metrics_written_by_trainer(out_dir), "status": FAILED,
                       "failure_reason": failure_text(err)}
    return {
        **metrics,
        **resources(metrics),
        "final": True,
        "train_loss": last.get("train_loss", math.nan),
        "step": int(metrics.get("steps") or last.get("step") or 0),
        "val_loss": float(last.get("val_loss", math.nan)),
        "out_dir": str(out_dir),
        **size_metrics({**metrics, **sizes}),
    }


class PeakRSS:
    """Peak resident memory (MiB) of this process while the ``with`` block runs, sampled every
    ``interval_s`` by a daemon thread (and once at each end), so a reused worker reports each trial's
    own peak rather than the process's lifetime maximum (``ru_maxrss``)."""

    def __init__(self, interval_s: float = 0.2):
        import psutil

        self._process, self._interval_s = psutil.Process(), interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="tonesweep-peak-rss", daemon=True)
        self.start_mib = self.peak_mib = self.now_mib()

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self.now_mib())

    def _sample(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak_mib = max(self.peak_mib, self.now_mib())

    def now_mib(self) -> float:
        return self._process.memory_info().rss / 2**20


def rejection_reason(sizes: dict[str, Any], max_params: int | None, max_bytes: int | None,
                     min_rtf: float | None = None) -> str | None:
    """Why a configuration is too big or too slow for the limits, or None when it fits (``search.limits``)."""
    refusal = Limits(max_params, max_bytes, min_rtf).refusal(sizes)
    return refusal.reason if refusal is not None else None


def failure_text(err: BaseException) -> str:
    """One line: the exception type and message (what a person needs to see in the results)."""
    message = " ".join(str(err).split())
    return f"{type(err).__name__}: {message}"[:2000] if message else type(err).__name__


def resolve(target: str | Callable) -> Callable:
    """``"package.module:function"`` → the function (callables pass through)."""
    if callable(target):
        return target
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


def _total_steps(config: dict[str, Any]) -> int:
    from trainers.model.config import DEFAULTS  # light: no TensorFlow

    return int(config.get("steps") or DEFAULTS["steps"])


def _metrics_written_by_trainer(out_dir: Path) -> dict[str, Any]:
    """metrics.json of a trial that failed after training started (e.g. NaN loss), if any."""
    path = out_dir / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
