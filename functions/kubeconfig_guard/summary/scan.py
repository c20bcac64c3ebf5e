"""Scan: stream every watched cluster's kubeconfig states into the report builder.

Memory stays flat: each listing is classified into the builder's counters as it arrives and
dropped; only the orphans (candidates for reconciliation) are kept. A cluster that is not
scanned is never omitted silently: it becomes a ``ClusterIssue`` with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ..deadline import Deadline, run_until
from ..engine import NOT_LISTED_IN_TIME, Engine, listing_issue
from ..errors import AckApiError
from ..models import Cluster, cluster_unreachable_reason
from ..plan import Candidate, group_candidates
from ..principal import EventKind
from ..results import DEADLINE_CODE, REGION_NOT_WATCHED, ClusterIssue, ClusterStatus
from .reconcile import orphan_kind
from .report import ReportBuilder

Progress = Callable[[int, int], None]


@dataclass
class Scan:
    """What the scan leaves for the rest of the pipeline (the counts are in the builder)."""

    issues: list[ClusterIssue] = field(default_factory=list)
    orphans: list[tuple[Candidate, EventKind]] = field(default_factory=list)
    clusters_total: int = 0


def scope_regions(asked: list[str] | None, watched: list[str]) -> tuple[list[str], list[str]]:
    """The regions to scan, and those asked for that are refused: options only narrow the scope."""
    if not asked:
        return watched, []
    asked = list(dict.fromkeys(asked))
    return [r for r in asked if r in watched], [r for r in asked if r not in watched]


def refused_region(region: str) -> ClusterIssue:
    return ClusterIssue.of(
        region,
        None,
        ClusterStatus.SKIPPED,
        f"region {region} was asked for but is outside KCGUARD_REGIONS: not scanned "
        "(options can only narrow the configured scope)",
        REGION_NOT_WATCHED,
    )


async def scan(
    engine: Engine,
    regions: list[str],
    builder: ReportBuilder,
    *,
    not_before: float,
    deadline: Deadline,
    progress: Progress | None = None,
    account: str | None = None,
    concurrency: int | None = None,
) -> Scan:
    """List every cluster of the regions (bounded by the deadline) into ``builder`` (as ``account``'s
    clusters, in organization mode: every issue then names it too), at most ``concurrency`` listings
    at once (default ``KCGUARD_MAX_CONCURRENCY``)."""
    result = Scan()
    clusters = await engine.watched_clusters(regions, not_before, result.issues, deadline)
    result.clusters_total = len(clusters)
    slots = asyncio.Semaphore(concurrency or engine.settings.max_concurrency)
    done = 0

    async def one(region: str, cluster: Cluster) -> None:
        nonlocal done
        try:
            if why := cluster_unreachable_reason(cluster):
                result.issues.append(ClusterIssue.of(region, cluster, ClusterStatus.SKIPPED, why))
                return
            async with slots:
                if deadline.listing_over():
                    result.issues.append(late(region, cluster))
                    return
                try:
                    states = await engine.client.list_kubeconfig_states(region, cluster.cluster_id)
                except AckApiError as error:
                    result.issues.append(listing_issue(region, cluster, error))
                    return
            for state in builder.add_cluster(region, cluster, states, account):
                if (kind := orphan_kind(state)) is not None:
                    result.orphans.extend((c, kind) for c in group_candidates(region, cluster, [state]))
        finally:
            done += 1
            if progress is not None:
                progress(done, len(clusters))

    _, cut = await run_until([one(r, c) for r, c in clusters], deadline.remaining(listing=True))
    result.issues += [late(*clusters[index]) for index in cut]
    if account is not None:
        result.issues = [issue.model_copy(update={"cloud_account_id": account}) for issue in result.issues]
    return result


def late(region: str, cluster: Cluster) -> ClusterIssue:
    return ClusterIssue.of(region, cluster, ClusterStatus.NOT_ATTEMPTED, NOT_LISTED_IN_TIME, DEADLINE_CODE)
