"""The bench's options, parsed and checked once (``scripts/bench --help``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WORKLOADS = ("small", "medium", "fc", "large", "rate-limited", "burst", "cold", "fleet")
VARIANT_NAMES = ("kcguard", "kcguard-c1", "sdk")


@dataclass(frozen=True)
class BenchOptions:
    quick: bool
    workloads: tuple[str, ...]
    seed: int
    latency_ms: float
    rate_limit: float
    rate_burst: float
    runs: int
    repeat: int
    variants: tuple[str, ...]
    template: Path
    fc_cpus: tuple[float | None, ...]
    reserved: tuple[int, ...]
    burst_events: int
    python: str
    fc_python: str
    json: Path | None
    # The settings' defaults in the package measured (the bounds follow them, or --child-env).
    default_concurrency: int = 32
    default_max_rps: float = 500.0
