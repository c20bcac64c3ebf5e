"""The state and business rules of the fake ACK (no HTTP, no strings to decode).

The operations take typed arguments and return typed objects (``ClustersPage``,
``KubeconfigStatesPage``, ``CleanOutcome``), as moto's backends do; ``wire.py`` decodes a
request's strings into those arguments and shapes the objects into ACK's JSON. The rules
the API docs give the server stay here: page-size bounds (from the API table, ``api.py``),
unknown clusters (404), who may not be revoked, the 7-day access check.

Every answer is generated from the state, and writes change what later reads return: a
CleanClusterUserPermissions moves the uid's kubeconfigs on the cluster to the cluster's
recycle bin, so they no longer appear in ListClusterKubeconfigStates.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import api
from ..credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from .faults import FaultInjector
from .world import (
    ClusterRecord,
    KubeconfigRecord,
    OrganizationRecord,
    RegionRecord,
    RevokedKubeconfig,
    World,
    format_time,
    parse_world_time,
)

ACCESS_CHECK_WINDOW = timedelta(days=7)
# Cluster fields that are the fake's own bookkeeping, never returned by DescribeClustersV1.
_PRIVATE_CLUSTER_FIELDS = frozenset({"kubeconfigs", "recycle_bin", "audit_log"})

# ``hook(backend, operation, params)``: see ``FakeAck.hooks``.
Hook = Callable[["FakeAck", str, dict[str, str]], None]


class FakeAckError(Exception):
    """An error answer: HTTP status, error code and message (``detail``: more keys of the answer)."""

    def __init__(
        self, status: int, code: str, message: str, *, detail: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail: dict[str, Any] = dict(detail or {})


def invalid_parameter(message: str) -> FakeAckError:
    """ACK's answer to a parameter it refuses: 400 ``InvalidParameter``."""
    return FakeAckError(400, "InvalidParameter", message)


@dataclass(frozen=True)
class DescribedCluster:
    """One DescribeClustersV1 item: the cluster's fields, its region, and its stored extra fields.

    ``extra`` holds the world's extra cluster fields (``vpc_id``, ``current_version``...), never
    the fake's bookkeeping (kubeconfigs, recycle bin, audit-log flag).
    """

    cluster_id: str
    name: str
    region_id: str
    cluster_type: str
    state: str
    extra: Mapping[str, Any]


@dataclass(frozen=True)
class ClustersPage:
    """One page of DescribeClustersV1: its clusters and where it sits among ``total_count``."""

    clusters: tuple[DescribedCluster, ...]
    page_number: int
    page_size: int
    total_count: int


@dataclass(slots=True)
class ListedKubeconfig:
    """One ListClusterKubeconfigStates item: the documented fields of an issued kubeconfig.

    A snapshot (changing it changes nothing in the fake), in the documented order
    (``world.STATE_FIELDS``), without the fake-only ``last_access``. Not frozen: a frozen
    dataclass costs four times as much to build, and a page lists up to 50 of them.
    """

    account_id: str
    account_name: str
    account_display_name: str
    account_type: str
    account_state: str
    cert_expire_time: str | None
    cert_state: str
    revokable: bool

    @classmethod
    def of(cls, record: KubeconfigRecord) -> ListedKubeconfig:
        return cls(
            record.account_id,
            record.account_name,
            record.account_display_name,
            record.account_type,
            record.account_state,
            record.cert_expire_time,
            record.cert_state,
            record.revokable,
        )


@dataclass(frozen=True)
class KubeconfigStatesPage:
    """One page of ListClusterKubeconfigStates: its kubeconfigs and where it sits among ``total_count``."""

    states: tuple[ListedKubeconfig, ...]
    page_number: int
    page_size: int
    total_count: int


@dataclass(frozen=True)
class CleanOutcome:
    """What one accepted CleanClusterUserPermissions did: ``revoked`` kubeconfigs (0: nothing issued)."""

    cluster_id: str
    uid: str
    force: bool
    revoked: int

    @property
    def outcome(self) -> str:
        """``revoked`` or ``noop``, as recorded in ``FakeAck.clean_calls``."""
        return "revoked" if self.revoked else "noop"


@dataclass(frozen=True)
class RevocationRecord:
    """One effective CleanClusterUserPermissions (it revoked at least one kubeconfig)."""

    cluster_id: str
    uid: str
    force: bool
    time: str
    revoked: int


@dataclass(frozen=True)
class CleanCall:
    """One CleanClusterUserPermissions call and its outcome: ``revoked``, ``noop`` or an error code."""

    cluster_id: str
    uid: str
    force: bool
    time: str
    outcome: str


