"""Where a sweep keeps its files (``--storage``): a local folder, or an S3-compatible object store.

``--storage s3://bucket/prefix`` puts everything a sweep writes that outlives a process into the
object store, so nothing depends on the driver and the trials sharing a disk:

- Ray Tune's experiment state: Ray writes it there itself (``RunConfig(storage_path,
  storage_filesystem)``) and ``Tuner.restore`` reads it back;
- each trial's output folder (``<prefix>/<sweep>/trials/<trial id>/``): the trial works in a scratch
  folder on its own node, uploads its trainer checkpoint with each progress report (so a trial that
  is resumed, on any node, goes on from it) and its whole folder when it ends; the driver downloads
  a finished trial's folder to log it as MLflow artifacts (``search.callbacks``);
- each prepared dataset (``<prefix>/datasets/<instrument>-<key>/``): uploaded once by the driver,
  downloaded once per node by the first trial that needs it;
- the driver's own bookkeeping (``sweep.json``, each instrument's ledger and MO-ASHA rungs): kept in
  a private scratch folder while the driver runs, uploaded about every second
  (``search.callbacks.StorageSync``), downloaded again by ``--resume``.

The endpoint and credentials come from the usual AWS environment (``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3`` for an S3-compatible store such as MinIO or moto, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` or ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``), on the driver and on every
node: they are never written into Ray's state or MLflow. Transfers use pyarrow's S3 filesystem, the
one Ray itself uses. Only JSON, WAV, PNG and TensorFlow checkpoint files are read back; tonesweep
unpickles nothing from the store (Ray's own ``Tuner.restore`` loads the experiment state it wrote:
docs/architecture.md, "Shared storage").
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from trainers.errors import UserError
from trainers.paths import check_name, check_output_folder, contained, is_uri, local_path

SCHEMES = ("s3",)
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens).
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class Remote:
    """A folder in an object store: ``s3://bucket/prefix`` (``path`` is pyarrow's ``bucket/prefix``)."""

    uri: str

    @property
    def path(self) -> str:
        return self.uri.split("://", 1)[1].strip("/")

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    def child(self, *names: str) -> "Remote":
        return Remote("/".join([self.uri.rstrip("/"), *names]))

    def filesystem(self):
        """pyarrow's S3 filesystem from the AWS environment (endpoint included); holds no secret when
        pickled (Ray pickles it with the run config), so every process reads its own credentials."""
        return _filesystem(f"s3://{self.bucket}", endpoint_url())


@functools.lru_cache(maxsize=16)
def _filesystem(bucket_uri: str, endpoint: str | None):
    """One client per bucket and endpoint in a process: building one resolves the bucket's region (a
    request on AWS), and a trial transfers at every report."""
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(bucket_uri)[0]


# ---------------------------------------------------------------------------- checks


def check_storage(location: str, field: str = "--storage") -> Path | Remote:
    """A local folder (created later, checked now) or an object-store folder that exists and is
    reachable with credentials; anything else is a one-line ``UserError`` naming what to fix."""
    if not is_uri(location):
        return check_output_folder(local_path(location).resolve(), field)
    scheme = location.split("://", 1)[0]
    if scheme.lower() not in SCHEMES:
        raise UserError(f"{field} {location}: {scheme}:// is not supported; give a folder or "
                        "s3://BUCKET/PREFIX (an S3-compatible store: set AWS_ENDPOINT_URL)")
    remote = Remote(location)
    if not BUCKET.match(remote.bucket):
        raise UserError(f"{field} {location}: {remote.bucket!r} is not a bucket name; give s3://BUCKET/PREFIX")
    for part in PurePosixPath(remote.path).parts[1:]:
        check_name(part, f"{field} {location}: prefix part")
    _check_credentials(location, field)
    _check_bucket(remote, field)
    return remote


