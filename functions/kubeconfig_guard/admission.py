"""Which parsed requests the event function may act on: the account it guards, and manual invocations.

Pure decisions (no I/O), made before any API call:

* An ActionTrail event belongs to one account (``RevocationRequest.account_id``: the one account
  all its owner fields name, ``events.event_account``; fields that disagree, or a routed event's
  ``aliyunoriginalaccountid`` that is another account, are ignored already when parsing). An event
  of another account is ignored: the function acts only for the account it guards, whatever routed
  the event here (cross-account buses, central deployments, other triggers, direct invokes).
* An ActionTrail event is taken only in the form the trigger delivers (``KCGUARD_EVENT_FORMAT``,
  ``events.parse_one``): a direct invoker cannot pass a bare record off as the trigger's event.
* The guarded account is the Function Compute context's ``account_id`` (both runtimes), or
  ``KCGUARD_ACCOUNT_ID``. While it is unknown, enforce mode acts on nothing.
* A UserPrincipalName ``name@<digits>.onaliyun.com`` names its account: another account's is
  ignored. Other domains (account or domain aliases) cannot be checked offline; they are accepted
  when the event's account matches.
* A manual invocation is dry-run unless ``KCGUARD_ALLOW_MANUAL_ENFORCE`` is true: being allowed to
  invoke the function must not mean being allowed to revoke anyone's kubeconfigs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .events import Ignored, RevocationRequest
from .settings import Settings

_ACCOUNT_ID = re.compile(r"^[0-9]{1,32}$")
_ONALIYUN_DOMAIN = re.compile(r"^([0-9]{1,32})\.onaliyun\.com$", re.IGNORECASE)
HOW_TO_SET_ACCOUNT = (
    "set KCGUARD_ACCOUNT_ID to the account's id (Function Compute passes it in the context; "
    "locally, `kcguard --fake` uses the world's account_id)"
)


@dataclass(frozen=True)
class Guard:
    """What the function guards, and how far it may go for an invocation."""

    account_id: str | None
    enforce: bool
    allow_manual_enforce: bool = False

    @classmethod
    def of(cls, settings: Settings, context: Any) -> Guard:
        return cls(
            account_id=guarded_account(settings, context),
            enforce=not settings.dry_run,
            allow_manual_enforce=settings.allow_manual_enforce,
        )


def guarded_account(settings: Settings, context: Any) -> str | None:
    """``KCGUARD_ACCOUNT_ID``, else the Function Compute context's ``account_id`` when it is an id."""
    if settings.account_id:
        return settings.account_id
    value = getattr(context, "account_id", None)
    if isinstance(value, (str, int)) and not isinstance(value, bool) and _ACCOUNT_ID.match(str(value)):
        return str(value)
    return None


def upn_account(upn: str | None) -> str | None:
    """The account id a UPN's ``<digits>.onaliyun.com`` domain names, or None."""
    if not upn or "@" not in upn:
        return None
    match = _ONALIYUN_DOMAIN.match(upn.rsplit("@", 1)[1])
    return match.group(1) if match else None


def admit(request: RevocationRequest, guard: Guard) -> RevocationRequest | Ignored:
    """The request as it may be acted on, or why it is ignored."""
    ids = {"event_id": request.event_id, "event_name": request.event_name}
    guarded = guard.account_id
    if not request.manual:
        if request.account_id is None:
            return Ignored("the ActionTrail event names no account: not acted on", **ids)
        if guarded is not None and request.account_id != guarded:
            return Ignored(f"event from account {request.account_id}; this function guards {guarded}", **ids)
    owner = upn_account(request.principal.upn)
    expected = guarded or request.account_id
    if owner is not None and expected is not None and owner != expected:
        return Ignored(
            f"the principal {request.principal.upn} belongs to account {owner}; "
            f"this function guards {expected}",
            **ids,
        )
    if request.manual and guard.enforce and not guard.allow_manual_enforce and not request.dry_run:
        request = dataclasses.replace(
            request,
            dry_run=True,
            note="manual invocation: dry-run (set KCGUARD_ALLOW_MANUAL_ENFORCE=true to let it revoke)",
        )
    if guarded is None and guard.enforce and not request.dry_run:
        return Ignored(
            f"the account this function guards is unknown, so enforce mode acts on nothing: {HOW_TO_SET_ACCOUNT}",
            **ids,
        )
    return request
