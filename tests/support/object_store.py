"""An S3-compatible object store for tests: moto's server on 127.0.0.1, stopped by PID at the end.

``ObjectStore.env`` is the AWS environment a sweep reads (endpoint, test credentials, region);
``listing`` and ``read`` look at what the sweep left in the bucket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from common.net import free_port

BUCKET = "tonesweep-test"


class ObjectStore:
    def __init__(self, log_dir: Path):
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited ({self.process.returncode})")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"moto_server not answering on {self.endpoint} within {timeout} s")

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")

    def make_bucket(self, name: str = BUCKET) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def listing(self, bucket: str = BUCKET, prefix: str = "") -> list[str]:
        """Object keys under ``prefix``, without the empty "folder/" markers pyarrow writes."""
        keys, paginator = [], self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/")]
        return keys

    def read(self, key: str, bucket: str = BUCKET) -> bytes:
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def stop(self) -> None:
        """SIGKILL the server by PID and wait for it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, 9)
        self.process.wait()
        self._log.close()


@pytest.fixture
def store(tmp_path_factory):
    """A fresh moto server for one test (no bucket yet), stopped by PID at the end."""
    server = ObjectStore(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()
