"""An S3-compatible object store as a place for files: ``s3://bucket/prefix`` (AWS S3, MinIO, Ceph, moto).

``check_storage`` checks a ``--storage``-style location before anything is written (scheme, bucket
name, prefix parts, credentials, one HEAD of the bucket); ``Remote`` names a folder in the store;
``upload``, ``download``, ``mirror``, ``exists`` and ``local_copy`` move files between it and this
machine; ``put_bytes``, ``get_bytes`` and ``delete`` handle one object. What a sweep keeps where is ``search.place``'s business, not this module's.

The endpoint and credentials come from the usual AWS environment (``AWS_ENDPOINT_URL`` or
``AWS_ENDPOINT_URL_S3`` for an S3-compatible store such as MinIO or moto, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` or ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``), in every process: they are
never written into Ray's state or MLflow. Transfers use pyarrow's S3 filesystem, the one Ray itself
uses. Nothing read from a store is unpickled here.
"""

from __future__ import annotations

import functools
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from common.errors import UserError
from common.files import scratch_dir
from common.paths import check_name, check_output_folder, is_uri, local_path

SCHEMES = ("s3",)
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
# S3's bucket naming rules (3-63 lower-case letters, digits, dots and hyphens, begun and ended by a letter
# or digit; no two dots side by side; not shaped like an IP address; none of the reserved prefixes and
# suffixes): https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_ADDRESS = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an S3 bucket's name, or None when it can."""
    if not BUCKET.match(name):
        return "3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no dot next to another dot or a hyphen"
    if IP_ADDRESS.match(name):
        return "not shaped like an IP address"
    if name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES):
        return "a prefix or suffix S3 reserves"
    return None


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
    problem = bucket_name_problem(remote.bucket)
    if problem:
        raise UserError(f"{field} {location}: {remote.bucket!r} is not a bucket name (S3 wants {problem}); "
                        "give s3://BUCKET/PREFIX")
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


def store_place() -> str:
    """Where the store is, for a message: "at ENDPOINT" or "on AWS"."""
    endpoint = endpoint_url()
    return f"at {endpoint}" if endpoint else "on AWS"


def store_problem(remote: Remote) -> str | None:
    """None when the bucket answers one quick HEAD (a single attempt: an unreachable store answers in
    seconds), else why not."""
    try:
        _bucket_type(remote)
    except OSError as err:
        return " ".join(str(err).split())[:300]
    return None


def _bucket_type(remote: Remote):
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(endpoint_override=endpoint_url(), region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                           connect_timeout=5, request_timeout=20,
                           retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    return fs.get_file_info(remote.bucket).type


def _check_bucket(remote: Remote, field: str) -> None:
    """One quick HEAD of the bucket: it answers and exists."""
    import pyarrow.fs as pafs

    where = store_place()
    try:
        found = _bucket_type(remote)
    except OSError as err:
        reason = " ".join(str(err).split())[:300]
        raise UserError(f"{field} {remote.uri}: the object store {where} did not answer ({reason}); "
                        "check AWS_ENDPOINT_URL and the credentials") from None
    if found == pafs.FileType.NotFound:
        raise UserError(f"{field} {remote.uri}: no bucket {remote.bucket!r} {where}; create it "
                        f"(aws s3 mb s3://{remote.bucket}) or fix the name")


# ---------------------------------------------------------------------------- one writer at a time


@contextmanager
def object_lock(remote: Remote, what: str, field: str, took_over: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock object ``<remote>.lock`` (e.g. ``s3://bucket/runs/demo.lock``) while the block runs.

    Taken with a conditional write (``If-None-Match: *``: S3, MinIO and moto create it for one writer
    only); a second writer gets one line naming the holder. A lock whose holder is certainly gone (a
    process of this machine that no longer runs) is taken over with ``If-Match`` on the object seen, so
    of two drivers taking it over at once one wins; a holder on another machine cannot be judged from
    here: the line says how to remove its lock. Removed when the block ends, if it is still this one.
    """
    import json

    from common.locks import busy_error, holder_gone, holder_record

    client, bucket, key = _s3_client(), remote.bucket, f"{remote.path.split('/', 1)[1]}.lock"
    body = json.dumps(holder_record()).encode()
    etag = _put_if(client, bucket, key, body, IfNoneMatch="*")
    if etag is None:
        seen = client.get_object(Bucket=bucket, Key=key)
        holder = json.loads(seen["Body"].read() or b"{}")
        if not holder_gone(holder):
            raise busy_error(field, what, holder, "wait for it to end, or stop it (if it is gone, remove "
                                                  f"s3://{bucket}/{key})")
        etag = _put_if(client, bucket, key, body, IfMatch=seen["ETag"])
        if etag is None:
            raise busy_error(field, what, {"pid": "?", "host": "another driver"}, "it took the lock over first")
        if took_over is not None:
            took_over(f"{what}: took over the lock of PID {holder.get('pid')} on {holder.get('host')}, which has ended")
    try:
        yield
    finally:
        try:
            if client.head_object(Bucket=bucket, Key=key)["ETag"] == etag:
                client.delete_object(Bucket=bucket, Key=key)
        except Exception:  # noqa: BLE001 - the store may be what failed; a stale lock is taken over later
            pass


def _put_if(client, bucket: str, key: str, body: bytes, **condition) -> str | None:
    """PutObject under a condition: the new object's ETag, or None when the condition failed."""
    import botocore.exceptions

    try:
        return client.put_object(Bucket=bucket, Key=key, Body=body, **condition)["ETag"]
    except botocore.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
            return None
        raise


def _s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url(),
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


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


def put_bytes(remote: Remote, data: bytes) -> None:
    """Write one object (replacing it)."""
    with remote.filesystem().open_output_stream(remote.path) as stream:
        stream.write(data)


def get_bytes(remote: Remote) -> bytes | None:
    """One object's bytes; None when it does not exist."""
    try:
        with remote.filesystem().open_input_stream(remote.path) as stream:
            return stream.readall()
    except FileNotFoundError:
        return None


def delete(remote: Remote) -> None:
    """Delete one object (nothing when it is gone already)."""
    try:
        remote.filesystem().delete_file(remote.path)
    except FileNotFoundError:
        pass


@contextmanager
def local_copy(location: str) -> Iterator[Path]:
    """A finished trial's folder on this machine: the folder itself, or a private download of an
    object-store folder, removed when the block ends."""
    if not is_uri(location):
        yield Path(location)
        return
    with scratch_dir("tonesweep-fetch-") as folder:
        download(Remote(location), folder / "trial")
        yield folder / "trial"


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
