"""The deployed view: the event function as Function Compute 3.0 runs it, at template.yml's vCPU.

Each instance is a fresh process (``fc.py``) under a cgroup v1 CPU quota (``fcsim.CpuQuota``),
importing the handler template.yml names and taking one event at a time. Workloads: ``fc`` (the
medium deletion cold and warm, beside the official SDK's loop under the same quota), ``burst``
(50 simultaneous deletions queued onto ``reservedConcurrency`` instances, beside one scan) and
``cold`` (process start -> import -> first small event, with and without shipped bytecode).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

from . import fcsim
from .children import ROOT, Children, run_child
from .fakeproc import FakeProcess
from .options import BenchOptions
from .results import (
    BurstRow,
    BurstWorkload,
    ColdReference,
    ColdStart,
    ColdWorkload,
    FcRow,
    FcRun,
    FcWorkload,
    InstanceUsage,
    OneScan,
    SdkLoop,
    calls_of,
    listing_calls,
)
from .twocores import run_worker, worker_spec
from .worker import WorkerSpec

Log = Callable[[str], None]
IMPORT_TIME_RE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def quota_label(cpu: float | None, quota: fcsim.CpuQuota | None = None) -> str:
    if cpu is None:
        return "whole cores"
    if quota is not None and not quota.enforced:
        return f"{cpu:g} vCPU (NOT enforced)"
    return f"{cpu:g} vCPU"


def fc_env(
    children: Children, server: FakeProcess, function: fcsim.FunctionSpec, *, bytecode: str = "shipped"
) -> dict[str, str]:
    """An instance's environment: template.yml's variables of the event function, the fake as the
    endpoint, enforce mode, the variables Function Compute sets, then --child-env."""
    regions = list(server.meta.regions)
    env = {
        **function.environment,
        "KCGUARD_MODE": "enforce",
        "KCGUARD_REGIONS": ",".join(regions),
        "KCGUARD_CS_ENDPOINT": server.url,
        "FC_FUNCTION_NAME": function.function_name,
        "FC_FUNCTION_HANDLER": function.handler,
        "FC_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "FC_REGION": regions[0],
        "FC_ACCOUNT_ID": server.meta.account_id,
        "FC_RUNTIME": function.runtime or "python3.10",
        **children.extra,
    }
    return children.env(bytecode=bytecode, **env)


def new_instance(
    opts: BenchOptions,
    children: Children,
    server: FakeProcess,
    function: fcsim.FunctionSpec,
    quota: fcsim.CpuQuota,
    *,
    bytecode: str = "shipped",
) -> fcsim.FcInstance:
    key_id, secret = server.meta.access_key
    return fcsim.FcInstance(
        opts.fc_python,
        function,
        fc_env(children, server, function, bytecode=bytecode),
        (key_id, secret, None),
        quota,
        str(ROOT),
        server.meta.account_id,
    )


def _first(value: float | None) -> float:
    if value is None:
        raise RuntimeError("the instance's first answer carries no import timings")
    return value


def fc_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, log: Log, function: fcsim.FunctionSpec
) -> FcWorkload:
    """The medium deletion as Function Compute runs it, at each --fc-cpu, beside the SDK loop under
    the same quota. Cold: a fresh instance process (start, import the handler, first event).
    Warm: the next event on that instance right after (a second deleted user, the world as it is)."""
    meta = server.meta
    account = meta.account_id
    rows = []
    for cpu in opts.fc_cpus:
        with fcsim.CpuQuota(cpu) as quota:
            label = quota_label(cpu, quota)
            calibration = fcsim.calibrate(opts.fc_python, quota) if quota.enforced else None
            runs = []
            for i in range(opts.runs):
                log(f"  fc: kcguard instance at {label}, cold + warm ({i + 1}/{opts.runs})")
                server.reset_latency(opts.latency_ms)
                inst = new_instance(opts, children, server, function, quota)
                cold = inst.invoke(fcsim.deletion_event(meta.deleted_user or "nobody.at.all", 0, account))
                cold_stats = server.stats()
                server.reset_latency(opts.latency_ms, world=False)
                warm = inst.invoke(fcsim.deletion_event(meta.warm_user or "nobody.at.all", 1, account))
                warm_stats = server.stats()
                usage = inst.close()
                runs.append(
                    FcRun(
                        cold_total=cold.t_received - inst.started,
                        start_to_main=_first(cold.t_main) - inst.started,
                        import_seconds=_first(cold.t_imported) - _first(cold.t_import_start),
                        cpu_import=_first(cold.cpu_import),
                        cold_handler=cold.wall,
                        cold_cpu=cold.cpu,
                        cold_cpu_total=cold.cpu_total,
                        cold_calls=calls_of(cold_stats),
                        cold_outcome=cold.outcome,
                        cold_counts=cold.counts,
                        cold_error=cold.error,
                        warm_handler=warm.wall,
                        warm_cpu=warm.cpu,
                        warm_calls=calls_of(warm_stats),
                        warm_outcome=warm.outcome,
                        warm_counts=warm.counts,
                        warm_error=warm.error,
                        revoked_warm=warm_stats.revoked_pairs_unique,
                        process_cpu=usage.cpu_seconds,
                        peak_rss_mb=usage.peak_rss_mb,
                        loaded=cold.loaded,
                    )
                )
            runs.sort(key=lambda r: r.cold_total)
            sdk = None
            if "sdk" in opts.variants:
                log(f"  fc: the official SDK's sequential loop at {label}")
                server.reset_latency(opts.latency_ms)
                spec = worker_spec("sdk", server, [meta.deleted_user or "nobody.at.all"])
                res = run_worker(opts.fc_python, spec, children.env(), wrap=quota.prefix())
                stats = server.stats()
                sdk = SdkLoop(
                    process_wall=res.process_wall,
                    loop_wall=res.result.wall,
                    loop_cpu=res.result.cpu_workload,
                    calls=calls_of(stats),
                    process_cpu=res.cpu_seconds,
                    peak_rss_mb=res.peak_rss_mb,
                )
            rows.append(
                FcRow(
                    cpu=cpu,
                    label=label,
                    quota_enforced=quota.enforced,
                    quota_note=quota.note,
                    calibration_cpu_per_second=calibration,
                    kcguard=runs[(len(runs) - 1) // 2],
                    runs=runs,
                    sdk=sdk,
                )
            )
    return FcWorkload(
        function=function.described(),
        warm_user_clusters=meta.warm_user_clusters,
        deleted_user_clusters=meta.deleted_user_clusters,
        rows=rows,
    )


def error_summary(error: str) -> str:
    """An instance's error, with the clusters its result reports (for the partial outcomes)."""
    head = error.split(" (result: ", 1)[0][:120]
    reasons = re.findall(r'"cluster_id":"([^"]*)".{0,80}?"status":"(\w+)","reason":"([^"]{0,120})', error)
    if reasons:
        head += "; " + "; ".join(f"{c} {s}: {r}" for c, s, r in reasons[:3])
    return head


