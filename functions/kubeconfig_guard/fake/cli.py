"""``kcguard fake serve``: run the fake ACK on loopback from a world file.

The first line of standard output is the bound URL (``http://127.0.0.1:PORT``).
SIGINT or SIGTERM stops the server; with ``--dump-world`` the final state (recycle
bins included) is written on exit. A world with an ``organization`` is served by a
``FakeCloud``: every account's ACK, STS AssumeRole and Resource Manager ListAccounts on
that one URL (the fault options apply to every account's ACK); a second line on standard
error names the accounts.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from .backend import FakeAck
from .cloud import FakeCloud
from .faults import FaultSpec
from .server import FakeAckServer
from .world import dump_world, load_world

fake_app = typer.Typer(
    name="fake",
    help="A local fake of the ACK OpenAPI (DescribeClustersV1, ListClusterKubeconfigStates, "
    "CleanClusterUserPermissions) for demos, tests and benchmarks; for a world with an organization, "
    "every account's ACK plus STS AssumeRole and Resource Manager ListAccounts.",
    no_args_is_help=True,
    add_completion=False,
)


@fake_app.callback()
def _fake() -> None:
    """A local fake of the ACK OpenAPI."""


@fake_app.command()
def serve(
    world: Annotated[Path, typer.Option("--world", help="World file (JSON).", exists=True, dir_okay=False)],
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind; 0 picks a free port.")] = 0,
    dump_world_to: Annotated[
        Path | None, typer.Option("--dump-world", help="Write the final world here on exit.")
    ] = None,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="Added latency per request.")] = 0.0,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Requests/s per operation before HTTP 429.")
    ] = None,
    error_rate: Annotated[
        float, typer.Option("--error-rate", help="Share of requests answered with a 5xx.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the fault injector.")] = 0,
    verify_signatures: Annotated[
        bool, typer.Option("--verify-signatures/--no-verify-signatures", help="Check ACS3 signatures.")
    ] = True,
) -> None:
    """Serve the world until interrupted; print the URL on the first line of stdout."""
    loaded = load_world(world)
    served: FakeAck | FakeCloud
    if loaded.organization is not None:
        served = FakeCloud(loaded, verify_signatures=verify_signatures, fault_seed=seed, copy_world=False)
        backends = list(served.accounts.values())
    else:
        served = FakeAck(loaded, verify_signatures=verify_signatures, fault_seed=seed)
        backends = [served]
    if latency_ms or rate_limit is not None or error_rate:
        for backend in backends:
            backend.faults.set(
                None,
                FaultSpec(
                    latency_seconds=latency_ms / 1000.0, rate_limit_rps=rate_limit, error_rate_5xx=error_rate
                ),
            )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous_term = signal.signal(signal.SIGTERM, on_signal)
    previous_int = signal.signal(signal.SIGINT, on_signal)
    server = FakeAckServer(served, host=host, port=port).start()
    try:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        if isinstance(served, FakeCloud):
            sys.stderr.write(
                f"organization: central account {served.central.account_id}, "
                f"members {', '.join(served.member_ids()) or 'none'} (STS and Resource Manager on the same URL)\n"
            )
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        if dump_world_to is not None:
            dump_world(served.to_world(), dump_world_to)
            sys.stderr.write(f"world written to {dump_world_to}\n")
