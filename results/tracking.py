"""MLflow tracking of sweeps, written from the Ray driver (docs/architecture.md, Section 3).

Layout (relied on by ``results.table`` and export):

- experiment ``tonesweep-<instrument>``, created once before fan-out (``ensure_experiment``);
- parent run per sweep and instrument (``start_parent_run``), tags ``tonesweep.role=sweep``,
  ``tonesweep.sweep``, ``tonesweep.instrument``, ``tonesweep.dataset``, ``tonesweep.algorithm``;
- child run per trial (``TrialTracker``, a driver-side ``ray.tune.Callback``), tags
  ``mlflow.parentRunId``, ``tonesweep.role=trial``, ``tonesweep.sweep``, ``tonesweep.trial_id``,
  ``tonesweep.status``, ``tonesweep.failure_reason``; params = the config; metrics = every numeric
  key of metrics.json + the ``train_loss``/``val_loss`` curves; artifacts ``trial/``, ``audio/``,
  ``plots/spectrogram.png``.

Why from the driver: opening an MLflow run inside every trial costs ~2.7 s per fresh worker and
makes every worker a SQLite writer (../shared/notes/data-and-engines.md). One process writing with
batched ``log_batch`` calls keeps logging a small fraction of a trial. A logging failure never
crashes the sweep: it is reported once per trial and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from ray.tune import Callback

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT_PREFIX = "tonesweep-"
CURVE_KEYS = ("train_loss", "val_loss")
# Keys of a trial's result that are bookkeeping, not metrics.json numbers.
NON_METRIC_KEYS = {"step", "elapsed_s", "status", "failure_reason", "out_dir", "final", "val_loss", "train_loss"}
# (val_loss/train_loss are curves, logged with their step as they arrive)
# Ray's own result keys (timestamps, iteration counters, host names): never logged as metrics.
RAY_KEYS = {"timestamp", "training_iteration", "time_this_iter_s", "time_total_s", "pid", "hostname",
            "node_ip", "time_since_restore", "iterations_since_restore", "done", "trial_id", "date",
            "experiment_tag", "config", "checkpoint_dir_name", "should_checkpoint"}
FLUSH_EVERY_S = 5.0          # curve points are buffered and sent in one log_batch at most this often
MAX_BATCH_METRICS = 1000     # MLflow's per-request limit on metrics
MAX_BATCH_PARAMS = 100       # and on params


# ---------------------------------------------------------------------------- store and runs


def resolve_tracking_uri(cli_uri: str | None = None) -> str:
    """--tracking-uri, else $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def make_client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def experiment_name(instrument: str) -> str:
    return f"{EXPERIMENT_PREFIX}{instrument}"


def ensure_experiment(client: MlflowClient, instrument: str) -> str:
    """Id of ``tonesweep-<instrument>``, created if missing (call once, before any trial starts)."""
    existing = client.get_experiment_by_name(experiment_name(instrument))
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        for key, value in experiment_tags(instrument).items():
            if existing.tags.get(key) != value:
                client.set_experiment_tag(existing.experiment_id, key, value)
        return existing.experiment_id
    return client.create_experiment(experiment_name(instrument), tags=experiment_tags(instrument),
                                    artifact_location=artifact_location(client.tracking_uri, instrument))


def experiment_tags(instrument: str) -> dict[str, str]:
    """Tags of an instrument's experiment. ``mlflow.experimentKind`` makes MLflow 3's UI open it as
    model training (runs, metrics, artifacts) rather than its GenAI traces view, which shows none of them."""
    return {"tonesweep.instrument": instrument, "mlflow.experimentKind": "custom_model_development"}


def artifact_location(tracking_uri: str, instrument: str) -> str | None:
    """Artifacts of a SQLite store live beside the database file, in ``mlruns/<experiment>/``.

    (MLflow's own default is ``./mlruns`` under whatever directory the process happens to run
    in, which scatters one store's artifacts over several folders.) Other stores keep MLflow's
    default.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db_path = Path(tracking_uri[len("sqlite:///"):]).resolve()
    return (db_path.parent / "mlruns" / experiment_name(instrument)).as_uri()


def find_parent_run(client: MlflowClient, experiment_id: str, sweep: str):
    """The parent run of sweep ``sweep`` in this experiment, or None."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`tonesweep.role` = 'sweep' and tags.`tonesweep.sweep` = '{_quote(sweep)}'",
        max_results=2,
    )
    return runs[0] if runs else None


