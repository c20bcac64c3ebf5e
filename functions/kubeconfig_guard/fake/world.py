"""The world file of the fake ACK: accounts, regions, clusters and issued kubeconfigs.

A world is plain JSON (see ``examples/world.json`` and ``examples/README.md``)::

    {"account_id": "5000000000000001", "caller_uid": "300000000000000001",
     "regions": {"cn-hangzhou": {"clusters": [
       {"cluster_id": "c0123", "name": "prod", "cluster_type": "ManagedKubernetes",
        "state": "running", "audit_log": true,
        "kubeconfigs": [{"account_id": "200000000000000001", "account_name": "tom", ...,
                         "last_access": "2026-11-20T08:00:00Z"}]}]}}}

A world may also hold an organization (a Resource Directory): its member accounts, each with its
own regions, clusters and kubeconfigs, and the RAM roles of every account with their trust
policies (``OrganizationRecord``; ``examples/organization.json``, ``examples/README.md``). The
top-level account is then the central (management) account; ``FakeCloud`` serves them all.

``generate_world`` builds large, realistic worlds reproducibly from a seed; ``generate_organization``
builds organizations of such worlds.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
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
    v = value.astimezone(timezone.utc)  # formatted by hand: strftime costs 5x more, per kubeconfig
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}Z"


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


# --- organization ------------------------------------------------------------------------

# RAM principals as trust policies name them: an account's root (every principal of the account),
# a RAM role, a RAM user. https://help.aliyun.com/en/ram/user-guide/edit-the-trust-policy-of-a-ram-role
PRINCIPAL_ARN = re.compile(
    r"^acs:ram::(?P<account>\d+):(?:(?P<root>root)|(?P<kind>role|user)/(?P<name>[^/]+))$"
)

DEFAULT_CALLER_ROLE = "kubeconfig-guard-event"
DEFAULT_MEMBER_ROLE = "kubeconfig-guard-member"
DEFAULT_EXTERNAL_ID = "kcguard-demo-external-id"
# What the member role may call (the three ACK operations of ``api.OPERATIONS``).
MEMBER_ROLE_ACTIONS = (
    "cs:DescribeClustersV1",
    "cs:ListClusterKubeconfigStates",
    "cs:CleanClusterUserPermissions",
)


def role_arn(account_id: str, role_name: str) -> str:
    """``acs:ram::<account>:role/<name>``, the format AssumeRole's RoleArn takes."""
    return f"acs:ram::{account_id}:role/{role_name}"


class RoleRecord(BaseModel):
    """A RAM role of one account: who may assume it (its trust policy) and what it may call.

    ``trusted_principals``: principal ARNs (``acs:ram::<id>:root`` trusts every RAM user and role of
    that account; ``acs:ram::<id>:role/<name>``, ``acs:ram::<id>:user/<name>`` one of them).
    ``external_id``: when set, the trust policy's ``sts:ExternalId`` condition (AssumeRole must pass
    it). ``allowed_actions``: the role's permission policies, as RAM action patterns (``cs:*``,
    ``*``); a session may call an action only if this list and its session ``Policy`` allow it.
    """

    model_config = ConfigDict(extra="allow")

    role_name: str
    trusted_principals: list[str] = Field(default_factory=list)
    external_id: str | None = None
    max_session_duration: int = Field(3600, ge=900, le=43200)
    allowed_actions: list[str] = Field(default_factory=lambda: ["*"])
    role_id: str | None = Field(None, description="The role's numeric id (AssumedRoleId); null: derived.")


class MemberAccountRecord(BaseModel):
    """One member of the Resource Directory: its ListAccounts fields, its ACK state and its roles.

    ``listed: false`` hides it from ListAccounts (a member that left the directory); its ACK and
    roles keep working (the account still exists). ``regions`` has exactly the shape of
    ``World.regions``. ``caller_uid``: the uid ACK's self-revocation check compares with (optional).
    """

    model_config = ConfigDict(extra="allow")

    account_id: str
    display_name: str = ""
    status: str = "CreateSuccess"
    type: str = "ResourceAccount"
    join_method: str = "created"
    join_time: str = "2025-01-06T02:00:00.000Z"
    modify_time: str = "2025-01-06T02:00:00.000Z"
    folder_id: str | None = Field(None, description="null: the directory's root folder.")
    account_name: str | None = Field(
        None, description="Logon name; null: <display_name>@<rd id>.aliyunid.com."
    )
    listed: bool = True
    caller_uid: str = ""
    regions: dict[str, RegionRecord] = Field(default_factory=dict)
    roles: list[RoleRecord] = Field(default_factory=list)


