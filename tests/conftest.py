"""Shared fixtures; their implementation (and every shared builder) lives in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubeconfig_guard.fake import FakeAck, FakeAckServer
from support.harness import PROXY_VARIABLES, WIRES, Harnesses, harnesses


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake and the client agree on the documented demo key pair; no proxy in the way."""
    for name in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
        *PROXY_VARIABLES,
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


@pytest.fixture(params=WIRES)
def wire(request: pytest.FixtureRequest) -> str:
    """Run the test through the in-process transport and through the real HTTP server."""
    return str(request.param)


@pytest.fixture
def make_harness(wire: str) -> Iterator[Harnesses]:
    """``make_harness(world_or_backend=None)``: harnesses on both wires, closed after the test."""
    with harnesses(wire) as make:
        yield make


@pytest.fixture
def inproc_harness() -> Iterator[Harnesses]:
    """Like ``make_harness``, in-process only."""
    with harnesses("inproc") as make:
        yield make


def pytest_configure(config: pytest.Config) -> None:
    """Every run's summary says why a test was skipped (a missing ../shared, Chromium, a Python)."""
    chars = config.option.reportchars or ""
    if not any(c in chars for c in "saA"):
        config.option.reportchars = chars + "s"
