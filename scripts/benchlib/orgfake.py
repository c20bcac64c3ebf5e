"""The fake organization in its own process, for ``scripts/bench organization``: one recipe, one command loop.

The child (``python -m benchlib.orgfake '<recipe JSON>'``) generates a Resource Directory with
``generate_organization`` (the central account and ``members`` member accounts, each with its own
clusters and kubeconfigs), serves it with ``FakeCloud(world, copy_world=False)`` behind the fake's
real threaded HTTP server (every account's ACK, STS ``AssumeRole`` and Resource Manager
``ListAccounts`` on one port, signed requests verified), writes one JSON line ``{"url": ...,
"meta": OrgMeta}``, then answers one JSON command per line on standard input:

* ``{"cmd": "reset", "latency_ms": float, "rate_limit_rps": float | null, "rate_burst": float | null,
  "restore": true}``: every account written to since the last reset restored (each is copied before
  its first ``CleanClusterUserPermissions``: a run that writes nothing copies nothing), every counter zeroed, and the faults set again: ``latency_ms`` on every request
  of every service, and on every account's ACK one token bucket of ``rate_limit_rps`` shared by all
  its operations (``rate_limit_scope="all"``: the account's quota, which the client is not told).
* ``{"cmd": "stats"}``: ``OrgStats`` (requests per account and operation, STS and Resource Manager
  calls, throttled answers, revocations per account, the server's CPU since the reset, requests
  served and throttled per half second over every account).
* ``{"cmd": "quit"}`` (or end of input): stop.

Denied members: the last ``denied`` members' role trusts only their own account, so the central
functions' AssumeRole is refused (``NoPermission``): the summary must report them ``denied``.

The parent side is ``OrgFakeProcess``.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from kubeconfig_guard.api import ASSUME_ROLE, CLEAN_CLUSTER_USER_PERMISSIONS, LIST_ACCOUNTS
from kubeconfig_guard.fake.faults import FaultDecision

from .fakeproc import ChildProcess, Timeline, _cpu, _TimelineRecorder, serve_commands

if TYPE_CHECKING:
    from kubeconfig_guard.fake import FakeAck, FakeCloud, World

Pair = tuple[str, str]  # (cluster id, uid)
ORG_REGIONS = ("cn-hangzhou", "cn-shanghai")


@dataclass(frozen=True)
class OrgRecipe:
    """Which organization to generate (``generate_organization``), and what to change in it."""

    seed: int
    members: int
    regions: tuple[str, ...]
    clusters_per_account: int
    kubeconfigs_per_cluster: int
    leaver: str | None = None  # a RAM user Deleted on ``leaver_clusters`` running clusters of member 0
    leaver_clusters: int = 0
    denied: int = 0  # the last ``denied`` members' role does not trust the central functions


@dataclass(frozen=True)
class AccountMeta:
    clusters: int
    running: int
    kubeconfigs: int  # on its running clusters (what a scan lists)


@dataclass(frozen=True)
class OrgMeta:
    """What the bench needs to know of the organization: its accounts, the leaver, the key."""

    central_id: str
    member_ids: list[str]
    denied_ids: list[str]
    external_id: str
    regions: list[str]
    accounts: dict[str, AccountMeta]  # every account, the central one included
    leaver: str | None
    leaver_account: str | None
    leaver_pairs: list[Pair]  # the leaver's RAM-user kubeconfigs on running clusters
    access_key: tuple[str, str]
    generate_seconds: float
    fake_rss_mb: float

    @property
    def guarded_ids(self) -> list[str]:
        """The accounts a resource-directory run guards and can reach (the central one first)."""
        denied = set(self.denied_ids)
        return [self.central_id, *(m for m in self.member_ids if m not in denied)]

    @property
    def clusters(self) -> int:
        return sum(self.accounts[a].clusters for a in self.guarded_ids)

    @property
    def running(self) -> int:
        return sum(self.accounts[a].running for a in self.guarded_ids)

    @property
    def kubeconfigs(self) -> int:
        return sum(self.accounts[a].kubeconfigs for a in self.guarded_ids)


@dataclass(frozen=True)
class OrgStats:
    calls: dict[str, dict[str, int]]  # account -> ACK operation -> requests (throttled ones included)
    sts_calls: int
    sts_by_account: dict[str, int]  # AssumeRole requests per calling account
    list_accounts_calls: int
    throttled: dict[str, dict[str, int]]  # account -> ACK operation -> throttled answers (429)
    revocations: dict[str, list[Pair]]  # account -> (cluster id, uid) revoked, in order
    server_cpu_seconds: float
    timeline: Timeline

    def ack_calls(self, account: str | None = None) -> int:
        """ACK requests of one account (or of every account)."""
        if account is not None:
            return sum(self.calls.get(account, {}).values())
        return sum(sum(ops.values()) for ops in self.calls.values())

    def ack_calls_by_operation(self, *, served: bool = False) -> dict[str, int]:
        """ACK requests per operation over every account (``served``: throttled ones left out)."""
        total: dict[str, int] = {}
        for account, ops in self.calls.items():
            for op, n in ops.items():
                total[op] = total.get(op, 0) + n
            if served:
                for op, n in self.throttled.get(account, {}).items():
                    total[op] = total.get(op, 0) - n
        return total

    @property
    def accounts_called(self) -> list[str]:
        return sorted(a for a, ops in self.calls.items() if sum(ops.values()))

    @property
    def throttled_total(self) -> int:
        return sum(sum(ops.values()) for ops in self.throttled.values())


@dataclass(frozen=True)
class _Started:
    url: str
    meta: OrgMeta


_STARTED = TypeAdapter(_Started)
_STATS = TypeAdapter(OrgStats)


# --- the child: organization, server, command loop ----------------------------------------------


def build_organization(recipe: OrgRecipe) -> tuple[World, OrgMeta]:
    from kubeconfig_guard.credentials import from_environment_or_demo
    from kubeconfig_guard.fake import generate_organization
    from kubeconfig_guard.fake.world import DEFAULT_EXTERNAL_ID
    from kubeconfig_guard.models import CLUSTER_STATES_WITHOUT_API_SERVER

    started = time.perf_counter()
    world = generate_organization(
        recipe.seed,
        members=recipe.members,
        regions=list(recipe.regions),
        clusters_per_account=recipe.clusters_per_account,
        kubeconfigs_per_cluster=recipe.kubeconfigs_per_cluster,
        deleted_user=recipe.leaver,
        deleted_user_clusters=recipe.leaver_clusters,
    )
    organization = world.organization
    assert organization is not None
    denied = organization.members[len(organization.members) - recipe.denied :] if recipe.denied else []
    for member in denied:  # the role trusts only its own account: AssumeRole answers NoPermission
        for role in member.roles:
            role.trusted_principals = [f"acs:ram::{member.account_id}:root"]

    def running(state: str) -> bool:
        return state.lower() not in CLUSTER_STATES_WITHOUT_API_SERVER

    accounts: dict[str, AccountMeta] = {}
    leaver_pairs: list[Pair] = []
    leaver_account: str | None = None
    every = [(world.account_id, world.regions)] + [(m.account_id, m.regions) for m in organization.members]
    for account_id, regions in every:
        clusters = [c for r in regions.values() for c in r.clusters]
        live = [c for c in clusters if running(c.state)]
        accounts[account_id] = AccountMeta(
            clusters=len(clusters), running=len(live), kubeconfigs=sum(len(c.kubeconfigs) for c in live)
        )
        pairs = sorted(
            {
                (c.cluster_id, k.account_id)
                for c in live
                for k in c.kubeconfigs
                if recipe.leaver and k.account_name == recipe.leaver and k.account_type == "RamUser"
            }
        )
        if pairs:
            leaver_pairs, leaver_account = pairs, account_id
    credentials = from_environment_or_demo()
    meta = OrgMeta(
        central_id=world.account_id,
        member_ids=[m.account_id for m in organization.members],
        denied_ids=[m.account_id for m in denied],
        external_id=DEFAULT_EXTERNAL_ID,
        regions=list(recipe.regions),
        accounts=accounts,
        leaver=recipe.leaver,
        leaver_account=leaver_account,
        leaver_pairs=leaver_pairs,
        access_key=(credentials.access_key_id, credentials.access_key_secret.get_secret_value()),
        generate_seconds=round(time.perf_counter() - started, 2),
        fake_rss_mb=0.0,
    )
    return world, meta


class _Throttled:
    """A fault observer of one account's ACK: its throttled answers per operation since the reset."""

    def __init__(self, account_id: str, counts: dict[str, dict[str, int]]) -> None:
        self.account_id = account_id
        self.counts = counts

    def __call__(self, operation: str, decision: FaultDecision) -> None:
        if decision.throttled:
            ops = self.counts.setdefault(self.account_id, {})
            ops[operation] = ops.get(operation, 0) + 1