class AccessKeyRecord(BaseModel):
    """An extra permanent access key (the demo key is the central account's caller).

    It belongs to ``account_id`` (any account: the central one, a member, or one outside the
    organization) and to the RAM role ``role_name`` or the RAM user ``user_name`` of it; with
    neither, to the account's root (which AssumeRole refuses). ``allowed_actions``: what the
    principal's policies allow (RAM action patterns).
    """

    model_config = ConfigDict(extra="allow")

    access_key_id: str
    access_key_secret: str
    account_id: str
    role_name: str | None = None
    user_name: str | None = None
    allowed_actions: list[str] = Field(default_factory=lambda: ["*"])


class OrganizationRecord(BaseModel):
    """The Resource Directory around the world's account (the central one).

    ``management_account_id`` (default: the world's ``account_id``) and the
    ``delegated_administrators`` may call ListAccounts; whether ListAccounts lists the management
    account itself is ``list_management_account`` (the docs do not say; default: not listed).
    ``caller_role``: the RAM role of the central account the demo key belongs to
    (``acs:ram::<account_id>:role/<caller_role>``); ``caller_allowed_actions`` what it may call.
    ``roles``: the central account's own roles (it is guarded too, through its own role).
    """

    model_config = ConfigDict(extra="allow")

    resource_directory_id: str = "rd-3k4v2x"
    root_folder_id: str | None = Field(None, description="null: r-<the directory id's suffix>.")
    management_account_id: str | None = None
    management_display_name: str = "management"
    list_management_account: bool = False
    delegated_administrators: list[str] = Field(default_factory=list)
    caller_role: str = DEFAULT_CALLER_ROLE
    caller_allowed_actions: list[str] = Field(default_factory=lambda: ["*"])
    roles: list[RoleRecord] = Field(default_factory=list)
    members: list[MemberAccountRecord] = Field(default_factory=list)
    access_keys: list[AccessKeyRecord] = Field(default_factory=list)


class World(BaseModel):
    """Everything the fake ACK knows: the account, the caller, each region's clusters, the organization."""

    model_config = ConfigDict(extra="allow")

    account_id: str = "5000000000000001"
    caller_uid: str = "300000000000000001"
    now: str | None = Field(None, description="Pins the fake's clock (ISO 8601); null: real time.")
    regions: dict[str, RegionRecord] = Field(default_factory=dict)
    organization: OrganizationRecord | None = Field(
        None, description="The Resource Directory this account manages; null: a single account."
    )


def load_world(path: str | Path) -> World:
    """Read and validate a world file."""
    return World.model_validate_json(Path(path).read_text(encoding="utf-8"))


def dump_world(world: World, path: str | Path) -> None:
    """Write a world file (indented JSON, atomically replaced; no ``organization`` key when there is none)."""
    target = Path(path)
    data = world.model_dump(mode="json", exclude_none=False)
    if world.organization is None:
        data.pop("organization", None)
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


# Every field of a kubeconfig record: the fields-set the generator's records share.
_ALL_KUBECONFIG_FIELDS = set(KubeconfigRecord.model_fields)


def _kubeconfig(**fields: Any) -> KubeconfigRecord:
    """A generated kubeconfig record, built without validation (the generator's values are valid).

    Large worlds hold hundreds of thousands of them: ``model_construct`` is five times faster than
    validating, and one shared fields-set (every field; setting a field again adds nothing to it)
    saves about half of each record's memory.
    """
    return KubeconfigRecord.model_construct(_ALL_KUBECONFIG_FIELDS, **fields)


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
    clusters_per_region: int | Sequence[int],
    kubeconfigs_per_cluster: int,
    deleted_user: str | None = None,
    deleted_user_clusters: int = 0,
    now: datetime | None = None,
    account_id: str = "5000000000000001",
    caller_uid: str = "300000000000000001",
    pin_clock: bool = True,
) -> World:
    """A reproducible, realistic world: the same seed and arguments give the same world.

    ``clusters_per_region``: the same count in every region, or one count per region (in order).

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

    if isinstance(clusters_per_region, int):
        counts = [clusters_per_region] * len(regions)
    else:
        counts = list(clusters_per_region)
        if len(counts) != len(regions):
            raise ValueError(f"{len(counts)} cluster counts for {len(regions)} regions")
    world_regions: dict[str, RegionRecord] = {}
    running: list[ClusterRecord] = []
    for region, region_clusters in zip(regions, counts, strict=True):
        clusters: list[ClusterRecord] = []
        for c in range(region_clusters):
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
                    _kubeconfig(
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
                    _kubeconfig(
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
                    _kubeconfig(
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
                _kubeconfig(
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


_MEMBER_WORDS = ("prod", "staging", "dev", "data", "payments", "search", "ml", "web", "batch", "edge")


def _split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as possible, the larger shares first."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _rd_time(value: datetime) -> str:
    """``2021-01-18T08:01:50.522Z``, the format of ListAccounts' JoinTime and ModifyTime."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def member_account_id(index: int) -> str:
    """The account id ``generate_organization`` gives its member ``index`` (0-based)."""
    return str(1300000000000001 + index)


