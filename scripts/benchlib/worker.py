#!/usr/bin/env python3
"""One measured workload of ``scripts/bench``, run in a fresh process so its peak RSS is its own.

    python -m benchlib.worker '{"kind": "event", "url": "http://127.0.0.1:PORT", ...}'   # a WorkerSpec

Settings come from the ``KCGUARD_*`` environment the bench sets. The last line of standard
output is the JSON ``WorkerResult`` (``wall``: seconds of the measured part only, no interpreter
start-up or imports). Standard library only at import: the SDK loop's RSS stays the SDK's. Kinds:

* ``event``: one DeleteUser event (``names[0]``) through ``handlers.handle_event``.
* ``summary``: ``handlers.handle_summary`` (scan, classify, reconcile, render markdown and
  HTML, JSON report; no channel or bucket configured).
* ``sdk``: a plain sequential loop over the official ``alibabacloud-cs20151215`` SDK:
  DescribeClustersV1 per region (paging, 100 a page), ListClusterKubeconfigStates per running
  cluster (paging, 50 a page), CleanClusterUserPermissions(Force=true) for each RamUser
  state named ``names[0]`` (when given).
* ``import-sdk``: import ``alibabacloud_cs20151215.client``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import dataclasses  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from benchlib import fcsim  # noqa: E402  (standard library only: the SDK worker's RSS stays its own)

# The SDK loop's page sizes (the largest each operation accepts, as kubeconfig-guard asks).
SDK_CLUSTERS_PAGE = 100
SDK_STATES_PAGE = 50


@dataclass(frozen=True)
class WorkerSpec:
    """What to run (``kind``) against the fake at ``url``."""

    kind: str
    url: str = ""
    account_id: str = ""
    names: list[str] = field(default_factory=list)  # the deleted users (event, burst, cold, sdk)
    regions: list[str] = field(default_factory=list)
    now: str | None = None  # the world's clock (summary)
    not_running: list[str] = field(default_factory=list)  # cluster states skipped (sdk)
    access_key: tuple[str, str] = ("", "")  # (sdk)


@dataclass(frozen=True)
class ClientStats:
    """The client's own counters (``AckClient.stats.as_dict()``; the SDK loop counts its calls)."""

    calls: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    retries: int = 0


@dataclass(frozen=True)
class WorkerResult:
    """What one measured workload reports (the last line of the worker's output)."""

    kind: str
    wall: float
    cpu_workload: float = 0.0
    rss_before_mb: float = 0.0
    outcome: str | None = None
    reason: str | None = None
    counts: dict[str, int] | None = None
    client: ClientStats | None = None
    limiter_rate_end: float | None = None
    limiter_decreases: int | None = None
    # summary
    scan_seconds: float | None = None
    kubeconfigs: int | None = None
    clusters_scanned: int | None = None
    clusters_not_scanned: int | None = None
    reconciliation: dict[str, int] | None = None  # SummaryResult.reconciliation: actions per status
    html_bytes: int | None = None
    json_bytes: int | None = None
    # sdk
    cleaned: int | None = None


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def deletion_event(spec: WorkerSpec, name: str, index: int = 0) -> bytes:
    """A RAM DeleteUser event (EventBridge CloudEvents envelope) for ``name``, dated now."""
    return json.dumps(fcsim.deletion_event(name, index, spec.account_id)).encode()


def make_runtime() -> Any:
    from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
    from kubeconfig_guard.runtime import Runtime
    from kubeconfig_guard.settings import Settings

    return Runtime(Settings(), credentials=StaticCredentials(from_environment_or_demo()))


class _Measured:
    """The measured part: wall and CPU time, the RSS before it."""

    def __enter__(self) -> _Measured:
        self.rss_before = rss_mb()
        self.cpu_started = time.process_time()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = time.process_time() - self.cpu_started


def _kcguard_result(spec: WorkerSpec, measured: _Measured, rt: Any, **fields: Any) -> WorkerResult:
    """A kcguard run's result: the measured part, the client's counters and its rate limiter's end."""
    client = rt.engine.client
    return WorkerResult(
        kind=spec.kind,
        wall=measured.wall,
        cpu_workload=measured.cpu,
        rss_before_mb=measured.rss_before,
        client=ClientStats(**client.stats.as_dict()),
        limiter_rate_end=client.rate_limiter.rate,
        limiter_decreases=client.rate_limiter.decreases,
        **fields,
    )


def run_event(spec: WorkerSpec) -> WorkerResult:
    from kubeconfig_guard.errors import RetryableInvocationError
    from kubeconfig_guard.handlers import handle_event

    rt = make_runtime()
    event = deletion_event(spec, spec.names[0])
    with _Measured() as measured:
        try:
            result = handle_event(event, None, runtime=rt)
            outcome, reason, counts = result.outcome.value, None, result.counts
        except RetryableInvocationError as exc:
            outcome, reason, counts = "retryable-error", str(exc)[:300], None
    out = _kcguard_result(spec, measured, rt, outcome=outcome, reason=reason, counts=counts)
    rt.close()
    return out