def _check_credentials(location: str, field: str) -> None:
    import boto3
    import botocore.exceptions

    try:
        credentials = boto3.Session().get_credentials()
    except botocore.exceptions.BotoCoreError as err:  # e.g. AWS_PROFILE names no profile
        raise UserError(f"{field} {location}: AWS credentials unusable ({err}); fix AWS_PROFILE or set "
                        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    if credentials is None:
        raise UserError(f"{field} {location}: no AWS credentials; set AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for an S3-compatible store")


def _check_bucket(remote: Remote, field: str) -> None:
    """One quick HEAD of the bucket (a single attempt: an unreachable store answers in seconds)."""
    import pyarrow.fs as pafs

    endpoint = endpoint_url()
    where = f"at {endpoint}" if endpoint else "on AWS"
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                           connect_timeout=5, request_timeout=20,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    try:
        found = fs.get_file_info(remote.bucket).type
    except OSError as err:
        reason = " ".join(str(err).split())[:300]
        raise UserError(f"{field} {remote.uri}: the object store {where} did not answer ({reason}); "
                        "check AWS_ENDPOINT_URL and the credentials") from None
    if found == pafs.FileType.NotFound:
        raise UserError(f"{field} {remote.uri}: no bucket {remote.bucket!r} {where}; create it "
                        f"(aws s3 mb s3://{remote.bucket}) or fix the name")


def endpoint_url() -> str | None:
    """The S3-compatible endpoint from the environment, or None for AWS itself."""
    return next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)


# ---------------------------------------------------------------------------- transfers


def exists(remote: Remote) -> bool:
    import pyarrow.fs as pafs

    return remote.filesystem().get_file_info(remote.path).type != pafs.FileType.NotFound


def upload(local: Path, remote: Remote) -> None:
    """Copy a local folder (or file) to ``remote``; objects already there are replaced, others kept."""
    import pyarrow.fs as pafs

    fs = remote.filesystem()
    if local.is_dir():
        fs.create_dir(remote.path, recursive=True)
    if local.exists():
        pafs.copy_files(str(local), remote.path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)


