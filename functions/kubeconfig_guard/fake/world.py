"""The world file of the fake ACK: accounts, regions, clusters and issued kubeconfigs.

A world is plain JSON (see ``examples/world.json`` and ``examples/README.md``)::

    {"account_id": "5000000000000001", "caller_uid": "300000000000000001",
     "regions": {"cn-hangzhou": {"clusters": [
       {"cluster_id": "c0123", "name": "prod", "cluster_type": "ManagedKubernetes",
        "state": "running", "audit_log": true,
        "kubeconfigs": [{"account_id": "200000000000000001", "account_name": "tom", ...,
                         "last_access": "2026-11-20T08:00:00Z"}]}]}}}

``generate_world`` builds large, realistic worlds reproducibly from a seed.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The documented fields of one ListClusterKubeconfigStates state, in response order.
STATE_FIELDS = (
    "account_id",
    "account_name",
    "account_display_name",
    "account_type",
    "account_state",
    "cert_expire_time",
    "cert_state",
    "revokable",
)

DEFAULT_NOW = datetime(2026, 11, 25, 0, 0, 0, tzinfo=timezone.utc)


def parse_world_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` suffix allowed on Python 3.10); naive times are UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_time(value: datetime) -> str:
    """``2027-07-15T01:32:20Z`` (UTC, seconds), the format ACK uses."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class KubeconfigRecord(BaseModel):
    """One issued kubeconfig: the documented state fields plus the fake-only ``last_access``."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    account_name: str = ""
    account_display_name: str = ""
    account_type: str = "RamUser"
    account_state: str = "Active"
    cert_expire_time: str | None = None
    cert_state: str = "Unexpired"
    revokable: bool = True
    last_access: str | None = Field(
        None, description="Last API server access with this kubeconfig (audit log); null: no record."
    )

    def state(self) -> dict[str, Any]:
        """The ListClusterKubeconfigStates item: every documented field, never ``last_access``."""
        return {name: getattr(self, name) for name in STATE_FIELDS}


class RevokedKubeconfig(KubeconfigRecord):
    """A kubeconfig revoked by CleanClusterUserPermissions (kept in the cluster's recycle bin)."""

    revoked_at: str
    force: bool


class ClusterRecord(BaseModel):
    """One cluster. Extra fields (``vpc_id``, ``current_version``...) are returned by DescribeClustersV1."""

    model_config = ConfigDict(extra="allow")

    cluster_id: str
    name: str = ""
    cluster_type: str = "ManagedKubernetes"
    state: str = "running"
    audit_log: bool = Field(True, description="Whether ACK can read the cluster's access records.")
    kubeconfigs: list[KubeconfigRecord] = Field(default_factory=list)
    recycle_bin: list[RevokedKubeconfig] = Field(default_factory=list)


class RegionRecord(BaseModel):
    """The clusters of one region."""

    model_config = ConfigDict(extra="allow")

    clusters: list[ClusterRecord] = Field(default_factory=list)


class World(BaseModel):
    """Everything the fake ACK knows: the account, the caller, and each region's clusters."""

    model_config = ConfigDict(extra="allow")

    account_id: str = "5000000000000001"
    caller_uid: str = "300000000000000001"
    now: str | None = Field(None, description="Pins the fake's clock (ISO 8601); null: real time.")
    regions: dict[str, RegionRecord] = Field(default_factory=dict)


def load_world(path: str | Path) -> World:
    """Read and validate a world file."""
    return World.model_validate_json(Path(path).read_text(encoding="utf-8"))


def dump_world(world: World, path: str | Path) -> None:
    """Write a world file (indented JSON, atomically replaced)."""
    target = Path(path)
    data = world.model_dump(mode="json", exclude_none=False)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(target)


# --- generator ---------------------------------------------------------------------------

_FIRST = (
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    "mallory", "nick", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki",
    "li.wei", "zhang.min", "wang.fang", "chen.jie", "liu.yang", "zhao.lei", "sun.li", "zhou.tao",
)  # fmt: skip
_ROLES = ("ci-deployer", "argo-sync", "ops-oncall", "data-pipeline", "gitlab-runner", "sre-readonly")
_CLUSTER_WORDS = ("prod", "staging", "dev", "data", "edge", "payments", "search", "ml", "web", "batch")
_CLUSTER_TYPES = (
    "ManagedKubernetes",
    "ManagedKubernetes",
    "ManagedKubernetes",
    "Kubernetes",
    "ExternalKubernetes",
)
_NOT_RUNNING = ("deleting", "failed", "stopped", "initial", "updating", "scaling")


def _uid(rng: random.Random, prefix: str) -> str:
    """An 18-19 digit RAM-style uid starting with ``prefix``."""
    length = rng.choice((18, 19))
    return prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix)))


