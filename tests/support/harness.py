"""The fake ACK behind the real client: in-process (httpx transport) or over its real HTTP server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, FakeCloud, World, load_world
from kubeconfig_guard.runtime import Runtime
from support.worlds import EXAMPLE_WORLD, ROOT, settings

WIRES = ("inproc", "http")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


class Harness:
    """A fake ACK backend (or a whole organization's ``FakeCloud``) and the runtimes whose client
    reaches it over one front end (``wire``): ACK, STS and Resource Manager alike."""

    def __init__(self, backend: FakeAck | FakeCloud, wire: str) -> None:
        if wire not in WIRES:
            raise ValueError(f"wire must be one of {WIRES}, not {wire!r}")
        self.backend = backend
        self.wire = wire
        self._server: FakeAckServer | None = None
        self._runtimes: list[Runtime] = []

    def runtime(self, **overrides: Any) -> Runtime:
        """A runtime with ``support.worlds.settings(**overrides)`` whose client reaches the backend."""
        creds = StaticCredentials(from_environment_or_demo())
        if self.wire == "http":
            if self._server is None:
                self._server = FakeAckServer(self.backend).start()
            url = self._server.url
            endpoints = {"cs_endpoint": url, "sts_endpoint": url, "resourcemanager_endpoint": url}
            rt = Runtime(settings(**endpoints, **overrides), credentials=creds)
        else:
            nowhere = "http://127.0.0.1:1"  # the transport answers: nothing is sent there
            endpoints = {"cs_endpoint": nowhere, "sts_endpoint": nowhere, "resourcemanager_endpoint": nowhere}
            rt = Runtime(
                settings(**endpoints, **overrides),
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


class Harnesses:
    """Makes harnesses on one wire and closes them all at the end (what the fixtures yield)."""

    def __init__(self, wire: str) -> None:
        self.wire = wire
        self._made: list[Harness] = []

    def __call__(self, w: World | FakeAck | FakeCloud | None = None) -> Harness:
        """A harness over ``w``: a world (default: examples/world.json; one with an organization is
        served by a ``FakeCloud``) or a backend built by the test."""
        backend: FakeAck | FakeCloud
        if isinstance(w, (FakeAck, FakeCloud)):
            backend = w
        else:
            world = w or load_world(EXAMPLE_WORLD)
            backend = FakeCloud(world) if world.organization is not None else FakeAck(world)
        h = Harness(backend, self.wire)
        self._made.append(h)
        return h

    def close(self) -> None:
        for h in self._made:
            h.close()


@contextlib.contextmanager
def harnesses(wire: str) -> Iterator[Harnesses]:
    made = Harnesses(wire)
    try:
        yield made
    finally:
        made.close()


@contextlib.contextmanager
def one_harness(w: World | FakeAck | FakeCloud | None = None, wire: str = "inproc") -> Iterator[Harness]:
    """One harness for a ``with`` block (or a module-scoped fixture)."""
    with harnesses(wire) as make:
        yield make(w)


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
        assert url.startswith("http://127.0.0.1:"), (
            url,
            process.stderr.read() if process.poll() and process.stderr else "",
        )
        yield url
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
