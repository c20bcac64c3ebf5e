"""Organization mode at scale (issue 17, item 8): ``scripts/bench organization``.

    scripts/bench organization                          # 200 members x 25 clusters x 120 (as root: CPU quota)
    scripts/bench organization --runs 1 --json /tmp/org.json
    scripts/bench organization --quick                  # a tiny organization: the smoke test's seconds

The workload: a Resource Directory of ``--members`` member accounts (default 200), each with
``--clusters`` clusters (25, over cn-hangzhou and cn-shanghai) of ``--kubeconfigs`` kubeconfigs (120):
5,000 clusters and 600,000 kubeconfigs. ``generate_organization`` builds it; ``benchlib.orgfake``
serves it in its own process with ``FakeCloud(world, copy_world=False)`` behind the fake's real HTTP
server (every account's ACK, STS AssumeRole and Resource Manager ListAccounts on one port). Every
request waits ``--latency-ms`` (50), and each account's ACK is one token bucket of ``--rate`` (20)
requests/s over all its operations (``rate_limit_scope="all"``) that the client is not told.

What runs, each in a fresh Function Compute instance (``fcsim.FcInstance``: ``benchlib/fc.py``, the
handler template.yml names, the runtime's context: python3.10's, or python3.12's on Python 3.12), with
template.yml's environment plus
organization mode (``KCGUARD_ACCOUNTS=resource-directory``, the world's ExternalId, the STS, Resource
Manager and ACK endpoints = the fake's URL) and ``KCGUARD_MODE=enforce``:

* **The daily summary** (``kcguard-summary``, its timer payload), in ONE invocation: in the deployed
  view (a cgroup v1 CPU quota of the summary function's ``cpu``; the time is process start -> result)
  and in the two-cores view beside it (whole cores; the handler call alone). Its report goes to a
  loopback webhook (``KCGUARD_WEBHOOK_URL``) and is checked against the world: every guarded account
  ``ok`` with all its running clusters and kubeconfigs scanned, the denied members (``--denied``: their
  role trusts only their own account) reported ``denied`` with the code, no account missing. Targets:
  within 120 s and under the function's ``memorySize`` (peak RSS of the instance) at the template's vCPU.
  The summary also runs on the small organization (``--event-members``), so the cost per account and
  per kubeconfig can be told apart from the fixed cost, and the sizes one invocation holds extrapolated.
* **A routed deletion** (``kcguard-event``): a RAM DeleteUser of a member's user (the leaver, Deleted on
  ``--leaver-clusters`` of member 0's clusters), routed from the member's default bus to the central
  bus, on a cold instance at the event function's ``cpu``, in the organization of ``--event-members``
  (20) and in the full one. Its ACK calls must be the same at both sizes and all in the leaver's
  account; the STS and Resource Manager calls and the wall time are printed beside them.

Benchmarks, not tests: targets are reported met or MISSED; ``tests/test_bench_organization.py`` runs
``--quick`` and checks the figures' shape and correctness, never timings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import fcsim
from .chaos import receiver
from .children import ROOT, Children
from .orgfake import ORG_REGIONS, OrgFakeProcess, OrgMeta, OrgRecipe, OrgStats

Log = Callable[[str], None]

LEAVER = "departed.dev"
# The full workload (issue 17, item 8) and the quick one (the smoke test).
MEMBERS, CLUSTERS_PER_ACCOUNT, KUBECONFIGS_PER_CLUSTER = 200, 25, 120
EVENT_MEMBERS, LEAVER_CLUSTERS = 20, 10
QUICK = {"members": 4, "clusters": 4, "kubeconfigs": 12, "event_members": 2, "leaver_clusters": 2}
RATE_RPS = 20.0
SUMMARY_TARGET_SECONDS = 120.0


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- figures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportCheck:
    """The summary's delivered report against the world: is every account there, and scanned whole?"""

    received: bool
    statuses: dict[str, int]  # account status -> accounts
    denied: list[str]  # accounts reported denied (with an error code)
    kubeconfigs: int
    clusters_scanned: int
    clusters_total: int
    reconciliation: str  # its outcome
    orphaned: int
    problems: list[str]  # every disagreement with the world (empty: correct)

    @property
    def correct(self) -> bool:
        return self.received and not self.problems


