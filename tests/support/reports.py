"""A realistic daily-summary ``Report`` for the HTML, notification and storage tests.

Deterministic: a fixed clock and a seeded generator, so payload sizes and
screenshots are stable from run to run.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from kubeconfig_guard.models import AccountState, AccountType, CertState, Cluster, KubeconfigState
from kubeconfig_guard.results import Action, ActionStatus, ClusterIssue, ClusterStatus, count_actions
from kubeconfig_guard.summary.report import Reconciliation, Report, ReportBuilder
from support.worlds import iso, kubeconfig_state

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
REGIONS = ("cn-hangzhou", "cn-beijing", "ap-southeast-1")
EVIL_NAME = "<script>alert('x')</script>&co"


def _state(
    name: str,
    *,
    uid: str,
    type_: AccountType = AccountType.RAM_USER,
    account: AccountState = AccountState.ACTIVE,
    cert: CertState = CertState.UNEXPIRED,
    expires_in_days: float | None = 300,
    revokable: bool = True,
) -> KubeconfigState:
    return kubeconfig_state(
        uid,
        name,
        account_type=type_,
        account_state=account,
        cert_state=cert,
        cert_expire_time=None if expires_in_days is None else iso(NOW + timedelta(days=expires_in_days)),
        revokable=revokable,
    )


def build_report(
    *,
    clusters_per_region: int = 4,
    users_per_cluster: int = 14,
    orphans: int = 0,
    list_limit: int = 200,
    evil_name: bool = False,
    seed: int = 7,
) -> Report:
    """A report over ``len(REGIONS) * clusters_per_region`` clusters with every class present.

    ``orphans`` adds that many extra orphaned kubeconfigs (deleted users) spread over the clusters,
    for size-limit tests.
    """
    rng = random.Random(seed)
    builder = ReportBuilder(now=NOW, expiring_days=30, list_limit=list_limit)
    actions: list[Action] = []
    clusters: list[tuple[str, Cluster]] = [
        (
            region,
            Cluster(
                cluster_id=f"c{''.join(p[0] for p in region.split('-'))}{i:03d}{'abcdef'[i % 6]}9f2e",
                name=f"{region.split('-')[1]}-{['prod', 'staging', 'dev', 'data', 'edge'][i % 5]}-{i}",
                region_id=region,
                state="running",
            ),
        )
        for region in REGIONS
        for i in range(clusters_per_region)
    ]
    extra = [0] * len(clusters)
    for k in range(orphans):
        extra[k % len(clusters)] += 1
    for index, (region, cluster) in enumerate(clusters):
        states: list[KubeconfigState] = []
        for u in range(users_per_cluster):
            uid = f"2{index:03d}{u:04d}{rng.randrange(10**6):06d}"
            roll = rng.random()
            name = f"dev-{rng.choice(['alice', 'bob', 'chen', 'dana', 'li', 'wang', 'zhao'])}{u}"
            if evil_name and index == 0 and u == 0:
                states.append(_state(EVIL_NAME, uid=uid, account=AccountState.DELETED))
            elif roll < 0.07:
                states.append(_state(name, uid=uid, account=AccountState.DELETED))
            elif roll < 0.10:
                states.append(_state(name, uid=uid, account=AccountState.INACTIVE))
            elif roll < 0.13:
                states.append(_state("root", uid="1234567890123456", type_=AccountType.ROOT_ACCOUNT))
            elif roll < 0.23:
                states.append(
                    _state(name, uid=uid, cert=CertState.EXPIRED, expires_in_days=-rng.randrange(1, 400))
                )
            elif roll < 0.38:
                states.append(_state(name, uid=uid, expires_in_days=rng.uniform(0.5, 30)))
            elif roll < 0.43:
                states.append(_state(name, uid=uid, cert=CertState.UNKNOWN, expires_in_days=None))
            elif roll < 0.55:
                states.append(
                    _state(
                        f"role/{name}",
                        uid=f"3{uid[1:]}",
                        type_=AccountType.RAM_ROLE,
                        expires_in_days=rng.uniform(31, 1000),
                    )
                )
            else:
                states.append(_state(name, uid=uid, expires_in_days=rng.uniform(31, 1100)))
        states += [
            _state(f"gone-{index}-{k}", uid=f"29{index:03d}{k:06d}", account=AccountState.DELETED)
            for k in range(extra[index])
        ]
        for orphan in builder.add_cluster(region, cluster, states):
            if len(actions) < 12:
                status = [ActionStatus.WOULD_REVOKE, ActionStatus.FAILED, ActionStatus.DEFERRED][
                    len(actions) % 3
                ]
                actions.append(
                    Action(
                        region=region,
                        cluster_id=cluster.cluster_id,
                        cluster_name=cluster.name,
                        uid=orphan.account_id,
                        account_name=orphan.account_name,
                        account_type=orphan.account_type.value if orphan.account_type else "",
                        account_state=orphan.account_state.value if orphan.account_state else None,
                        status=status,
                        reason={
                            ActionStatus.WOULD_REVOKE: "dry-run: the account was deleted",
                            ActionStatus.FAILED: "RevokeK8sClusterKubeConfig failed: HTTP 503 ServiceUnavailable",
                            ActionStatus.DEFERRED: "kubeconfig used in the last 7 days; revoke without force refused",
                        }[status],
                    )
                )
    skipped = [
        ClusterIssue(
            region="cn-beijing",
            cluster_id="cbj-stopped-01",
            cluster_name="beijing-archive",
            status=ClusterStatus.SKIPPED,
            reason="cluster state is 'stopped': no working API server",
        ),
        ClusterIssue(
            region="ap-southeast-1",
            cluster_id="csg-flaky-07",
            cluster_name="sg-batch",
            status=ClusterStatus.FAILED,
            reason="listing kubeconfigs failed: Throttling.User: Request was denied due to user flow control.",
            error_code="Throttling.User",
        ),
    ]
    reconciliation = Reconciliation(
        enabled=True,
        mode="dry-run",
        outcome="partial",
        reason="some revocations failed; the next run retries them",
        actions=actions,
        counts=count_actions(actions),
    )
    return builder.build(
        generated_at=iso(NOW),
        mode="dry-run",
        regions=list(REGIONS),
        clusters_total=len(clusters) + len(skipped),
        clusters_scanned=len(clusters),
        skipped_clusters=skipped,
        reconciliation=reconciliation,
        api={"requests": 57, "retries": 2},
        duration_ms=4321,
    )


def empty_report() -> Report:
    """A report with nothing to say (no clusters at all)."""
    return ReportBuilder(now=NOW, expiring_days=30, list_limit=200).build(
        generated_at=iso(NOW), mode="enforce", regions=["cn-hangzhou"], clusters_total=0, clusters_scanned=0
    )
