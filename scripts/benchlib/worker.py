#!/usr/bin/env python3
"""One measured workload of ``scripts/bench``, run in a fresh process so its peak RSS is its own.

    python -m benchlib.worker '{"kind": "event", "url": "http://127.0.0.1:PORT", ...}'   # a WorkerSpec

Settings come from the ``KCGUARD_*`` environment the bench sets. The last line of standard
output is the JSON result (``wall``: seconds of the measured part only, no interpreter
start-up or imports). Kinds:

* ``event``: one DeleteUser event (``names[0]``) through ``handlers.handle_event``.
* ``burst``: one DeleteUser event per name, all at once from ``threads`` threads on one
  Runtime (Function Compute instance concurrency).
* ``summary``: ``handlers.handle_summary`` (scan, classify, reconcile, render markdown and
  HTML, JSON report; no channel or bucket configured).
* ``sdk``: a plain sequential loop over the official ``alibabacloud-cs20151215`` SDK:
  DescribeClustersV1 per region (paging, 100 a page), ListClusterKubeconfigStates per running
  cluster (paging, 50 a page), CleanClusterUserPermissions(Force=true) for each RamUser
  state named ``names[0]`` (when given).
* ``cold``: import ``kubeconfig_guard.handlers``, build the Runtime, run the first event.
* ``import-sdk``: import ``alibabacloud_cs20151215.client``.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from benchlib import fcsim  # noqa: E402  (standard library only: the SDK worker's RSS stays its own)


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
    threads: int | None = None  # (burst)


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


def result_fields(result: Any) -> dict[str, Any]:
    from kubeconfig_guard.results import BatchResult

    if isinstance(result, BatchResult):
        return {"outcome": result.outcome.value, "counts": result.counts}
    return {
        "outcome": result.outcome.value,
        "counts": result.counts,
        "clusters_scanned": result.clusters_scanned,
        "cluster_issues": len(result.clusters),
        "reason": result.reason[:200],
    }


def run_event(spec: WorkerSpec) -> dict[str, Any]:
    from kubeconfig_guard.errors import RetryableInvocationError
    from kubeconfig_guard.handlers import handle_event

    rt = make_runtime()
    event = deletion_event(spec, spec.names[0])
    rss_before = rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    try:
        out = result_fields(handle_event(event, None, runtime=rt))
    except RetryableInvocationError as exc:
        out = {"outcome": "retryable-error", "reason": str(exc)[:300]}
    wall = time.perf_counter() - started
    cpu_workload = time.process_time() - cpu_started
    out.update(
        wall=wall,
        cpu_workload=cpu_workload,
        client=rt.engine.client.stats.as_dict(),
        rss_before_mb=rss_before,
    )
    out["limiter_rate_end"] = rt.engine.client.rate_limiter.rate
    out["limiter_decreases"] = rt.engine.client.rate_limiter.decreases
    rt.close()
    return out


def run_burst(spec: WorkerSpec) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from kubeconfig_guard.errors import RetryableInvocationError
    from kubeconfig_guard.handlers import handle_event

    rt = make_runtime()
    events = [deletion_event(spec, name, i) for i, name in enumerate(spec.names)]

    def one(event: bytes) -> dict[str, Any]:
        try:
            return result_fields(handle_event(event, None, runtime=rt))
        except RetryableInvocationError as exc:
            return {"outcome": "retryable-error", "reason": str(exc)[:200], "counts": {}}

    rss_before = rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=spec.threads or len(events)) as pool:
        results = list(pool.map(one, events))
    wall = time.perf_counter() - started
    cpu_workload = time.process_time() - cpu_started
    counts: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        for k, v in r.get("counts", {}).items():
            counts[k] = counts.get(k, 0) + v
    out = {
        "wall": wall,
        "outcomes": outcomes,
        "counts": counts,
        "client": rt.engine.client.stats.as_dict(),
        "rss_before_mb": rss_before,
        "cpu_workload": cpu_workload,
    }
    rt.close()
    return out


def run_summary(spec: WorkerSpec) -> dict[str, Any]:
    from datetime import datetime

    from kubeconfig_guard.handlers import handle_summary

    rt = make_runtime()
    now = datetime.fromisoformat(spec.now.replace("Z", "+00:00")) if spec.now else None
    rss_before = rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    outcome = handle_summary(None, None, runtime=rt, now=now)
    wall = time.perf_counter() - started
    cpu_workload = time.process_time() - cpu_started
    report = outcome.report
    out: dict[str, Any] = {
        "wall": wall,
        "outcome": outcome.outcome.value,
        "reason": outcome.reason[:200],
        "scan_seconds": (report.duration_ms / 1000.0) if report else None,
        "kubeconfigs": outcome.kubeconfigs,
        "clusters_scanned": outcome.clusters_scanned,
        "clusters_not_scanned": outcome.clusters_not_scanned,
        "reconciliation": outcome.reconciliation,
        "html_bytes": len(outcome.html),
        "json_bytes": len(outcome.report_json),
        "client": rt.engine.client.stats.as_dict(),
        "rss_before_mb": rss_before,
        "cpu_workload": cpu_workload,
        "limiter_rate_end": rt.engine.client.rate_limiter.rate,
        "limiter_decreases": rt.engine.client.rate_limiter.decreases,
    }
    rt.close()
    return out


def run_sdk(spec: WorkerSpec) -> dict[str, Any]:
    from alibabacloud_cs20151215 import models as cs_models
    from alibabacloud_cs20151215.client import Client
    from alibabacloud_tea_openapi.models import Config

    # Not imported from kubeconfig_guard: this process's RSS must be the SDK's alone. The bench
    # passes the demo key pair and the cluster states without an API server (skipped by both
    # sides, so both make the same listing calls).
    key_id, key_secret = spec.access_key
    not_running = set(spec.not_running)
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
    wanted = spec.names[0] if spec.names else None
    calls: dict[str, int] = {}

    def count(op: str) -> None:
        calls[op] = calls.get(op, 0) + 1

    rss_before = rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    kubeconfigs = 0
    cleaned = 0
    for region in spec.regions:
        page = 1
        clusters: list[Any] = []
        while True:
            count("DescribeClustersV1")
            body = client.describe_clusters_v1(
                cs_models.DescribeClustersV1Request(region_id=region, page_number=page, page_size=100)
            ).body
            clusters += body.clusters or []
            if page * 100 >= (body.page_info.total_count or 0) or len(body.clusters or []) < 100:
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
                    cs_models.ListClusterKubeconfigStatesRequest(page_number=page, page_size=50),
                ).body
                for state in body.states or []:
                    kubeconfigs += 1
                    if wanted and state.account_type == "RamUser" and state.account_name == wanted:
                        uids.add(state.account_id)
                if page * 50 >= (body.page.total_count or 0) or len(body.states or []) < 50:
                    break
                page += 1
            for uid in sorted(uids):
                count("CleanClusterUserPermissions")
                client.clean_cluster_user_permissions(
                    cluster.cluster_id, uid, cs_models.CleanClusterUserPermissionsRequest(force=True)
                )
                cleaned += 1
    wall = time.perf_counter() - started
    cpu_workload = time.process_time() - cpu_started
    return {
        "wall": wall,
        "kubeconfigs": kubeconfigs,
        "cleaned": cleaned,
        "client": {"calls": calls},
        "rss_before_mb": rss_before,
        "cpu_workload": cpu_workload,
    }


def run_cold(spec: WorkerSpec) -> dict[str, Any]:
    t_import = time.perf_counter()
    import kubeconfig_guard.handlers as handlers

    imported = time.perf_counter()
    rt = make_runtime()
    built = time.perf_counter()
    try:
        result = result_fields(handlers.handle_event(deletion_event(spec, spec.names[0]), None, runtime=rt))
    except Exception as exc:
        result = {"outcome": type(exc).__name__}
    done = time.perf_counter()
    rt.close()
    return {
        "wall": done - T0,
        "import_handlers": imported - t_import,
        "runtime_build": built - imported,
        "first_event": done - built,
        "since_script_start": done - T0,
        "result": result,
        "preloaded": sorted(m for m in ("pydantic", "httpx") if m in sys.modules),
    }


def run_import_sdk(spec: WorkerSpec) -> dict[str, Any]:
    started = time.perf_counter()
    import alibabacloud_cs20151215.client  # noqa: F401

    return {"wall": time.perf_counter() - started}


KINDS = {
    "event": run_event,
    "burst": run_burst,
    "summary": run_summary,
    "sdk": run_sdk,
    "cold": run_cold,
    "import-sdk": run_import_sdk,
}


def main() -> None:
    raw = json.loads(sys.argv[1])
    spec = WorkerSpec(**{**raw, "access_key": tuple(raw.get("access_key") or ("", ""))})
    out = KINDS[spec.kind](spec)
    out["kind"] = spec.kind
    out["rss_self_mb"] = rss_mb()
    out["pid"] = os.getpid()
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
