"""MLflow tracking of sweeps, written from the sweep driver (docs/architecture.md, section 3).

Layout (names in ``results.layout``; relied on by ``results.table``, the registry and export):

- experiment ``tonesweep-<instrument>``, created once before fan-out (``ensure_experiment``);
- parent run per sweep and instrument (``start_parent_run``);
- child run per trial (``TrialTracker``): params = the config; metrics = every numeric key of
  metrics.json (the few compared at the top level, the rest as ``cost/...``, ``detail/...``:
  ``layout.trial_metric_key``) + the ``train_loss``/``val_loss`` curves; artifacts ``trial/``, ``audio/``,
  ``plots/spectrogram.png``.

This module knows MLflow and nothing of Ray: ``search.callbacks`` turns Ray Tune's callback hooks
into ``TrialTracker`` calls, so ``pareto`` and ``export`` import ``results`` without Ray.

Why from the driver: opening an MLflow run inside every trial costs ~2.7 s per fresh worker and
makes every worker a SQLite writer (docs/engines.md#mlflow). One process writing batched
``log_batch`` calls keeps logging a small fraction of a trial. A logging failure never crashes a
sweep in production: it is logged as a warning and the sweep goes on. Under the tests
(``TONESWEEP_TESTING=1``) it is raised instead, so a broken tracker cannot hide behind a green
run (MLflow's own autologging integrations do the same).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from results import layout
from common.constants import FAILED, FINISHED, INTERRUPTED, REPORTED_STATUSES, RUNNING, STOPPED, TERMINAL_STATUSES
from common.errors import UserError
from common.net import http_answers, wait_for_port, wait_until
from common.files import scratch_dir
from common.values import finite

log = logging.getLogger(__name__)

TESTING_ENV = "TONESWEEP_TESTING"
# Keys of a trial's result that are bookkeeping, not metrics.json numbers
# (val_loss/train_loss are curves, logged with their step as they arrive).
NON_METRIC_KEYS = {"step", "elapsed_s", "status", "failure_reason", "out_dir", "final", "val_loss", "train_loss",
                   layout.NODE_KEY}
# Ray's own result keys (timestamps, iteration counters, host names): never logged as metrics.
RAY_KEYS = {"timestamp", "training_iteration", "time_this_iter_s", "time_total_s", "pid", "hostname",
            "node_ip", "time_since_restore", "iterations_since_restore", "done", "trial_id", "date",
            "experiment_tag", "config", "checkpoint_dir_name", "should_checkpoint"}
FLUSH_EVERY_S = 5.0          # curve points are buffered and sent in one log_batch at most this often
# MLflow's per-request limits of log_batch (mlflow.utils.validation): metrics, params, tags, all together.
MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS, MAX_BATCH_ENTITIES = 1000, 100, 100, 1000
MAX_PARAM_CHARS, MAX_TAG_CHARS = 6000, 5000
TRUNCATED_MARK, PARAM_ARTIFACTS = "...[truncated; full value in artifact params/]", "params"


# ---------------------------------------------------------------------------- store and runs


KNOWN_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file")
REACH_TIMEOUT_S = 20.0  # how long a tracking server may take to answer before a sweep gives up


def check_tracking_uri(uri: str, timeout_s: float | None = None, field: str = "--tracking-uri") -> str:
    """Refuse, before anything is created, a tracking URI MLflow cannot use: an unknown scheme, a
    SQLite file in a place that cannot be written, a server that does not answer within ``timeout_s``
    (MLflow itself retries for minutes before it says anything)."""
    from urllib.parse import urlparse  # noqa: PLC0415

    from common.paths import check_output_file  # noqa: PLC0415

    timeout_s = REACH_TIMEOUT_S if timeout_s is None else timeout_s
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in KNOWN_SCHEMES:
        raise UserError(f"{field} {uri}: unknown scheme {parsed.scheme or '(none)'!r}; use sqlite:///PATH.db, "
                        "http://HOST:PORT (an MLflow server) or postgresql://USER@HOST/DB")
    if scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        if not path or path == ":memory:":
            raise UserError(f"{field} {uri}: give a database file, e.g. sqlite:///mlflow.db")
        check_output_file(path, field, ("",))
    elif scheme in ("http", "https"):
        _wait_for_http(uri.rstrip("/") + "/health", timeout_s, field, uri)
    elif scheme != "file":
        port = parsed.port or {"postgresql": 5432, "mysql": 3306, "mssql": 1433}[scheme]
        wait_for_port(parsed.hostname or "127.0.0.1", port, timeout_s, f"{field} {uri}")
    return uri


def check_store_exists(uri: str, nothing_to: str) -> str:
    """A SQLite store that is to be read must exist: MLflow would create an empty database where a
    mistyped path points. ``nothing_to``: what the command cannot do without it ("export", ...)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not Path(path).is_file():
            raise UserError(f"{path}: no MLflow store here (nothing to {nothing_to}); check --tracking-uri or "
                            "MLFLOW_TRACKING_URI, or run a sweep first")
    return uri


