"""The bench's figures, typed: what each workload measured, the targets, the whole run.

``--json`` writes ``dataclasses.asdict(BenchResults)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubeconfig_guard import api

from .fakeproc import ServerStats, WorldRecipe
from .fcsim import FunctionSpec
from .worker import WorkerResult

# The operations in the order the tables print them ("calls D/L/C").
OPERATIONS = tuple(op.name for op in api.OPERATIONS)
LISTING_OPERATIONS = tuple(op.name for op in api.OPERATIONS if op.paging is not None)
CLEAN = api.CLEAN_CLUSTER_USER_PERMISSIONS.name

CallCounts = dict[str, int]


def calls_of(stats: ServerStats) -> CallCounts:
    """Requests per operation the fake counted (every operation of the API table, 0 when none)."""
    return {op: stats.calls_of(op) for op in OPERATIONS}


def listing_calls(calls: CallCounts) -> int:
    return sum(calls.get(op, 0) for op in LISTING_OPERATIONS)


# --- the two whole cores view ---------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """The lower bound of a two-cores run: max(latency critical path, CPU floor)."""

    latency_path: float
    calls_x_latency_over_concurrency: float
    calls_over_max_rps: float | None
    depth_rounds: int
    depth_x_latency: float
    cpu_floor: float
    cpu_floor_walls: list[float]
    cpu_floor_calls: int

    @property
    def lower_bound(self) -> float:
        return max(self.latency_path, self.cpu_floor)


@dataclass
class Run:
    """One measured worker run against the fake (the median of ``walls`` when repeated)."""

    variant: str
    run_kind: str
    latency_ms: float
    worker: WorkerResult
    server: ServerStats
    process_wall: float
    peak_rss_mb: float
    cpu_seconds: float
    walls: list[float] = field(default_factory=list)
    bound: Bound | None = None
    speedup: float | None = None  # wall / kcguard's wall
    rate_bound: float | None = None  # rate-limited: served calls / rate

    @property
    def wall(self) -> float:
        return self.worker.wall

    @property
    def calls(self) -> CallCounts:
        return calls_of(self.server)

    @property
    def calls_total(self) -> int:
        return self.server.calls_total

    @property
    def throttled(self) -> int:
        return self.server.faults.get("throttled", 0)

    @property
    def throttled_share(self) -> float:
        return self.throttled / max(1, self.calls_total)

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.worker.cpu_workload / max(1, self.calls_total)

    @property
    def x_bound(self) -> float | None:
        if self.rate_bound is not None:
            return self.wall / self.rate_bound
        return self.wall / self.bound.lower_bound if self.bound else None


@dataclass(frozen=True)
class ScanWorkload:
    """small / medium (the event path) or large (the summary): the variants side by side."""

    workload: str
    kind: str
    world: WorldRecipe
    kubeconfigs: int
    clusters: int
    running_clusters: int
    expected_calls: dict[str, CallCounts]  # kcguard / sdk: the calls the work needs
    runs: list[Run]


@dataclass(frozen=True)
class RateLimitedWorkload:
    rate_limit: float
    rate_burst: float
    runs: list[Run]


# --- the deployed view ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FcRun:
    """One instance of the fc workload: its cold (first) and warm (second) event."""

    cold_total: float  # process start -> first result
    start_to_main: float
    import_seconds: float
    cpu_import: float
    cold_handler: float
    cold_cpu: float
    cold_cpu_total: float
    cold_calls: CallCounts
    cold_outcome: str
    cold_counts: dict[str, int] | None
    cold_error: str | None
    warm_handler: float
    warm_cpu: float
    warm_calls: CallCounts
    warm_outcome: str
    warm_counts: dict[str, int] | None
    warm_error: str | None
    revoked_warm: int
    process_cpu: float
    peak_rss_mb: float
    loaded: list[str] | None

    @property
    def cold_calls_total(self) -> int:
        return sum(self.cold_calls.values())

    @property
    def warm_calls_total(self) -> int:
        return sum(self.warm_calls.values())

    @property
    def cold_cpu_ms_per_call(self) -> float:
        return 1000 * self.cold_cpu / max(1, self.cold_calls_total)


@dataclass(frozen=True)
class SdkLoop:
    """The official SDK's sequential loop as a fresh process under the same quota."""

    process_wall: float
    loop_wall: float
    loop_cpu: float
    calls: CallCounts
    process_cpu: float
    peak_rss_mb: float

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.loop_cpu / max(1, self.calls_total)


@dataclass(frozen=True)
class FcRow:
    cpu: float | None
    label: str
    quota_enforced: bool
    quota_note: str
    calibration_cpu_per_second: float | None
    kcguard: FcRun  # the median of runs by cold_total
    runs: list[FcRun]
    sdk: SdkLoop | None

    @property
    def cold_totals(self) -> list[float]:
        return sorted(r.cold_total for r in self.runs)

    @property
    def speedup_cold(self) -> float | None:
        return self.sdk.process_wall / self.kcguard.cold_total if self.sdk else None

    @property
    def speedup_handler(self) -> float | None:
        return self.sdk.loop_wall / self.kcguard.cold_handler if self.sdk else None


@dataclass(frozen=True)
class FcWorkload:
    function: FunctionSpec
    warm_user_clusters: int
    deleted_user_clusters: int
    rows: list[FcRow]


@dataclass(frozen=True)
class InstanceUsage:
    instance: int
    events: int
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    cgroup: dict[str, int]