def generate_organization(
    seed: int,
    *,
    members: int,
    regions: list[str],
    clusters_per_account: int,
    kubeconfigs_per_cluster: int,
    deleted_user: str | None = None,
    deleted_user_account: int | str | None = None,
    deleted_user_clusters: int = 0,
    central_clusters: int = 0,
    now: datetime | None = None,
    account_id: str = "5000000000000001",
    caller_uid: str = "300000000000000001",
    resource_directory_id: str = "rd-3k4v2x",
    member_role: str = DEFAULT_MEMBER_ROLE,
    external_id: str | None = DEFAULT_EXTERNAL_ID,
    trusted_roles: Sequence[str] = (DEFAULT_CALLER_ROLE, "kubeconfig-guard-summary"),
    pin_clock: bool = True,
) -> World:
    """A reproducible organization: the same seed and arguments give the same world.

    The central account (``account_id``, the management account, ``central_clusters`` clusters)
    and ``members`` member accounts (ids ``member_account_id(i)``: 1300000000000001...), each a
    ``generate_world`` of its own seed with ``clusters_per_account`` clusters spread over
    ``regions`` and ``kubeconfigs_per_cluster`` kubeconfigs per cluster (plus, on some clusters, the
    account's root). Every account (the central one included) has the role ``member_role``,
    trusting the central account's ``trusted_roles`` with ``external_id``, allowed the three ACK
    actions. ``deleted_user`` gets a Deleted, revokable kubeconfig on ``deleted_user_clusters``
    running clusters of one account: ``deleted_user_account`` (a member's index or any account id;
    default: the first member).
    """
    anchor = (now or DEFAULT_NOW).astimezone(timezone.utc).replace(microsecond=0)
    rng = random.Random(seed)
    member_ids = [member_account_id(i) for i in range(members)]
    if deleted_user is None:
        leaver_account = None
    elif deleted_user_account is None:
        if not member_ids:
            raise ValueError("deleted_user needs a member (or deleted_user_account=<the central account>)")
        leaver_account = member_ids[0]
    elif isinstance(deleted_user_account, int):
        leaver_account = member_ids[deleted_user_account]
    else:
        leaver_account = deleted_user_account
        if leaver_account not in (account_id, *member_ids):
            raise ValueError(f"deleted_user_account {leaver_account!r} is not in the organization")

    def account_world(index: int, uid: str, clusters: int, caller: str) -> World:
        leaver = leaver_account == uid
        return generate_world(
            seed * 1_000_003 + index,
            regions=regions,
            clusters_per_region=_split(clusters, len(regions)),
            kubeconfigs_per_cluster=kubeconfigs_per_cluster,
            deleted_user=deleted_user if leaver else None,
            deleted_user_clusters=deleted_user_clusters if leaver else 0,
            now=anchor,
            account_id=uid,
            caller_uid=caller,
            pin_clock=pin_clock,
        )

    central_account = account_world(0, account_id, central_clusters, caller_uid)
    trusted = [role_arn(account_id, name) for name in trusted_roles]

    def member_role_record() -> RoleRecord:
        return RoleRecord(
            role_name=member_role,
            trusted_principals=list(trusted),
            external_id=external_id,
            allowed_actions=list(MEMBER_ROLE_ACTIONS),
        )

    records: list[MemberAccountRecord] = []
    for i, uid in enumerate(member_ids):
        joined = anchor - timedelta(days=rng.randrange(30, 1500), seconds=rng.randrange(86400))
        created = rng.random() < 0.7  # a resource account created in the directory, else an invited one
        records.append(
            MemberAccountRecord(
                account_id=uid,
                display_name=f"{_MEMBER_WORDS[i % len(_MEMBER_WORDS)]}-{i:03d}",
                status="CreateSuccess" if created else "InviteSuccess",
                type="ResourceAccount" if created else "CloudAccount",
                join_method="created" if created else "invited",
                join_time=_rd_time(joined),
                modify_time=_rd_time(joined + timedelta(seconds=rng.randrange(3600))),
                regions=account_world(i + 1, uid, clusters_per_account, "").regions,
                roles=[member_role_record()],
            )
        )
    central_account.organization = OrganizationRecord(
        resource_directory_id=resource_directory_id,
        management_account_id=account_id,
        roles=[member_role_record()],
        members=records,
    )
    return central_account
