"""The fake cloud of an organization: one ACK backend per account, STS, and Resource Manager.

A world with an ``organization`` (``world.OrganizationRecord``) is a Resource Directory: the
world's own account (the central, management account) and its member accounts, each with its own
clusters, RAM roles and trust policies. ``FakeCloud`` holds the state and the rules of the API
docs, typed arguments in and objects out, as ``FakeAck`` does for one account; ``cloudwire.py``
translates the wire protocol (ROA ACK requests, RPC ``POST /`` STS and Resource Manager requests)
and both front ends (``FakeAckTransport``, ``FakeAckServer``) serve a ``FakeCloud`` as they serve a
``FakeAck``::

    cloud = FakeCloud(load_world("examples/organization.json"))
    cloud.account("1300000000000001")          # that member's FakeAck (its clusters, calls, faults)
    cloud.account("1300000000000001").faults.set(None, FaultSpec(rate_limit_rps=20, rate_limit_scope="all"))
    cloud.sts.faults, cloud.resource_manager.faults   # the two RPC services' own fault injectors
    cloud.clock.advance(3600)                  # sessions issued an hour ago are now expired

Who calls: the demo key (``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET``, default the documented demo
pair) is the central account's RAM role ``organization.caller_role``; ``organization.access_keys``
adds permanent keys of any account; ``AssumeRole`` issues STS keys (``STS.…`` with a security
token) of the assumed role's account. An ACK request is served by the backend of the account that
owns its key, so a member's token only ever reaches that member's clusters.

Sources of the rules and error codes (cited again where used):

- [assumerole] STS AssumeRole API reference (parameters, answer, error codes 400/403/404):
  https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole
  (the error table: 404 ``EntityNotExist.Role`` "The specified Role not exists.", 403
  ``NoPermission`` "You are not authorized to do this action. You should be authorized by RAM.",
  400 ``InvalidParameter.RoleSessionName``/``.DurationSeconds``/``.PolicyGrammar``/``.PolicySize``/
  ``.RoleArn``; ExternalId 2-1224 characters of ``[\\w+=,.@:/-]``, RoleSessionName 2-64 of
  ``[A-Za-z0-9.@_-]``).
- [sts-faq] STS common errors, https://www.alibabacloud.com/help/doc-detail/42775.htm: ``NoPermission``
  "Roles may not be assumed by root accounts."; ``NoPermission`` "No permission perform
  sts:AssumeRole on this Role. Maybe you are not authorized to perform sts:AssumeRole or the
  specified role does not trust you" (an untrusted caller; a trust policy's unmet
  ``sts:ExternalId`` condition is the same refusal).
- [trust] Trust policies: ``acs:ram::<id>:root`` lets every RAM user and RAM role of that account
  assume the role, https://help.aliyun.com/en/ram/user-guide/edit-the-trust-policy-of-a-ram-role
- [public] The common token errors (Alibaba Cloud's "Public" error center, as copied by
  aliyun/terraform-provider-alicloud ``alicloud/common_errors.go``, and product error tables such
  as FaaS's): 400 ``InvalidSecurityToken.Expired`` "Specified SecurityToken is expired.",
  ``InvalidSecurityToken.MismatchWithAccessKey``, ``MissingSecurityToken``.
- [ack-ram] ACK's RAM denial: 403 ``StatusForbidden`` "STSToken policy Forbidden for action
  cs:…" (or "RAM policy Forbidden …") with an ``accessDeniedDetail`` object, as ACK's RRSA guide
  shows it ("Use RRSA to authorize pods to access different cloud services", the expected
  error log after the role's policy is removed) and ACK's authentication notice
  https://www.alibabacloud.com/help/en/ack/product-overview/ack-api-enhances-user-authentication
- [listaccounts] Resource Manager ListAccounts (2020-03-31): management account or delegated
  administrator only; PageNumber (default 1), PageSize (1-100, default 10); the Account fields;
  the one documented error, 404 ``EntityNotExists.ResourceDirectory``:
  https://www.alibabacloud.com/help/en/resource-management/resource-directory/developer-reference/api-resourcemanager-2020-03-31-listaccounts
  (and the API metadata of ResourceManager 2020-03-31). The name of a resource account:
  ``<prefix>@<resource directory id>.aliyunid.com`` (CreateResourceAccount).
- [rd-member] A member account calling a management-only multi-account API: 409
  ``NoPermission.ResourceDirectory.MemberAccount`` "ResourceDirectory Member Account is not
  authorized to perform this operation." (Resource Center 2022-12-01's error tables; ListAccounts
  documents no code of its own for it).
- [rpc-ram] An RPC API's RAM denial: 403 ``Forbidden.RAM`` "User not authorized to operate on the
  specified resource, or this API doesn't support RAM." with ``AccessDeniedDetail``:
  https://www.alibabacloud.com/help/en/ecs/announcement-of-changes-to-the-authentication-mechanism-for-alibaba-cloud-ecs-query-type-apis
- [throttle] "Request was denied due to user flow control." ``Throttling.User`` (STS: the AssumeRole
  reference's note and ACK's RRSA guide's STS error table; 400 in the products' error tables).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import secrets
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from .. import api
from .backend import FakeAck, FakeAckError
from .faults import FaultInjector
from .world import (
    DEFAULT_CALLER_ROLE,
    PRINCIPAL_ARN,
    MemberAccountRecord,
    OrganizationRecord,
    RoleRecord,
    World,
    format_time,
    parse_world_time,
    role_arn,
)

# --- RAM: principals, actions, session policies ------------------------------------------------

PrincipalKind = Literal["root", "user", "role", "session"]


def action_allowed(patterns: Iterable[str], action: str) -> bool:
    """Whether one of the RAM action patterns (``cs:*``, ``*``; case-insensitive) matches ``action``."""
    wanted = action.lower()
    return any(fnmatch.fnmatchcase(wanted, pattern.strip().lower()) for pattern in patterns)


@dataclass(frozen=True)
class PolicyStatement:
    effect: Literal["Allow", "Deny"]
    actions: tuple[str, ...]


@dataclass(frozen=True)
class SessionPolicy:
    """An AssumeRole ``Policy``: its statements' effects and actions (resources and conditions are
    accepted and not evaluated: every statement applies to every resource)."""

    statements: tuple[PolicyStatement, ...]
    text: str

    def denies(self, action: str) -> bool:
        return any(s.effect == "Deny" and action_allowed(s.actions, action) for s in self.statements)

    def allows(self, action: str) -> bool:
        return any(s.effect == "Allow" and action_allowed(s.actions, action) for s in self.statements)


# The Policy parameter's bound: 1-2048 characters since September 2022 (was 1024),
# https://www.alibabacloud.com/en/notice/upgradenotification_of_request_parameters_length_constraints_upgrade_of_sts_apis_184
POLICY_MAX_LENGTH = 2048


def parse_session_policy(text: str) -> SessionPolicy:
    """A RAM policy document (``{"Version": "1", "Statement": [...]}``), or 400 PolicyGrammar/PolicySize."""
    if len(text) > POLICY_MAX_LENGTH:
        raise FakeAckError(
            400,
            "InvalidParameter.PolicySize",
            f"The size of Policy must be smaller than {POLICY_MAX_LENGTH} bytes.",
        )
    grammar = FakeAckError(
        400, "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check."
    )
    try:
        document = json.loads(text)
    except ValueError:
        raise grammar from None
    if not isinstance(document, dict) or document.get("Version") != "1":
        raise grammar
    raw_statements = document.get("Statement")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise grammar
    statements: list[PolicyStatement] = []
    for raw in raw_statements:
        if not isinstance(raw, dict):
            raise grammar
        effect = raw.get("Effect")
        actions = raw.get("Action")
        resources = raw.get("Resource")
        if effect not in ("Allow", "Deny"):
            raise grammar
        if isinstance(actions, str):
            actions = [actions]
        if isinstance(resources, str):
            resources = [resources]
        if (
            not isinstance(actions, list)
            or not actions
            or not all(isinstance(a, str) and a for a in actions)
            or not isinstance(resources, list)
            or not resources
            or not all(isinstance(r, str) and r for r in resources)
            or not isinstance(raw.get("Condition", {}), dict)
        ):
            raise grammar
        statements.append(PolicyStatement(effect, tuple(actions)))
    return SessionPolicy(tuple(statements), text)


@dataclass(frozen=True)
class StsSession:
    """One STS token AssumeRole issued: its key, its role (and account), its limits and expiry."""

    access_key_id: str
    access_key_secret: str
    security_token: str
    account_id: str
    role_name: str
    role_session_name: str
    arn: str
    assumed_role_id: str
    expiration: datetime
    role_actions: tuple[str, ...]
    policy: SessionPolicy | None
    caller_arn: str
    external_id: str | None


@dataclass(frozen=True)
class Principal:
    """Who signed a request: an account's root, a RAM user or role (permanent key), or an STS session."""

    account_id: str
    kind: PrincipalKind
    name: str = ""  # the user's or the role's name
    allowed_actions: tuple[str, ...] = ("*",)
    session: StsSession | None = None

    @property
    def arn(self) -> str:
        if self.kind == "root":
            return f"acs:ram::{self.account_id}:root"
        if self.kind == "user":
            return f"acs:ram::{self.account_id}:user/{self.name}"
        return role_arn(self.account_id, self.name)

    @property
    def display_name(self) -> str:
        if self.session is not None:
            return f"{self.name}:{self.session.role_session_name}"
        return self.name or self.account_id

    @property
    def principal_type(self) -> str:
        """``accessDeniedDetail.AuthPrincipalType``."""
        return {
            "root": "Account",
            "user": "SubUser",
            "role": "AssumedRoleUser",
            "session": "AssumedRoleUser",
        }[self.kind]

    def denial(self, action: str) -> tuple[str, str] | None:
        """None when the principal's policies allow ``action``, else (NoPermissionType, PolicyType)."""
        session = self.session
        if session is not None and session.policy is not None:
            if session.policy.denies(action):
                return "ExplicitDeny", "SessionPolicy"
            if not session.policy.allows(action):
                return "ImplicitDeny", "SessionPolicy"
        allowed = session.role_actions if session is not None else self.allowed_actions
        if not action_allowed(allowed, action):
            return "ImplicitDeny", "AccountLevelIdentityBasedPolicy"
        return None

    def access_denied_detail(self, action: str, denial: tuple[str, str]) -> dict[str, str]:
        return {
            "AuthAction": action,
            "AuthPrincipalDisplayName": self.display_name,
            "AuthPrincipalOwnerId": self.account_id,
            "AuthPrincipalType": self.principal_type,
            "NoPermissionType": denial[0],
            "PolicyType": denial[1],
        }