def start_parent_run(client: MlflowClient, experiment_id: str, sweep: str, instrument: str,
                     dataset: str, algorithm: str, params: Mapping[str, Any]) -> str:
    """Create the sweep's parent run (or, on resume, reopen the existing one); returns its id."""
    existing = find_parent_run(client, experiment_id, sweep)
    if existing is not None:
        client.update_run(existing.info.run_id, status="RUNNING")
        return existing.info.run_id
    tags = {"tonesweep.role": "sweep", "tonesweep.sweep": sweep, "tonesweep.instrument": instrument,
            "tonesweep.dataset": str(Path(dataset).resolve()), "tonesweep.algorithm": algorithm}
    run = client.create_run(experiment_id, run_name=sweep, tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, _param_text(v)) for k, v in params.items()])
    return run.info.run_id


def finish_parent_run(client: MlflowClient, run_id: str, summary: Mapping[str, float], failed: bool) -> None:
    """Log the sweep's summary numbers and end the parent run."""
    now = _now_ms()
    metrics = [Metric(k, float(v), now, 0) for k, v in summary.items() if _finite(v) is not None]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str) -> list:
    """Every trial run under a parent run (all pages)."""
    query = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
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
        trial_id = run.data.tags.get("tonesweep.trial_id")
        if run.info.status == "RUNNING" and trial_id not in keep:
            client.log_batch(run.info.run_id, tags=[RunTag("tonesweep.status", "FAILED"),
                                                    RunTag("tonesweep.failure_reason", reason)])
            client.set_terminated(run.info.run_id, status="FAILED")
            ended.append(trial_id)
    return ended


# ---------------------------------------------------------------------------- trial outcome


def trial_outcome(last_result: Mapping[str, Any] | None, errored: bool, error_text: str | None = None
                  ) -> tuple[str, str]:
    """(tonesweep status, failure reason) of a trial that Ray reports as ended.

    The trainable's last report carries ``status`` when the trial ran to its end (FINISHED,
    FAILED, REJECTED). A trial that Ray ended without that final report was stopped by the
    scheduler (ASHA): STOPPED. One that raised past the trainable is FAILED.
    """
    last_result = last_result or {}
    if errored:
        return "FAILED", error_text or "the trial process raised an error"
    status = last_result.get("status")
    if status in ("FINISHED", "FAILED", "REJECTED"):
        return status, str(last_result.get("failure_reason") or "")
    step = last_result.get("step")
    return "STOPPED", f"stopped early by the scheduler at step {step}" if step is not None else "stopped early"


def mlflow_status(tonesweep_status: str) -> str:
    """MLflow run status for a tonesweep status (FINISHED/STOPPED → FINISHED, else FAILED)."""
    return "FINISHED" if tonesweep_status in ("FINISHED", "STOPPED") else "FAILED"


def final_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numeric metrics.json keys in a trainable's final result (bools and NaN left out)."""
    out = {}
    for key, value in result.items():
        if key in NON_METRIC_KEYS or key in RAY_KEYS or isinstance(value, bool):
            continue
        number = _finite(value)
        if number is not None:
            out[key] = number
    return out


# ---------------------------------------------------------------------------- the callback


