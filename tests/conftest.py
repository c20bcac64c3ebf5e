"""Shared fixtures: the fake ACK behind the real client, in-process or over real HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, World, load_world
from kubeconfig_guard.runtime import Runtime
from kubeconfig_guard.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
EXAMPLE_WORLD = ROOT / "examples" / "world.json"
ACCOUNT = "5000000000000001"
CALLER = "300000000000000001"
NOW = "2026-11-25T09:00:00Z"


def kc(uid: str, name: str, **fields: Any) -> dict[str, Any]:
    """A kubeconfig record of a world file (RamUser, Deleted, revokable, no access record by default)."""
    record = {
        "account_id": uid,
        "account_name": name,
        "account_display_name": name,
        "account_type": "RamUser",
        "account_state": "Deleted",
        "cert_expire_time": "2028-01-01T00:00:00Z",
        "cert_state": "Unexpired",
        "revokable": True,
        "last_access": None,
    }
    record.update(fields)
    return record


def cluster(cluster_id: str, *kubeconfigs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    record = {
        "cluster_id": cluster_id,
        "name": f"name-{cluster_id}",
        "cluster_type": "ManagedKubernetes",
        "state": "running",
        "audit_log": True,
        "kubeconfigs": list(kubeconfigs),
    }
    record.update(fields)
    return record


def world(regions: dict[str, list[dict[str, Any]]]) -> World:
    return World.model_validate(
        {
            "account_id": ACCOUNT,
            "caller_uid": CALLER,
            "now": NOW,
            "regions": {r: {"clusters": cs} for r, cs in regions.items()},
        }
    )


def settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "mode": "enforce",
        # The account the worlds belong to, as Function Compute's context would say.
        "account_id": ACCOUNT,
        "regions": ["cn-hangzhou"],
        "max_attempts": 3,
        "backoff_max_seconds": 0.05,
        "timeout_seconds": 2.0,
    }
    base.update(overrides)
    return Settings(**base)


@contextlib.contextmanager
def local_http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP receiver on loopback (a chat robot, an OSS bucket) in a thread; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def fake_ack_process(world_file: Path, dump: Path) -> Iterator[str]:
    """``kcguard fake serve`` in a child process with the demo key pair; yields its URL.

    On exit it is stopped with SIGTERM, must exit 0, and has written its final world to ``dump``.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALIBABA_CLOUD_", "KCGUARD_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "functions"), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "kubeconfig_guard.fake", "serve", "--world", str(world_file)]
    process = subprocess.Popen(
        [*command, "--port", "0", "--dump-world", str(dump)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, process.stderr.read() if process.poll() else "")
        yield url
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


class Harness:
    """A fake ACK backend and a runtime whose client reaches it over one front end."""

    def __init__(self, backend: FakeAck, wire: str) -> None:
        self.backend = backend
        self.wire = wire
        self._server: FakeAckServer | None = None
        self._runtimes: list[Runtime] = []

    def runtime(self, **overrides: Any) -> Runtime:
        creds = StaticCredentials(from_environment_or_demo())
        if self.wire == "http":
            if self._server is None:
                self._server = FakeAckServer(self.backend).start()
            rt = Runtime(settings(cs_endpoint=self._server.url, **overrides), credentials=creds)
        else:
            rt = Runtime(
                settings(cs_endpoint="http://127.0.0.1:1", **overrides),
                credentials=creds,
                transport=FakeAckTransport(self.backend),
            )
        self._runtimes.append(rt)
        return rt

    def close(self) -> None:
        for rt in self._runtimes:
            rt.close()
        if self._server is not None:
            self._server.stop()


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake and the client agree on the documented demo key pair; no proxy in the way."""
    for name in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def backend() -> FakeAck:
    """A small world (``kubeconfig_guard.fake.testing.small_world``) in a fresh fake."""
    from kubeconfig_guard.fake.testing import small_world

    return FakeAck(small_world())


@pytest.fixture
def server(backend: FakeAck) -> Iterator[FakeAckServer]:
    with FakeAckServer(backend) as running:
        yield running


@pytest.fixture(params=["inproc", "http"])
def wire(request: pytest.FixtureRequest) -> str:
    """Run the test through the in-process transport and through the real HTTP server."""
    return str(request.param)


@pytest.fixture
def make_harness(wire: str) -> Iterator[Any]:
    made: list[Harness] = []

    def make(w: World | None = None) -> Harness:
        h = Harness(FakeAck(w or load_world(EXAMPLE_WORLD)), wire)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def inproc_harness() -> Iterator[Any]:
    made: list[Harness] = []

    def make(w: World | None = None) -> Harness:
        h = Harness(FakeAck(w or load_world(EXAMPLE_WORLD)), "inproc")
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def pytest_configure(config: pytest.Config) -> None:
    """Every run's summary says why a test was skipped (a missing ../shared, Chromium, a Python)."""
    chars = config.option.reportchars or ""
    if not any(c in chars for c in "saA"):
        config.option.reportchars = chars + "s"
