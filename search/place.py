"""Where a sweep keeps its files (``--storage``): a folder, or a prefix in an S3-compatible object store.

In a folder, everything of sweep NAME lives in ``<storage>/<NAME>/``. In a store (``s3://BUCKET/PREFIX``),
nothing relies on the driver and the trials sharing a disk:

==================================================  ======================================  ======================
what                                                where (under PREFIX/)                   written by
==================================================  ======================================  ======================
Ray Tune's experiment state, signed                 ``<sweep>/<instrument>/ray-state/``     the driver, ~every 1 s
each trial's folder: checkpoint, weights, metrics   ``<sweep>/trials/<trial id>/``          the trial
the prepared datasets                               ``datasets/<instrument>-<key>/``        the driver, once
the sweep's bookkeeping (sweep.json, ledgers,       ``<sweep>/``                            the driver, ~every 1 s
MO-ASHA rungs)
==================================================  ======================================  ======================

The driver keeps its bookkeeping and Ray's experiments in a scratch folder at a fixed path per store
URI while it runs (Ray pickles the searcher and scheduler with the paths of their state files, so a
resumed driver must find them there); ``BookkeepingUpload`` copies them to the store, Ray's state
signed (``search.ray_state``: Ray unpickles it, so it is never read back unchecked), and ``--resume``
downloads them first.
What a trial does on its node is ``search.trial_folder``'s; the transfers are ``cluster.object_store``'s.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.object_store import Remote, check_storage, download, exists, object_lock, upload
from common.errors import UserError
from common.files import account_folder, write_json_atomic
from common.locks import sibling_lock, writer_lock
from common.paths import check_apart, check_name, contained
from search.ray_state import RayStateUpload, download_ray_state
from trainers.data.dataset import MANIFEST, dataset_files, read_manifest

SWEEP_FILE = "sweep.json"   # marks a folder as a sweep: what was asked for
DATASETS = "datasets"       # published datasets, beside the sweeps under the store's prefix
TRIALS = "trials"


@dataclass
class SweepPlace:
    """Where a sweep's files live.

    Local ``--storage``: ``folder`` is the sweep's folder itself (Ray's state, trial folders, the
    driver's bookkeeping). Object store: ``remote`` is ``s3://bucket/prefix/<sweep>``, holding all of
    it, and ``folder`` is the driver's private scratch copy of its bookkeeping while it runs
    (downloaded by ``--resume``, uploaded by ``BookkeepingUpload``, removed at the end).
    """

    name: str
    folder: Path | None
    root: Remote | None = None  # the --storage URI
    own: list[str] = field(default_factory=list)  # each instrument's bookkeeping files (names), in a store

    @property
    def remote(self) -> Remote | None:
        return self.root.child(self.name) if self.root is not None else None

    def open(self, instruments: list[str], own: list[str], resume: bool) -> None:
        """In a store: make the driver's scratch folder and, on ``--resume``, download the sweep file,
        each instrument's bookkeeping files named ``own`` that exist there, and Ray's signed state
        (checked before anything reads it: ``search.ray_state``)."""
        if self.remote is None:
            return
        self.own = list(own)
        self.folder = driver_folder(self.remote) / self.name
        self.folder.mkdir()
        if not resume:
            return
        try:
            download(self.remote.child(SWEEP_FILE), self.folder / SWEEP_FILE)
            for instrument in instruments:
                for name in own:
                    download(self.remote.child(instrument, name), self.folder / instrument / name)
                download_ray_state(self.remote, instrument, self.folder / instrument)
        except BaseException:  # refused (or interrupted): no scratch copy left, nothing uploaded
            shutil.rmtree(self.folder.parent, ignore_errors=True)
            self.folder = None
            raise

    def close(self) -> None:
        """In a store: upload the last changes, then remove the scratch copy."""
        if self.remote is not None and self.folder is not None:
            BookkeepingUpload(self.folder, self.remote, self.own)()
            shutil.rmtree(self.folder.parent, ignore_errors=True)

    @property
    def ray_storage(self) -> str:
        """Ray Tune's ``storage_path``: the sweep's folder, or for a sweep in a store the driver's scratch
        copy (uploaded signed by ``BookkeepingUpload``; the trials' folders are in the store)."""
        return str(self.folder)

    def experiment(self, instrument: str) -> str:
        """Where Ray keeps an instrument's experiment (what ``Tuner.restore`` reads)."""
        return f"{self.ray_storage}/{instrument}"

    def experiment_location(self, instrument: str) -> str:
        """Where an instrument's experiment is kept, for people: its folder, or its place in the store."""
        return self.remote.child(instrument).uri if self.remote is not None else self.experiment(instrument)

    def instrument_folder(self, instrument: str) -> Path:
        """The driver's own files of an instrument (ledger, MO-ASHA rungs, the searcher's state)."""
        folder = contained(self.folder, instrument, "instrument")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def trials(self) -> str:
        return self.remote.child(TRIALS).uri if self.remote is not None else f"{self.folder}/{TRIALS}"

    def dataset(self, dataset: str) -> str:
        """Where trials read a dataset: its folder, or its copy published to the object store."""
        if self.root is None:
            return dataset
        return publish_dataset(Path(dataset), self.root).uri

    def exists(self) -> bool:
        if self.remote is not None:
            return exists(self.remote.child(SWEEP_FILE))
        return (self.folder / SWEEP_FILE).exists()

    def writer_lock(self, took_over) -> contextlib.AbstractContextManager:
        """The sweep's writer lock: ``.NAME.lock`` beside its folder (``common.locks``), or the lock
        object ``NAME.lock`` beside it in the object store (``cluster.object_store.object_lock``)."""
        what = f"sweep {self.name} in {self.describe()}"
        if self.remote is None:
            return writer_lock(sibling_lock(self.folder), what, "--name", took_over=took_over)
        return object_lock(self.remote, what, "--name", took_over=took_over)

    def describe(self) -> str:
        return self.remote.uri.rsplit("/", 1)[0] if self.remote is not None else str(self.folder.parent)


def sweep_place(location: str, name: str, datasets: list[str]) -> SweepPlace:
    """The checked ``--storage`` (a folder apart from the datasets, or a reachable bucket) and the
    sweep's place in it."""
    checked = check_storage(location, "--storage")
    if isinstance(checked, Remote):
        return SweepPlace(name, None, checked)
    sweep_dir = contained(checked, name, "--name")
    check_apart(sweep_dir, datasets, "--storage")
    return SweepPlace(name, sweep_dir)


def check_sweep_place(place: SweepPlace, resume: bool) -> None:
    """A new sweep needs a free name; ``--resume`` needs an existing one."""
    exists = place.exists()
    if exists and not resume:
        raise UserError(f"--name {place.name}: a sweep of that name exists in {place.describe()}; "
                        "add --resume to continue it or choose another --name")
    if resume and not exists:
        raise UserError(f"--name {place.name}: no sweep of that name in {place.describe()}; "
                        "check --name and --storage")


# ---------------------------------------------------------------------------- the sweep file


def write_sweep_file(folder: Path, record: dict[str, Any]) -> None:
    """``sweep.json``: what was asked for (name, instruments, trials, algorithm, ...), written once, when
    the sweep starts; a resumed sweep keeps the first one."""
    path = folder / SWEEP_FILE
    if path.exists():
        return
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(path, {**record, "created": stamp})


def read_sweep_file(folder: Path) -> dict[str, Any]:
    """The sweep file of a sweep folder; a one-line ``UserError`` when it is missing or damaged."""
    path = folder / SWEEP_FILE
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing; not a sweep folder (check --name and --storage)") from None
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable ({err}); the sweep folder is damaged") from None
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise UserError(f"{path}: not a tonesweep sweep file; the sweep folder is damaged")
    return record


# ---------------------------------------------------------------------------- the driver's bookkeeping in a store


def driver_folder(remote: Remote) -> Path:
    """The driver's scratch folder for a sweep kept in the store, at the same path in every driver
    process: ``<tmp>/tonesweep-<uid>/sweeps/<hash of the URI>``, private to this account. Emptied on
    open: the store holds the truth."""
    folder = driver_folder_path(remote)
    shutil.rmtree(folder, ignore_errors=True)  # a killed driver's leftovers (tonesweep's own files)
    folder.mkdir(parents=True, mode=0o700)
    return folder


def driver_folder_path(remote: Remote) -> Path:
    return account_folder("sweeps") / hashlib.sha256(remote.uri.encode()).hexdigest()[:16]


class BookkeepingUpload:
    """Uploads the driver's bookkeeping from its scratch folder: ``sweep.json`` and each instrument's
    files named ``own`` when they changed since their last upload, and Ray's state, signed
    (``search.ray_state.RayStateUpload``). ``search.callbacks.StorageSync`` calls it about every second."""

    def __init__(self, local: Path, remote: Remote, own: list[str]):
        self.local, self.remote, self.own = Path(local), remote, list(own)
        self._uploaded: dict[str, int] = {}   # relative path -> mtime_ns of the uploaded version
        self.ray_state = RayStateUpload(self.local, remote, set(self.own))

    def __getstate__(self) -> dict:  # Ray pickles it with its callback; it starts afresh after a restore
        return {"local": str(self.local), "remote": self.remote.uri, "own": self.own}

    def __setstate__(self, state: dict) -> None:
        self.__init__(Path(state["local"]), Remote(state["remote"]), state.get("own", []))

    def __call__(self) -> None:
        for path in self._files():
            try:
                stamp = path.stat().st_mtime_ns
            except FileNotFoundError:  # replaced (written atomically) since it was listed
                continue
            key = path.relative_to(self.local).as_posix()
            if self._uploaded.get(key) != stamp:
                upload(path, self.remote.child(*key.split("/")))
                self._uploaded[key] = stamp
        self.ray_state()

    def _files(self) -> list[Path]:
        if not self.local.is_dir():
            return []
        folders = sorted(p for p in self.local.iterdir() if p.is_dir())
        candidates = [self.local / SWEEP_FILE, *(folder / name for folder in folders for name in self.own)]
        return [path for path in candidates if path.is_file()]


# ---------------------------------------------------------------------------- datasets in a store


def publish_dataset(dataset: Path, root: Remote) -> Remote:
    """A prepared dataset's copy in the store, ``<root>/datasets/<instrument>-<key>/``, uploaded once
    (the key is the dataset's cache key, which changes with its inputs and settings), so trials on
    any node read it from there instead of from the driver's disk. Only the files the manifest lists
    go up, the manifest last (the copy's completion mark)."""
    manifest = read_manifest(dataset)
    key = manifest.get("cache_key") or hashlib.sha256((dataset / MANIFEST).read_bytes()).hexdigest()
    remote = root.child(DATASETS, check_name(f"{manifest.get('instrument')}-{key[:16]}", "dataset"))
    if not exists(remote.child(MANIFEST)):
        for name in dataset_files(dataset, manifest):  # the manifest comes last
            upload(dataset / name, remote.child(*name.split("/")))
    return remote