class TrialTracker(Callback):
    """Writes one MLflow child run per Ray trial, from the driver, with batched requests.

    - ``on_trial_start``: create the child run, or reopen the one keyed by the same trial id
      (a resumed sweep), tags + params in one ``log_batch``;
    - ``on_trial_result``: buffer the curve points; flush every ``FLUSH_EVERY_S`` seconds;
    - ``on_trial_complete`` / ``on_trial_error``: flush, final metrics + status tags in one
      ``log_batch``, artifacts for finished trials, end the run.

    ``seconds_per_trial()`` reports the driver time spent on tracking, so a sweep can show that
    logging does not dominate small trials.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, sweep: str,
                 instrument: str, artifacts: bool = True, config_defaults: Mapping[str, Any] | None = None):
        self.tracking_uri = tracking_uri
        # Params are the full trial config: the trainer's defaults under the suggested values, so
        # every hyperparameter is a column in the results table even when the space left it out.
        self.config_defaults = dict(config_defaults or {})
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.sweep = sweep
        self.instrument = instrument
        self.artifacts = artifacts
        self.client = make_client(tracking_uri)
        self._run_ids: dict[str, str] = {}       # Ray trial id -> MLflow run id
        self._buffers: dict[str, list[Metric]] = {}
        self._last_flush: dict[str, float] = {}
        self._ended: set[str] = set()
        self.tracking_s = 0.0                    # driver seconds spent in this callback
        self.trials_logged = 0
        self._existing = self._existing_runs()

    def __getstate__(self) -> dict:
        # Ray pickles callbacks with its RunConfig; keep only what rebuilds a fresh tracker.
        return {"args": (self.tracking_uri, self.experiment_id, self.parent_run_id, self.sweep,
                         self.instrument, self.artifacts, self.config_defaults)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(*state["args"])

    # ---- Ray callback hooks ----

    def on_trial_start(self, iteration, trials, trial, **info):
        self._guarded(trial, self._open_run, trial)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self._guarded(trial, self._open_run, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._guarded(trial, self._buffer_curves, trial, result)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._guarded(trial, self._close_run, trial, False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._guarded(trial, self._close_run, trial, True)

    def on_experiment_end(self, trials, **info):
        for trial_id in list(self._buffers):
            self._flush(trial_id)

    # ---- queries ----

    def run_ids(self) -> dict[str, str]:
        """Ray trial id -> MLflow run id, for every trial seen by this tracker or logged before."""
        known = {tid: run.info.run_id for tid, run in self._existing.items()}
        return {**known, **self._run_ids}

    def existing_outcomes(self) -> dict[str, tuple[str, dict[str, float]]]:
        """Trials already ended in MLflow (a resumed sweep): trial id -> (status, metrics)."""
        out = {}
        for trial_id, run in self._existing.items():
            status = run.data.tags.get("tonesweep.status")
            if run.info.status != "RUNNING" and status in ("FINISHED", "FAILED", "REJECTED", "STOPPED"):
                out[trial_id] = (status, dict(run.data.metrics))
        return out

    def seconds_per_trial(self) -> float:
        return self.tracking_s / self.trials_logged if self.trials_logged else 0.0

    # ---- internals ----

    def _guarded(self, trial, func, *args) -> None:
        """Run a tracking step; a tracking failure is logged, never raised into Ray's loop."""
        start = time.perf_counter()
        try:
            func(*args)
        except Exception as err:  # noqa: BLE001 - tracking must not stop the sweep
            log.warning("MLflow tracking of trial %s failed: %s", trial.trial_id, err)
        finally:
            self.tracking_s += time.perf_counter() - start

    def _existing_runs(self) -> dict[str, Any]:
        """Child runs already under this parent (a resumed sweep), keyed by trial id."""
        runs = child_runs(self.client, self.experiment_id, self.parent_run_id)
        return {r.data.tags["tonesweep.trial_id"]: r for r in runs if "tonesweep.trial_id" in r.data.tags}

    def _open_run(self, trial) -> None:
        trial_id = trial.trial_id
        if trial_id in self._run_ids and trial_id not in self._ended:
            return
        self._ended.discard(trial_id)
        existing = self._existing.get(trial_id)
        if existing is not None:
            run_id = existing.info.run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "tonesweep.status", "RUNNING")
        else:
            tags = {"mlflow.parentRunId": self.parent_run_id, "tonesweep.role": "trial",
                    "tonesweep.sweep": self.sweep, "tonesweep.instrument": self.instrument,
                    "tonesweep.trial_id": trial_id, "tonesweep.status": "RUNNING",
                    "tonesweep.failure_reason": ""}
            run = self.client.create_run(self.experiment_id, run_name=f"{self.sweep}-{trial_id}", tags=tags)
            run_id = run.info.run_id
            config = {**self.config_defaults, **trial.config}
            params = [Param(k, _param_text(v)) for k, v in sorted(config.items())]
            for start in range(0, len(params), MAX_BATCH_PARAMS):
                self.client.log_batch(run_id, params=params[start:start + MAX_BATCH_PARAMS])
            self._existing[trial_id] = run
        self._run_ids[trial_id] = run_id
        self._buffers.setdefault(trial_id, [])
        self._last_flush[trial_id] = time.monotonic()

    def _buffer_curves(self, trial, result: Mapping[str, Any]) -> None:
        trial_id = trial.trial_id
        if trial_id not in self._run_ids:
            self._open_run(trial)
        # (the final result also carries the last curve point; its other metrics go in _close_run)
        step = int(result.get("step") or 0)
        now = _now_ms()
        for key in CURVE_KEYS:
            value = _finite(result.get(key))
            if value is not None:
                self._buffers[trial_id].append(Metric(key, value, now, step))
        if time.monotonic() - self._last_flush[trial_id] >= FLUSH_EVERY_S:
            self._flush(trial_id)

    def _flush(self, trial_id: str) -> None:
        buffer = self._buffers.get(trial_id)
        if buffer:
            run_id = self._run_ids[trial_id]
            for start in range(0, len(buffer), MAX_BATCH_METRICS):
                self.client.log_batch(run_id, metrics=buffer[start:start + MAX_BATCH_METRICS])
            buffer.clear()
        self._last_flush[trial_id] = time.monotonic()

    def _close_run(self, trial, errored: bool) -> None:
        trial_id = trial.trial_id
        if trial_id in self._ended:
            return
        if trial_id not in self._run_ids:
            self._open_run(trial)
        self._flush(trial_id)
        run_id = self._run_ids[trial_id]
        result = trial.last_result or {}
        status, reason = trial_outcome(result, errored, _error_text(trial) if errored else None)
        now = _now_ms()
        step = int(result.get("step") or 0)
        metrics = [Metric(k, v, now, step) for k, v in final_metrics(result).items()]
        tags = [RunTag("tonesweep.status", status), RunTag("tonesweep.failure_reason", reason[:5000])]
        self.client.log_batch(run_id, metrics=metrics[:MAX_BATCH_METRICS], tags=tags)
        out_dir = result.get("out_dir")
        if status == "FINISHED" and self.artifacts and out_dir and Path(out_dir).is_dir():
            log_trial_artifacts(self.client, run_id, Path(out_dir))
        self.client.set_terminated(run_id, status=mlflow_status(status))
        self._ended.add(trial_id)
        self._buffers.pop(trial_id, None)
        self.trials_logged += 1


