"""`tonesweep tracking-server` and `tonesweep ui`: an MLflow server, the PostgreSQL it may run, and
the processes they start (docs/architecture.md, "Servers"; README, "Team mode").

Every child process leads its own process group (same session, so a test or a supervisor that
kills the session still reaches it): Ctrl-C in a terminal reaches tonesweep only, and tonesweep
stops the groups in order, MLflow first (it holds database connections), then PostgreSQL with
``pg_ctl stop -m fast``, then SIGKILL for whatever of a group is left, so the ports are free when
the command returns. The caller turns signals into ``should_stop()`` polls (no exception can land
between a fork and the line that records the child).

The PostgreSQL that tonesweep runs itself (``LocalPostgres``): a data folder made by ``initdb``,
listening on 127.0.0.1 only (its unix socket inside the data folder), password authentication for
TCP with a generated password that stays in ``<data>/tonesweep-pgpass`` (handed to MLflow as
``PGPASSFILE``, so it appears on no command line). That file also marks the folder as tonesweep's:
a Postgres data folder without it is someone else's and is refused. PostgreSQL refuses to run as
root, so under root its binaries run as the ``postgres`` account (``runuser``) and own the folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from results import layout
from trainers.errors import UserError
from trainers.files import process_alive, scratch_dir
from trainers.paths import check_output_folder, is_uri, local_path

POSTGRES_ROOT = Path("/usr/lib/postgresql")  # Debian's package `postgresql`: <root>/<major>/bin
POSTGRES_ACCOUNT = "postgres"                # the account that package creates
DB_ROLE, DB_NAME = "tonesweep", "mlflow"
PGPASS_NAME = "tonesweep-pgpass"
DEFAULT_PG_DATA, DEFAULT_ARTIFACT_ROOT = "tracking/postgres", "tracking/artifacts"
# The first start creates MLflow's schema (~40 s on 2 busy cores); later starts take ~15 s.
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 10.0
# tonesweep uses none of MLflow 3's GenAI jobs; left on, they add eight processes and a folder in
# /dev/shm that outlives the server. Users can still turn them on in their environment.
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL


# ---------------------------------------------------------------------------- links and addresses


def runs_url(base_url: str, experiment_id: str) -> str:
    """The runs table of an experiment. MLflow 3 opens an experiment without a kind on its GenAI
    traces page; this route (``experimentPageTabRuns`` in MLflow 3.17's UI) always shows the runs."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs"


def instrument_links(tracking_uri: str, base_url: str) -> list[tuple[str, str]]:
    """(instrument, runs-table URL) of every tonesweep experiment in the store, by name."""
    from mlflow import MlflowClient  # noqa: PLC0415

    found = MlflowClient(tracking_uri=tracking_uri).search_experiments(
        filter_string=f"name LIKE '{layout.EXPERIMENT_PREFIX}%'", max_results=1000)
    return sorted((e.name[len(layout.EXPERIMENT_PREFIX):], runs_url(base_url, e.experiment_id)) for e in found)


def public_url(host: str, port: int) -> str:
    """How others reach a server bound to ``host``: a wildcard address means this machine's name."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def local_url(host: str, port: int) -> str:
    """Where this process itself reaches the server (a wildcard bind answers on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port_free(host: str, port: int, field: str) -> None:
    """Refuse a port something already listens on (SO_REUSEADDR: a port in TIME_WAIT is free)."""
    if not 0 < port < 65536:
        raise UserError(f"{field} {port}: not a TCP port; give 1-65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(f"{field} {port}: {host}:{port} is not available ({err.strerror or err}); "
                            "stop what uses it or choose another port") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def hide_password(uri: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", uri)


# ---------------------------------------------------------------------------- child process groups


class ChildGroup:
    """A child process leading its own process group; its output is forwarded line by line to
    ``echo`` (when given) and its last lines are kept for an error message."""

    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None,
                 echo: Callable[[str], None] | None = None):
        self.name = name
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, errors="replace", process_group=0)
        self.tail: deque[str] = deque(maxlen=40)
        self._pump = threading.Thread(target=self._read, args=(echo,), daemon=True)
        self._pump.start()

    def _read(self, echo) -> None:
        for line in self.process.stdout:
            self.tail.append(line.rstrip())
            if echo is not None:
                echo(line)

    def running(self) -> bool:
        return self.process.poll() is None

    def last_words(self) -> str:
        """The last exception line it printed, else its last line (SQLAlchemy ends a traceback with a
        "(Background on this error ...)" line after the one that says what went wrong)."""
        self._pump.join(timeout=1.0)
        lines = [line.strip() for line in self.tail if line.strip()]
        errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|FATAL|PANIC)\b", line)]
        return (errors or lines or [f"exit code {self.process.poll()}"])[-1][:400]

    def descendants(self) -> list:
        """Its live processes, leader first (psutil, so a recycled PID is never mistaken for one)."""
        import psutil  # noqa: PLC0415

        try:
            leader = psutil.Process(self.process.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self, grace_s: float = STOP_GRACE_S, polite: Callable[[], object] | None = None) -> None:
        """``polite()`` (default: SIGTERM to the group), SIGKILL after ``grace_s``; returns once no process
        of the group is left, nor any descendant that left it (PostgreSQL's backends each call setsid)."""
        import psutil  # noqa: PLC0415

        pgid, tree = self.process.pid, self.descendants()
        if polite is not None:
            polite()
        else:
            self._signal(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while self._group_alive(pgid):
            if time.monotonic() > deadline:
                self._signal(pgid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.1)
        _, left = psutil.wait_procs(tree, timeout=max(0.0, min(grace_s, deadline - time.monotonic())))
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(left, timeout=5)
        self._pump.join(timeout=2.0)

    def _group_alive(self, pgid: int) -> bool:
        self.process.poll()  # reap the leader: a zombie still counts as a member
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False

    @staticmethod
    def _signal(pgid: int, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, number)


def wait_until(ready: Callable[[], bool], children: list[ChildGroup], should_stop: Callable[[], bool],
               timeout_s: float, what: str) -> bool:
    """Poll ``ready`` until true (True), a stop request (False), a child's death or the timeout (UserError)."""
    deadline = time.monotonic() + timeout_s
    while not should_stop():
        if ready():
            return True
        for child in children:
            if not child.running():
                raise UserError(f"{what}: {child.name} exited before it was ready: {child.last_words()}")
        if time.monotonic() > deadline:
            raise UserError(f"{what}: not ready after {timeout_s:g} s; its last output: {children[-1].last_words()}")
        time.sleep(0.3)
    return False


def http_ok(url: str) -> bool:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------- the MLflow server


def server_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, **(extra or {}))
    for key, value in SERVER_ENVIRONMENT.items():
        env.setdefault(key, value)
    return env


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
    if not wait_until(lambda: http_ok(f"{here}/health"), children, should_stop, START_TIMEOUT_S,
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
    from results.tracking import ui_command  # noqa: PLC0415

    check_port_free(host, port, "--port")
    say(f"MLflow UI for {hide_password(tracking_uri)} at {public_url(host, port)} (Ctrl-C to stop)")
    with contextlib.ExitStack() as stack:
        return serve(ui_command(tracking_uri, port, host), server_environment(), host, port, say, echo,
                     should_stop, stack)


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
    from results.tracking import check_tracking_uri  # noqa: PLC0415

    s = settings
    check_port_free(s.host, s.port, "--port")
    artifacts = _artifact_root(s.artifact_root or DEFAULT_ARTIFACT_ROOT)
    postgres = None
    if s.backend_store_uri is not None:
        if s.pg_data is not None or s.pg_port is not None:
            raise UserError("--pg-data/--pg-port: only for the PostgreSQL tonesweep runs itself; "
                            "drop them or --backend-store-uri")
        backend = _check_backend(s.backend_store_uri, check_tracking_uri)
    else:
        postgres = LocalPostgres.plan(s.pg_data or DEFAULT_PG_DATA, s.pg_port)
    if s.host not in LOOPBACK:
        warn(f"--host {s.host}: anyone who reaches this address can read and change every run, without a "
             "password; for a team put it behind MLflow's basic-auth app (README, Team mode)")
    with contextlib.ExitStack() as stack:
        others, env = [], {}
        if postgres is not None:
            postgres.create(info)
            if should_stop():
                return None
            stack.callback(postgres.stop)
            if not postgres.start(should_stop):
                return None
            info(f"PostgreSQL {postgres.version} on 127.0.0.1:{postgres.port}, data {postgres.data_dir} "
                 f"(its log: {postgres.data_dir / 'log'})")
            others, env, backend = [postgres.group], {"PGPASSFILE": str(postgres.pgpass)}, postgres.uri

        def how_to_reach(base: str) -> list[str]:
            return [f"MLflow tracking server at {base} (store {hide_password(backend)}, artifacts {artifacts}); "
                    "Ctrl-C to stop",
                    f"point sweeps at it:  export MLFLOW_TRACKING_URI={base}",
                    f"  or per command:    tonesweep sweep --dataset DATASET --trials N --tracking-uri {base}"]

        return serve(server_command(backend, artifacts, s.host, s.port), server_environment(env), s.host, s.port,
                     say, echo, should_stop, stack, others, how_to_reach)


def _artifact_root(root: str) -> str:
    """A URI (s3://bucket/prefix) as given; a local folder checked and made absolute."""
    if is_uri(root):
        return root
    return str(check_output_folder(local_path(root), "--artifact-root").absolute())


def _check_backend(uri: str, check_tracking_uri) -> str:
    scheme = uri.split("://", 1)[0].split("+")[0] if "://" in uri else ""
    if scheme not in ("postgresql", "mysql", "mssql", "sqlite"):
        raise UserError(f"--backend-store-uri {hide_password(uri)}: not a database; give "
                        "postgresql+psycopg://USER@HOST:PORT/DB (or leave it out to run a PostgreSQL here)")
    return check_tracking_uri(uri, field="--backend-store-uri")


# ---------------------------------------------------------------------------- our own PostgreSQL


@dataclass
class LocalPostgres:
    data_dir: Path
    port: int
    bin_dir: Path
    version: str
    account: str | None       # OS account its binaries run as (None: this process's)
    socket_dir: str           # "" when the data folder's path is too long for a socket path
    new: bool
    group: ChildGroup | None = None

    @classmethod
    def plan(cls, pg_data: str, pg_port: int | None) -> "LocalPostgres":
        """Every check, nothing written: binaries, account, the data folder, the port."""
        data_dir = Path(pg_data).absolute()
        installed = _installed_postgres()
        account = POSTGRES_ACCOUNT if os.geteuid() == 0 else None
        new = _check_data_dir(data_dir)
        version = max(installed, key=int) if new else (data_dir / "PG_VERSION").read_text().strip()
        if version not in installed:
            raise UserError(f"--pg-data {data_dir}: made by PostgreSQL {version}, but only "
                            f"{', '.join(sorted(installed))} is installed; install postgresql-{version} or "
                            "choose another --pg-data")
        if account is not None:
            _check_account_reaches(account, data_dir)
        if pg_port is not None:
            check_port_free("127.0.0.1", pg_port, "--pg-port")
        port = pg_port or free_port()
        socket_path = f"{data_dir}/.s.PGSQL.{port}"
        socket_dir = str(data_dir) if len(socket_path.encode()) <= SOCKET_PATH_MAX else ""
        return cls(data_dir, port, installed[version], version, account, socket_dir, new)

    @property
    def pgpass(self) -> Path:
        return self.data_dir / PGPASS_NAME

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg://{DB_ROLE}@127.0.0.1:{self.port}/{DB_NAME}"

    def _as_account(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self.account, "--", *command] if self.account else command

    def create(self, info: Callable[[str], None]) -> None:
        """initdb a new data folder (password auth on TCP, the password in ``tonesweep-pgpass``).
        On failure everything written is removed: the folder was missing or empty before."""
        if not self.new:
            return
        made = not self.data_dir.exists()
        info(f"creating a PostgreSQL {self.version} data folder in {self.data_dir}")
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.chmod(0o700)  # initdb wants the folder private
            password = secrets.token_urlsafe(24)
            with scratch_dir("tonesweep-initdb-") as tmp:
                pwfile = tmp / "password"
                pwfile.write_text(password + "\n")
                if self.account:
                    for path in (self.data_dir, tmp, pwfile):
                        shutil.chown(path, self.account, self.account)
                done = subprocess.run(self._as_account([
                    str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", DB_ROLE, f"--pwfile={pwfile}",
                    "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
                    "--no-instructions"]), capture_output=True, text=True, process_group=0)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
                raise UserError(f"--pg-data {self.data_dir}: initdb failed: {last}")
            fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # libpq ignores a readable one
            with os.fdopen(fd, "w") as handle:
                handle.write(f"127.0.0.1:*:*:{DB_ROLE}:{password}\n")
        except BaseException:
            if made:
                shutil.rmtree(self.data_dir, ignore_errors=True)
            else:
                for item in self.data_dir.iterdir():
                    shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
            raise

    def start(self, should_stop: Callable[[], bool]) -> bool:
        """Start postgres, wait until it answers, create the database if missing; False if stopped."""
        self.group = ChildGroup("PostgreSQL", self._as_account([
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "logging_collector=on"]))
        return wait_until(self._ensure_database, [self.group], should_stop, 60.0,
                          f"PostgreSQL in --pg-data {self.data_dir}")

    def _ensure_database(self) -> bool:
        import psycopg  # noqa: PLC0415

        password = self.pgpass.read_text().strip().rsplit(":", 1)[1]
        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_ROLE, password=password,
                                 dbname="postgres", connect_timeout=2, autocommit=True) as connection:
                if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                    connection.execute(f'CREATE DATABASE "{DB_NAME}"')
            return True
        except psycopg.OperationalError:  # not up yet ("starting up", connection refused)
            return False

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (clients are cut off, the data is consistent), then the group."""
        if self.group is None:
            return
        self.group.stop(polite=lambda: subprocess.run(
            self._as_account([str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w",
                              "-t", str(int(STOP_GRACE_S))]), capture_output=True, process_group=0))


def _installed_postgres() -> dict[str, Path]:
    """Major version -> bin folder of every PostgreSQL server installed the Debian way."""
    found = {p.parent.parent.name: p.parent for p in POSTGRES_ROOT.glob("*/bin/postgres")
             if p.parent.parent.name.isdigit()}
    if not found:
        raise UserError(f"PostgreSQL is not installed (no {POSTGRES_ROOT}/*/bin/postgres); install the apt "
                        "package postgresql (`make install` does) or give --backend-store-uri")
    return found


def _check_data_dir(data_dir: Path) -> bool:
    """True for a folder to create (missing or empty); False for tonesweep's own data folder; else refused."""
    field = f"--pg-data {data_dir}"
    if not data_dir.exists():
        check_output_folder(data_dir, "--pg-data")
        return True
    if not data_dir.is_dir():
        raise UserError(f"{field}: is a file, not a folder; choose a folder path")
    if not any(data_dir.iterdir()):
        check_output_folder(data_dir, "--pg-data")
        return True
    if not (data_dir / "PG_VERSION").is_file():
        raise UserError(f"{field}: holds files and is not a PostgreSQL data folder; choose an empty or new folder "
                        "(tonesweep never writes into it)")
    if not (data_dir / PGPASS_NAME).is_file():
        raise UserError(f"{field}: a PostgreSQL data folder tonesweep did not create (no {PGPASS_NAME}); give "
                        "that server's address as --backend-store-uri, or choose another --pg-data")
    pid = _postmaster_pid(data_dir)
    if pid is not None:
        raise UserError(f"{field}: a PostgreSQL (pid {pid}) already runs on it; stop the other tracking-server, "
                        f"or that server with `pg_ctl stop -D {data_dir} -m fast`")
    return False


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid in postmaster.pid if that process is alive and a postgres, else None (a stale file
    left by a killed server is fine: postgres replaces it)."""
    import psutil  # noqa: PLC0415

    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        alive = process_alive(pid) and "postgres" in psutil.Process(pid).name()
    except psutil.Error:
        alive = False
    return pid if alive else None


def _check_account_reaches(account: str, data_dir: Path) -> None:
    """Under root, postgres runs as ``account``: every existing folder above the data folder must let
    it pass (a 0700 home or pytest folder does not)."""
    import pwd  # noqa: PLC0415

    try:
        entry = pwd.getpwnam(account)
    except KeyError:
        raise UserError(f"--pg-data {data_dir}: there is no {account} account to run PostgreSQL as (it refuses "
                        "root); install the apt package postgresql, which creates it") from None
    groups = set(os.getgrouplist(account, entry.pw_gid))
    for folder in reversed(data_dir.parents):
        if not folder.exists():
            break
        mode = folder.stat()
        bit = (stat.S_IXUSR if mode.st_uid == entry.pw_uid else
               stat.S_IXGRP if mode.st_gid in groups else stat.S_IXOTH)
        if not mode.st_mode & bit:
            raise UserError(f"--pg-data {data_dir}: the {account} account that runs PostgreSQL cannot enter "
                            f"{folder}; choose a folder outside it, or `chmod o+x {folder}`")