def burst_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, log: Log, function: fcsim.FunctionSpec
) -> BurstWorkload:
    """50 simultaneous deletions as the deployed function takes them: ``reservedConcurrency``
    instances (each a fresh process under the template's vCPU), each running the queued events
    one at a time (Function Compute's async queue, first in first out), beside one scan."""
    meta = server.meta
    names = meta.burst_users[: opts.burst_events]
    cpu = opts.fc_cpus[0]
    log(f"  burst: one scan (one event for an unknown user, a cold instance at {quota_label(cpu)})")
    server.reset_latency(opts.latency_ms)
    with fcsim.CpuQuota(cpu) as quota:
        inst = new_instance(opts, children, server, function, quota)
        one = inst.invoke(fcsim.deletion_event("nobody.at.all", 0, meta.account_id))
        inst.close()
        label = quota_label(cpu, quota)
    one_scan = OneScan(calls=calls_of(server.stats()), outcome=one.outcome)
    rows = []
    for reserved in opts.reserved:
        log(
            f"  burst: {len(names)} deletions onto {reserved} instance(s) at {label}, one event at a time each"
        )
        server.reset_latency(opts.latency_ms)
        done, instances, failures = burst_round(opts, children, server, function, names, reserved, cpu)
        stats = server.stats()
        outcomes: dict[str, int] = {}
        for answer, _finished in done:
            outcomes[answer.outcome] = outcomes.get(answer.outcome, 0) + 1
        handler = sorted(a.wall for a, _f in done)
        ok = [finished for a, finished in done if a.outcome == "ok"]
        calls = calls_of(stats)
        nan = float("nan")
        rows.append(
            BurstRow(
                reserved=reserved,
                events=len(names),
                finished_ok=len(ok),
                outcomes=outcomes,
                last_finished_s=max(ok, default=nan),
                all_done_s=max((f for _a, f in done), default=nan),
                handler_p50_s=handler[len(handler) // 2] if handler else nan,
                handler_max_s=handler[-1] if handler else nan,
                first_event_s=min((a.wall for a, _f in done if a.n == 1), default=nan),
                calls=calls,
                listing_calls=listing_calls(calls),
                listing_ratio=listing_calls(calls) / max(1, one_scan.listing_calls),
                revoked_pairs=stats.revoked_pairs_unique,
                revocations=len(stats.revocations),
                clean_calls=stats.clean_calls,
                expected_pairs=sum(meta.burst_pairs_by_user.get(n, 0) for n in names),
                instances=instances,
                failures=failures,
                errors=sorted({error_summary(a.error) for a, _f in done if a.error})[:5],
                error_samples=[a.error[:3000] for a, _f in done if a.error][:2],
            )
        )
    return BurstWorkload(cpu=cpu, label=label, events=len(names), one_scan=one_scan, rows=rows)


def burst_round(
    opts: BenchOptions,
    children: Children,
    server: FakeProcess,
    function: fcsim.FunctionSpec,
    names: list[str],
    reserved: int,
    cpu: float | None,
) -> tuple[list[tuple[fcsim.InstanceAnswer, float]], list[InstanceUsage], list[str]]:
    """All deletions queued at once; ``reserved`` instances take them one at a time, first in first out.
    (answers with the seconds since the burst they finished at, the instances' usage, failures)."""
    account = server.meta.account_id
    t0 = time.perf_counter()
    when = time.time()
    queue = [fcsim.deletion_event(name, i, account, when) for i, name in enumerate(names)]
    lock = threading.Lock()
    done: list[tuple[fcsim.InstanceAnswer, float]] = []
    instances: list[InstanceUsage] = []
    failures: list[str] = []

    def instance(k: int) -> None:
        try:
            with fcsim.CpuQuota(cpu) as quota:
                inst = new_instance(opts, children, server, function, quota)
                handled = 0
                while True:
                    with lock:
                        if not queue:
                            break
                        event = queue.pop(0)
                    answer = inst.invoke(event)
                    handled += 1
                    with lock:
                        done.append((answer, answer.t_received - t0))
                usage = inst.close()
                with lock:
                    instances.append(
                        InstanceUsage(
                            k,
                            handled,
                            usage.cpu_seconds,
                            usage.peak_rss_mb,
                            usage.returncode,
                            quota.throttled(),
                        )
                    )
        except Exception as exc:  # reported, not hidden
            with lock:
                failures.append(f"instance {k}: {type(exc).__name__}: {exc}"[:500])

    threads = [threading.Thread(target=instance, args=(k,)) for k in range(reserved)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done, instances, failures


def importtime_top(children: Children, python: str, module: str, top: int = 8) -> list[tuple[str, float]]:
    """Self import time (ms) per top-level package while importing ``module`` (``-X importtime``)."""
    proc = subprocess.run(
        [python, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=children.env(),
        check=True,
    )
    per_package: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = IMPORT_TIME_RE.match(line)
        if m:
            package = m.group(4).split(".")[0]
            per_package[package] = per_package.get(package, 0.0) + int(m.group(1)) / 1000.0
    return sorted(per_package.items(), key=lambda kv: -kv[1])[:top]


def cold_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, log: Log, function: fcsim.FunctionSpec
) -> ColdWorkload:
    """Process start -> import the handler template.yml names -> first small event, as Function
    Compute starts an instance, at each --fc-cpu: with every module's bytecode present (a package
    that ships .pyc), and with the standard library's only (a package without .pyc on Function
    Compute's read-only code directory: everything else is compiled at every cold start)."""
    meta = server.meta
    starts: list[ColdStart] = []
    references: list[ColdReference] = []
    for cpu in opts.fc_cpus:
        with fcsim.CpuQuota(cpu) as quota:
            label = quota_label(cpu, quota)
            for bytecode in ("shipped", "stdlib"):
                repeat = opts.repeat if bytecode == "shipped" else max(1, opts.repeat // 2)
                log(f"  cold: {repeat} fresh instances at {label}, bytecode: {bytecode}")
                samples: list[tuple[float, float, fcsim.InstanceAnswer, fcsim.Usage, int]] = []
                for i in range(repeat):
                    server.reset_latency(opts.latency_ms)
                    inst = new_instance(opts, children, server, function, quota, bytecode=bytecode)
                    first = inst.invoke(
                        fcsim.deletion_event(meta.deleted_user or "nobody", i, meta.account_id)
                    )
                    usage = inst.close()
                    calls = server.stats().calls_total
                    samples.append((first.t_received - inst.started, inst.started, first, usage, calls))
                samples.sort(key=lambda s: s[0])
                total, started, first, usage, calls = samples[(len(samples) - 1) // 2]
                starts.append(
                    ColdStart(
                        cpu=cpu,
                        label=label,
                        bytecode=bytecode,
                        repeat=repeat,
                        total=total,
                        start_to_main=_first(first.t_main) - started,
                        import_seconds=_first(first.t_imported) - _first(first.t_import_start),
                        first_event=first.wall,
                        cpu_to_first_result=first.cpu_total,
                        cpu_import=_first(first.cpu_import),
                        cpu_first_event=first.cpu,
                        calls=calls,
                        outcome=first.outcome,
                        counts=first.counts,
                        peak_rss_mb=usage.peak_rss_mb,
                        modules=first.modules_after_first_event,
                        loaded=first.loaded,
                        totals=[s[0] for s in samples],
                    )
                )
            log(f"  cold: python -c pass and the SDK's import at {label}")
            reference = max(1, opts.repeat // 2)
            bare = [
                run_child([opts.fc_python, "-c", "pass"], children.env(), 60, quota.prefix())
                for _ in range(reference)
            ]
            sdk = [
                run_worker(opts.fc_python, WorkerSpec(kind="import-sdk"), children.env(), wrap=quota.prefix())
                for _ in range(reference)
            ]
            references.append(
                ColdReference(
                    cpu=cpu,
                    label=label,
                    python_startup=statistics.median(b.process_wall for b in bare),
                    python_startup_rss_mb=statistics.median(b.peak_rss_mb for b in bare),
                    sdk_import=statistics.median(r.result.wall for r in sdk),
                    sdk_import_process=statistics.median(r.process_wall for r in sdk),
                    sdk_import_rss_mb=statistics.median(r.peak_rss_mb for r in sdk),
                )
            )
    return ColdWorkload(
        function=function.described(),
        starts=starts,
        references=references,
        importtime_handlers_ms=importtime_top(children, opts.fc_python, function.handler.rpartition(".")[0]),
        importtime_sdk_ms=importtime_top(children, opts.fc_python, "alibabacloud_cs20151215.client"),
    )