# ---------------------------------------------------------------------------- artifacts


def log_trial_artifacts(client: MlflowClient, run_id: str, out_dir: Path) -> None:
    """``trial/`` (out_dir minus checkpoint/ and audio/), ``audio/*.wav``, ``plots/spectrogram.png``."""
    with tempfile.TemporaryDirectory(prefix="tonesweep-artifacts-") as staging:
        trial_dir = Path(staging) / "trial"
        trial_dir.mkdir()
        for item in out_dir.iterdir():
            if item.is_file():
                shutil.copy2(item, trial_dir / item.name)
        client.log_artifacts(run_id, str(trial_dir), artifact_path="trial")
        audio_dir = out_dir / "audio"
        if audio_dir.is_dir():
            client.log_artifacts(run_id, str(audio_dir), artifact_path="audio")
            resynth = audio_dir / "resynth.wav"
            if resynth.is_file():
                png = Path(staging) / "spectrogram.png"
                write_spectrogram_png(resynth, png, original=audio_dir / "original.wav")
                client.log_artifact(run_id, str(png), artifact_path="plots")


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


# ---------------------------------------------------------------------------- `tonesweep ui`


def cli_ui(args) -> int:
    """``tonesweep ui [--port P]``: MLflow UI on the default store, bound to 127.0.0.1."""
    uri = resolve_tracking_uri(getattr(args, "tracking_uri", None))
    command = ui_command(uri, args.port)
    print(f"MLflow UI for {uri} at http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    process = subprocess.Popen(command)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0


def ui_command(tracking_uri: str, port: int) -> list[str]:
    """The ``mlflow server`` command line for a store, local interface only."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


# ---------------------------------------------------------------------------- helpers


def _error_text(trial) -> str:
    """Last line of a trial's Ray error file (the exception message), or a generic reason."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [line for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1][:2000]
    return "the trial process raised an error"


def _param_text(value: Any) -> str:
    return str(value)[:6000]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def _now_ms() -> int:
    return int(time.time() * 1000)