@dataclass(frozen=True)
class SummaryRun:
    total: float  # process start -> result
    handler: float  # the handler call alone
    import_seconds: float
    handler_cpu: float
    process_cpu: float
    peak_rss_mb: float
    outcome: str
    reason: str
    error: str | None
    ack_calls: dict[str, int]  # per operation, every account
    accounts_called: int
    sts_calls: int
    list_accounts_calls: int
    throttled: int
    server_cpu: float
    served_per_second_peak: int
    report: ReportCheck

    @property
    def calls_total(self) -> int:
        return sum(self.ack_calls.values()) + self.sts_calls + self.list_accounts_calls

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.handler_cpu / max(1, self.calls_total)


@dataclass(frozen=True)
class SummaryRow:
    members: int
    kubeconfigs: int  # on the guarded accounts' running clusters (what one run lists)
    running_clusters: int
    view: str  # "0.25 vCPU" / "two cores"
    cpu: float | None
    quota_enforced: bool
    calibration: float | None
    runs: list[SummaryRun]

    @property
    def median(self) -> SummaryRun:
        ordered = sorted(self.runs, key=lambda r: r.total)
        return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class EventRun:
    total: float  # process start -> result
    handler: float
    handler_cpu: float
    peak_rss_mb: float
    outcome: str
    error: str | None
    account_id: str | None  # the result's account
    ack_calls: dict[str, int]  # per operation, throttled requests included
    ack_served: dict[str, int]  # per operation, throttled requests left out: the calls the work needs
    throttled: int
    accounts_called: list[str]
    sts_calls: int
    list_accounts_calls: int
    revoked: int  # the leaver's (cluster, uid) pairs revoked
    revoked_outside: int  # any other pair revoked (must be 0)
    expected: int  # the leaver's pairs