def _wait_for_http(url: str, timeout_s: float, field: str, uri: str) -> None:
    def answers() -> str | None:
        reason = http_answers(url, min(5.0, timeout_s))
        if reason in ("HTTP 401", "HTTP 403"):
            raise UserError(f"{field} {uri}: the server refuses us ({reason}); set MLFLOW_TRACKING_USERNAME/"
                            "MLFLOW_TRACKING_PASSWORD for a server behind authentication")
        return reason

    reason = wait_until(answers, timeout_s)
    if reason is not None:
        raise UserError(f"{field} {uri}: no MLflow server answers at {url} ({reason}) after {timeout_s:g} s; "
                        "start it (e.g. `tonesweep ui`) or fix the address")


def make_client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(client: MlflowClient, instrument: str) -> str:
    """Id of ``tonesweep-<instrument>``, created if missing (call once, before any trial starts)."""
    name, tags = layout.experiment_name(instrument), layout.experiment_tags(instrument)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        for key, value in tags.items():
            if existing.tags.get(key) != value:
                client.set_experiment_tag(existing.experiment_id, key, value)
        return existing.experiment_id
    return client.create_experiment(name, tags=tags, artifact_location=artifact_location(client.tracking_uri, instrument))


def artifact_location(tracking_uri: str, instrument: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file, in ``mlruns/<experiment>/``.

    (MLflow's own default is ``./mlruns`` under whatever directory the process happens to run
    in, which scatters one store's artifacts over several folders.) Other stores keep MLflow's
    default.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(tracking_uri[len("sqlite:///"):]).resolve()
    return (db_path.parent / "mlruns" / layout.experiment_name(instrument)).as_uri()


def find_parent_run(client: MlflowClient, experiment_id: str, sweep: str):
    """The parent run of sweep ``sweep`` in this experiment, or None."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{layout.ROLE_TAG}` = '{layout.ROLE_SWEEP}' and tags.`{layout.SWEEP_TAG}` = '{layout.quote(sweep)}'",
        max_results=2,
    )
    return runs[0] if runs else None


def start_parent_run(client: MlflowClient, experiment_id: str, sweep: str, instrument: str,
                     dataset: str, algorithm: str, params: Mapping[str, Any]) -> str:
    """Create the sweep's parent run (or, on resume, reopen the existing one); returns its id.
    ``dataset`` names the dataset (its instrument and content key, ``search.sweep.dataset_label``),
    never a machine's path."""
    existing = find_parent_run(client, experiment_id, sweep)
    if existing is not None:
        client.update_run(existing.info.run_id, status=RUNNING)
        return existing.info.run_id
    tags = {layout.ROLE_TAG: layout.ROLE_SWEEP, layout.SWEEP_TAG: sweep, layout.INSTRUMENT_TAG: instrument,
            layout.DATASET_TAG: dataset, layout.ALGORITHM_TAG: algorithm}
    run = client.create_run(experiment_id, run_name=sweep, tags=tags)
    log_params(client, run.info.run_id, params)
    return run.info.run_id


def finish_parent_run(client: MlflowClient, run_id: str, summary: Mapping[str, float], status: str = FINISHED) -> None:
    """Log the sweep's summary numbers and end the parent run with MLflow status ``status``."""
    now = _now_ms()
    metrics = [Metric(k, float(v), now, 0) for k, v in summary.items() if finite(v) is not None]
    log_in_batches(client, run_id, metrics=metrics)
    client.set_terminated(run_id, status=status)


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    """Every trial run under a parent run (all pages)."""
    query = f"tags.`{layout.PARENT_TAG}` = '{parent_run_id}'"
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def end_stale_runs(client: MlflowClient, experiment_id: str, parent_run_id: str, keep: Iterable[str],
                   reason: str) -> list[str]:
    """End child runs still RUNNING whose trial id is not in ``keep``; returns their trial ids.

    Used on resume: a run left RUNNING by a killed driver either belongs to a trial that Ray
    resumes (kept, the tracker reopens it) or to one Ray never saved (ended as FAILED here).
    """
    keep = set(keep)
    ended = []
    for run in child_runs(client, experiment_id, parent_run_id):
        trial_id = run.data.tags.get(layout.TRIAL_ID_TAG)
        if run.info.status == RUNNING and trial_id not in keep:
            client.log_batch(run.info.run_id, tags=[RunTag(layout.STATUS_TAG, FAILED),
                                                    RunTag(layout.FAILURE_TAG, reason)])
            client.set_terminated(run.info.run_id, status="FAILED")
            ended.append(trial_id)
    return ended


def log_in_batches(client: MlflowClient, run_id: str, metrics: Sequence[Metric] = (),
                   params: Sequence[Param] = (), tags: Sequence[RunTag] = ()) -> None:
    """``log_batch`` in as many requests as MLflow's per-request limits need; nothing is dropped."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        take_p, take_t = params[:MAX_BATCH_PARAMS], tags[:MAX_BATCH_TAGS]
        take_m = metrics[:min(MAX_BATCH_METRICS, MAX_BATCH_ENTITIES - len(take_p) - len(take_t))]
        client.log_batch(run_id, metrics=take_m, params=take_p, tags=take_t)
        metrics, params, tags = metrics[len(take_m):], params[len(take_p):], tags[len(take_t):]


# ---------------------------------------------------------------------------- trial outcome


def trial_outcome(last_result: Mapping[str, Any] | None, errored: bool, error_text: str | None = None
                  ) -> tuple[str, str]:
    """(tonesweep status, failure reason) of a trial that Ray reports as ended.

    The trainable's last report carries ``status`` when the trial ran to its end (FINISHED,
    FAILED, REJECTED). A trial that Ray ended without that final report was stopped by the
    scheduler: STOPPED. One that raised past the trainable is FAILED.
    """
    last_result = last_result or {}
    if errored:
        return FAILED, error_text or "the trial process raised an error"
    status = last_result.get("status")
    if status in REPORTED_STATUSES:
        return status, str(last_result.get("failure_reason") or "")
    step = last_result.get("step")
    return STOPPED, f"stopped early by the scheduler at step {step}" if step is not None else "stopped early"


def mlflow_status(tonesweep_status: str) -> str:
    """MLflow run status for a tonesweep status (see results.layout.mlflow_status)."""
    return layout.mlflow_status(tonesweep_status)


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric metrics.json keys in a trainable's final result (bools and NaN left out)."""
    out = {}
    for key, value in result.items():
        if key in NON_METRIC_KEYS or key in RAY_KEYS or isinstance(value, bool):
            continue
        number = finite(value)
        if number is not None:
            out[key] = number
    return out


# ---------------------------------------------------------------------------- the trial tracker


class TrialTracker:
    """Writes one MLflow child run per trial, from the driver, with batched requests.

    - ``open``: create the child run, or reopen the one keyed by the same trial id (a resumed
      sweep); tags + params in batches;
    - ``curve``: buffer the curve points; flush every ``FLUSH_EVERY_S`` seconds;
    - ``close``: flush, final metrics + status tags, artifacts for finished trials, end the run.

    ``seconds_per_trial()`` reports the driver time spent on tracking, so a sweep can show that
    logging does not dominate small trials.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, sweep: str,
                 instrument: str, artifacts: bool = True, config_defaults: Mapping[str, Any] | None = None,
                 run_namer: Callable[[Mapping[str, Any], str], str | None] | None = None):
        self.tracking_uri = tracking_uri
        # A trial's run is named for what it is (``run_namer(config, trial_id)``, e.g. cnn-rms-4.7k-a819;
        # search.trainable.trial_run_name), else SWEEP-TRIALID; a resumed trial keeps its run's name.
        self.run_namer = run_namer
        # Params are the full trial config: the trainer's defaults under the suggested values, so
        # every hyperparameter is a column in the results table even when the space left it out.
        self.config_defaults = dict(config_defaults or {})
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.sweep = sweep
        self.instrument = instrument
        self.artifacts = artifacts
        self.client = make_client(tracking_uri)
        self._run_ids: dict[str, str] = {}       # trial id -> MLflow run id
        self._buffers: dict[str, list[Metric]] = {}
        self._last_flush: dict[str, float] = {}
        self._ended: set[str] = set()
        self.tracking_s = 0.0                    # driver seconds spent tracking
        self.trials_logged = 0
        self._existing = self._existing_runs()

    def init_args(self) -> tuple:
        """What rebuilds a fresh tracker (Ray pickles its callbacks; a client does not pickle)."""
        return (self.tracking_uri, self.experiment_id, self.parent_run_id, self.sweep, self.instrument,
                self.artifacts, self.config_defaults)

    # ---- events (each guarded: see the module docstring) ----

    def open(self, trial_id: str, config: Mapping[str, Any]) -> None:
        self._guarded(trial_id, self._open_run, trial_id, config)

    def curve(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        self._guarded(trial_id, self._buffer_curves, trial_id, config, result)

    def close(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any] | None, errored: bool,
              error_text: str | None = None, status: str | None = None) -> None:
        """End the trial's run; ``status`` overrides the outcome read from ``result`` (e.g. INTERRUPTED)."""
        self._guarded(trial_id, self._close_run, trial_id, config, result or {}, errored, error_text, status)

    def log_sweep_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Metrics of the whole sweep (e.g. ``hypervolume``, ``trial_steps_used``) on the parent run,
        at ``step`` = the number of ended trials."""
        now = _now_ms()
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items() if finite(v) is not None]
        self._guarded("sweep", log_in_batches, self.client, self.parent_run_id, batch)

    def flush_all(self) -> None:
        for trial_id in list(self._buffers):
            self._guarded(trial_id, self._flush, trial_id)

    # ---- queries ----

    def run_ids(self) -> dict[str, str]:
        """Trial id -> MLflow run id, for every trial seen by this tracker or logged before."""
        known = {tid: run.info.run_id for tid, run in self._existing.items()}
        return {**known, **self._run_ids}

    def existing_outcomes(self) -> dict[str, tuple[str, dict[str, float]]]:
        """Trials already ended in MLflow (a resumed sweep): trial id -> (status, metrics)."""
        out = {}
        for trial_id, run in self._existing.items():
            status = run.data.tags.get(layout.STATUS_TAG)
            # an INTERRUPTED trial is not over: Ray resumes it
            if run.info.status != RUNNING and status in TERMINAL_STATUSES and status != INTERRUPTED:
                out[trial_id] = (status, layout.trial_metrics(run.data.metrics))
        return out

    def open_trials(self) -> list[str]:
        """Trial ids whose run this tracker opened and has not ended."""
        return [tid for tid in self._run_ids if tid not in self._ended]

    def seconds_per_trial(self) -> float:
        return self.tracking_s / self.trials_logged if self.trials_logged else 0.0

    # ---- internals ----

    def _guarded(self, trial_id: str, func, *args) -> None:
        """Run a tracking step; in production a failure is a warning, under tests it is raised."""
        start = time.perf_counter()
        try:
            func(*args)
        except Exception as err:  # noqa: BLE001 - tracking must not stop the sweep
            if os.environ.get(TESTING_ENV) == "1":
                raise
            log.warning("MLflow tracking of trial %s failed: %s", trial_id, err)
        finally:
            self.tracking_s += time.perf_counter() - start

    def _existing_runs(self) -> dict[str, Any]:
        """Child runs already under this parent (a resumed sweep), keyed by trial id."""
        runs = child_runs(self.client, self.experiment_id, self.parent_run_id)
        return {r.data.tags[layout.TRIAL_ID_TAG]: r for r in runs if layout.TRIAL_ID_TAG in r.data.tags}

    def _open_run(self, trial_id: str, config: Mapping[str, Any]) -> None:
        if trial_id in self._run_ids and trial_id not in self._ended:
            return
        self._ended.discard(trial_id)
        existing = self._existing.get(trial_id)
        if existing is not None:
            run_id = existing.info.run_id
            self.client.update_run(run_id, status=RUNNING)
            self.client.set_tag(run_id, layout.STATUS_TAG, RUNNING)
        else:
            tags = {layout.PARENT_TAG: self.parent_run_id, layout.ROLE_TAG: layout.ROLE_TRIAL,
                    layout.SWEEP_TAG: self.sweep, layout.INSTRUMENT_TAG: self.instrument,
                    layout.TRIAL_ID_TAG: trial_id, layout.STATUS_TAG: RUNNING, layout.FAILURE_TAG: ""}
            name = (self.run_namer(config, trial_id) if self.run_namer else None) or f"{self.sweep}-{trial_id}"
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            full_config = {**self.config_defaults, **config}
            log_params(self.client, run_id, full_config)
            self._existing[trial_id] = run
        self._run_ids[trial_id] = run_id
        self._buffers.setdefault(trial_id, [])
        self._last_flush[trial_id] = time.monotonic()

    def _buffer_curves(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        if trial_id not in self._run_ids:
            self._open_run(trial_id, config)
        # (the final result also carries the last curve point; its other metrics go in _close_run)
        step = int(result.get("step") or 0)
        now = _now_ms()
        for key in layout.CURVE_KEYS:
            value = finite(result.get(key))
            if value is not None:
                self._buffers[trial_id].append(Metric(key, value, now, step))
        if time.monotonic() - self._last_flush[trial_id] >= FLUSH_EVERY_S:
            self._flush(trial_id)

    def _flush(self, trial_id: str) -> None:
        buffer = self._buffers.get(trial_id)
        if buffer:
            log_in_batches(self.client, self._run_ids[trial_id], metrics=buffer)
            buffer.clear()
        self._last_flush[trial_id] = time.monotonic()

    def _close_run(self, trial_id: str, config: Mapping[str, Any], result: Mapping[str, Any], errored: bool,
                   error_text: str | None, status: str | None) -> None:
        if trial_id in self._ended:
            return
        if trial_id not in self._run_ids:
            self._open_run(trial_id, config)
        self._flush(trial_id)
        run_id = self._run_ids[trial_id]
        outcome, reason = trial_outcome(result, errored, error_text)
        if status is not None:
            outcome, reason = status, error_text or reason
        now = _now_ms()
        step = int(result.get("step") or 0)
        metrics = [Metric(layout.trial_metric_key(k), v, now, step) for k, v in final_metrics(result).items()]
        tags = [RunTag(layout.STATUS_TAG, outcome), RunTag(layout.FAILURE_TAG, reason[:MAX_TAG_CHARS])]
        if result.get(layout.NODE_KEY):
            tags.append(RunTag(layout.NODE_TAG, str(result[layout.NODE_KEY])))
        log_in_batches(self.client, run_id, metrics=metrics, tags=tags)
        out_dir = result.get("out_dir")
        if outcome == FINISHED and self.artifacts and out_dir and Path(out_dir).is_dir():
            log_trial_artifacts(self.client, run_id, Path(out_dir))
        elif outcome == STOPPED and self.artifacts and out_dir and Path(out_dir, "audio").is_dir():
            log_audio_example(self.client, run_id, Path(out_dir), spectrogram=False)  # as at its last report
        self.client.set_terminated(run_id, status=mlflow_status(outcome))
        self._ended.add(trial_id)
        self._buffers.pop(trial_id, None)
        self.trials_logged += 1


# ---------------------------------------------------------------------------- artifacts


def log_trial_artifacts(client: MlflowClient, run_id: str, out_dir: Path) -> None:
    """``trial/`` (out_dir minus checkpoint/ and audio/), ``audio/*.wav``, ``plots/spectrogram.png``."""
    with scratch_dir("tonesweep-artifacts-") as staging:
        trial_dir = Path(staging) / layout.TRIAL_ARTIFACTS
        trial_dir.mkdir()
        for item in out_dir.iterdir():
            if item.is_file():
                shutil.copy2(item, trial_dir / item.name)
        client.log_artifacts(run_id, str(trial_dir), artifact_path=layout.TRIAL_ARTIFACTS)
    if (out_dir / "audio").is_dir():
        log_audio_example(client, run_id, out_dir)


def log_audio_example(client: MlflowClient, run_id: str, out_dir: Path, spectrogram: bool = True) -> None:
    """``audio/*.wav`` and, with ``spectrogram``, the spectrogram of the resynthesis (a trial stopped early
    logs only the audio: drawing costs the driver ~0.3 s of a core the trials share)."""
    audio_dir = out_dir / "audio"
    client.log_artifacts(run_id, str(audio_dir), artifact_path=layout.AUDIO_ARTIFACTS)
    resynth = audio_dir / "resynth.wav"
    if spectrogram and resynth.is_file():
        with scratch_dir("tonesweep-artifacts-") as staging:
            png = Path(staging) / "spectrogram.png"
            write_spectrogram_png(resynth, png, original=audio_dir / "original.wav")
            client.log_artifact(run_id, str(png), artifact_path=layout.PLOT_ARTIFACTS)


def write_spectrogram_png(wav_path: Path, png_path: Path, original: Path | None = None) -> None:
    """Log-magnitude spectrogram of the resynthesis (above it, the original when given)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    sources = [("original", original)] if original is not None and original.is_file() else []
    sources.append(("resynthesis", wav_path))
    fig, axes = plt.subplots(len(sources), 1, figsize=(8, 2.6 * len(sources)), squeeze=False)
    for ax, (title, path) in zip(axes[:, 0], sources):
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        ax.specgram(audio[:, 0], NFFT=512, Fs=rate, noverlap=384, cmap="magma")
        ax.set_title(title)
        ax.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(png_path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------------------- helpers


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Params in batches. A value longer than MLflow's limit (a long space path, say; PostgreSQL
    refuses it where SQLite would not) is stored cut to the limit, ending in ``TRUNCATED_MARK``,
    and in full as the artifact ``params/<key>.txt``: stored, never fatal."""
    texts = {key: str(value) for key, value in params.items()}
    log_in_batches(client, run_id, params=[Param(key, _param_text(text)) for key, text in sorted(texts.items())])
    for key, text in texts.items():
        if len(text) > MAX_PARAM_CHARS:
            client.log_text(run_id, text, f"{PARAM_ARTIFACTS}/{key}.txt")


def _param_text(text: str) -> str:
    if len(text) <= MAX_PARAM_CHARS:
        return text
    return text[:MAX_PARAM_CHARS - len(TRUNCATED_MARK)] + TRUNCATED_MARK


def _now_ms() -> int:
    return int(time.time() * 1000)
