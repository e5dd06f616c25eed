"""`tonesweep ui` and `tonesweep tracking-server`: an MLflow server over a store, supervised until a
stop request (docs/architecture.md, "Servers"; README, "Team mode").

``run_ui`` serves an existing store; ``run_tracking_server`` checks everything first (nothing is
written before the checks pass), then starts its own PostgreSQL (``server.postgres``) unless
``--backend-store-uri`` names a database, then ``mlflow server`` proxying artifacts. Both print the
link to each instrument's runs table and stop every process they started, in order (MLflow first:
it holds database connections), when asked to stop or when one of them dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from common.errors import UserError
from common.net import check_port_free, http_answers
from common.reaper import Reaper
from common.paths import check_output_folder, is_uri, local_path
from results import browse, layout
from results.tracking import check_tracking_uri
from server.postgres import LocalPostgres
from server.processes import ChildGroup, wait_ready

DEFAULT_PG_DATA, DEFAULT_ARTIFACT_ROOT = "tracking/postgres", "tracking/artifacts"
# The first start creates MLflow's schema (~40 s on 2 busy cores); later starts take ~15 s.
START_TIMEOUT_S = 180.0
# tonesweep uses none of MLflow 3's GenAI jobs; left on, they add eight processes and a folder in
# /dev/shm that outlives the server. Users can still turn them on in their environment.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ---------------------------------------------------------------------------- links and addresses


# MLflow 3.17's UI keeps its mode (GenAI or model training) per browser, GenAI by default, unless
# the page's query says otherwise: `workflowType=machine_learning` opens the model-training sidebar
# (Runs, Models, Model registry) in a fresh profile too (checked in Chromium; tests/test_tracking_server.py).
MODEL_TRAINING_MODE = "workflowType=machine_learning"


def runs_url(base_url: str, experiment_id: str, view: bool = False) -> str:
    """The runs table of an experiment, in model-training mode. MLflow 3 opens an experiment without a
    kind on its GenAI traces page; this route (``experimentPageTabRuns`` in MLflow 3.17's UI) always
    shows the runs. ``view``: on tonesweep's landing view of the table (``results.browse``)."""
    query = f"{MODEL_TRAINING_MODE}&{browse.VIEW_QUERY}" if view else MODEL_TRAINING_MODE
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def instrument_links(tracking_uri: str, base_url: str) -> list[tuple[str, str]]:
    """(instrument, runs-table URL) of every tonesweep experiment in the store, by name, on tonesweep's
    landing view (``results.browse``), written now where it is missing or older (an experiment tag of its
    own); where the store refuses it and has none, the link opens MLflow's default view."""
    from mlflow import MlflowClient  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.search_experiments(filter_string=f"name LIKE '{layout.EXPERIMENT_PREFIX}%'", max_results=1000)
    links = []
    for experiment in found:
        try:
            browse.write_landing_view(client, experiment.experiment_id)
            view = True
        except MlflowException:
            view = browse.has_landing_view(experiment)
        links.append((experiment.name[len(layout.EXPERIMENT_PREFIX):], runs_url(base_url, experiment.experiment_id, view)))
    return sorted(links)


def public_url(host: str, port: int) -> str:
    """How others reach a server bound to ``host``: a wildcard address means this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def local_url(host: str, port: int) -> str:
    """Where this process itself reaches the server (a wildcard bind answers on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def hide_password(uri: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", uri)




# ---------------------------------------------------------------------------- the MLflow server


REAPER_TAG_VARIABLE = "TONESWEEP_SERVER_TAG"  # carried by every process a server command starts


def server_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **(extra or {}))
    for key, value in SERVER_ENVIRONMENT.items():
        env.setdefault(key, value)
    return env


def ui_command(tracking_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The ``mlflow server`` command line for a store, on the local interface unless told otherwise."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
            "--host", host, "--port", str(port), "--workers", "1"]


def server_command(backend_uri: str, artifact_root: str, host: str, port: int) -> list[str]:
    """``mlflow server`` proxying artifacts (clients need no access to the artifact store itself)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
            "--artifacts-destination", artifact_root, "--serve-artifacts",
            "--host", host, "--port", str(port), "--workers", "1"]


def serve(command: list[str], env: dict[str, str], host: str, port: int, say: Callable[[str], None],
          echo: Callable[[str], None], should_stop: Callable[[], bool], stack: contextlib.ExitStack,
          others: Sequence[ChildGroup] = (), lines: Callable[[str], list[str]] = lambda base: []) -> str | None:
    """Start the MLflow server, wait for ``/health``, print ``lines(base_url)`` and the runs-table
    links of the store, then wait for a stop request. Returns None when stopped, else why it ended."""
    server = ChildGroup("mlflow server", command, env, echo)
    stack.callback(server.stop)
    children = [*others, server]
    here = local_url(host, port)
    if not wait_ready(lambda: http_answers(f"{here}/health", 2.0) is None, children, should_stop, START_TIMEOUT_S,
                      f"mlflow server on {host}:{port}"):
        return None
    base = public_url(host, port)
    for line in lines(base):
        say(line)
    links = instrument_links(here, base)
    for instrument, url in links:
        say(f"runs of {instrument}: {url}")
    if not links:
        say(f"no tonesweep experiments yet: after a sweep, their runs are at {runs_url(base, '<id>')}")
    while not should_stop():
        for child in children:
            if not child.running():
                return f"{child.name} exited (code {child.process.returncode}): {child.last_words()}"
        time.sleep(0.3)
    return None


def run_ui(tracking_uri: str, port: int, say: Callable[[str], None], echo: Callable[[str], None],
           should_stop: Callable[[], bool], host: str = "127.0.0.1") -> str | None:
    """`tonesweep ui`: the MLflow UI over a store, until a stop request (None) or the server dies."""
    check_port_free(host, port, "--port")
    say(f"starting the MLflow UI for {hide_password(tracking_uri)} on {host}:{port} ...")
    with contextlib.ExitStack() as stack:  # the URL is printed once the server answers
        reaper = _reaper(stack)
        return serve(ui_command(tracking_uri, port, host), server_environment(reaper.environment), host, port, say,
                     echo, should_stop, stack, lines=lambda base: [f"MLflow UI at {base} (Ctrl-C to stop)"])


def _reaper(stack: contextlib.ExitStack) -> Reaper:
    """The command's reaper (``common.reaper``), dismissed last, once the children are stopped: if
    the command is killed (SIGKILL), it kills every process started with its tag (PostgreSQL, mlflow
    server, uvicorn), so none is left serving."""
    reaper = Reaper(REAPER_TAG_VARIABLE)
    stack.callback(reaper.dismiss)
    return reaper


# ---------------------------------------------------------------------------- `tonesweep tracking-server`


@dataclass
class TrackingServerSettings:
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str | None = None    # None: run our own PostgreSQL in pg_data
    artifact_root: str | None = None        # a folder or a URI (s3://...); None: DEFAULT_ARTIFACT_ROOT
    pg_data: str | None = None              # None: DEFAULT_PG_DATA
    pg_port: int | None = None              # None: a free port


def run_tracking_server(settings: TrackingServerSettings, say: Callable[[str], None],
                        info: Callable[[str], None], warn: Callable[[str], None], echo: Callable[[str], None],
                        should_stop: Callable[[], bool]) -> str | None:
    """Check everything, then start (PostgreSQL and) the MLflow server and serve until a stop
    request (returns None) or a child's death (returns why). Nothing is written before the checks pass."""
    s = settings
    check_port_free(s.host, s.port, "--port")
    artifacts = _artifact_root(s.artifact_root or DEFAULT_ARTIFACT_ROOT)
    postgres = None
    if s.backend_store_uri is not None:
        if s.pg_data is not None or s.pg_port is not None:
            raise UserError("--pg-data/--pg-port: only for the PostgreSQL tonesweep runs itself; "
                            "drop them or --backend-store-uri")
        backend = _check_backend(s.backend_store_uri)
    else:
        postgres = LocalPostgres.plan(s.pg_data or DEFAULT_PG_DATA, s.pg_port)
    if s.host not in LOOPBACK:
        warn(f"--host {s.host}: anyone who reaches this address can read and change every run, without a "
             "password; for a team put it behind MLflow's basic-auth app (README, Team mode)")
    with contextlib.ExitStack() as stack:
        reaper = _reaper(stack)
        others, env = [], dict(reaper.environment)
        if postgres is not None:
            postgres.create(info)
            if should_stop():
                return None
            stack.callback(postgres.stop)
            if not postgres.start(should_stop, reaper.environment):
                return None
            info(f"PostgreSQL {postgres.version} on 127.0.0.1:{postgres.port}, data {postgres.data_dir} "
                 f"(its log: {postgres.data_dir / 'log'})")
            others, backend = [postgres.group], postgres.uri
            env["PGPASSFILE"] = str(postgres.pgpass)

        def how_to_reach(base: str) -> list[str]:
            return [f"MLflow tracking server at {base} (store {hide_password(backend)}, artifacts {artifacts}); "
                    "Ctrl-C to stop",
                    f"point sweeps at it:  export MLFLOW_TRACKING_URI={base}",
                    f"  or per command:    tonesweep sweep --dataset DATASET --trials N --tracking-uri {base}"]

        return serve(server_command(backend, artifacts, s.host, s.port), server_environment(env), s.host, s.port,
                     say, echo, should_stop, stack, others, how_to_reach)


def _artifact_root(root: str) -> str:
    """An s3:// URI checked as ``--storage`` is (bucket name, credentials, the bucket exists), another
    URI as given; a local folder checked and made absolute."""
    if root.lower().startswith("s3://"):
        from cluster.object_store import check_storage

        check_storage(root, "--artifact-root")
        return root
    if is_uri(root):
        return root
    return str(check_output_folder(local_path(root), "--artifact-root").absolute())


def _check_backend(uri: str) -> str:
    scheme = uri.split("://", 1)[0].split("+")[0] if "://" in uri else ""
    if scheme not in ("postgresql", "mysql", "mssql", "sqlite"):
        raise UserError(f"--backend-store-uri {hide_password(uri)}: not a database; give "
                        "postgresql+psycopg://USER@HOST:PORT/DB (or leave it out to run a PostgreSQL here)")
    return check_tracking_uri(uri, field="--backend-store-uri")