@dataclass(frozen=True)
class EventRow:
    members: int
    view: str
    runs: list[EventRun]

    @property
    def median(self) -> EventRun:
        ordered = sorted(self.runs, key=lambda r: r.total)
        return ordered[(len(ordered) - 1) // 2]


@dataclass(frozen=True)
class Extrapolation:
    """One invocation's reach, from the deployed summary at two sizes (same accounts' shape)."""

    kubeconfigs_per_account: int
    seconds_fixed: float  # the straight line through the two medians: total = fixed + per_account x N
    seconds_per_account: float
    cpu_per_100k_kubeconfigs: float  # handler CPU-s per 100,000 kubeconfigs (the large run)
    rss_fixed_mb: float
    rss_per_account_mb: float
    accounts_in_target: int  # accounts of this shape within SUMMARY_TARGET_SECONDS
    listing_budget_seconds: float  # the listing share of the function's timeout
    accounts_in_timeout: int  # ... within it
    accounts_in_memory: int  # ... within memorySize


@dataclass(frozen=True)
class Target:
    name: str
    met: bool
    value: str


@dataclass
class OrganizationResults:
    command: str
    machine: dict[str, Any]
    quick: bool
    seed: int
    latency_ms: float
    rate_rps: float
    summary_function: fcsim.FunctionSpec
    event_function: fcsim.FunctionSpec
    child_env: dict[str, str] = field(default_factory=dict)  # --child-env (PYTHONPATH: the package measured)
    worlds: dict[str, dict[str, Any]] = field(default_factory=dict)
    summaries: list[SummaryRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    extrapolation: Extrapolation | None = None
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0


# --- the report receiver --------------------------------------------------------------------------


def _report_document(doc: Any) -> dict[str, Any] | None:
    """The summary's JSON report (it has ``accounts``), else None."""
    return doc if isinstance(doc, dict) and "accounts" in doc else None


def check_report(report: dict[str, Any] | None, meta: OrgMeta) -> ReportCheck:
    """Every guarded account ``ok`` with all its running clusters and kubeconfigs, every denied member
    ``denied`` with its code, the totals the world's."""
    if report is None:
        return ReportCheck(False, {}, [], 0, 0, 0, "", 0, ["no report was delivered"])
    problems: list[str] = []
    sections = {str(a.get("account_id")): a for a in report.get("accounts") or []}
    statuses: dict[str, int] = {}
    for section in sections.values():
        statuses[str(section.get("status"))] = statuses.get(str(section.get("status")), 0) + 1
    for account_id in meta.guarded_ids:
        section = sections.get(account_id)
        want = meta.accounts[account_id]
        if section is None:
            problems.append(f"account {account_id} is missing from the report")
            continue
        got = (section.get("status"), section.get("clusters_scanned"), section.get("kubeconfigs"))
        if got != ("ok", want.running, want.kubeconfigs):
            problems.append(
                f"account {account_id}: status/scanned/kubeconfigs {got}, "
                f"the world: ok/{want.running}/{want.kubeconfigs}"
            )
    denied = sorted(a for a, s in sections.items() if s.get("status") == "denied")
    for account_id in meta.denied_ids:
        section = sections.get(account_id) or {}
        if section.get("status") != "denied" or not section.get("error_code"):
            problems.append(f"member {account_id} (role not trusting us) reported {section.get('status')}")
    if extra := set(sections) - set(meta.guarded_ids) - set(meta.denied_ids):
        problems.append(f"accounts in the report that the directory does not hold: {sorted(extra)[:3]}")
    first = [str(a.get("status")) for a in report.get("accounts") or []][: len(meta.denied_ids)]
    if meta.denied_ids and set(first) != {"denied"}:
        problems.append(f"the denied accounts are not the report's first sections: {first}")
    if report.get("kubeconfigs") != meta.kubeconfigs:
        problems.append(f"report kubeconfigs {report.get('kubeconfigs')}, the world {meta.kubeconfigs}")
    if report.get("clusters_scanned") != meta.running:
        problems.append(f"report clusters_scanned {report.get('clusters_scanned')}, running {meta.running}")
    reconciliation = report.get("reconciliation") or {}
    return ReportCheck(
        received=True,
        statuses=statuses,
        denied=denied,
        kubeconfigs=int(report.get("kubeconfigs") or 0),
        clusters_scanned=int(report.get("clusters_scanned") or 0),
        clusters_total=int(report.get("clusters_total") or 0),
        reconciliation=str(reconciliation.get("outcome", "")),
        orphaned=int((report.get("totals") or {}).get("orphaned", 0)),
        problems=problems,
    )


# --- instances ------------------------------------------------------------------------------------


def instance_env(
    children: Children, fake: OrgFakeProcess, function: fcsim.FunctionSpec, **extra: str
) -> dict[str, str]:
    """template.yml's environment of ``function`` in organization mode against the fake, enforce,
    Function Compute's variables, then ``extra`` and --child-env."""
    meta = fake.meta
    env = {
        **function.environment,
        "KCGUARD_MODE": "enforce",
        "KCGUARD_ACCOUNTS": "resource-directory",
        "KCGUARD_MEMBER_EXTERNAL_ID": meta.external_id,
        "KCGUARD_REGIONS": ",".join(meta.regions),
        "KCGUARD_CS_ENDPOINT": fake.url,
        "KCGUARD_STS_ENDPOINT": fake.url,
        "KCGUARD_RESOURCEMANAGER_ENDPOINT": fake.url,
        "FC_FUNCTION_NAME": function.function_name,
        "FC_FUNCTION_HANDLER": function.handler,
        "FC_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "FC_REGION": meta.regions[0],
        "FC_ACCOUNT_ID": meta.central_id,
        "FC_RUNTIME": function.runtime or "python3.10",
        **extra,
        **children.extra,
    }
    return children.env(**env)


def new_instance(
    python: str,
    children: Children,
    fake: OrgFakeProcess,
    function: fcsim.FunctionSpec,
    quota: fcsim.CpuQuota,
    **extra: str,
) -> fcsim.FcInstance:
    key_id, secret = fake.meta.access_key
    return fcsim.FcInstance(
        python,
        function,
        instance_env(children, fake, function, **extra),
        (key_id, secret, None),
        quota,
        str(ROOT),
        fake.meta.central_id,
        full_result=True,
    )


def routed_deletion(owner: str, user: str, receiver_id: str, index: int) -> dict[str, Any]:
    """A RAM DeleteUser of ``owner``'s user, routed from its default bus to the central bus
    (``aliyunoriginalaccountid`` the member, ``aliyunaccountid`` the central account)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return {
        "specversion": "1.0",
        "id": f"bench-org-{index:04d}",
        "source": "acs.ram",
        "type": "ram:ActionTrail:ApiCall",
        "time": stamp,
        "aliyunaccountid": receiver_id,
        "aliyunoriginalaccountid": owner,
        "aliyuneventbusname": "kubeconfig-guard",
        "aliyunpublishtime": stamp,
        "data": {
            "eventId": f"bench-org-del-{index:04d}-{user}",
            "eventName": "DeleteUser",
            "eventType": "ApiCall",
            "eventTime": stamp,
            "serviceName": "Ram",
            "eventSource": "ram.aliyuncs.com",
            "recipientAccountId": owner,
            "userIdentity": {"accountId": owner, "type": "ram-user", "principalId": "200000000000000711"},
            "requestParameters": {"UserName": user},
            "referencedResources": {"ACS::RAM::User": [user]},
        },
    }


def quota_label(cpu: float | None, quota: fcsim.CpuQuota) -> str:
    if cpu is None:
        return "two cores"
    return f"{cpu:g} vCPU" + ("" if quota.enforced else " (NOT enforced)")


# --- the runs ---------------------------------------------------------------------------------------


def summary_run(
    python: str,
    children: Children,
    fake: OrgFakeProcess,
    function: fcsim.FunctionSpec,
    quota: fcsim.CpuQuota,
    args: argparse.Namespace,
) -> SummaryRun:
    """One daily summary of the organization in one fresh instance, its report checked."""
    fake.reset(args.latency_ms, args.rate, args.rate_burst)
    event = json.loads(function.timer_payload or "{}")
    with receiver(_report_document) as (url, reports):
        inst = new_instance(python, children, fake, function, quota, KCGUARD_WEBHOOK_URL=url)
        answer = inst.invoke(event, kill_at_timeout=True)
        usage = inst.close()
        stats = fake.stats()
        report = reports[-1] if reports else None
    result = answer.result or {}
    return SummaryRun(
        total=answer.t_received - inst.started,
        handler=answer.wall,
        import_seconds=(answer.t_imported or 0.0) - (answer.t_import_start or 0.0),
        handler_cpu=answer.cpu,
        process_cpu=usage.cpu_seconds,
        peak_rss_mb=usage.peak_rss_mb,
        outcome=answer.outcome,
        reason=str(result.get("reason", ""))[:500],
        error=answer.error[:2000] if answer.error else None,
        ack_calls=stats.ack_calls_by_operation(),
        accounts_called=len(stats.accounts_called),
        sts_calls=stats.sts_calls,
        list_accounts_calls=stats.list_accounts_calls,
        throttled=stats.throttled_total,
        server_cpu=stats.server_cpu_seconds,
        served_per_second_peak=_peak_per_second(stats),
        report=check_report(report, fake.meta),
    )


def _peak_per_second(stats: OrgStats) -> int:
    tl = stats.timeline
    n = max(1, round(1 / tl.slice_seconds))
    return max((sum(tl.served[i : i + n]) for i in range(0, len(tl.served), n)), default=0)


def event_run(
    python: str,
    children: Children,
    fake: OrgFakeProcess,
    function: fcsim.FunctionSpec,
    quota: fcsim.CpuQuota,
    args: argparse.Namespace,
    index: int,
) -> EventRun:
    """The leaver's routed deletion on a cold instance (the leaver's account restored first)."""
    meta = fake.meta
    assert meta.leaver and meta.leaver_account
    fake.reset(args.latency_ms, args.rate, args.rate_burst)
    inst = new_instance(python, children, fake, function, quota)
    answer = inst.invoke(routed_deletion(meta.leaver_account, meta.leaver, meta.central_id, index))
    usage = inst.close()
    stats = fake.stats()
    result = answer.result or {}
    revoked = {(c, u) for pairs in stats.revocations.values() for c, u in pairs}
    outside = revoked - set(meta.leaver_pairs)
    return EventRun(
        total=answer.t_received - inst.started,
        handler=answer.wall,
        handler_cpu=answer.cpu,
        peak_rss_mb=usage.peak_rss_mb,
        outcome=answer.outcome,
        error=answer.error[:2000] if answer.error else None,
        account_id=result.get("account_id"),
        ack_calls=stats.ack_calls_by_operation(),
        ack_served=stats.ack_calls_by_operation(served=True),
        throttled=stats.throttled_total,
        accounts_called=stats.accounts_called,
        sts_calls=stats.sts_calls,
        list_accounts_calls=stats.list_accounts_calls,
        revoked=len(revoked) - len(outside),
        revoked_outside=len(outside),
        expected=len(meta.leaver_pairs),
    )


def summaries(
    args: argparse.Namespace,
    children: Children,
    fake: OrgFakeProcess,
    function: fcsim.FunctionSpec,
    cpus: Sequence[float | None],
    runs: int,
) -> list[SummaryRow]:
    meta = fake.meta
    rows = []
    for cpu in cpus:
        with fcsim.CpuQuota(cpu) as quota:
            label = quota_label(cpu, quota)
            calibration = fcsim.calibrate(args.fc_python, quota) if quota.enforced else None
            done: list[SummaryRun] = []
            for i in range(runs):
                log(
                    f"  summary of {len(meta.member_ids)} members ({meta.kubeconfigs} kubeconfigs) at {label} "
                    f"({i + 1}/{runs})"
                )
                run = summary_run(args.fc_python, children, fake, function, quota, args)
                log(
                    f"    {run.total:.1f} s (handler {run.handler:.1f} s, {run.handler_cpu:.1f} CPU-s), "
                    f"{run.peak_rss_mb:.0f} MB, {run.outcome}, report "
                    + ("correct" if run.report.correct else f"WRONG: {run.report.problems[:2]}")
                )
                done.append(run)
            rows.append(
                SummaryRow(
                    members=len(meta.member_ids),
                    kubeconfigs=meta.kubeconfigs,
                    running_clusters=meta.running,
                    view=label,
                    cpu=cpu,
                    quota_enforced=quota.enforced,
                    calibration=calibration,
                    runs=done,
                )
            )
    return rows


def events(
    args: argparse.Namespace,
    children: Children,
    fake: OrgFakeProcess,
    function: fcsim.FunctionSpec,
    runs: int,
) -> EventRow:
    with fcsim.CpuQuota(function.cpu) as quota:
        label = quota_label(function.cpu, quota)
        done = []
        for i in range(runs):
            log(f"  routed deletion in an organization of {len(fake.meta.member_ids)} members at {label}")
            done.append(event_run(args.fc_python, children, fake, function, quota, args, i))
    return EventRow(members=len(fake.meta.member_ids), view=label, runs=done)


def extrapolate(
    small: SummaryRow, large: SummaryRow, function: fcsim.FunctionSpec, kubeconfigs_per_account: int
) -> Extrapolation | None:
    """A straight line through the two sizes' medians (accounts of the same shape)."""
    n0, n1 = small.members, large.members
    if n1 <= n0:
        return None
    s, lg = small.median, large.median
    per_account = (lg.total - s.total) / (n1 - n0)
    fixed = s.total - per_account * n0
    rss_per = (lg.peak_rss_mb - s.peak_rss_mb) / (n1 - n0)
    rss_fixed = s.peak_rss_mb - rss_per * n0
    timeout = float(function.template_timeout)
    reserve = min(0.15 * timeout, 60.0)  # summary.pipeline: DELIVERY_SHARE, DELIVERY_MAX_SECONDS
    listing_budget = (timeout - 5.0 - reserve) * 0.75  # the deadline margin, deadline.LISTING_SHARE

    def reach(budget: float, fixed_part: float, slope: float) -> int:
        return int((budget - fixed_part) / slope) if slope > 0 else 10**9

    return Extrapolation(
        kubeconfigs_per_account=kubeconfigs_per_account,
        seconds_fixed=fixed,
        seconds_per_account=per_account,
        cpu_per_100k_kubeconfigs=lg.handler_cpu * 100_000 / max(1, large.kubeconfigs),
        rss_fixed_mb=rss_fixed,
        rss_per_account_mb=rss_per,
        accounts_in_target=reach(SUMMARY_TARGET_SECONDS, fixed, per_account),
        listing_budget_seconds=listing_budget,
        accounts_in_timeout=reach(listing_budget, fixed, per_account),
        accounts_in_memory=reach(float(function.memory_mb), rss_fixed, rss_per),
    )


def evaluate(results: OrganizationResults) -> list[Target]:
    targets: list[Target] = []
    function = results.summary_function
    full = max((r.members for r in results.summaries), default=0)
    for row in results.summaries:
        if row.members != full or row.cpu is None:
            continue
        m = row.median
        where = f"summary of {row.members} members ({row.kubeconfigs} kubeconfigs) at {row.view}"
        targets.append(
            Target(
                f"{where}: one invocation within {SUMMARY_TARGET_SECONDS:.0f} s",
                m.total <= SUMMARY_TARGET_SECONDS and m.error is None and row.quota_enforced,
                f"{m.total:.1f} s (median of {len(row.runs)}: "
                + ", ".join(f"{r.total:.1f}" for r in sorted(row.runs, key=lambda r: r.total))
                + ")",
            )
        )
        targets.append(
            Target(
                f"{where}: peak RSS under memorySize {function.memory_mb} MB",
                max(r.peak_rss_mb for r in row.runs) < function.memory_mb,
                f"{max(r.peak_rss_mb for r in row.runs):.0f} MB (largest of {len(row.runs)})",
            )
        )
    for row in results.summaries:
        wrong = [p for r in row.runs for p in r.report.problems]
        targets.append(
            Target(
                f"summary of {row.members} members at {row.view}: every account in the report, scanned whole; "
                "denied members reported denied",
                not wrong,
                "correct" if not wrong else "; ".join(wrong[:3]),
            )
        )
    if len(results.events) >= 2:
        small, large = results.events[0], results.events[-1]
        every = [r for row in results.events for r in row.runs]
        served = {fmt_calls(r.ack_served) for r in every}
        same = len(served) == 1 and all(r.accounts_called == [r.account_id] for r in every)
        targets.append(
            Target(
                f"routed deletion: the same ACK calls at {small.members} and {large.members} members, "
                "all in the event's account",
                same,
                f"served D/L/C {' vs '.join(fmt_calls(r.ack_served) for r in every)} (with 429s: "
                f"{' vs '.join(fmt_calls(r.ack_calls) for r in every)}); accounts called "
                f"{sorted({x for r in every for x in r.accounts_called})}",
            )
        )
        done = all(
            r.revoked == r.expected and not r.revoked_outside and r.outcome == "ok"
            for row in results.events
            for r in row.runs
        )
        targets.append(
            Target(
                "routed deletion: the leaver's kubeconfigs revoked, nothing else",
                done,
                ", ".join(
                    f"{r.revoked}/{r.expected} {r.outcome}" for row in results.events for r in row.runs
                ),
            )
        )
    return targets


# --- the tables -------------------------------------------------------------------------------------


def fmt_calls(calls: dict[str, int]) -> str:
    from .results import OPERATIONS

    return "/".join(str(calls.get(op, 0)) for op in OPERATIONS)


def table(rows: list[list[str]], header: list[str]) -> str:
    from .report import table as render_table

    return render_table(rows, header)


def render(results: OrganizationResults) -> str:
    out: list[str] = []
    f = results.summary_function
    out.append(
        f"Organization mode (issue 17): {f.handler} at template.yml cpu {f.cpu:g} / memorySize {f.memory_mb} MB "
        f"/ timeout {f.timeout} s; every request {results.latency_ms:g} ms; each account's ACK throttled at "
        f"{results.rate_rps:g} requests/s (not told)"
    )
    rows = []
    for row in results.summaries:
        m = row.median
        rows.append(
            [
                str(row.members),
                f"{row.running_clusters}/{row.kubeconfigs}",
                row.view,
                f"{m.total:.1f}",
                f"{m.import_seconds:.2f} + {m.handler:.1f}",
                f"{m.handler_cpu:.1f}",
                f"{m.peak_rss_mb:.0f}",
                f"{fmt_calls(m.ack_calls)} + {m.sts_calls} STS + {m.list_accounts_calls} RM",
                str(m.throttled),
                f"{m.cpu_ms_per_call:.2f}",
                f"{m.outcome}, " + ("report correct" if m.report.correct else "report WRONG"),
            ]
        )
    header = ["members", "clusters/kubeconfigs", "view", "s (median)", "import + handler s", "CPU s"]
    out.append(
        table(rows, [*header, "peak RSS MB", "calls D/L/C + STS + RM", "429s", "CPU ms/call", "outcome"])
    )
    for row in results.summaries:
        check = f"quota check {row.calibration:.2f} CPU-s per s; " if row.calibration else ""
        runs = ", ".join(f"{r.total:.1f} s / {r.peak_rss_mb:.0f} MB" for r in row.runs)
        m = row.median
        out.append(
            f"  {row.members} members at {row.view}: {check}runs {runs}; accounts {m.report.statuses}, "
            f"denied {m.report.denied}; reconciliation {m.report.reconciliation} ({m.report.orphaned} orphaned); "
            f"fake CPU {m.server_cpu:.1f} s, peak {m.served_per_second_peak} requests/s served"
            + (f"; error {m.error[:200]}" if m.error else "")
            + (f"; problems {m.report.problems[:3]}" if m.report.problems else "")
        )
    if results.events:
        rows = []
        for ev in results.events:
            e = ev.median
            rows.append(
                [
                    str(ev.members),
                    ev.view,
                    f"{e.total:.2f}",
                    f"{e.handler:.2f}",
                    f"{fmt_calls(e.ack_served)} ({e.throttled} 429s)",
                    ", ".join(e.accounts_called),
                    str(e.sts_calls),
                    str(e.list_accounts_calls),
                    f"{e.revoked}/{e.expected}",
                    e.outcome,
                ]
            )
        out.append("")
        out.append("A routed deletion of one member's user (cold instance, the event function's cpu):")
        header = [
            "members",
            "view",
            "cold s",
            "handler s",
            "ACK calls served D/L/C",
            "accounts called",
            "STS",
        ]
        out.append(table(rows, [*header, "ListAccounts", "revoked", "outcome"]))
    x = results.extrapolation
    if x is not None:
        out.append("")
        out.append(
            f"One invocation's reach (deployed view, accounts of {x.kubeconfigs_per_account} kubeconfigs): "
            f"{x.seconds_fixed:.1f} s + {x.seconds_per_account:.3f} s per account, "
            f"{x.cpu_per_100k_kubeconfigs:.2f} CPU-s per 100,000 kubeconfigs; "
            f"{x.rss_fixed_mb:.0f} MB + {x.rss_per_account_mb:.3f} MB per account. "
            f"Fits: {x.accounts_in_target} accounts ({x.accounts_in_target * x.kubeconfigs_per_account:,} "
            f"kubeconfigs) in {SUMMARY_TARGET_SECONDS:.0f} s, {x.accounts_in_timeout} "
            f"({x.accounts_in_timeout * x.kubeconfigs_per_account:,}) in the timeout's listing share "
            f"({x.listing_budget_seconds:.0f} s), {x.accounts_in_memory} "
            f"({x.accounts_in_memory * x.kubeconfigs_per_account:,}) in memorySize."
        )
    out.append("")
    out.append("Targets:")
    for t in results.targets:
        out.append(f"  [{'met' if t.met else 'MISSED'}] {t.name}: {t.value}")
    return "\n".join(out)


# --- main -------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench organization",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a tiny organization (the smoke test)")
    p.add_argument("--members", type=int, help=f"member accounts (default {MEMBERS})")
    p.add_argument("--clusters", type=int, help=f"clusters per account (default {CLUSTERS_PER_ACCOUNT})")
    p.add_argument(
        "--kubeconfigs", type=int, help=f"kubeconfigs per cluster (default {KUBECONFIGS_PER_CLUSTER})"
    )
    p.add_argument(
        "--event-members",
        type=int,
        help=f"the smaller organization (event comparison, fixed cost; default {EVENT_MEMBERS})",
    )
    p.add_argument("--leaver-clusters", type=int, help=f"the leaver's clusters (default {LEAVER_CLUSTERS})")
    p.add_argument(
        "--denied", type=int, default=None, help="members whose role refuses us (default 0, quick 1)"
    )
    p.add_argument("--rate", type=float, default=RATE_RPS, help="each account's ACK requests/s (default 20)")
    p.add_argument("--rate-burst", type=float, default=None, help="its token bucket (default: the rate)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency per request (default 50)")
    p.add_argument("--runs", type=int, help="summaries per view, median kept (default 3, quick 1)")
    p.add_argument("--event-runs", type=int, help="routed deletions per size (default 3, quick 1)")
    p.add_argument(
        "--fc-cpu",
        help="comma list of the summary's views: vCPU quotas or 'none' (two cores); default the template's "
        "summary cpu and none",
    )
    p.add_argument(
        "--no-small-summary", action="store_true", help="skip the summary of the smaller organization"
    )
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--template", type=Path, default=ROOT / "template.yml")
    p.add_argument(
        "--child-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment of the instances; PYTHONPATH=DIR (a copy of functions/, another revision) "
        "is the fake's package too",
    )
    p.add_argument("--python", default=sys.executable, help="the fake's interpreter")
    p.add_argument("--fc-python", help="the instances' interpreter (default --python)")
    p.add_argument("--json", type=Path, help="write every figure here")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    q = QUICK if args.quick else {}
    members = args.members or q.get("members", MEMBERS)
    clusters = args.clusters or q.get("clusters", CLUSTERS_PER_ACCOUNT)
    kubeconfigs = args.kubeconfigs or q.get("kubeconfigs", KUBECONFIGS_PER_CLUSTER)
    event_members = args.event_members or q.get("event_members", EVENT_MEMBERS)
    leaver_clusters = args.leaver_clusters or q.get("leaver_clusters", LEAVER_CLUSTERS)
    denied = args.denied if args.denied is not None else (1 if args.quick else 0)
    runs = args.runs or (1 if args.quick else 3)
    event_runs = args.event_runs or (1 if args.quick else 3)
    args.fc_python = args.fc_python or args.python
    summary_fn = fcsim.function_spec(args.template, "kcguard-summary")
    event_fn = fcsim.function_spec(args.template, "kcguard-event")
    cpus = [
        None if v.strip().lower() == "none" else float(v)
        for v in (args.fc_cpu or f"{summary_fn.cpu},none").split(",")
        if v.strip()
    ]
    children = Children()
    for item in args.child_env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--child-env wants KEY=VALUE, got {item!r}")
        children.extra[key] = value
    if stale := fcsim.sweep_stale():
        log(f"removed empty CPU groups of earlier runs: {', '.join(stale)}")
    from .cli import source_state, version_of

    results = OrganizationResults(
        command=" ".join(["scripts/bench", "organization", *(sys.argv[1:] if argv is None else argv)]),
        machine={
            "nproc": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "fc_python": version_of(args.fc_python),
            "source": dataclasses.asdict(source_state(None)),
            "loadavg_at_start": os.getloadavg(),
        },
        quick=args.quick,
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_rps=args.rate,
        summary_function=summary_fn.described(),
        event_function=event_fn.described(),
        child_env=dict(children.extra),
    )
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="kcguard-bench-org-"))
    try:
        if not args.quick:
            log(f"compiling the instances' bytecode (PYTHONPYCACHEPREFIX under {workdir})")
            children.prepare_bytecode([args.fc_python], workdir)
        shape = (ORG_REGIONS, clusters, kubeconfigs)
        fake_env = children.env(bytecode="none")
        if package := children.extra.get("PYTHONPATH"):  # --child-env PYTHONPATH=DIR: the fake's too
            fake_env["PYTHONPATH"] = os.pathsep.join([package, fake_env["PYTHONPATH"]])
        small_summary: SummaryRow | None = None
        for size in (event_members, members):
            recipe = OrgRecipe(
                args.seed, size, shape[0], shape[1], shape[2], LEAVER, leaver_clusters, min(denied, size - 1)
            )
            log(f"organization of {size} members: generating {recipe}")
            with OrgFakeProcess(args.python, recipe, fake_env) as fake:
                meta = fake.meta
                log(
                    f"  {len(meta.member_ids)} members ({len(meta.denied_ids)} denied), {meta.clusters} clusters, "
                    f"{meta.kubeconfigs} kubeconfigs on running clusters; generated in {meta.generate_seconds} s, "
                    f"fake RSS {meta.fake_rss_mb:.0f} MB; served at {fake.url}"
                )
                results.worlds[str(size)] = {
                    "recipe": dataclasses.asdict(recipe),
                    "clusters": meta.clusters,
                    "running": meta.running,
                    "kubeconfigs": meta.kubeconfigs,
                    "denied": meta.denied_ids,
                    "leaver_account": meta.leaver_account,
                    "leaver_pairs": len(meta.leaver_pairs),
                    "generate_seconds": meta.generate_seconds,
                    "fake_rss_mb": meta.fake_rss_mb,
                }
                results.events.append(events(args, children, fake, event_fn, event_runs))
                if size == members:
                    results.summaries += summaries(args, children, fake, summary_fn, cpus, runs)
                elif not args.no_small_summary:
                    deployed = [c for c in cpus if c is not None][:1]
                    rows = summaries(args, children, fake, summary_fn, deployed, 1 if args.quick else runs)
                    small_summary = rows[0] if rows else None
                    results.summaries += rows
            if event_members == members:
                break
        large = next((r for r in results.summaries if r.members == members and r.cpu is not None), None)
        if small_summary is not None and large is not None:
            results.extrapolation = extrapolate(small_summary, large, summary_fn, clusters * kubeconfigs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.seconds = time.perf_counter() - started
    results.machine["loadavg_at_end"] = os.getloadavg()
    results.targets = evaluate(results)
    print(render(results))
    m = results.machine
    source = m["source"]
    print(
        f"\n({m['nproc']} CPUs, Python {m['python']}, instances on {m['fc_python']}; seed {results.seed}; "
        f"bench took {results.seconds:.0f} s; load average {m['loadavg_at_start'][0]:.2f} at start, "
        f"{m['loadavg_at_end'][0]:.2f} at end; commit {source['commit']}"
        + (f", uncommitted: {', '.join(source['dirty'])}" if source["dirty"] else "")
        + (f"; --child-env {results.child_env}" if results.child_env else "")
        + ")"
    )
    if args.json:
        args.json.write_text(json.dumps(dataclasses.asdict(results), indent=1, default=str) + "\n")
        log(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
