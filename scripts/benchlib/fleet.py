"""The users' scale in the deployed view (issue 19): one deletion over 1,000 clusters on a cold instance.

5 regions x 200 clusters x 120 kubeconfigs, the leaver on 100 clusters: an instance (a fresh process
under the template's vCPU, ``fcsim.FcInstance``) takes the event; the figures are its wall time (process
start -> result; the handler alone beside it), its CPU, the calls the fake counted, its peak RSS (against
the template's ``memorySize`` and the 128 MB target) and what it keeps afterwards: the resident memory
after the event minus after the import, per 100,000 kubeconfigs listed (the warm listings of
``inventory.py``, plus the runtime's small fixed part: an upper bound of their growth with the fleet).
"""

from __future__ import annotations

from collections.abc import Callable

from . import fcsim
from .children import ROOT, Children
from .deployed import fc_env, quota_label
from .fakeproc import FakeProcess
from .options import BenchOptions
from .results import FleetRow, FleetRun, FleetWorkload, calls_of
from .twocores import depth, latency_bound

Log = Callable[[str], None]

REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "cn-zhangjiakou")
CLUSTERS_PER_REGION = 200
KUBECONFIGS_PER_CLUSTER = 120
LEAVER_CLUSTERS = 100
QUICK = (20, 10)  # clusters per region, leaver clusters


def instance(
    children: Children, server: FakeProcess, function: fcsim.FunctionSpec, quota: fcsim.CpuQuota, python: str
) -> fcsim.FcInstance:
    """A fresh instance (``deployed.new_instance``) whose blast-radius limit lets the leaver's 100
    revocations through (the template's default, 50, would stop them: ``limit-exceeded``), unless
    --child-env sets it."""
    env = fc_env(children, server, function)
    if "KCGUARD_MAX_REVOCATIONS" not in children.extra:  # --child-env still decides
        env["KCGUARD_MAX_REVOCATIONS"] = str(10 * LEAVER_CLUSTERS)
    key_id, secret = server.meta.access_key
    return fcsim.FcInstance(
        python, function, env, (key_id, secret, None), quota, str(ROOT), server.meta.account_id
    )


def fleet_workload(
    opts: BenchOptions, children: Children, server: FakeProcess, log: Log, function: fcsim.FunctionSpec
) -> FleetWorkload:
    """The deletion over the whole fleet, cold, ``opts.runs`` fresh instances at each --fc-cpu."""
    meta = server.meta
    listed = sum(sum(r.states) for r in meta.regions.values())
    rows: list[FleetRow] = []
    for cpu in opts.fc_cpus:
        with fcsim.CpuQuota(cpu) as quota:
            label = quota_label(cpu, quota)
            runs: list[FleetRun] = []
            for i in range(opts.runs):
                log(
                    f"  fleet: {meta.running} running clusters, {listed} kubeconfigs, cold at {label} ({i + 1}/{opts.runs})"
                )
                server.reset_latency(opts.latency_ms)
                inst = instance(children, server, function, quota, opts.fc_python)
                answer = inst.invoke(
                    fcsim.deletion_event(meta.deleted_user or "nobody.at.all", i, meta.account_id)
                )
                stats = server.stats()
                usage = inst.close()
                runs.append(
                    FleetRun(
                        cold_total=answer.t_received - inst.started,
                        start_to_main=(answer.t_main or inst.started) - inst.started,
                        import_seconds=(answer.t_imported or 0.0) - (answer.t_import_start or 0.0),
                        handler=answer.wall,
                        handler_cpu=answer.cpu,
                        process_cpu=usage.cpu_seconds,
                        calls=calls_of(stats),
                        outcome=answer.outcome,
                        counts=answer.counts,
                        error=answer.error[:2000] if answer.error else None,
                        peak_rss_mb=usage.peak_rss_mb,
                        rss_at_import_mb=answer.rss_at_import_mb,
                        rss_after_mb=answer.rss_now_mb,
                    )
                )
            runs.sort(key=lambda r: r.cold_total)
            rows.append(FleetRow(cpu, label, quota.enforced, runs[(len(runs) - 1) // 2], runs))
    first = rows[0].kcguard if rows else None
    calls = first.calls_total if first else 0
    cleans = first.calls.get("CleanClusterUserPermissions", 0) if first else 0
    return FleetWorkload(
        world=server.recipe,
        clusters=meta.clusters,
        running_clusters=meta.running,
        kubeconfigs_listed=listed,
        deleted_user_clusters=meta.deleted_user_clusters,
        latency_path=latency_bound(
            calls,
            opts.latency_ms / 1000,
            int(children.setting("max_concurrency", opts.default_concurrency)),
            children.setting("max_rps", opts.default_max_rps),
            depth(meta, cleans),
        ),
        rows=rows,
    )
