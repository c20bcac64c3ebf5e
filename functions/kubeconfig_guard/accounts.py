"""Which accounts a deployment guards, and how each one is reached: pure rules, no I/O.

``KCGUARD_ACCOUNTS`` says which accounts (``AccountsSpec``):

* ``self`` (the default): the account the function runs in, with its own role. Nothing else.
* ``resource-directory``: organization mode over a Resource Directory. The central account (the
  one the functions run in: the management account or a delegated administrator, the only
  callers Resource Manager's ``ListAccounts`` answers) with its own role, and every member that
  ``ListAccounts`` lists with a status that means it is a member (``MEMBER_STATUSES``), through
  STS ``AssumeRole`` into ``KCGUARD_MEMBER_ROLE``.
* an explicit list, ``ID[:ROLE][@REGION+REGION],...``: those accounts only, each with its role
  (default ``KCGUARD_MEMBER_ROLE``) and its regions (default ``KCGUARD_REGIONS``). The central
  account, when listed, is reached with its own role.

``KCGUARD_ACCOUNTS_EXCLUDE`` removes accounts from any of these; an excluded account is never
listed, never revoked in, and shown as ``skipped`` in the summary.

A ``GuardedAccount`` is the one concept that carries what varies with an account (its id, name,
role, regions); ``organization.py`` adds the I/O that goes with it (credentials, client, rate
controller, engine). Everything an account's event may do is decided against its own
``GuardedAccount``: one account's event never touches another account's clusters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from .api import OPERATIONS

ACCOUNT_ID = re.compile(r"^[0-9]{1,32}$")
# RAM role names: 1-64 characters of letters, digits, '.' and '-' (RAM CreateRole, RoleName).
ROLE_NAME = re.compile(r"^[A-Za-z0-9.\-]{1,64}$")
REGION_ID = re.compile(r"^[a-z]{2,}(-[a-z0-9]+){1,4}$")

# Resource Manager ListAccounts' statuses of an account that is a member of the directory
# ("CreateSuccess: The member is created", "InviteSuccess: The member accepts the invitation",
# "PromoteSuccess: The member is upgraded"; the other Promote* states are a member being upgraded
# and still a member): https://www.alibabacloud.com/help/en/resource-management/developer-reference/api-resourcedirectorymaster-2022-04-19-listaccounts
# The Create* states other than CreateSuccess (CreateVerifying, CreateFailed, CreateExpired,
# CreateCancelled: terraform-provider-alicloud's alicloud_resource_manager_accounts) are accounts
# that are not members yet; they, and any status not named here, are skipped with the status.
MEMBER_STATUSES = frozenset(
    {
        "CreateSuccess",
        "InviteSuccess",
        "PromoteSuccess",
        "PromoteVerifying",
        "PromoteFailed",
        "PromoteExpired",
        "PromoteCancelled",
    }
)


class AccountsSpecError(ValueError):
    """``KCGUARD_ACCOUNTS`` or ``KCGUARD_ACCOUNTS_EXCLUDE`` cannot be read (the message says where)."""


class AccountStatus(str, Enum):
    """How a run went in one account (the summary's per-account sections)."""

    OK = "ok"
    DENIED = "denied"  # the member role could not be assumed (missing, trust, ExternalId): fix today
    ERROR = "error"  # the account could not be reached for another reason (the code says which)
    SKIPPED = "skipped"  # known but not guarded (excluded, not a member)


class AccountsMode(str, Enum):
    SELF = "self"
    RESOURCE_DIRECTORY = "resource-directory"
    LIST = "list"


@dataclass(frozen=True)
class AccountEntry:
    """One account of an explicit ``KCGUARD_ACCOUNTS`` list."""

    account_id: str
    role_name: str | None = None
    regions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountsSpec:
    mode: AccountsMode
    entries: tuple[AccountEntry, ...] = ()
    exclude: frozenset[str] = frozenset()

    @property
    def organization(self) -> bool:
        """Organization mode: any spec but ``self``."""
        return self.mode is not AccountsMode.SELF


def parse_accounts(value: str, exclude: Iterable[str] = ()) -> AccountsSpec:
    """``KCGUARD_ACCOUNTS`` (and the exclude list) as a spec, or ``AccountsSpecError`` saying what is wrong."""
    excluded = frozenset(
        _account_id(item.strip(), "KCGUARD_ACCOUNTS_EXCLUDE") for item in exclude if item.strip()
    )
    text = (value or "").strip()
    if text.lower() in ("", AccountsMode.SELF.value):
        return AccountsSpec(AccountsMode.SELF, exclude=excluded)
    if text.lower() == AccountsMode.RESOURCE_DIRECTORY.value:
        return AccountsSpec(AccountsMode.RESOURCE_DIRECTORY, exclude=excluded)
    entries: dict[str, AccountEntry] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        head, _, regions_text = item.partition("@")
        account_text, _, role = head.partition(":")
        account_id = _account_id(account_text.strip(), "KCGUARD_ACCOUNTS")
        role = role.strip()
        if ":" in head and not ROLE_NAME.fullmatch(role):
            raise AccountsSpecError(
                f"KCGUARD_ACCOUNTS: {item!r}: the role name {role!r} is not a RAM role name "
                "(1-64 letters, digits, '.' or '-')"
            )
        regions: list[str] = []
        if "@" in item:
            for region in regions_text.split("+"):
                region = region.strip()
                if not REGION_ID.fullmatch(region):
                    raise AccountsSpecError(f"KCGUARD_ACCOUNTS: {item!r}: {region!r} is not a region id")
                regions.append(region)
        if account_id in entries:
            raise AccountsSpecError(f"KCGUARD_ACCOUNTS: account {account_id} is listed twice")
        entries[account_id] = AccountEntry(account_id, role or None, tuple(dict.fromkeys(regions)))
    if not entries:
        raise AccountsSpecError("KCGUARD_ACCOUNTS: no account listed")
    return AccountsSpec(AccountsMode.LIST, tuple(entries.values()), excluded)


def _account_id(text: str, setting: str) -> str:
    if not ACCOUNT_ID.fullmatch(text):
        raise AccountsSpecError(
            f"{setting}: {text[:40]!r} is not an account id (digits), `self` or `resource-directory`"
            if setting == "KCGUARD_ACCOUNTS"
            else f"{setting}: {text[:40]!r} is not an account id (digits)"
        )
    return text


@dataclass(frozen=True)
class GuardedAccount:
    """An account this deployment guards, and how it is reached.

    ``role_name`` None: the function's own role (the central account); otherwise the role assumed
    in the account. ``regions`` empty: ``KCGUARD_REGIONS`` (or the function's region).
    """

    account_id: str
    display_name: str = ""
    role_name: str | None = None
    regions: tuple[str, ...] = ()

    @property
    def central(self) -> bool:
        return self.role_name is None

    @property
    def role_arn(self) -> str | None:
        """``acs:ram::{account}:role/{role}`` (the form AssumeRole's RoleArn takes), None for the central one."""
        return None if self.role_name is None else f"acs:ram::{self.account_id}:role/{self.role_name.lower()}"

    def describe(self) -> str:
        return f"{self.account_id} ({self.display_name})" if self.display_name else self.account_id


@dataclass(frozen=True)
class Member:
    """One account as Resource Manager's ListAccounts answered it (checked: an id, short text)."""

    account_id: str
    display_name: str = ""
    status: str = ""


@dataclass(frozen=True)
class SkippedAccount:
    """An account the deployment knows of but does not guard, and why (shown as ``skipped``)."""

    account_id: str
    display_name: str
    reason: str


@dataclass
class Roster:
    """The accounts one run guards, and those it knows of and leaves alone (with the reason)."""

    accounts: list[GuardedAccount] = field(default_factory=list)
    skipped: list[SkippedAccount] = field(default_factory=list)


def roster(
    spec: AccountsSpec, central_id: str | None, member_role: str, members: list[Member] | None = None
) -> Roster:
    """The accounts a run guards under ``spec``: the central one (its own role) first.

    ``members`` is ListAccounts' answer (resource-directory mode; None when it could not be read:
    the central account is still guarded). Excluded accounts and accounts that are not members
    are skipped with the reason; an account never appears twice.
    """
    found = Roster()
    seen: set[str] = set()

    def skip(account_id: str, name: str, reason: str) -> None:
        if account_id not in seen:
            seen.add(account_id)
            found.skipped.append(SkippedAccount(account_id, name, reason))

    def guard(account: GuardedAccount) -> None:
        if account.account_id in seen:
            return
        if account.account_id in spec.exclude:
            skip(account.account_id, account.display_name, "excluded by KCGUARD_ACCOUNTS_EXCLUDE")
            return
        seen.add(account.account_id)
        found.accounts.append(account)

    if spec.mode is AccountsMode.LIST:
        listed = {e.account_id: e for e in spec.entries}
        if central_id is not None and central_id in listed:
            entry = listed[central_id]
            guard(GuardedAccount(central_id, "central account", None, entry.regions))
        for entry in spec.entries:
            if entry.account_id != central_id:
                guard(GuardedAccount(entry.account_id, "", entry.role_name or member_role, entry.regions))
        return found
    if central_id is not None:
        guard(GuardedAccount(central_id, "central account", None))
    for member in members or []:
        if member.account_id == central_id:
            continue
        if member.status not in MEMBER_STATUSES:
            skip(
                member.account_id,
                member.display_name,
                f"its Resource Directory status {member.status or '(none)'!r} is not a member's",
            )
            continue
        guard(GuardedAccount(member.account_id, member.display_name, member_role))
    return found


def not_guarded(spec: AccountsSpec, account_id: str, central_id: str | None) -> str | None:
    """Why an event of ``account_id`` is not this deployment's to act on (pure part), else None.

    Resource-directory mode also needs the account to be a current member (``organization.py``
    checks ListAccounts); this is what can be decided without I/O.
    """
    if account_id in spec.exclude:
        return f"account {account_id} is excluded by KCGUARD_ACCOUNTS_EXCLUDE"
    if spec.mode is AccountsMode.SELF:
        if central_id is not None and account_id != central_id:
            return f"event from account {account_id}; this function guards {central_id}"
        return None
    if spec.mode is AccountsMode.LIST and account_id not in {e.account_id for e in spec.entries}:
        return f"account {account_id} is not one of the accounts this deployment guards (KCGUARD_ACCOUNTS)"
    return None


# --- the member session ----------------------------------------------------------------------

# RoleSessionName: 2-64 characters of letters, digits and ``.@-_`` (STS AssumeRole).
_SESSION_NAME_CHARS = re.compile(r"[^A-Za-z0-9.@_\-]")


def role_session_name(function: str, invocation: str | None) -> str:
    """``kcguard.<function>.<invocation>``: which function and invocation made the session (ActionTrail
    shows it in the member's audit trail), cut to STS's 64 characters."""
    parts = ["kcguard", function or "local", invocation or "local"]
    name = _SESSION_NAME_CHARS.sub("-", ".".join(p for p in parts if p))
    return name[:64] if len(name) >= 2 else "kcguard"


def session_policy() -> str:
    """The inline session ``Policy`` of every AssumeRole: only the RAM actions of the ACK operations the
    code calls (``api.OPERATIONS``). A session's rights are the intersection of the role's policies and
    this one (STS AssumeRole, ``Policy``), so even a member role granted more acts with no more."""
    actions = sorted({action for op in OPERATIONS for action in op.ram_actions})
    document = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    return json.dumps(document, separators=(",", ":"))