@dataclass(frozen=True)
class BurstRow:
    reserved: int
    events: int
    finished_ok: int
    outcomes: dict[str, int]
    last_finished_s: float
    all_done_s: float
    handler_p50_s: float
    handler_max_s: float
    first_event_s: float
    calls: CallCounts
    listing_calls: int
    listing_ratio: float
    revoked_pairs: int
    revocations: int
    clean_calls: int
    expected_pairs: int
    instances: list[InstanceUsage]
    failures: list[str]
    errors: list[str]
    error_samples: list[str]

    @property
    def instance_cpu_s(self) -> float:
        return sum(i.cpu_seconds for i in self.instances)

    @property
    def instance_peak_rss_mb(self) -> float:
        return max((i.peak_rss_mb for i in self.instances), default=0.0)


@dataclass(frozen=True)
class OneScan:
    calls: CallCounts
    outcome: str

    @property
    def listing_calls(self) -> int:
        return listing_calls(self.calls)


@dataclass(frozen=True)
class BurstWorkload:
    cpu: float | None
    label: str
    events: int
    one_scan: OneScan
    rows: list[BurstRow]


@dataclass(frozen=True)
class ColdStart:
    """Process start -> import the handler -> first small event (the median of ``totals``)."""

    cpu: float | None
    label: str
    bytecode: str  # "shipped" or "stdlib"
    repeat: int
    total: float
    start_to_main: float
    import_seconds: float
    first_event: float
    cpu_to_first_result: float
    cpu_import: float
    cpu_first_event: float
    calls: int  # the API calls of the first event (the fake's count)
    outcome: str
    counts: dict[str, int] | None
    peak_rss_mb: float
    modules: int | None
    loaded: list[str] | None
    totals: list[float]


@dataclass(frozen=True)
class ColdReference:
    """``python -c pass`` and the official SDK's import under the same quota."""

    cpu: float | None
    label: str
    python_startup: float
    python_startup_rss_mb: float
    sdk_import: float
    sdk_import_process: float
    sdk_import_rss_mb: float


@dataclass(frozen=True)
class ColdWorkload:
    function: FunctionSpec
    starts: list[ColdStart]
    references: list[ColdReference]
    importtime_handlers_ms: list[tuple[str, float]]
    importtime_sdk_ms: list[tuple[str, float]]


@dataclass(frozen=True)
class FleetRun:
    """The users' scale (issue 19): one deletion on a cold instance over the whole fleet."""

    cold_total: float  # process start -> result
    start_to_main: float
    import_seconds: float
    handler: float
    handler_cpu: float
    process_cpu: float
    calls: CallCounts
    outcome: str
    counts: dict[str, int] | None
    error: str | None
    peak_rss_mb: float
    rss_at_import_mb: float | None
    rss_after_mb: float | None  # resident after the event: the warm listings and the runtime

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.handler_cpu / max(1, self.calls_total)


@dataclass(frozen=True)
class FleetRow:
    cpu: float | None
    label: str
    quota_enforced: bool
    kcguard: FleetRun  # the median of runs by cold_total
    runs: list[FleetRun]

    def kept_mb_per_100k(self, kubeconfigs: int) -> float | None:
        """What the instance keeps after the event (resident after it minus resident after the
        import: the warm listings, plus the runtime's fixed part) per 100,000 kubeconfigs listed:
        an upper bound of how the warm listings grow with the fleet (median of the runs)."""
        kept = [
            r.rss_after_mb - r.rss_at_import_mb
            for r in self.runs
            if r.rss_after_mb is not None and r.rss_at_import_mb is not None
        ]
        if not kept or not kubeconfigs:
            return None
        return sorted(kept)[(len(kept) - 1) // 2] * 100_000 / kubeconfigs


@dataclass(frozen=True)
class FleetWorkload:
    world: WorldRecipe
    clusters: int
    running_clusters: int
    kubeconfigs_listed: int  # kubeconfigs on the running clusters (every one is listed)
    deleted_user_clusters: int
    latency_path: float  # max(calls x latency / max_concurrency, calls / max_rps, depth x latency)
    rows: list[FleetRow]


# --- the run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    met: bool
    value: str


@dataclass
class Workloads:
    small: ScanWorkload | None = None
    medium: ScanWorkload | None = None
    large: ScanWorkload | None = None
    rate_limited: RateLimitedWorkload | None = None
    fc: FcWorkload | None = None
    burst: BurstWorkload | None = None
    cold: ColdWorkload | None = None
    fleet: FleetWorkload | None = None

    def scan(self, name: str) -> ScanWorkload | None:
        found: ScanWorkload | None = {"small": self.small, "medium": self.medium, "large": self.large}.get(
            name
        )
        return found


@dataclass(frozen=True)
class Machine:
    nproc: int | None
    cpu: str
    platform: str
    python: str
    fc_python: str
    loadavg_at_start: tuple[float, float, float]


@dataclass(frozen=True)
class SourceState:
    commit: str
    dirty: list[str]
    exported: bool


@dataclass
class BenchResults:
    command: str
    machine: Machine
    function: FunctionSpec
    seed: int
    latency_ms: float
    quick: bool
    child_env: dict[str, str]
    source: SourceState
    workloads: Workloads = field(default_factory=Workloads)
    targets: list[Target] = field(default_factory=list)
    bench_seconds: float = 0.0
    loadavg_at_end: tuple[float, float, float] | None = None
