"""An S3-compatible object store for tests: moto's server on 127.0.0.1, one per test run, stopped by
PID at the end; each test gets a bucket name of its own (``store.bucket``, not yet created).

``ObjectStore.env`` is the AWS environment a sweep reads (endpoint, test credentials, region); the
run's shared Ray head is started with it, so trials on it reach the store. ``listing`` and ``read``
look at what a sweep left in the test's bucket.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.net import free_port, http_answers, wait_until

BUCKET = "tonesweep-test"


class ObjectStore:
    def __init__(self, log_dir: Path, bucket: str = BUCKET):
        self.bucket = bucket
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "tonesweep-test",
                    "AWS_SECRET_ACCESS_KEY": "tonesweep-test-secret", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"}
        self._log = open(log_dir / f"moto-{self.port}.log", "w")
        server = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen([str(server), "-H", "127.0.0.1", "-p", str(self.port)],
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        def answers() -> str | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.process.returncode})")
            return http_answers(self.endpoint + "/moto-api/", 2)

        if wait_until(answers, timeout, interval_s=0.2) is not None:
            raise RuntimeError(f"moto_server not answering on {self.endpoint} within {timeout} s")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def make_bucket(self, name: str | None = None) -> str:
        self.client().create_bucket(Bucket=name or self.bucket)
        return name or self.bucket

    def listing(self, bucket: str | None = None, prefix: str = "") -> list[str]:
        """Object keys under ``prefix``, without the empty "folder/" markers pyarrow writes."""
        keys, paginator = [], self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket or self.bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        return keys

    def read(self, key: str, bucket: str | None = None) -> bytes:
        return self.client().get_object(Bucket=bucket or self.bucket, Key=key)["Body"].read()

    def for_test(self, test_id: str) -> "ObjectStore":
        """The same server, with a bucket name of the test's own."""
        view = object.__new__(ObjectStore)
        view.__dict__.update(self.__dict__)
        view.bucket = f"t-{hashlib.sha256(test_id.encode()).hexdigest()[:20]}"
        return view

    def stop(self) -> None:
        """SIGKILL the server by PID and wait for it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, 9)
        self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def object_store(tmp_path_factory):
    """The run's moto server, stopped by PID at the end."""
    server = ObjectStore(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(object_store, request) -> ObjectStore:
    """The run's object store with a bucket name of this test's own (``store.bucket``; call
    ``store.make_bucket()`` to create it)."""
    return object_store.for_test(request.node.nodeid)