def trusts(role: RoleRecord, caller: Principal) -> bool:
    """Whether the role's trust policy names the caller ([trust]: ``root`` trusts the whole account)."""
    for entry in role.trusted_principals:
        found = PRINCIPAL_ARN.match(entry.strip())
        if found is None or found["account"] != caller.account_id:
            continue
        if found["root"]:
            return True
        kind, name = found["kind"], found["name"].lower()
        if kind == "role" and caller.kind in ("role", "session") and name == caller.name.lower():
            return True
        if kind == "user" and caller.kind == "user" and name == caller.name.lower():
            return True
    return False


# --- the session clock -----------------------------------------------------------------------


class SessionClock:
    """The time STS tokens are issued and checked against: real UTC time (or a pinned instant) plus
    an offset tests move with ``advance``; it never goes back. Real time by default, so clients that
    compare ``Expiration`` with their own clock agree with the fake."""

    def __init__(self, pinned: datetime | str | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._pinned = _as_time(pinned)

    def now(self) -> datetime:
        base = self._pinned if self._pinned is not None else datetime.now(timezone.utc)
        return base + self._offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("the session clock does not go back")
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def pin(self, when: datetime | str | None) -> None:
        """Stop the clock at ``when`` (None: follow real time again); the offset is reset."""
        with self._lock:
            self._pinned = _as_time(when)
            self._offset = timedelta(0)


def _as_time(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return parse_world_time(value)


# --- Resource Manager ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedAccount:
    """One ListAccounts item, with the documented fields ([listaccounts])."""

    account_id: str
    display_name: str
    status: str
    type: str
    folder_id: str
    join_method: str
    join_time: str
    modify_time: str
    resource_directory_id: str
    resource_directory_path: str
    account_name: str


@dataclass(frozen=True)
class AccountsPage:
    accounts: tuple[ListedAccount, ...]
    page_number: int
    page_size: int
    total_count: int


# ``hook(cloud, operation, params, caller)``: see ``RpcService.hooks``.
RpcHook = Callable[["FakeCloud", str, dict[str, str], "Principal | None"], None]


@dataclass
class RpcService:
    """One RPC service of the fake cloud (``sts``, ``resourcemanager``): its faults and counters.

    ``calls``: requests per operation (every routed one: refused, throttled or served);
    ``calls_by_account``: the same per calling account (the key's account; "" when unknown).
    ``hooks``: ``hook(cloud, operation, params, caller)`` run before each operation with its
    decoded string parameters (query and form body), free to raise FakeAckError or change things.
    """

    product: str
    faults: FaultInjector
    calls: Counter[str] = field(default_factory=Counter)
    calls_by_account: Counter[str] = field(default_factory=Counter)
    hooks: list[RpcHook] = field(default_factory=list)

    def count(self, operation: str, account_id: str) -> None:
        self.calls[operation] += 1
        self.calls_by_account[account_id] += 1

    def reset_counters(self) -> None:
        self.calls.clear()
        self.calls_by_account.clear()
        self.faults.counts.clear()


@dataclass(frozen=True)
class StsDenial:
    """Why an AssumeRole was refused (every refusal answers the same NoPermission; tests tell them apart)."""

    caller_arn: str
    role_arn: str
    reason: Literal["root", "untrusted", "external-id"]


_ROLE_ARN = re.compile(r"^acs:ram::(?P<account>\d+):role/(?P<name>[^/\s]+)$")
_SESSION_NAME = re.compile(r"^[A-Za-z0-9.@_-]{2,64}$")  # [assumerole]
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")  # [assumerole]
_MIN_DURATION = 900  # [assumerole]
DEFAULT_DURATION = 3600

# [sts-faq]
NOT_TRUSTED = (
    "No permission perform sts:AssumeRole on this Role. Maybe you are not authorized to perform "
    "sts:AssumeRole or the specified role does not trust you"
)


@dataclass
class _Key:
    secret: str
    principal: Principal


# --- the cloud -------------------------------------------------------------------------------------


class FakeCloud:
    """Every account of an organization on one set of front ends: ACK per account, STS, Resource Manager.

    ``FakeCloud(world)``: the world's account is the central one (served with the demo key, as
    ``FakeAck(world)`` serves it); every member of ``world.organization`` gets its own ``FakeAck``
    (own state, counters, hooks, and fault injector: ``cloud.account(id).faults``), as does every
    other account an ``access_keys`` entry names. A world without an organization is an account
    outside any Resource Directory (ListAccounts: 404; AssumeRole: no roles).

    ``copy_world=False`` adopts the world's cluster records instead of deep-copying them (large
    generated worlds; the caller gives the world up). ``clock``: the session clock (default: real
    time); ``advance(seconds)`` moves it and every account's ACK clock.
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
        clock: SessionClock | None = None,
    ) -> None:
        world = world or World()
        if copy_world:
            world = world.model_copy(deep=True)
        self._lock = threading.RLock()
        self.verify_signatures = verify_signatures
        self.clock = clock or SessionClock()
        organization = world.organization
        central_world = World.model_construct(
            account_id=world.account_id,
            caller_uid=world.caller_uid,
            now=world.now,
            regions=world.regions,
            organization=None,
            **(world.model_extra or {}),
        )
        self.central = FakeAck(
            central_world,
            verify_signatures=verify_signatures,
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            security_token=security_token,
            fault_seed=fault_seed,
            copy_world=False,
        )
        self.accounts: dict[str, FakeAck] = {self.central.account_id: self.central}
        self._members: dict[str, MemberAccountRecord] = {}
        self._roles: dict[str, dict[str, RoleRecord]] = {self.central.account_id: {}}
        self.organization: OrganizationRecord | None = None
        if organization is not None:
            # The organization's metadata, without the members' clusters (their backends hold them).
            self.organization = organization.model_copy(update={"members": []})
            self._roles[self.central.account_id] = {r.role_name.lower(): r for r in organization.roles}
            for index, member in enumerate(organization.members):
                if member.account_id in self.accounts:
                    raise ValueError(f"account {member.account_id} appears twice in the organization")
                self.accounts[member.account_id] = FakeAck(
                    World.model_construct(
                        account_id=member.account_id,
                        caller_uid=member.caller_uid,
                        now=world.now,
                        regions=member.regions,
                        organization=None,
                    ),
                    verify_signatures=verify_signatures,
                    fault_seed=fault_seed + 1 + index,
                    copy_world=False,
                )
                self._members[member.account_id] = member.model_copy(update={"regions": {}})
                self._roles[member.account_id] = {r.role_name.lower(): r for r in member.roles}
        caller_role = organization.caller_role if organization else DEFAULT_CALLER_ROLE
        caller_actions = tuple(organization.caller_allowed_actions) if organization else ("*",)
        self._keys: dict[str, _Key] = {
            self.central.access_key_id: _Key(
                self.central.access_key_secret,
                Principal(self.central.account_id, "role", caller_role, caller_actions),
            )
        }
        for extra in organization.access_keys if organization else []:
            if extra.access_key_id in self._keys or extra.access_key_id.startswith("STS."):
                raise ValueError(
                    f"access key {extra.access_key_id!r} is not unique (or looks like an STS key)"
                )
            kind: PrincipalKind = "role" if extra.role_name else "user" if extra.user_name else "root"
            principal = Principal(
                extra.account_id,
                kind,
                extra.role_name or extra.user_name or "",
                tuple(extra.allowed_actions),
            )
            self._keys[extra.access_key_id] = _Key(extra.access_key_secret, principal)
            if extra.account_id not in self.accounts:  # an account outside the organization: no clusters
                self.accounts[extra.account_id] = FakeAck(
                    World(account_id=extra.account_id, caller_uid="", now=world.now),
                    verify_signatures=verify_signatures,
                    fault_seed=fault_seed + 10_000 + len(self.accounts),
                )
                self._roles.setdefault(extra.account_id, {})
        self._sessions: dict[str, StsSession] = {}
        self.sts_denials: list[StsDenial] = []
        self.sts = RpcService("sts", FaultInjector(fault_seed + 20_000))
        self.resource_manager = RpcService("resourcemanager", FaultInjector(fault_seed + 20_001))
        # Requests whose key belongs to no account: counted here (an empty account's backend).
        self.unattributed = FakeAck(World(account_id="", caller_uid=""), verify_signatures=verify_signatures)

    # --- accounts ------------------------------------------------------------------------------

    def account(self, account_id: str) -> FakeAck:
        """The ACK backend of one account (raises KeyError for an account the cloud does not hold)."""
        try:
            return self.accounts[account_id]
        except KeyError:
            raise KeyError(f"no account {account_id} in the fake cloud") from None

    @property
    def management_account_id(self) -> str | None:
        if self.organization is None:
            return None
        return self.organization.management_account_id or self.central.account_id

    def member_ids(self) -> list[str]:
        """Every member's account id, in the world's order (listed or not)."""
        with self._lock:
            return list(self._members)

    def member(self, account_id: str) -> MemberAccountRecord:
        """A copy of one member's directory record (without its clusters)."""
        with self._lock:
            return self._members[account_id].model_copy(deep=True)

    def set_member(
        self,
        account_id: str,
        *,
        listed: bool | None = None,
        status: str | None = None,
        display_name: str | None = None,
    ) -> None:
        """Change a member's directory record (``listed=False``: it left the Resource Directory)."""
        with self._lock:
            record = self._members[account_id]
            if listed is not None:
                record.listed = listed
            if status is not None:
                record.status = status
            if display_name is not None:
                record.display_name = display_name

    def roles(self, account_id: str) -> list[RoleRecord]:
        with self._lock:
            return [r.model_copy(deep=True) for r in self._roles.get(account_id, {}).values()]

    def set_role(self, account_id: str, role: RoleRecord) -> None:
        """Create or replace a role of an account the cloud holds (its trust policy, its actions)."""
        with self._lock:
            self.account(account_id)
            self._roles.setdefault(account_id, {})[role.role_name.lower()] = role.model_copy(deep=True)

    def remove_role(self, account_id: str, role_name: str) -> None:
        """Delete a role: AssumeRole answers EntityNotExist.Role (issued tokens stay valid until they expire)."""
        with self._lock:
            self._roles.get(account_id, {}).pop(role_name.lower(), None)

    # --- clock, counters, world ------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the session clock and every account's ACK clock forward."""
        self.clock.advance(seconds)
        for backend in list(self.accounts.values()):
            backend.advance(seconds)

    def sessions(self) -> list[StsSession]:
        """Every STS session issued so far (expired ones included), oldest first."""
        with self._lock:
            return list(self._sessions.values())

    def calls_by_account(self) -> dict[str, Counter[str]]:
        """Requests per account and operation: its ACK operations, and the STS and Resource
        Manager operations its keys called."""
        result: dict[str, Counter[str]] = {uid: Counter(b.calls) for uid, b in self.accounts.items()}
        with self._lock:
            for service, operation in (
                (self.sts, api.ASSUME_ROLE.name),
                (self.resource_manager, api.LIST_ACCOUNTS.name),
            ):
                for uid, count in service.calls_by_account.items():
                    result.setdefault(uid, Counter())[operation] += count
        return result

    def reset_counters(self) -> None:
        """Forget every account's calls, revocations and fault counts, and the services' counters."""
        for backend in (*self.accounts.values(), self.unattributed):
            backend.reset_counters()
        with self._lock:
            self.sts.reset_counters()
            self.resource_manager.reset_counters()
            self.sts_denials.clear()

    def to_world(self) -> World:
        """A deep copy of the whole state: the central account's world with the organization and
        every member's clusters (recycle bins included)."""
        world = self.central.to_world()
        if self.organization is None:
            return world
        with self._lock:
            organization = self.organization.model_copy(deep=True)
            organization.roles = [
                r.model_copy(deep=True) for r in self._roles[self.central.account_id].values()
            ]
            for uid, record in self._members.items():
                member = record.model_copy(deep=True)
                member.roles = [r.model_copy(deep=True) for r in self._roles[uid].values()]
                member.regions = self.accounts[uid].to_world().regions
                organization.members.append(member)
        world.organization = organization
        return world

    # --- credentials ---------------------------------------------------------------------------

    def principal_of(self, access_key_id: str | None) -> Principal | None:
        """Whose key this is (unverified; STS keys whether expired or not), or None."""
        if access_key_id is None:
            return None
        with self._lock:
            key = self._keys.get(access_key_id)
            if key is not None:
                return key.principal
            session = self._sessions.get(access_key_id)
        if session is None:
            return None
        return Principal(session.account_id, "session", session.role_name, session.role_actions, session)

    def resolve_key(self, access_key_id: str, headers: Mapping[str, str]) -> str | tuple[int, str, str]:
        """The key's secret, or why it (or its security token) is refused ([public])."""
        token = headers.get("x-acs-security-token")
        with self._lock:
            key = self._keys.get(access_key_id)
            session = self._sessions.get(access_key_id)
        if key is not None:
            central = self.central
            if (
                access_key_id == central.access_key_id
                and central.security_token is not None
                and token != central.security_token
            ):
                return 400, "InvalidSecurityToken", "The security token you provided is invalid."
            return key.secret
        if session is None:
            return 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        if not token:
            return 400, "MissingSecurityToken", "SecurityToken is mandatory for this action."
        if not secrets.compare_digest(token, session.security_token):
            return (
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            )
        if self.clock.now() >= session.expiration:
            return 400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."
        return session.access_key_secret

    # --- STS AssumeRole --------------------------------------------------------------------------

    def assume_role(
        self,
        caller: Principal,
        role_arn_value: str | None,
        role_session_name: str | None,
        duration_seconds: int | None = None,
        policy: str | None = None,
        external_id: str | None = None,
    ) -> StsSession:
        """AssumeRole ([assumerole]): check the parameters, the caller, the role and its trust; issue a token.

        Role chaining is allowed: a session may assume a role when its own permissions allow
        ``sts:AssumeRole`` (the wire layer checks that first, as for any action) and the target
        role trusts the session's role (``acs:ram::<id>:role/<name>`` or its account's ``root``).
        """
        if not role_arn_value:
            raise FakeAckError(400, "MissingRoleArn", "RoleArn is mandatory for this action.")
        if not role_session_name:
            raise FakeAckError(400, "MissingRoleSessionName", "RoleSessionName is mandatory for this action.")
        arn = _ROLE_ARN.match(role_arn_value.strip())
        if arn is None:
            raise FakeAckError(400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
        if not _SESSION_NAME.match(role_session_name):
            raise FakeAckError(
                400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed."
            )
        duration = DEFAULT_DURATION if duration_seconds is None else duration_seconds
        if duration < _MIN_DURATION:
            raise _duration_error(DEFAULT_DURATION)
        session_policy = parse_session_policy(policy) if policy is not None else None
        if external_id is not None and not _EXTERNAL_ID.match(external_id):
            raise FakeAckError(
                400, "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed."
            )
        account_id, role_name = arn["account"], arn["name"]
        target = role_arn(account_id, role_name)
        if caller.kind == "root":  # [sts-faq]
            self._deny(caller, target, "root")
            raise FakeAckError(403, "NoPermission", "Roles may not be assumed by root accounts.")
        with self._lock:
            role = self._roles.get(account_id, {}).get(role_name.lower())
            role = role.model_copy(deep=True) if role is not None else None
        if role is None:
            raise FakeAckError(404, "EntityNotExist.Role", "The specified Role not exists.")
        if not trusts(role, caller):
            self._deny(caller, target, "untrusted")
            raise FakeAckError(403, "NoPermission", NOT_TRUSTED)
        if role.external_id is not None and external_id != role.external_id:
            self._deny(caller, target, "external-id")
            raise FakeAckError(403, "NoPermission", NOT_TRUSTED)
        if duration > role.max_session_duration:
            raise _duration_error(role.max_session_duration)
        issued = self.clock.now().replace(microsecond=0)
        session = StsSession(
            access_key_id="STS." + _token(24),
            access_key_secret=_token(40),
            security_token="CAIS" + _token(180),
            account_id=account_id,
            role_name=role.role_name,
            role_session_name=role_session_name,
            arn=f"acs:ram::{account_id}:role/{role.role_name.lower()}/{role_session_name}",
            assumed_role_id=f"{role.role_id or _role_id(account_id, role.role_name)}:{role_session_name}",
            expiration=issued + timedelta(seconds=duration),
            role_actions=tuple(role.allowed_actions),
            policy=session_policy,
            caller_arn=caller.arn,
            external_id=external_id,
        )
        with self._lock:
            self._sessions[session.access_key_id] = session
        return session

    def _deny(
        self, caller: Principal, target: str, reason: Literal["root", "untrusted", "external-id"]
    ) -> None:
        with self._lock:
            self.sts_denials.append(StsDenial(caller.arn, target, reason))

    def expire_sessions(self) -> None:
        """Every issued token expires now (as if its time had come)."""
        now = self.clock.now()
        with self._lock:
            for key, session in list(self._sessions.items()):
                self._sessions[key] = replace(session, expiration=min(session.expiration, now))

    # --- Resource Manager ListAccounts -----------------------------------------------------------

    def list_accounts(
        self,
        caller: Principal,
        page_number: int = 1,
        page_size: int = api.LIST_ACCOUNTS_PAGING.default_size,
    ) -> AccountsPage:
        """ListAccounts ([listaccounts]): the directory's members, one page; management or delegated
        administrator callers only ([rd-member] for members; 404 for accounts outside it)."""
        with self._lock:
            organization = self.organization
            management = self.management_account_id
            if organization is None or management is None:
                raise _no_directory()
            if (
                caller.account_id != management
                and caller.account_id not in organization.delegated_administrators
            ):
                member = self._members.get(caller.account_id)
                if member is not None and member.listed:
                    raise FakeAckError(
                        409,
                        "NoPermission.ResourceDirectory.MemberAccount",
                        "ResourceDirectory Member Account is not authorized to perform this operation.",
                    )
                raise _no_directory()
            paging = api.LIST_ACCOUNTS_PAGING
            if page_number < 1:
                raise FakeAckError(
                    400, f"InvalidParameter.{paging.number_param}", f"{paging.number_param} must be >= 1."
                )
            if not paging.min_size <= page_size <= paging.max_size:
                raise FakeAckError(
                    400,
                    f"InvalidParameter.{paging.size_param}",
                    f"{paging.size_param} must be between {paging.min_size} and {paging.max_size}.",
                )
            listed = [self._listed(m) for m in self._members.values() if m.listed]
            if organization.list_management_account:
                listed.insert(0, self._management_entry(organization, management))
        start = (page_number - 1) * page_size
        return AccountsPage(tuple(listed[start : start + page_size]), page_number, page_size, len(listed))

    def _root_folder(self) -> str:
        assert self.organization is not None
        rd = self.organization.resource_directory_id
        return self.organization.root_folder_id or "r-" + rd.removeprefix("rd-")

    def _listed(self, member: MemberAccountRecord) -> ListedAccount:
        assert self.organization is not None
        rd = self.organization.resource_directory_id
        root = self._root_folder()
        folder = member.folder_id or root
        path = "/".join([rd, root, *([folder] if folder != root else []), member.account_id])
        prefix = re.sub(r"[^A-Za-z0-9_.-]", "-", member.display_name or member.account_id)
        return ListedAccount(
            account_id=member.account_id,
            display_name=member.display_name,
            status=member.status,
            type=member.type,
            folder_id=folder,
            join_method=member.join_method,
            join_time=member.join_time,
            modify_time=member.modify_time,
            resource_directory_id=rd,
            resource_directory_path=path,
            account_name=member.account_name or f"{prefix}@{rd}.aliyunid.com",
        )

    def _management_entry(self, organization: OrganizationRecord, management: str) -> ListedAccount:
        rd = organization.resource_directory_id
        root = self._root_folder()
        return ListedAccount(
            account_id=management,
            display_name=organization.management_display_name,
            status="CreateSuccess",
            type="CloudAccount",
            folder_id=root,
            join_method="created",
            join_time="2024-01-01T00:00:00.000Z",
            modify_time="2024-01-01T00:00:00.000Z",
            resource_directory_id=rd,
            resource_directory_path=f"{rd}/{root}/{management}",
            account_name=f"{organization.management_display_name}@{rd}.aliyunid.com",
        )


def _no_directory() -> FakeAckError:
    return FakeAckError(
        404,
        "EntityNotExists.ResourceDirectory",
        "The resource directory for the account is not enabled. We recommend that you first enable "
        "the resource directory for the account.",
    )


def _duration_error(maximum: int) -> FakeAckError:
    limit = "1hr" if maximum == DEFAULT_DURATION else f"{maximum}s"
    return FakeAckError(
        400, "InvalidParameter.DurationSeconds", f"The Min/Max value of DurationSeconds is 15min/{limit}."
    )


_TOKEN_ALPHABET = string.ascii_letters + string.digits


def _token(length: int) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def _role_id(account_id: str, role_name: str) -> str:
    """A stable 19-digit role id (the part of AssumedRoleId before the session name)."""
    digest = hashlib.sha256(f"{account_id}:{role_name.lower()}".encode()).hexdigest()
    return "3" + str(int(digest, 16))[:18]


def expiration_text(session: StsSession) -> str:
    """``2026-12-06T13:30:00Z``: the answer's ``Credentials.Expiration``."""
    return format_time(session.expiration)


def listed_account_fields(account: ListedAccount) -> dict[str, Any]:
    """The ListAccounts JSON of one account ([listaccounts]'s field names)."""
    return {
        "AccountId": account.account_id,
        "DisplayName": account.display_name,
        "Status": account.status,
        "Type": account.type,
        "FolderId": account.folder_id,
        "JoinMethod": account.join_method,
        "JoinTime": account.join_time,
        "ModifyTime": account.modify_time,
        "ResourceDirectoryId": account.resource_directory_id,
        "ResourceDirectoryPath": account.resource_directory_path,
        "AccountName": account.account_name,
    }