def _stats(
    cloud: FakeCloud, timeline: _TimelineRecorder, throttled: dict[str, dict[str, int]], cpu_mark: float
) -> OrgStats:
    calls: dict[str, dict[str, int]] = {}
    revocations: dict[str, list[Pair]] = {}
    for account_id, backend in cloud.accounts.items():
        if backend.calls:
            calls[account_id] = dict(backend.calls)
        if backend.revocations:
            revocations[account_id] = [(r.cluster_id, r.uid) for r in backend.revocations]
    return OrgStats(
        calls=calls,
        sts_calls=cloud.sts.calls.get(ASSUME_ROLE.name, 0),
        sts_by_account=dict(cloud.sts.calls_by_account),
        list_accounts_calls=cloud.resource_manager.calls.get(LIST_ACCOUNTS.name, 0),
        throttled={a: dict(ops) for a, ops in throttled.items()},
        revocations=revocations,
        server_cpu_seconds=round(_cpu() - cpu_mark, 3),
        timeline=timeline.timeline(),
    )


def serve(recipe: OrgRecipe) -> None:
    """The child's main: generate, serve, answer commands until ``quit`` or end of input."""
    from kubeconfig_guard.fake import FakeAckServer, FakeCloud, FaultSpec

    world, meta = build_organization(recipe)
    cloud = FakeCloud(world, copy_world=False, fault_seed=recipe.seed)
    del world
    timeline = _TimelineRecorder()
    snapshots = _Snapshots()
    throttled: dict[str, dict[str, int]] = {}
    for account_id, backend in cloud.accounts.items():
        backend.faults.observers += [timeline, _Throttled(account_id, throttled)]
        backend.hooks.append(snapshots.before_write)
    meta = dataclasses.replace(meta, fake_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)

    def reset(cmd: dict[str, Any]) -> None:
        if cmd.get("restore", True):
            snapshots.restore()
        latency = float(cmd.get("latency_ms") or 0.0) / 1000.0
        rate = cmd.get("rate_limit_rps")
        burst = cmd.get("rate_burst")
        ack = FaultSpec(
            latency_seconds=latency,
            rate_limit_rps=float(rate) if rate is not None else None,
            burst=float(burst) if burst is not None else None,
            rate_limit_scope="all",
        )
        for backend in cloud.accounts.values():
            backend.faults.clear()
            backend.faults.set(None, ack)
        for service in (cloud.sts, cloud.resource_manager):
            service.faults.clear()
            if latency:
                service.faults.set(None, FaultSpec(latency_seconds=latency))
        cloud.reset_counters()
        throttled.clear()
        timeline.reset()

    def stats(cmd: dict[str, Any], cpu_mark: float) -> object:
        return _stats(cloud, timeline, throttled, cpu_mark)

    serve_commands(FakeAckServer(cloud).start(), meta, reset, stats)