def run_summary(spec: WorkerSpec) -> WorkerResult:
    from datetime import datetime

    from kubeconfig_guard.handlers import handle_summary

    rt = make_runtime()
    now = datetime.fromisoformat(spec.now.replace("Z", "+00:00")) if spec.now else None
    with _Measured() as measured:
        outcome = handle_summary(None, None, runtime=rt, now=now)
    report = outcome.report
    out = _kcguard_result(
        spec,
        measured,
        rt,
        outcome=outcome.outcome.value,
        reason=outcome.reason[:200],
        scan_seconds=(report.duration_ms / 1000.0) if report else None,
        kubeconfigs=outcome.kubeconfigs,
        clusters_scanned=outcome.clusters_scanned,
        clusters_not_scanned=outcome.clusters_not_scanned,
        reconciliation=dict(outcome.reconciliation),
        html_bytes=len(outcome.html),
        json_bytes=len(outcome.report_json),
    )
    rt.close()
    return out


def run_sdk(spec: WorkerSpec) -> WorkerResult:
    from alibabacloud_cs20151215.client import Client
    from alibabacloud_tea_openapi.models import Config

    # Not imported from kubeconfig_guard: this process's RSS must be the SDK's alone. The bench
    # passes the demo key pair and the cluster states without an API server (skipped by both
    # sides, so both make the same listing calls).
    key_id, key_secret = spec.access_key
    port = spec.url.rsplit(":", 1)[1].strip("/")
    client = Client(
        Config(
            access_key_id=key_id,
            access_key_secret=key_secret,
            endpoint=f"127.0.0.1:{port}",
            protocol="http",
            read_timeout=10000,
            connect_timeout=5000,
        )
    )
    calls: dict[str, int] = {}

    def count(op: str) -> None:
        calls[op] = calls.get(op, 0) + 1

    with _Measured() as measured:
        kubeconfigs, cleaned = _sdk_loop(client, spec, count)
    return WorkerResult(
        kind=spec.kind,
        wall=measured.wall,
        cpu_workload=measured.cpu,
        rss_before_mb=measured.rss_before,
        kubeconfigs=kubeconfigs,
        cleaned=cleaned,
        client=ClientStats(calls=calls),
    )


def _sdk_loop(client: Any, spec: WorkerSpec, count: Callable[[str], None]) -> tuple[int, int]:
    """The official SDK, sequentially: (kubeconfigs listed, Cleans made)."""
    from alibabacloud_cs20151215 import models as cs_models

    not_running = set(spec.not_running)
    wanted = spec.names[0] if spec.names else None
    kubeconfigs = 0
    cleaned = 0
    for region in spec.regions:
        page = 1
        clusters: list[Any] = []
        while True:
            count("DescribeClustersV1")
            body = client.describe_clusters_v1(
                cs_models.DescribeClustersV1Request(
                    region_id=region, page_number=page, page_size=SDK_CLUSTERS_PAGE
                )
            ).body
            clusters += body.clusters or []
            if (
                page * SDK_CLUSTERS_PAGE >= (body.page_info.total_count or 0)
                or len(body.clusters or []) < SDK_CLUSTERS_PAGE
            ):
                break
            page += 1
        for cluster in clusters:
            if (cluster.region_id or region) != region or (cluster.state or "").lower() in not_running:
                continue
            uids: set[str] = set()
            page = 1
            while True:
                count("ListClusterKubeconfigStates")
                body = client.list_cluster_kubeconfig_states(
                    cluster.cluster_id,
                    cs_models.ListClusterKubeconfigStatesRequest(page_number=page, page_size=SDK_STATES_PAGE),
                ).body
                for state in body.states or []:
                    kubeconfigs += 1
                    if wanted and state.account_type == "RamUser" and state.account_name == wanted:
                        uids.add(state.account_id)
                if (
                    page * SDK_STATES_PAGE >= (body.page.total_count or 0)
                    or len(body.states or []) < SDK_STATES_PAGE
                ):
                    break
                page += 1
            for uid in sorted(uids):
                count("CleanClusterUserPermissions")
                client.clean_cluster_user_permissions(
                    cluster.cluster_id, uid, cs_models.CleanClusterUserPermissionsRequest(force=True)
                )
                cleaned += 1
    return kubeconfigs, cleaned


def run_import_sdk(spec: WorkerSpec) -> WorkerResult:
    started = time.perf_counter()
    import alibabacloud_cs20151215.client  # noqa: F401

    return WorkerResult(kind=spec.kind, wall=time.perf_counter() - started)


KINDS: dict[str, Callable[[WorkerSpec], WorkerResult]] = {
    "event": run_event,
    "summary": run_summary,
    "sdk": run_sdk,
    "import-sdk": run_import_sdk,
}


def main() -> None:
    raw = json.loads(sys.argv[1])
    spec = WorkerSpec(**{**raw, "access_key": tuple(raw.get("access_key") or ("", ""))})
    out = KINDS[spec.kind](spec)
    sys.stdout.write("\n" + json.dumps(dataclasses.asdict(out)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