@dataclass
class _Cluster:
    region_id: str
    record: ClusterRecord


class FakeAck:
    """The fake ACK's state: regions, clusters, kubeconfigs, recycle bins, clock and counters.

    Thread-safe (one re-entrant lock). The accepted key pair is read from
    ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET`` (default: the
    documented demo pair) and ``ALIBABA_CLOUD_SECURITY_TOKEN`` at construction.
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        verify_signatures: bool = True,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        security_token: str | None = None,
        fault_seed: int = 0,
        copy_world: bool = True,
    ) -> None:
        self._lock = threading.RLock()
        self.verify_signatures = verify_signatures
        self.access_key_id = (
            access_key_id or os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or DEMO_ACCESS_KEY_ID
        )
        self.access_key_secret = (
            access_key_secret or os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or DEMO_ACCESS_KEY_SECRET
        )
        self.security_token = security_token or os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
        self.account_id = ""
        self.caller_uid = ""
        self._clusters: dict[str, _Cluster] = {}
        self._region_order: list[str] = []
        self._pinned_now: datetime | None = None
        self._world_extra: dict[str, Any] = {}
        self._organization: OrganizationRecord | None = None
        self.calls: Counter[str] = Counter()
        self.revocations: list[RevocationRecord] = []
        self.clean_calls: list[CleanCall] = []
        # Test hooks, ``hook(backend, operation, params)``: run by the wire layer (``wire.handle``)
        # before each routed operation, with the request's decoded string parameters (query and
        # path); a hook may raise FakeAckError (the request's answer) or change the world or
        # ``params``. Direct calls of the typed operations below do not run them.
        self.hooks: list[Hook] = []
        self.faults = FaultInjector(fault_seed)
        self.from_world(world or World(), copy=copy_world)

    # --- world -------------------------------------------------------------------------

    def from_world(self, world: World, *, copy: bool = True) -> None:
        """Replace the whole state by a copy of ``world`` (counters and hooks are kept).

        ``copy=False`` adopts the world's cluster records as they are (no deep copy of a large
        world): the caller gives them up. A world's ``organization`` is kept for ``to_world`` only:
        this backend serves the world's own account (``FakeCloud`` serves the organization).
        """
        if copy:
            world = world.model_copy(deep=True)
        with self._lock:
            self.account_id = world.account_id
            self.caller_uid = world.caller_uid
            self._pinned_now = parse_world_time(world.now) if world.now else None
            self._world_extra = dict(world.model_extra or {})
            self._organization = world.organization
            self._clusters = {}
            self._region_order = list(world.regions)
            for region_id, region in world.regions.items():
                for cluster in region.clusters:
                    if cluster.cluster_id in self._clusters:
                        raise ValueError(f"duplicate cluster_id {cluster.cluster_id!r} in the world")
                    self._clusters[cluster.cluster_id] = _Cluster(region_id, cluster)

    def to_world(self) -> World:
        """A deep copy of the current state, recycle bins included (``dump_world`` writes it)."""
        with self._lock:
            regions: dict[str, RegionRecord] = {name: RegionRecord() for name in self._region_order}
            for entry in self._clusters.values():
                regions.setdefault(entry.region_id, RegionRecord()).clusters.append(
                    entry.record.model_copy(deep=True)
                )
            return World(
                account_id=self.account_id,
                caller_uid=self.caller_uid,
                now=format_time(self._pinned_now) if self._pinned_now else None,
                regions=regions,
                organization=self._organization.model_copy(deep=True) if self._organization else None,
                **self._world_extra,
            )

    # --- clock -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The fake's clock: pinned (world ``now``) or the real UTC time."""
        pinned = self._pinned_now
        return pinned if pinned is not None else datetime.now(timezone.utc)

    def advance(self, seconds: float) -> None:
        """Move the clock forward (pinning it)."""
        with self._lock:
            self._pinned_now = self.now() + timedelta(seconds=seconds)

    def count_call(self, operation: str) -> None:
        """Count one request routed to ``operation`` (every one: refused, throttled or served)."""
        with self._lock:
            self.calls[operation] += 1

    @property
    def fault_counts(self) -> Counter[str]:
        """Injected faults per kind (``throttled``, ``error_5xx``, ``hang``, ``slow``, ``reset``, ``latency``)."""
        return self.faults.counts

    # --- lookups -----------------------------------------------------------------------

    def _cluster(self, cluster_id: str) -> _Cluster:
        entry = self._clusters.get(cluster_id)
        if entry is None:
            raise FakeAckError(404, "ErrorClusterNotFound", f"cluster {cluster_id} not found")
        return entry

    def cluster(self, cluster_id: str) -> ClusterRecord:
        """A copy of one cluster's record (raises FakeAckError 404 when unknown)."""
        with self._lock:
            return self._cluster(cluster_id).record.model_copy(deep=True)

    def kubeconfigs(self, cluster_id: str) -> list[KubeconfigRecord]:
        """Copies of the cluster's issued (not revoked) kubeconfigs."""
        with self._lock:
            return [k.model_copy() for k in self._cluster(cluster_id).record.kubeconfigs]

    def recycle_bin(self, cluster_id: str) -> list[RevokedKubeconfig]:
        with self._lock:
            return [k.model_copy() for k in self._cluster(cluster_id).record.recycle_bin]

    def cluster_ids(self, region_id: str | None = None) -> list[str]:
        with self._lock:
            return [cid for cid, e in self._clusters.items() if region_id is None or e.region_id == region_id]

    # --- operations --------------------------------------------------------------------

    def require_cluster(self, cluster_id: str) -> None:
        """Raise ACK's 404 ``ErrorClusterNotFound`` when the cluster does not exist."""
        with self._lock:
            self._cluster(cluster_id)

    def describe_clusters(
        self,
        region_id: str | None = None,
        page_number: int = 1,
        page_size: int = api.CLUSTERS_PAGING.default_size,
    ) -> ClustersPage:
        """DescribeClustersV1: the clusters of a region (every region when None or empty), one page."""
        _check_paging(api.CLUSTERS_PAGING, page_number, page_size)
        with self._lock:
            selected = [e for e in self._clusters.values() if not region_id or e.region_id == region_id]
            start = (page_number - 1) * page_size
            clusters = tuple(self._describe(e) for e in selected[start : start + page_size])
            total = len(selected)
        return ClustersPage(clusters, page_number, page_size, total)

    @staticmethod
    def _describe(entry: _Cluster) -> DescribedCluster:
        record = entry.record
        extra = {
            key: value
            for key, value in (record.model_extra or {}).items()
            if key not in _PRIVATE_CLUSTER_FIELDS
        }
        return DescribedCluster(
            record.cluster_id, record.name, entry.region_id, record.cluster_type, record.state, extra
        )

    def list_kubeconfig_states(
        self,
        cluster_id: str,
        page_number: int = 1,
        page_size: int = api.STATES_PAGING.default_size,
    ) -> KubeconfigStatesPage:
        """ListClusterKubeconfigStates: one page of the cluster's issued kubeconfigs (404 first)."""
        with self._lock:
            entry = self._cluster(cluster_id)
            _check_paging(api.STATES_PAGING, page_number, page_size)
            kubeconfigs = entry.record.kubeconfigs
            start = (page_number - 1) * page_size
            states = tuple(ListedKubeconfig.of(k) for k in kubeconfigs[start : start + page_size])
            total = len(kubeconfigs)
        return KubeconfigStatesPage(states, page_number, page_size, total)

    def clean_user_permissions(self, cluster_id: str, uid: str, force: bool = False) -> CleanOutcome:
        """CleanClusterUserPermissions: revoke the uid's kubeconfigs on the cluster.

        Refused for the Alibaba Cloud account and for the caller. With ``force=False``
        refused when the cluster's access records cannot be read (``audit_log: false``)
        or the uid used one of its kubeconfigs within the previous 7 days. Revoked
        kubeconfigs move to the recycle bin; non-revokable ones stay. Nothing issued:
        success, no change. Every call, refused or not, is recorded in ``clean_calls``.
        """
        with self._lock:
            stamp = format_time(self.now())
            try:
                revoked = self._apply_clean(cluster_id, uid, force, stamp)
            except FakeAckError as exc:
                self.clean_calls.append(CleanCall(cluster_id, uid, force, stamp, exc.code))
                raise
            outcome = CleanOutcome(cluster_id, uid, force, revoked)
            self.clean_calls.append(CleanCall(cluster_id, uid, force, stamp, outcome.outcome))
        return outcome

    def _apply_clean(self, cluster_id: str, uid: str, force: bool, stamp: str) -> int:
        entry = self._cluster(cluster_id)
        record = entry.record
        mine = [k for k in record.kubeconfigs if k.account_id == uid]
        if uid == self.account_id or any(k.account_type == "RootAccount" for k in mine):
            raise FakeAckError(
                400,
                "ErrorRootAccountNotAllowed",
                "You cannot revoke the permissions of an Alibaba Cloud account.",
            )
        if uid == self.caller_uid:
            raise FakeAckError(
                400,
                "ErrorSelfRevokeNotAllowed",
                "You cannot revoke the permissions of the account that you use to call this operation.",
            )
        revokable = [k for k in mine if k.revokable]
        if not revokable:
            return 0
        if not force:
            if not record.audit_log:
                raise FakeAckError(
                    400,
                    "ErrorAuditLogUnavailable",
                    "The cluster access records of the previous 7 days cannot be retrieved; "
                    "set Force=true to delete the kubeconfig files without the check.",
                )
            since = self.now() - ACCESS_CHECK_WINDOW
            for k in mine:
                if k.last_access and parse_world_time(k.last_access) >= since:
                    raise FakeAckError(
                        400,
                        "ErrorKubeconfigInUse",
                        f"The kubeconfig of {uid} was used to access the cluster within the previous "
                        "7 days; set Force=true to delete it anyway.",
                    )
        record.kubeconfigs = [k for k in record.kubeconfigs if not (k.account_id == uid and k.revokable)]
        for k in revokable:
            record.recycle_bin.append(RevokedKubeconfig(**k.model_dump(), revoked_at=stamp, force=force))
        self.revocations.append(RevocationRecord(cluster_id, uid, force, stamp, len(revokable)))
        return len(revokable)

    # --- mutators for tests ------------------------------------------------------------

    def add_cluster(self, region_id: str, cluster: ClusterRecord | Mapping[str, Any]) -> None:
        record = (
            cluster.model_copy(deep=True)
            if isinstance(cluster, ClusterRecord)
            else ClusterRecord.model_validate(cluster)
        )
        with self._lock:
            if record.cluster_id in self._clusters:
                raise ValueError(f"cluster {record.cluster_id!r} exists")
            if region_id not in self._region_order:
                self._region_order.append(region_id)
            self._clusters[record.cluster_id] = _Cluster(region_id, record)

    def add_kubeconfig(
        self, cluster_id: str, state: KubeconfigRecord | Mapping[str, Any], *, index: int | None = None
    ) -> None:
        """Issue a kubeconfig (appended, or inserted at ``index`` to shift later pages)."""
        record = (
            state.model_copy()
            if isinstance(state, KubeconfigRecord)
            else KubeconfigRecord.model_validate(state)
        )
        with self._lock:
            kubeconfigs = self._cluster(cluster_id).record.kubeconfigs
            kubeconfigs.insert(len(kubeconfigs) if index is None else index, record)

    def remove_kubeconfig(self, cluster_id: str, account_id: str) -> int:
        """Remove the account's kubeconfigs from the cluster (no recycle bin); how many were removed."""
        with self._lock:
            record = self._cluster(cluster_id).record
            before = len(record.kubeconfigs)
            record.kubeconfigs = [k for k in record.kubeconfigs if k.account_id != account_id]
            return before - len(record.kubeconfigs)

    def update_kubeconfigs(self, cluster_id: str | None, account_id: str, **fields: Any) -> int:
        """Change fields (``account_state``, ``last_access``...) of the account's kubeconfigs.

        On one cluster, or on every cluster when ``cluster_id`` is None; returns how many changed.
        """
        with self._lock:
            entries = [self._cluster(cluster_id)] if cluster_id else list(self._clusters.values())
            changed = 0
            for entry in entries:
                for k in entry.record.kubeconfigs:
                    if k.account_id == account_id:
                        for name, value in fields.items():
                            setattr(k, name, value)
                        changed += 1
            return changed

    def delete_cluster(self, cluster_id: str) -> None:
        """The cluster disappears: every later operation on it is 404."""
        with self._lock:
            self._cluster(cluster_id)
            del self._clusters[cluster_id]

    def set_cluster_state(self, cluster_id: str, state: str) -> None:
        with self._lock:
            self._cluster(cluster_id).record.state = state

    def set_audit_log(self, cluster_id: str, available: bool) -> None:
        with self._lock:
            self._cluster(cluster_id).record.audit_log = available

    def reset_counters(self) -> None:
        """Forget calls, revocations, Clean calls and fault counts."""
        with self._lock:
            self.calls.clear()
            self.revocations.clear()
            self.clean_calls.clear()
            self.faults.counts.clear()


def _check_paging(paging: api.Paging, page_number: int, page_size: int) -> None:
    """The documented page bounds (``api.py``), refused with the parameter's wire name."""
    if page_number < 1:
        raise invalid_parameter(f"{paging.number_param} must be >= 1, got {page_number}")
    if not paging.min_size <= page_size <= paging.max_size:
        raise invalid_parameter(
            f"{paging.size_param} must be between {paging.min_size} and {paging.max_size}, got {page_size}"
        )