def download(remote: Remote, local: Path) -> bool:
    """Copy ``remote`` (a folder or a file) to ``local``; False when it does not exist."""
    import pyarrow.fs as pafs

    fs = remote.filesystem()
    kind = fs.get_file_info(remote.path).type
    if kind == pafs.FileType.NotFound:
        return False
    if kind == pafs.FileType.Directory:
        local.mkdir(parents=True, exist_ok=True)
    else:
        local.parent.mkdir(parents=True, exist_ok=True)
    pafs.copy_files(remote.path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    return True


@contextmanager
def local_copy(location: str) -> Iterator[Path]:
    """A finished trial's folder on this machine: the folder itself, or a private download of an
    object-store folder, removed when the block ends."""
    if not is_uri(location):
        yield Path(location)
        return
    folder = scratch_folder("fetch")
    try:
        download(Remote(location), folder / "trial")
        yield folder / "trial"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def driver_folder(remote: Remote) -> Path:
    """The driver's scratch folder for a sweep kept in the store, at the same path in every driver
    process (Ray pickles the searcher and scheduler with the paths of their state files, and a
    resumed driver must find them there): ``<tmp>/tonesweep-<uid>/sweeps/<hash of the URI>``,
    private to this account. Emptied on open: the store holds the truth."""
    folder = private_base("sweeps") / hashlib.sha256(remote.uri.encode()).hexdigest()[:16]
    shutil.rmtree(folder, ignore_errors=True)  # a killed driver's leftovers (tonesweep's own files)
    folder.mkdir(parents=True, mode=0o700)
    return folder


def scratch_folder(purpose: str) -> Path:
    """A fresh folder of this process's own for files on their way to or from the store."""
    return Path(tempfile.mkdtemp(prefix=f"{purpose}-", dir=private_base("scratch")))


def private_base(kind: str) -> Path:
    """``<tmp>/tonesweep-<uid>/<kind>``: where tonesweep keeps node-local copies (mode 0700; refused
    when another account owns it)."""
    base = Path(tempfile.gettempdir()) / f"tonesweep-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    if base.is_symlink() or base.stat().st_uid != os.getuid():
        raise UserError(f"{base}: not this account's own folder; remove it or set TMPDIR to another folder")
    (base / kind).mkdir(mode=0o700, exist_ok=True)
    return base / kind


def mirror(local: Path, remote: Remote) -> None:
    """Make ``remote`` hold what ``local`` holds: upload, then delete objects the folder no longer has
    (in that order, so a process killed in between leaves the new files, never none)."""
    import pyarrow.fs as pafs

    upload(local, remote)
    fs = remote.filesystem()
    keep = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    for info in fs.get_file_info(pafs.FileSelector(remote.path, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.path[len(remote.path) + 1:] not in keep:
            fs.delete_file(info.path)


class TrialFolder:
    """A trial's output folder: ``<trials>/<trial id>/`` itself, or, when ``trials`` is in an object
    store, a scratch folder on this node mirrored to ``<trials>/<trial id>/`` there.

    In the store: ``open`` downloads what an earlier attempt uploaded (a resumed trial continues from
    its checkpoint, on whichever node it lands), ``report`` uploads the trainer checkpoint written
    just before each progress report, ``finish`` uploads the whole folder, ``close`` removes the scratch.
    """

    CHECKPOINT = "checkpoint"

    def __init__(self, trials: str, trial_id: str):
        self.remote = Remote(trials).child(check_name(trial_id, "trial id")) if is_uri(trials) else None
        if self.remote is None:
            self._scratch = None
            self.local = contained(trials, trial_id, "trial id")
        else:
            self._scratch = scratch_folder("trial")
            self.local = self._scratch / trial_id
            download(self.remote, self.local)

    @property
    def location(self) -> str:
        """Where the driver finds the folder: the object-store URI, or the local path."""
        return self.remote.uri if self.remote else str(self.local)

    def report(self) -> None:
        checkpoint = self.local / self.CHECKPOINT
        if self.remote and checkpoint.is_dir():
            mirror(checkpoint, self.remote.child(self.CHECKPOINT))

    def finish(self) -> None:
        if self.remote and self.local.is_dir():
            mirror(self.local, self.remote)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


def driver_files(folder: Path) -> list[Path]:
    """The driver's bookkeeping files in its scratch folder (JSON; a file replaced while listed is skipped)."""
    return sorted(p for p in folder.rglob("*.json") if p.is_file())


def pull(remote: Remote, local: Path, relative_paths: list[str]) -> None:
    """Download the named files of a sweep from the store (those that exist)."""
    for relative in relative_paths:
        download(remote.child(*relative.split("/")), local / relative)


# ---------------------------------------------------------------------------- datasets

DATASETS = "datasets"
MANIFEST = "manifest.json"  # written last by `prepare` and uploaded last here: a dataset's completion mark


def publish_dataset(dataset: Path, root: Remote) -> Remote:
    """A prepared dataset's copy in the store, ``<root>/datasets/<instrument>-<key>/``, uploaded once
    (the key is the dataset's cache key, which changes with its inputs and settings), so trials on
    any node read it from there instead of from the driver's disk."""
    manifest = json.loads((dataset / MANIFEST).read_text())
    key = manifest.get("cache_key") or hashlib.sha256((dataset / MANIFEST).read_bytes()).hexdigest()
    remote = root.child(DATASETS, check_name(f"{manifest['instrument']}-{key[:16]}", "dataset"))
    if not exists(remote.child(MANIFEST)):
        for item in sorted(dataset.iterdir()):
            if item.is_file() and item.name != MANIFEST:
                upload(item, remote.child(item.name))
        upload(dataset / MANIFEST, remote.child(MANIFEST))
    return remote


def dataset_on_this_node(location: str) -> str:
    """A dataset folder to read on this node: ``location`` itself, or a node-local copy of a
    published dataset, downloaded once per node (``<tmp>/tonesweep-<uid>/datasets/<name>``; a
    download lands under a private name and is renamed into place, so trials starting together
    never read half a copy)."""
    if not is_uri(location):
        return location
    remote = Remote(location)
    base = private_base(DATASETS)
    target = base / check_name(remote.path.rsplit("/", 1)[-1], "dataset")
    if (target / MANIFEST).is_file():
        return str(target)
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=base))
    try:
        if not download(remote, partial / "copy") or not (partial / "copy" / MANIFEST).is_file():
            raise UserError(f"{location}: no published dataset there (its {MANIFEST} is missing)")
        try:
            (partial / "copy").rename(target)
        except OSError:  # another trial on this node got there first
            if not (target / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return str(target)
