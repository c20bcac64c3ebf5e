"""The two whole cores view: each workload measured inside one worker process with the machine's cores.

Variants: ``kcguard`` (the project, default settings), ``kcguard-c1`` (KCGUARD_MAX_CONCURRENCY=1,
sequential), ``sdk`` (a plain sequential loop over the official SDK doing the same listing and
cleaning). The lower bound of a run is the larger of its latency critical path (for its own call
count and settings) and its CPU floor (the same run with no injected latency).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pydantic import TypeAdapter

from . import listing
from .children import BenchError, Children, run_child
from .fakeproc import FakeProcess, WorldMeta
from .options import BenchOptions
from .results import (
    CLEAN,
    OPERATIONS,
    Bound,
    CallCounts,
    RateLimitedWorkload,
    Run,
    ScanWorkload,
)
from .worker import SDK_CLUSTERS_PAGE, SDK_STATES_PAGE, WorkerResult, WorkerSpec

Log = Callable[[str], None]

# Settings of the kcguard variants (over the defaults or --child-env).
VARIANTS: dict[str, dict[str, str]] = {"kcguard": {}, "kcguard-c1": {"KCGUARD_MAX_CONCURRENCY": "1"}}
_WORKER_RESULT = TypeAdapter(WorkerResult)


@dataclass(frozen=True)
class WorkerRun:
    result: WorkerResult
    process_wall: float
    peak_rss_mb: float
    cpu_seconds: float


def run_worker(
    python: str, spec: WorkerSpec, env: dict[str, str], timeout: float = 1800, wrap: list[str] | None = None
) -> WorkerRun:
    """``python -m benchlib.worker`` with ``spec``; its last output line parsed, its usage attached."""
    child = run_child([python, "-m", "benchlib.worker", json.dumps(asdict(spec))], env, timeout, wrap)
    lines = [line for line in child.stdout.splitlines() if line.strip()]
    if child.returncode != 0 or not lines:
        raise BenchError(f"worker {spec.kind} failed (rc {child.returncode}):\n{child.stderr_tail}")
    return WorkerRun(
        _WORKER_RESULT.validate_json(lines[-1]), child.process_wall, child.peak_rss_mb, child.cpu_seconds
    )


def worker_spec(kind: str, server: FakeProcess, names: list[str] | None = None) -> WorkerSpec:
    meta = server.meta
    return WorkerSpec(
        kind=kind,
        url=server.url,
        account_id=meta.account_id,
        names=names or [],
        regions=list(meta.regions),
        now=meta.now,
        not_running=meta.not_running,
        access_key=meta.access_key,
    )


def kcguard_env(children: Children, server: FakeProcess, mode: str, variant: str) -> dict[str, str]:
    env = {
        **children.extra,
        "KCGUARD_MODE": mode,
        "KCGUARD_REGIONS": ",".join(server.meta.regions),
        "KCGUARD_CS_ENDPOINT": server.url,
        "KCGUARD_ACCOUNT_ID": server.meta.account_id,
        **VARIANTS[variant],
    }
    return children.env(**env)


# --- bounds ---------------------------------------------------------------------------------------


def sdk_states_calls(states: int) -> int:
    """The SDK loop's pages of a cluster (benchlib.worker: full pages until a short one or the total)."""
    return max(1, -(-states // SDK_STATES_PAGE))


def sdk_clusters_calls(clusters: int) -> int:
    return max(1, -(-clusters // SDK_CLUSTERS_PAGE))


def depth(meta: WorldMeta, cleans: int) -> int:
    """Sequential request rounds of a run: the DescribeClustersV1 pages of a region (one after
    another; regions together), the listing rounds of a cluster, one round of Clean calls."""
    pages = [listing.clusters_listing(r.clusters).rounds for r in meta.regions.values()]
    rounds = max(
        (listing.states_listing(n).rounds for r in meta.regions.values() for n in r.states), default=0
    )
    return max(pages) + rounds + (1 if cleans else 0)


def expected_calls(meta: WorldMeta, cleans: int) -> dict[str, CallCounts]:
    """The calls the work needs: kcguard's (asked of its client, ``benchlib.listing``) and the SDK loop's."""
    states = [n for r in meta.regions.values() for n in r.states]
    describe, list_states, clean = OPERATIONS
    return {
        "kcguard": {
            describe: sum(listing.clusters_listing(r.clusters).calls for r in meta.regions.values()),
            list_states: sum(listing.states_listing(n).calls for n in states),
            clean: cleans,
        },
        "sdk": {
            describe: sum(sdk_clusters_calls(r.clusters) for r in meta.regions.values()),
            list_states: sum(sdk_states_calls(n) for n in states),
            clean: cleans,
        },
    }


def latency_bound(calls: int, latency: float, concurrency: int, max_rps: float, rounds: int) -> float:
    return max(calls * latency / concurrency, calls / max_rps if max_rps else 0.0, rounds * latency)


# --- workloads --------------------------------------------------------------------------------------


def measure(
    opts: BenchOptions,
    children: Children,
    server: FakeProcess,
    variant: str,
    kind: str,
    mode: str,
    latency_ms: float,
    names: list[str] | None = None,
    rate_limit: float | None = None,
    burst: float | None = None,
) -> Run:
    server.reset_latency(latency_ms, rate_limit, burst)
    spec = worker_spec("sdk" if variant == "sdk" else kind, server, names)
    env = children.env() if variant == "sdk" else kcguard_env(children, server, mode, variant)
    run = run_worker(opts.python, spec, env)
    stats = server.stats()
    return Run(
        variant=variant,
        run_kind=kind,
        latency_ms=latency_ms,
        worker=run.result,
        server=stats,
        process_wall=run.process_wall,
        peak_rss_mb=run.peak_rss_mb,
        cpu_seconds=run.cpu_seconds,
        walls=[run.result.wall],
    )


def measure_median(runs: int, measure_once: Callable[[], Run]) -> Run:
    """Measure ``runs`` times; the run with the median wall time, with every wall time attached."""
    results = sorted((measure_once() for _ in range(runs)), key=lambda r: r.wall)
    chosen = results[(len(results) - 1) // 2]
    chosen.walls = [r.wall for r in results]
    return chosen


def scan_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, name: str, kind: str, log: Log
) -> ScanWorkload:
    """small / medium (event path) and large (summary): three variants, each with its CPU floor.

    The kcguard runs (and their floors) are repeated ``--runs`` times (median kept); the slow
    sequential ones run once. On the large world the event path (an event matching nothing:
    a full scan through the shared listings) is measured too, for its peak RSS.
    """
    meta = server.meta
    plan: list[tuple[str, str, str]] = [  # (label, variant, kind)
        ("kcguard", "kcguard", kind),
        ("kcguard-c1", "kcguard-c1", kind),
        ("sdk", "sdk", kind),
    ]
    if opts.quick and name == "large":
        plan = [p for p in plan if p[1] != "kcguard-c1"]
    plan = [p for p in plan if p[1] in opts.variants]
    if name == "large":
        plan.append(("kcguard event", "kcguard", "event"))
    rows: list[Run] = []
    for label, variant, run_kind in plan:
        names = [meta.deleted_user or "nobody.at.all"] if run_kind == "event" else None
        runs = opts.runs if variant == "kcguard" else 1

        def once(
            latency_ms: float,
            variant: str = variant,
            run_kind: str = run_kind,
            names: list[str] | None = names,
        ) -> Run:
            return measure(opts, children, server, variant, run_kind, "enforce", latency_ms, names)

        log(f"  {name}: {label} at {opts.latency_ms:g} ms (x{runs})")
        run = measure_median(runs, lambda: once(opts.latency_ms))
        log(f"  {name}: {label} at 0 ms, CPU floor (x{runs})")
        floor = measure_median(runs, lambda: once(0.0))
        run.variant = label
        concurrency = (
            int(children.setting("max_concurrency", opts.default_concurrency)) if variant == "kcguard" else 1
        )
        max_rps = children.setting("max_rps", opts.default_max_rps) if variant.startswith("kcguard") else 0.0
        rounds = depth(meta, run.calls[CLEAN])
        latency = opts.latency_ms / 1000.0
        run.bound = Bound(
            latency_path=latency_bound(run.calls_total, latency, concurrency, max_rps, rounds),
            calls_x_latency_over_concurrency=run.calls_total * latency / concurrency,
            calls_over_max_rps=(run.calls_total / max_rps) if max_rps else None,
            depth_rounds=rounds,
            depth_x_latency=rounds * latency,
            cpu_floor=floor.wall,
            cpu_floor_walls=floor.walls,
            cpu_floor_calls=floor.calls_total,
        )
        rows.append(run)
    base = rows[0].wall
    for row in rows:
        if row.run_kind == kind:
            row.speedup = row.wall / base  # how many times longer than kcguard
    cleans = meta.deleted_user_clusters if kind == "event" else rows[0].calls[CLEAN]
    return ScanWorkload(
        workload=name,
        kind=kind,
        world=server.recipe,
        kubeconfigs=meta.kubeconfigs,
        clusters=meta.clusters,
        running_clusters=meta.running,
        expected_calls=expected_calls(meta, cleans),
        runs=rows,
    )


def rate_limited_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, log: Log
) -> RateLimitedWorkload:
    """The medium world behind a request rate the client is not told: the summary (dry-run, a
    pure scan) and the event path (enforce, the deleted user on 40 clusters)."""
    runs = []
    for label, kind, mode in (
        ("kcguard summary (throttled)", "summary", "dry-run"),
        ("kcguard event (throttled)", "event", "enforce"),
    ):
        log(f"  rate-limited: {label} at {opts.rate_limit:g} req/s, burst {opts.rate_burst:g}")
        names = [server.meta.deleted_user or "nobody.at.all"] if kind == "event" else None
        run = measure(
            opts,
            children,
            server,
            "kcguard",
            kind,
            mode,
            opts.latency_ms,
            names,
            opts.rate_limit,
            opts.rate_burst,
        )
        run.variant = label
        by_op = run.server.timeline.throttled_by_operation
        served = sum(run.calls[op] - by_op.get(op, 0) for op in OPERATIONS)
        # calls / rate, with the calls the work needs (the throttled ones excluded). The fake's
        # buckets are per operation, but these flows use the operations one phase after another.
        run.rate_bound = served / opts.rate_limit
        runs.append(run)
    return RateLimitedWorkload(rate_limit=opts.rate_limit, rate_burst=opts.rate_burst, runs=runs)
