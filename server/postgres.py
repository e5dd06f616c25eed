"""The PostgreSQL `tonesweep tracking-server` runs itself when no ``--backend-store-uri`` is given.

A data folder made by ``initdb``, listening on 127.0.0.1 only (its unix socket inside the data
folder), password authentication for TCP with a generated password that stays in
``<data>/tonesweep-pgpass`` (handed to MLflow as ``PGPASSFILE``, so it appears on no command line).
That file also marks the folder as tonesweep's: a Postgres data folder without it is someone else's
and is refused. PostgreSQL refuses to run as root, so under root its binaries run as the
``postgres`` account (``runuser``) and own the folder. ``plan`` checks everything and writes
nothing; ``create`` (initdb) removes all it wrote if it fails.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common.errors import UserError
from common.files import process_alive, scratch_dir
from common.net import check_port_free, free_port
from common.paths import check_output_folder
from server.processes import STOP_GRACE_S, ChildGroup, wait_ready

POSTGRES_ROOT = Path("/usr/lib/postgresql")  # Debian's package `postgresql`: <root>/<major>/bin
POSTGRES_ACCOUNT = "postgres"                # the account that package creates
DB_ROLE, DB_NAME = "tonesweep", "mlflow"
PGPASS_NAME = "tonesweep-pgpass"
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with its NUL
START_TIMEOUT_S = 60.0


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

    def start(self, should_stop: Callable[[], bool], env: dict[str, str] | None = None) -> bool:
        """Start postgres (``env``: added to its environment), wait until it answers, create the
        database if missing; False if stopped."""
        self.group = ChildGroup("PostgreSQL", self._as_account([
            str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.socket_dir}",
            "-c", "logging_collector=on"]), env=dict(os.environ, **(env or {})))
        return wait_ready(self._ensure_database, [self.group], should_stop, START_TIMEOUT_S,
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