class _Snapshots:
    """Each account as it was before its first write since the last restore (a hook of every account's
    ACK): ``restore`` puts them back. A run that writes nothing (the full summary, over the blast-radius
    limit) copies nothing; an event copies only its own account."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: dict[int, tuple[FakeAck, World]] = {}

    def before_write(self, backend: FakeAck, operation: str, params: dict[str, str]) -> None:
        if operation != CLEAN_CLUSTER_USER_PERMISSIONS.name:
            return
        with self._lock:
            if id(backend) not in self._saved:
                self._saved[id(backend)] = (backend, backend.to_world())

    def restore(self) -> None:
        with self._lock:
            saved, self._saved = self._saved, {}
        for backend, world in saved.values():
            backend.from_world(world, copy=False)


# --- the parent: OrgFakeProcess -------------------------------------------------------------------


class OrgFakeError(RuntimeError):
    pass


class OrgFakeProcess(ChildProcess):
    """``python -m benchlib.orgfake`` in its own process; ``reset`` and ``stats``."""

    module = "benchlib.orgfake"
    what = "the fake organization process"
    quit_seconds = 20.0
    error = OrgFakeError

    def __init__(self, python: str, recipe: OrgRecipe, env: dict[str, str]) -> None:
        super().__init__(python, recipe, env)
        started = _STARTED.validate_json(self.started_line)
        self.url: str = started.url
        self.meta: OrgMeta = started.meta

    def reset(
        self,
        latency_ms: float,
        rate_limit_rps: float | None = None,
        rate_burst: float | None = None,
        *,
        restore: bool = True,
    ) -> None:
        """Counters zeroed, the accounts written to restored, the faults set (see the module docstring)."""
        self._command(
            cmd="reset",
            latency_ms=latency_ms,
            rate_limit_rps=rate_limit_rps,
            rate_burst=rate_burst,
            restore=restore,
        )

    def stats(self) -> OrgStats:
        return _STATS.validate_json(self._command(cmd="stats"))


if __name__ == "__main__":
    serve(TypeAdapter(OrgRecipe).validate_json(sys.argv[1]))
