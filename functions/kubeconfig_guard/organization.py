"""Organization mode's I/O: the members of the Resource Directory, a session in each, one scope per account.

An ``AccountScope`` is everything that varies with an account, in one object: the
``GuardedAccount`` (id, name, role, regions), its credentials (the function's own for the central
account; an STS session in the member role otherwise, ``MemberSession``), its client (the instance's
connections and concurrency cap, but its own rate controller: ACK's quota is counted per account)
and its engine (its own shared listings). Nothing else in the code threads an account id around:
an event's revocation runs on its account's scope, so it can only list and revoke that account's
clusters, with that account's credentials.

The central account's calls to STS and Resource Manager have a rate controller each too (STS
AssumeRole is limited per calling account; docs/organization.md, "Rate limits").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from . import httpwire
from .accounts import (
    ACCOUNT_ID,
    AccountsMode,
    AccountStatus,
    GuardedAccount,
    Member,
    Roster,
    not_guarded,
    role_session_name,
    roster,
    session_policy,
)
from .admission import Guard, admit
from .api import ASSUME_ROLE, LIST_ACCOUNTS, LIST_ACCOUNTS_PAGING
from .client import AckClient, service_origin
from .credentials import HEADER_SAFE, Credentials
from .deadline import Deadline
from .engine import Engine, Prepared
from .errors import AckApiError, plain_text
from .events import Ignored, RevocationRequest
from .plan import enforce_limit
from .ratelimit import AdaptiveRateLimiter
from .redaction import redact
from .results import ClusterIssue, ClusterStatus, Outcome, RevocationResult
from .settings import Mode, Settings

log = logging.getLogger("kubeconfig_guard.organization")

STS_HOST = "sts.aliyuncs.com"
RESOURCEMANAGER_HOST = "resourcemanager.aliyuncs.com"
# STS AssumeRole is limited to 100 requests/s per Alibaba Cloud account, counting every RAM user and
# role of it (https://www.alibabacloud.com/notice/ram20220829): this deployment takes at most half.
STS_MAX_RPS = 50.0
# Resource Manager publishes no limit for ListAccounts; a summary reads a few pages a day.
RESOURCEMANAGER_MAX_RPS = 10.0
# Members read by an event function are reused this long (a member that left is refused after it).
MEMBERS_TTL_SECONDS = 300.0
# A member session is renewed this long before its Expiration (or at a fifth of its life if shorter).
RENEW_BEFORE_SECONDS = 300.0
# 100 pages of 100 = 10,000 accounts (a Resource Directory holds at most a few thousand).
MAX_ACCOUNTS_PAGES = 100
DISPLAY_NAME_LIMIT = 128


class AccountAccessError(Exception):
    """An account that cannot be reached: AssumeRole (or the member list) failed, with the code."""

    def __init__(self, account: GuardedAccount, status: AccountStatus, code: str, reason: str) -> None:
        super().__init__(reason)
        self.account = account
        self.status = status
        self.code = code
        self.reason = reason


def access_problem(account: GuardedAccount, error: AckApiError, what: str) -> AccountAccessError:
    """``denied`` for an authorization refusal (a missing role, a trust policy or ExternalId that does
    not admit this function: something to fix today), ``error`` for anything else."""
    status = AccountStatus.DENIED if error.unauthorized else AccountStatus.ERROR
    reason = f"{what} failed: {error.code}: {redact(error.message)}"
    return AccountAccessError(account, status, error.code, reason)


# --- STS AssumeRole ----------------------------------------------------------------------------


HEADER_SAFE_PATTERN = f"^{HEADER_SAFE.pattern}$"


class _StsCredentials(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # The id and the token go into request headers: visible ASCII only (credentials.HEADER_SAFE).
    AccessKeyId: str = Field(min_length=1, max_length=256, pattern=HEADER_SAFE_PATTERN)
    AccessKeySecret: str = Field(min_length=1, max_length=1024)
    SecurityToken: str = Field(min_length=1, max_length=16384, pattern=HEADER_SAFE_PATTERN)
    Expiration: str = Field(min_length=1, max_length=64)


class _AssumedRoleUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    AssumedRoleId: str | None = Field(None, max_length=256)


class _AssumeRoleAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Credentials: _StsCredentials
    AssumedRoleUser: _AssumedRoleUser | None = None


def _parse_answer(model: type[BaseModel], answer: httpwire.Answer, operation: str) -> BaseModel:
    """A 2xx answer as ``model``, or ``InvalidResponse.Shape`` (retried); never the body in the message."""
    try:
        return model.model_validate_json(answer.content)
    except ValidationError as exc:
        raise AckApiError(
            status=answer.status,
            code="InvalidResponse.Shape",
            message=f"the answer does not have the documented shape ({exc.error_count()} problems)",
            request_id=answer.headers.get("x-acs-request-id"),
            operation=operation,
        ) from None


def _expiration(text: str) -> float | None:
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


class MemberSession:
    """The credentials of a session in a member's role: STS AssumeRole, cached, renewed before they expire.

    Every AssumeRole sends the role's ARN, a ``RoleSessionName`` naming the function and the invocation
    that opened it, the ``ExternalId`` (the trust policy's ``sts:ExternalId`` condition), the inline
    session ``Policy`` (only the ACK actions the code calls: ``accounts.session_policy``) and
    ``DurationSeconds``. The credentials are ``Credentials`` objects: registered with the redactor
    when made, never logged. A refusal of the token (``InvalidSecurityToken.*``: expired early, clocks
    apart) drops it, and the next request assumes the role again (``invalidate``).
    """

    def __init__(
        self,
        sts: AckClient,
        origin: httpwire.Origin,
        account: GuardedAccount,
        *,
        external_id: SecretStr,
        duration_seconds: int,
        session_name: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert account.role_arn is not None
        self._sts = sts
        self._origin = origin
        self.account = account
        self._external_id = external_id
        self._duration = duration_seconds
        self._session_name = session_name
        self._clock = clock
        self._credentials: Credentials | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()
        self.caller_uid: str | None = None  # the role's id, as ACK names the caller (never revoked)
        self.assumed = 0

    def invalidate(self) -> None:
        self._credentials = None

    async def get(self) -> Credentials:
        if self._credentials is not None and self._clock() < self._renew_at:
            return self._credentials
        async with self._lock:
            if self._credentials is None or self._clock() >= self._renew_at:
                await self._assume()
            assert self._credentials is not None
            return self._credentials

    async def _assume(self) -> None:
        assert self.account.role_arn is not None
        query = {
            "RoleArn": self.account.role_arn,
            "RoleSessionName": self._session_name(),
            "DurationSeconds": str(self._duration),
            "Policy": session_policy(),
            "ExternalId": self._external_id.get_secret_value(),
        }
        asked = self._clock()
        answer = await self._sts.call_rpc(
            ASSUME_ROLE,
            self._origin,
            query,
            lambda a: _parse_answer(_AssumeRoleAnswer, a, ASSUME_ROLE.name),
        )
        assert isinstance(answer, _AssumeRoleAnswer)
        found = answer.Credentials
        expires = _expiration(found.Expiration)
        if expires is None:
            raise AckApiError(
                status=200,
                code="InvalidResponse.Shape",
                message="the session's Expiration is not a time",
                operation=ASSUME_ROLE.name,
            )
        # Never trust a session to outlive what was asked for. An Expiration already past by this
        # clock is a clock apart from STS's: the session is used for what was asked, and a token ACK
        # refuses as expired is dropped and assumed again (``invalidate``, once per request).
        life = expires - asked
        life = self._duration if life <= 0 else min(life, self._duration)
        expires = asked + life
        self._credentials = Credentials(
            found.AccessKeyId, SecretStr(found.AccessKeySecret), SecretStr(found.SecurityToken)
        )
        self._renew_at = expires - min(RENEW_BEFORE_SECONDS, life / 5)
        self.assumed += 1
        role_id = (answer.AssumedRoleUser.AssumedRoleId or "") if answer.AssumedRoleUser else ""
        head = role_id.split(":", 1)[0]
        self.caller_uid = head if ACCOUNT_ID.fullmatch(head) else None


# --- Resource Manager ListAccounts ---------------------------------------------------------------


class _AccountItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    AccountId: str = Field(pattern=r"^[0-9]{1,32}$")
    DisplayName: object = None
    Status: object = None


class _AccountList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Account: list[_AccountItem] = Field(default_factory=list)


class _ListAccountsAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Accounts: _AccountList = Field(default_factory=_AccountList)
    TotalCount: int | None = Field(None, ge=0)
    PageNumber: int | None = None
    PageSize: int | None = None


async def list_members(client: AckClient, origin: httpwire.Origin) -> list[Member]:
    """Every account of the Resource Directory (ListAccounts, page after page, to the end).

    Bounded and checked like the ACK listings: a page echo that disagrees, a short page while the
    total claims more, a full page adding nothing, or more than ``MAX_ACCOUNTS_PAGES`` pages fail
    the list (``Listing.*``) rather than return part of it as if it were all.
    """
    paging = LIST_ACCOUNTS_PAGING
    size = paging.used_size

    def failure(code: str, message: str) -> AckApiError:
        return AckApiError(status=200, code=code, message=message, operation=LIST_ACCOUNTS.name)

    members: dict[str, Member] = {}
    for page in range(1, MAX_ACCOUNTS_PAGES + 1):
        query = {paging.number_param: str(page), paging.size_param: str(size)}
        answer = await client.call_rpc(
            LIST_ACCOUNTS, origin, query, lambda a: _parse_answer(_ListAccountsAnswer, a, LIST_ACCOUNTS.name)
        )
        assert isinstance(answer, _ListAccountsAnswer)
        items = answer.Accounts.Account
        if answer.PageNumber is not None and answer.PageNumber != page:
            raise failure(
                "Listing.InvalidPage", f"asked for page {page}, the API answered {answer.PageNumber}"
            )
        if len(items) > size:
            raise failure("Listing.InvalidPage", f"asked for pages of {size}, the API answered {len(items)}")
        total = answer.TotalCount
        if total is not None and total > MAX_ACCOUNTS_PAGES * size:
            raise failure("Listing.TooLarge", f"the API claims {total} accounts, more than the cap")
        before = len(members)
        for item in items:
            members.setdefault(
                item.AccountId,
                Member(
                    item.AccountId,
                    plain_text(item.DisplayName, DISPLAY_NAME_LIMIT) or "",
                    plain_text(item.Status, 64) or "",
                ),
            )
        if len(items) < size:
            if total is not None and total > (page - 1) * size + len(items):
                raise failure(
                    "Listing.InvalidPage",
                    f"page {page} holds {len(items)} accounts but the API claims {total}",
                )
            return list(members.values())
        if page > 1 and len(members) == before:
            raise failure("Listing.InvalidPage", f"page {page} repeats accounts already listed")
        if total is not None and page * size >= total:
            return list(members.values())
    raise failure("Listing.TooLarge", f"more than {MAX_ACCOUNTS_PAGES} pages of accounts")


# --- scopes ----------------------------------------------------------------------------------


@dataclass
class AccountScope:
    """One guarded account and everything that varies with it: credentials, client, rate controller, engine."""

    account: GuardedAccount
    engine: Engine
    session: MemberSession | None = None  # None: the central account, on the function's own role


class Organization:
    """The accounts a deployment guards and a scope for each, per instance (shared by its invocations).

    ``central`` is the engine of the central account (the function's own credentials). Scopes of
    members are made on first use and kept: their sessions and listings serve later invocations.
    """

    def __init__(self, settings: Settings, central: Engine, *, function_name: str = "") -> None:
        self.settings = settings
        self.spec = settings.accounts_spec()
        self.central = central
        self._function = function_name
        self.invocation_id: str | None = None
        credentials = central.client.credentials
        self._sts = central.client.scoped(credentials, AdaptiveRateLimiter(STS_MAX_RPS))
        self._rm = central.client.scoped(credentials, AdaptiveRateLimiter(RESOURCEMANAGER_MAX_RPS))
        self._sts_origin = service_origin(STS_HOST, settings.sts_endpoint, "KCGUARD_STS_ENDPOINT")
        self._rm_origin = service_origin(
            RESOURCEMANAGER_HOST, settings.resourcemanager_endpoint, "KCGUARD_RESOURCEMANAGER_ENDPOINT"
        )
        self._scopes: dict[str, AccountScope] = {}
        self._members: list[Member] | None = None
        self._members_at = 0.0
        self._members_lock = asyncio.Lock()

    # --- which accounts -------------------------------------------------------------------

    async def members(self, *, fresh: bool = False) -> list[Member]:
        """ListAccounts' members (reused for ``MEMBERS_TTL_SECONDS`` unless ``fresh``); raises AckApiError."""
        async with self._members_lock:
            now = time.monotonic()
            if fresh or self._members is None or now - self._members_at > MEMBERS_TTL_SECONDS:
                self._members = await list_members(self._rm, self._rm_origin)
                self._members_at = now
            return self._members

    async def roster(self, central_id: str | None) -> tuple[Roster, AckApiError | None]:
        """The accounts a run guards (fresh member list), and the error reading the members, if any:
        the central account is guarded even then, and the error is reported, never a silent zero."""
        members: list[Member] | None = None
        error: AckApiError | None = None
        if self.spec.mode is AccountsMode.RESOURCE_DIRECTORY:
            try:
                members = await self.members(fresh=True)
            except AckApiError as exc:
                error = exc
        return roster(self.spec, central_id, self.settings.member_role, members), error

    async def account_for_event(self, account_id: str, central_id: str | None) -> GuardedAccount | str:
        """The guarded account an event of ``account_id`` acts in, or why it is not acted on."""
        if why := not_guarded(self.spec, account_id, central_id):
            return why
        members: list[Member] | None = None
        if self.spec.mode is AccountsMode.RESOURCE_DIRECTORY and account_id != central_id:
            try:
                members = await self.members()
            except AckApiError as exc:
                return f"the Resource Directory's members could not be read ({exc.code}): not acted on"
        found = roster(self.spec, central_id, self.settings.member_role, members)
        for account in found.accounts:
            if account.account_id == account_id:
                return account
        for skipped in found.skipped:
            if skipped.account_id == account_id:
                return f"account {account_id} is not guarded: {skipped.reason}"
        return f"account {account_id} is not a member of the Resource Directory"

    # --- scopes ---------------------------------------------------------------------------

    @property
    def scopes(self) -> dict[str, AccountScope]:
        """The scopes made so far on this instance, by account id."""
        return dict(self._scopes)

    def scope(self, account: GuardedAccount) -> AccountScope:
        """The account's scope (made once per instance)."""
        found = self._scopes.get(account.account_id)
        if found is not None and found.account == account:
            return found
        settings = self.settings
        if account.regions:
            settings = settings.model_copy(update={"regions": list(account.regions)})
        if account.central:
            engine = (
                self.central
                if not account.regions
                else Engine(settings, self.central.client, caller_uids=self.central.caller_uids)
            )
            scope = AccountScope(account, engine)
        else:
            assert settings.member_external_id is not None  # required in organization mode (settings)
            session = MemberSession(
                self._sts,
                self._sts_origin,
                account,
                external_id=settings.member_external_id,
                duration_seconds=settings.member_session_seconds,
                session_name=lambda: role_session_name(self._function, self.invocation_id),
            )
            client = self.central.client.scoped(session)
            scope = AccountScope(account, Engine(settings, client), session)
        self._scopes[account.account_id] = scope
        return scope

    async def open(self, account: GuardedAccount) -> AccountScope:
        """The account's scope with a working session (AssumeRole now if needed); raises AccountAccessError."""
        scope = self.scope(account)
        if scope.session is not None:
            try:
                await scope.session.get()
            except AckApiError as exc:
                raise access_problem(account, exc, f"AssumeRole into {account.role_arn}") from None
            if scope.session.caller_uid:
                scope.engine.caller_uids = frozenset({scope.session.caller_uid})
        return scope

    async def open_all(
        self, accounts: list[GuardedAccount], deadline: Deadline | None = None
    ) -> list[AccountScope | AccountAccessError]:
        """Open every account's scope at once (STS's own rate controller bounds them)."""

        async def one(account: GuardedAccount) -> AccountScope | AccountAccessError:
            try:
                return await self.open(account)
            except AccountAccessError as exc:
                return exc

        return list(await asyncio.gather(*(one(a) for a in accounts)))


# --- the event path across accounts -------------------------------------------------------------


def _unreachable_result(
    request: RevocationRequest, problem: AccountAccessError, mode: Mode
) -> RevocationResult:
    """A request whose account could not be reached: ``partial`` (Function Compute retries it, and the
    final failure is told), with the code; never a silent zero."""
    issue = ClusterIssue(
        region="*",
        cluster_id="*",
        status=ClusterStatus.FAILED,
        reason=f"account {problem.account.describe()} is {problem.status.value}: {problem.reason}",
        error_code=problem.code,
    )
    return RevocationResult(
        event_id=request.event_id,
        event_name=request.event_name,
        kind=request.kind,
        outcome=Outcome.PARTIAL,
        reason=f"{request.principal.describe()}: account {problem.account.describe()} could not be reached "
        f"({problem.status.value}: {problem.code}); nothing listed or revoked there",
        mode=Mode.DRY_RUN if request.dry_run else mode,
        account_id=problem.account.account_id,
        principal=request.principal,
        clusters=[issue],
    )


async def revoke_in_accounts(
    organization: Organization,
    requests: list[RevocationRequest],
    guard: Guard,
    *,
    deadline: Deadline,
    received_at: float,
) -> list[RevocationResult | Ignored]:
    """Organization mode's event path: each request acts in its own account only, on that account's scope.

    The account is the event's (``RevocationRequest.account_id``; a manual invocation's ``accountId``,
    else the central account) and must be guarded (``account_for_event``); the request is then admitted
    against that account (``admission.admit``: UPN domain, manual dry-run). Every admitted request is
    listed and planned in its account, the blast-radius limit is applied over all of them together,
    and only then does anything get revoked.
    """
    mode = organization.settings.mode
    admitted: list[RevocationResult | Ignored | tuple[GuardedAccount, RevocationRequest]] = []
    for request in requests:
        ids = {"event_id": request.event_id, "event_name": request.event_name}
        account_id = request.account_id or guard.account_id
        if account_id is None:
            admitted.append(Ignored("the event names no account and the central account is unknown", **ids))
            continue
        found = await organization.account_for_event(account_id, guard.account_id)
        if isinstance(found, str):
            admitted.append(Ignored(found, **ids))
            continue
        decided = admit(request, dataclasses.replace(guard, account_id=found.account_id))
        admitted.append(decided if isinstance(decided, Ignored) else (found, decided))

    accounts = {item[0].account_id: item[0] for item in admitted if isinstance(item, tuple)}
    opened = dict(zip(accounts, await organization.open_all(list(accounts.values())), strict=True))
    work: dict[str, list[int]] = {}
    for index, item in enumerate(admitted):
        if not isinstance(item, tuple):
            continue
        account, request = item
        scope = opened[account.account_id]
        if isinstance(scope, AccountAccessError):
            admitted[index] = _unreachable_result(request, scope, mode)
        else:
            work.setdefault(account.account_id, []).append(index)

    async def prepare(account_id: str) -> list[Prepared]:
        scope = opened[account_id]
        assert isinstance(scope, AccountScope)
        batch = [admitted[i] for i in work[account_id]]
        return await scope.engine.prepare_all(
            [item[1] for item in batch if isinstance(item, tuple)], received_at, deadline, account_id
        )

    prepared_by_account = dict(zip(work, await asyncio.gather(*(prepare(a) for a in work)), strict=True))
    enforce_limit(
        [p.plan for batch in prepared_by_account.values() for p in batch],
        organization.settings.max_revocations,
    )
    # Together, as within one account (``Engine.revoke_all``): one account's rounds (a Clean tried
    # again after a back-off) never hold up another's Cleans.
    completions: list[tuple[int, Awaitable[RevocationResult]]] = []
    for account_id, batch in prepared_by_account.items():
        scope = opened[account_id]
        assert isinstance(scope, AccountScope)
        completions += [
            (index, scope.engine.complete(prepared, deadline))
            for index, prepared in zip(work[account_id], batch, strict=True)
        ]
    done = await asyncio.gather(*(completion for _, completion in completions))
    for (index, _), result in zip(completions, done, strict=True):
        admitted[index] = result
    results: list[RevocationResult | Ignored] = []
    for item in admitted:
        assert not isinstance(item, tuple)
        results.append(item)
    return results