def _cluster_id(rng: random.Random) -> str:
    return "c" + "".join(rng.choice("0123456789abcdef") for _ in range(32))


def generate_world(
    seed: int,
    *,
    regions: list[str],
    clusters_per_region: int,
    kubeconfigs_per_cluster: int,
    deleted_user: str | None = None,
    deleted_user_clusters: int = 0,
    now: datetime | None = None,
    account_id: str = "5000000000000001",
    caller_uid: str = "300000000000000001",
    pin_clock: bool = True,
) -> World:
    """A reproducible, realistic world: the same seed and arguments give the same world.

    Mix: RamUser / RamRole states (and the root account's own state on some clusters);
    Active / InActive / Deleted; Unexpired / Expired / Unknown certificates with expiry
    dates spread over the past and the next two years; some states not revokable; some
    clusters not running; audit logs on or off; last access null, recent or old.

    ``deleted_user`` (one fixed uid, RamUser, Deleted, revokable) gets a kubeconfig on
    exactly ``deleted_user_clusters`` running clusters (raises when there are fewer).
    ``now`` (default 2026-11-25T00:00:00Z) anchors every date; with ``pin_clock`` the
    world's clock is pinned to it so "recent access" means the same to the fake.
    """
    rng = random.Random(seed)
    anchor = (now or DEFAULT_NOW).astimezone(timezone.utc).replace(microsecond=0)

    # A pool of principals shared by the clusters, so one user appears on several clusters.
    pool_size = max(8, kubeconfigs_per_cluster * 3)
    principals: list[dict[str, Any]] = []
    used_uids = {account_id, caller_uid}
    for i in range(pool_size):
        is_role = rng.random() < 0.2
        uid = _uid(rng, "3" if is_role else "2")
        while uid in used_uids:
            uid = _uid(rng, "3" if is_role else "2")
        used_uids.add(uid)
        base = rng.choice(_ROLES if is_role else _FIRST)
        name = f"{base}-{i}" if i >= len(_FIRST) or is_role else base
        if name == deleted_user:
            name = f"{name}-{i}"  # the deleted user's name belongs to the deleted user only
        account_state = rng.choices(("Active", "InActive", "Deleted"), weights=(80, 8, 12))[0]
        if is_role and account_state == "InActive":
            account_state = "Active"  # roles cannot be locked
        principals.append(
            {
                "account_id": uid,
                "account_name": name,
                "account_display_name": name if is_role else name.replace(".", " ").title(),
                "account_type": "RamRole" if is_role else "RamUser",
                "account_state": account_state,
            }
        )
    deleted_uid = None
    if deleted_user is not None:
        deleted_uid = _uid(rng, "2")
        while deleted_uid in used_uids:
            deleted_uid = _uid(rng, "2")
        used_uids.add(deleted_uid)

    def cert_fields() -> dict[str, Any]:
        roll = rng.random()
        if roll < 0.05:
            return {"cert_expire_time": None, "cert_state": "Unknown"}
        expires = anchor + timedelta(seconds=rng.randrange(-730 * 86400, 730 * 86400))
        return {
            "cert_expire_time": format_time(expires),
            "cert_state": "Expired" if expires <= anchor else "Unexpired",
        }

    def last_access() -> str | None:
        roll = rng.random()
        if roll < 0.4:
            return None
        if roll < 0.7:  # recent: within the previous 7 days
            return format_time(anchor - timedelta(seconds=rng.randrange(60, 7 * 86400 - 60)))
        return format_time(anchor - timedelta(seconds=rng.randrange(8 * 86400, 400 * 86400)))

    world_regions: dict[str, RegionRecord] = {}
    running: list[ClusterRecord] = []
    for region in regions:
        clusters: list[ClusterRecord] = []
        for c in range(clusters_per_region):
            cluster_state = "running" if rng.random() < 0.85 else rng.choice(_NOT_RUNNING)
            created = anchor - timedelta(days=rng.randrange(30, 1500))
            cluster = ClusterRecord(
                cluster_id=_cluster_id(rng),
                name=f"{rng.choice(_CLUSTER_WORDS)}-{region.split('-')[-1]}-{c}",
                cluster_type=rng.choice(_CLUSTER_TYPES),
                state=cluster_state,
                audit_log=rng.random() < 0.8,
                current_version=rng.choice(("1.30.7-aliyun.1", "1.31.9-aliyun.1", "1.32.7-aliyun.1")),
                cluster_spec="ack.pro.small",
                created=format_time(created),
                vpc_id="vpc-"
                + "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(21)),
            )
            chosen = rng.sample(principals, k=min(kubeconfigs_per_cluster, len(principals)))
            for p in chosen:
                cluster.kubeconfigs.append(
                    KubeconfigRecord(
                        **p,
                        **cert_fields(),
                        revokable=rng.random() < 0.92,
                        last_access=last_access(),
                    )
                )
            # Pad when the pool is smaller than asked (tiny pools).
            while len(cluster.kubeconfigs) < kubeconfigs_per_cluster:
                uid = _uid(rng, "2")
                if uid in used_uids:
                    continue
                used_uids.add(uid)
                name = f"user-{len(used_uids)}"
                cluster.kubeconfigs.append(
                    KubeconfigRecord(
                        account_id=uid,
                        account_name=name,
                        account_display_name=name,
                        **cert_fields(),
                        last_access=last_access(),
                    )
                )
            if rng.random() < 0.3:  # the root account downloaded a kubeconfig here
                cluster.kubeconfigs.insert(
                    rng.randrange(len(cluster.kubeconfigs) + 1),
                    KubeconfigRecord(
                        account_id=account_id,
                        account_name="root",
                        account_display_name="root",
                        account_type="RootAccount",
                        account_state="Active",
                        **cert_fields(),
                        revokable=False,
                        last_access=last_access(),
                    ),
                )
            clusters.append(cluster)
            if cluster_state == "running":
                running.append(cluster)
        world_regions[region] = RegionRecord(clusters=clusters)

    if deleted_user is not None and deleted_uid is not None:
        if deleted_user_clusters > len(running):
            raise ValueError(
                f"deleted_user_clusters={deleted_user_clusters} but only {len(running)} clusters are running"
            )
        for cluster in rng.sample(running, k=deleted_user_clusters):
            expires = anchor + timedelta(days=rng.randrange(30, 700))
            cluster.kubeconfigs.insert(
                rng.randrange(len(cluster.kubeconfigs) + 1),
                KubeconfigRecord(
                    account_id=deleted_uid,
                    account_name=deleted_user,
                    account_display_name=deleted_user,
                    account_type="RamUser",
                    account_state="Deleted",
                    cert_expire_time=format_time(expires),
                    cert_state="Unexpired",
                    revokable=True,
                    last_access=last_access(),
                ),
            )

    return World(
        account_id=account_id,
        caller_uid=caller_uid,
        now=format_time(anchor) if pin_clock else None,
        regions=world_regions,
    )
