"""Parse what Function Compute hands the event function into a revocation request.

Accepted inputs (``event`` is bytes):

* the EventBridge CloudEvents envelope, ``data`` = the ActionTrail record;
* the RawData form: the ActionTrail record alone;
* a manual invocation: ``{"action": "revoke", "principal": {...}, "kind": ..., "dryRun": ...}``;
* a JSON list of any of these (a batch).

Everything else, failed API calls (``errorCode`` set) and malformed bytes become an
:class:`Ignored` with the reason. Parsing never raises.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .models import AccountType
from .principal import EventKind, Principal, RamAccountType
from .settings import EventFormat

MAX_EVENT_BYTES = 1_000_000
MAX_NAME_LENGTH = 256
MAX_BATCH = 500
_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")

# What a real ActionTrail envelope looks like. The trigger's EventBridge rule in template.yml is a
# copy of what ``eventbridge_pattern`` builds from this table, and tests/test_template.py fails when
# the two differ: the code accepts exactly what the rule selects, so a forged or foreign envelope
# that reaches the function another way (a direct invoke, another trigger) is ignored.
EVENT_SOURCES = ("acs.ram", "acs.ims")
# EventBridge types of ActionTrail events that are acted on (AliyunServiceEvent is not).
ACTED_ON_TYPES = (":ActionTrail:ApiCall", ":ActionTrail:ConsoleOperation")
# The record's own ``eventType`` of the same two kinds.
RECORD_EVENT_TYPES = ("ApiCall", "ConsoleOperation")


class ActionTrailRecord(BaseModel):
    """The fields of an ActionTrail record that kubeconfig-guard reads."""

    model_config = ConfigDict(extra="allow")

    eventId: str | None = None
    eventName: str
    serviceName: str | None = None
    eventSource: str | None = None
    eventType: str | None = None
    eventTime: Any = None  # odd formats exist ("2020-11-19T21:04:42.179PRC"): never parsed
    acsRegion: Any = None
    requestParameters: dict[str, Any] | None = None
    responseElements: dict[str, Any] | None = None
    userIdentity: dict[str, Any] | None = None
    referencedResources: dict[str, Any] | None = None
    recipientAccountId: Any = None
    errorCode: Any = None  # "" or absent: the call succeeded; only a non-empty code is a failure
    errorMessage: Any = None


class CloudEvent(BaseModel):
    """The EventBridge CloudEvents envelope."""

    model_config = ConfigDict(extra="allow")

    specversion: str | None = None
    id: str | None = None
    source: str | None = None
    type: str | None = None
    aliyunaccountid: Any = None
    aliyunoriginalaccountid: Any = None  # set by EventBridge on events routed from another account's bus
    aliyunpublishtime: Any = None  # never parsed, never decides anything (odd formats exist)
    aliyunregionid: Any = None
    time: Any = None
    data: ActionTrailRecord


class ManualPrincipal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: RamAccountType
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_LENGTH)
    uid: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_.:-]+$")


class ManualRevoke(BaseModel):
    """A revocation asked for by hand (testing, or an offboarding script)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["revoke"]
    principal: ManualPrincipal
    kind: EventKind = EventKind.DELETED
    dryRun: bool = False
    id: str | None = None
    accountId: str | None = Field(
        None, pattern=r"^[0-9]{1,32}$", description="Organization mode: the guarded account to act in."
    )


@dataclass(frozen=True)
class RevocationRequest:
    """A parsed event that asks for a principal's kubeconfigs to be revoked.

    ``account_id`` is the account the event belongs to: the one account every owner field of
    the event names (``OWNER_FIELDS``, ``event_account``); for a manual invocation (``manual``
    True) its ``accountId`` (organization mode), else None: the account whose function was invoked.
    """

    event_id: str | None
    event_name: str
    kind: EventKind
    principal: Principal
    account_id: str | None = None
    dry_run: bool = False
    manual: bool = False
    note: str | None = None  # said in the result's reason (e.g. why a manual invocation is dry-run)


@dataclass(frozen=True)
class Ignored:
    """An input that is not acted upon, and why."""

    reason: str
    event_id: str | None = None
    event_name: str | None = None


Parsed = RevocationRequest | Ignored


def _ims_user(params: Mapping[str, Any]) -> dict[str, str | None]:
    upn = params.get("UserPrincipalName")
    name = params.get("UserName")
    if isinstance(upn, str) and "@" in upn:
        return {"upn": upn, "name": name if isinstance(name, str) else upn.split("@", 1)[0]}
    return {"name": name if isinstance(name, str) else (upn if isinstance(upn, str) else None)}


@dataclass(frozen=True)
class SupportedEvent:
    """One row of the table of ActionTrail events the event function acts on."""

    service: str  # ActionTrail serviceName: "Ram" or "Ims"
    event_name: str
    kind: EventKind
    principal_type: AccountType
    identified_by: str
    condition: Callable[[Mapping[str, Any]], str | None] | None = None  # returns a reason to ignore


def _status_inactive(params: Mapping[str, Any]) -> str | None:
    status = params.get("Status")
    if isinstance(status, str) and status.lower() == "inactive":
        return None
    return f"UpdateLoginProfile with Status={status!r} does not lock the user"


SUPPORTED_EVENTS: tuple[SupportedEvent, ...] = (
    SupportedEvent("Ram", "DeleteUser", EventKind.DELETED, AccountType.RAM_USER, "UserName"),
    SupportedEvent(
        "Ims", "DeleteUser", EventKind.DELETED, AccountType.RAM_USER, "UserPrincipalName or UserId"
    ),
    SupportedEvent(
        "Ims",
        "DeleteUserInRecycleBin",
        EventKind.DELETED,
        AccountType.RAM_USER,
        "UserPrincipalName or UserId",
    ),
    SupportedEvent("Ram", "DeleteRole", EventKind.DELETED, AccountType.RAM_ROLE, "RoleName"),
    SupportedEvent(
        "Ims",
        "UpdateLoginProfile",
        EventKind.LOCKED,
        AccountType.RAM_USER,
        "UserPrincipalName, only with Status=Inactive",
        _status_inactive,
    ),
    SupportedEvent("Ram", "DeleteLoginProfile", EventKind.LOCKED, AccountType.RAM_USER, "UserName"),
    SupportedEvent("Ims", "DeleteLoginProfile", EventKind.LOCKED, AccountType.RAM_USER, "UserPrincipalName"),
)
_BY_KEY = {(e.service.lower(), e.event_name): e for e in SUPPORTED_EVENTS}
_SOURCES = {"ram.aliyuncs.com": "ram", "ims.aliyuncs.com": "ims", "ims-share.aliyuncs.com": "ims"}


def _service_of(record: ActionTrailRecord) -> str:
    if record.serviceName:
        return record.serviceName.lower()
    return _SOURCES.get((record.eventSource or "").lower(), "")


def _plain_text(value: Any) -> str | None:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        return None
    text = str(value).strip()
    if not text or len(text) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in text):
        return None
    return text


def _referenced(record: ActionTrailRecord, key: str) -> str | None:
    refs = (record.referencedResources or {}).get(key)
    if isinstance(refs, list) and len(refs) == 1:
        return _plain_text(refs[0])
    return None


def _principal_of(record: ActionTrailRecord, event: SupportedEvent) -> Principal | str:
    params = record.requestParameters or {}
    if event.principal_type is AccountType.RAM_ROLE:
        name = _plain_text(params.get("RoleName")) or _referenced(record, "ACS::RAM::Role")
        uid = _plain_text(params.get("RoleId"))
        if not name and not uid:
            return "the event names no role (requestParameters.RoleName is missing)"
        return Principal(type=AccountType.RAM_ROLE, name=name, uid=uid)
    if event.service == "Ims":
        found = _ims_user(params)
        name, upn = _plain_text(found.get("name")), _plain_text(found.get("upn"))
    else:
        name, upn = _plain_text(params.get("UserName")), None
    uid = _plain_text(params.get("UserId"))
    if not name and not upn:
        name = _referenced(record, "ACS::RAM::User")
    if not name and not upn and not uid:
        return "the event names no user (no UserName, UserPrincipalName or UserId)"
    return Principal(type=AccountType.RAM_USER, name=name, upn=upn, uid=uid)


# The fields of an event that name the account that owns what changed, and what each one says.
# * ``aliyunaccountid``: the CloudEvents extension naming the account the event was published in
#   (EventBridge, "Event overview": https://www.alibabacloud.com/help/en/eventbridge/user-guide/event-overview).
# * ``aliyunoriginalaccountid``: set on events routed from another account's bus; it "identifies the
#   source account", and a receiving rule should accept only the expected values (EventBridge,
#   "Route events to EventBridge": https://www.alibabacloud.com/help/en/eventbridge/user-guide/route-events-to-eventbridge).
# * the record's ``recipientAccountId``: the account that receives the audit log, the resource owner
#   (ActionTrail log fields: https://www.alibabacloud.com/help/en/sls/log-fields-25).
# Every one present must name the same account: a routed event is then its source account's, which
# admission compares with the guarded ones (self mode: only the function's own account; organization
# mode: a guarded member, ``organization.Organization.account_for_event``), and an event whose owner
# fields disagree is ignored, naming them. In organization mode an ``aliyunaccountid`` naming the
# central (receiving) account of a routed event is left out (``from_record``, ``receiving_account``).
OWNER_FIELDS = ("aliyunaccountid", "aliyunoriginalaccountid", "data.recipientAccountId")
# The account of the identity that made the call (for an assumed role, the role's account: ActionTrail,
# https://www.alibabacloud.com/help/en/actiontrail/user-guide/query-actiontrail-events-by-assuming-a-ram-role).
# A caller may act on another account's resources, so it names the owner only when no owner field does.
CALLER_FIELD = "data.userIdentity.accountId"


def event_account(fields: Mapping[str, Any]) -> str | Ignored:
    """The one account that owns what an event changed, from its fields (name -> value), or why not.

    The owner fields (``OWNER_FIELDS``) that are present must agree; without any, the caller's
    account (``CALLER_FIELD``) stands in. A field absent or empty says nothing; one present that is
    not an account id is itself a disagreement (skipping it could hide another account).
    """
    named: dict[str, str] = {}
    for name in (*OWNER_FIELDS, CALLER_FIELD):
        value = fields.get(name)
        if value is None or value == "" or (name == CALLER_FIELD and named):
            continue
        text = _plain_text(value)
        if text is None or not _ACCOUNT_ID.fullmatch(text):
            return Ignored(f"the event's {name} {_shown(value)} is not an account id: not acted on")
        named[name] = text
    if not named:
        return Ignored("the ActionTrail event names no account: not acted on")
    if len(set(named.values())) > 1:
        shown = ", ".join(f"{name} {value}" for name, value in named.items())
        return Ignored(f"the event's account fields disagree ({shown}): not acted on")
    return next(iter(named.values()))


def from_record(
    record: ActionTrailRecord, *, envelope: CloudEvent | None = None, receiving_account: str | None = None
) -> Parsed:
    """Decide what an ActionTrail record (alone, or in its ``envelope``) asks for.

    ``receiving_account`` (organization mode: the central account, whose bus receives the members'
    routed events): on a routed event (``aliyunoriginalaccountid`` set) an ``aliyunaccountid`` naming
    it may name the receiving bus's account rather than the owner (which one EventBridge sets there
    is not documented), so it is left out; the source account and the record's own fields decide.
    """
    ids = {"event_id": record.eventId, "event_name": record.eventName}
    if record.eventType not in RECORD_EVENT_TYPES:
        return Ignored(
            f"record eventType {_shown(record.eventType)} is not an API call or console operation", **ids
        )
    if record.errorCode not in (None, ""):
        return Ignored(
            f"the {record.eventName} call failed ({_shown(record.errorCode)}): nothing was deleted or locked",
            **ids,
        )
    event = _BY_KEY.get((_service_of(record), record.eventName))
    if event is None:
        return Ignored(
            f"{record.serviceName or record.eventSource or '?'} {record.eventName} is not a supported event",
            **ids,
        )
    if event.condition is not None and (why := event.condition(record.requestParameters or {})):
        return Ignored(why, **ids)
    principal = _principal_of(record, event)
    if isinstance(principal, str):
        return Ignored(principal, **ids)
    identity = record.userIdentity or {}
    published_in = envelope.aliyunaccountid if envelope else None
    if (
        receiving_account is not None
        and envelope is not None
        and envelope.aliyunoriginalaccountid not in (None, "")
        and _plain_text(published_in) == receiving_account
    ):
        published_in = None
    account = event_account(
        {
            "aliyunaccountid": published_in,
            "aliyunoriginalaccountid": envelope.aliyunoriginalaccountid if envelope else None,
            "data.recipientAccountId": record.recipientAccountId,
            CALLER_FIELD: identity.get("accountId"),
        }
    )
    if isinstance(account, Ignored):
        return Ignored(account.reason, **ids)
    return RevocationRequest(
        event_id=record.eventId,
        event_name=record.eventName,
        kind=event.kind,
        principal=principal,
        account_id=account,
    )


def _shown(value: Any) -> str:
    """A short, quoted rendering of an untrusted value for a reason text."""
    return repr(
        value if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__
    )[:80]


def _foreign_envelope(envelope: CloudEvent) -> str | None:
    """Why this CloudEvents envelope is not one the trigger's rule selects, or None."""
    if envelope.source not in EVENT_SOURCES:
        return f"event source {_shown(envelope.source)} is not ActionTrail's RAM/IMS source ({', '.join(EVENT_SOURCES)})"
    if not isinstance(envelope.type, str) or not envelope.type.endswith(ACTED_ON_TYPES):
        return f"event type {_shown(envelope.type)} is not an ActionTrail API call or console operation"
    return None


def eventbridge_pattern() -> dict[str, Any]:
    """The EventBridge rule pattern that selects exactly the events acted on (template.yml's)."""
    return {
        "source": list(EVENT_SOURCES),
        "type": [{"suffix": t} for t in ACTED_ON_TYPES],
        "data": {
            "eventType": list(RECORD_EVENT_TYPES),
            "eventName": sorted({e.event_name for e in SUPPORTED_EVENTS}),
        },
    }


def _wrong_form(form: EventFormat, got: str) -> str:
    return (
        f"{got}, but this function's trigger delivers "
        + (
            "CloudEvents envelopes"
            if form is EventFormat.CLOUDEVENTS
            else "bare ActionTrail records (RawData)"
        )
        + f" (KCGUARD_EVENT_FORMAT={form.value}): not acted on"
    )


def parse_one(
    item: Any, event_format: EventFormat = EventFormat.CLOUDEVENTS, receiving_account: str | None = None
) -> Parsed:
    """Parse one decoded JSON value (an envelope, a record, or a manual invocation).

    An ActionTrail event is accepted only in the form the trigger delivers (``event_format``):
    the other form cannot have come from the trigger, so it is a direct invocation posing as an
    event (a manual invocation has its own form and rules).
    """
    if not isinstance(item, dict):
        return Ignored(f"expected a JSON object, got {type(item).__name__}")
    try:
        if "action" in item:
            manual = ManualRevoke.model_validate(item)
            if not manual.principal.name and not manual.principal.uid:
                return Ignored("manual invocation: principal needs a name or a uid", event_name="manual")
            return RevocationRequest(
                event_id=manual.id,
                event_name="ManualRevoke",
                kind=manual.kind,
                principal=Principal(
                    type=manual.principal.type, name=manual.principal.name, uid=manual.principal.uid
                ),
                dry_run=manual.dryRun,
                manual=True,
                account_id=manual.accountId,
            )
        if "data" in item and ("specversion" in item or "type" in item or "source" in item):
            envelope = CloudEvent.model_validate(item)
            if event_format is not EventFormat.CLOUDEVENTS:
                return Ignored(
                    _wrong_form(event_format, "a CloudEvents envelope"), envelope.id, envelope.data.eventName
                )
            if why := _foreign_envelope(envelope):
                return Ignored(why, envelope.id, envelope.data.eventName)
            parsed = from_record(envelope.data, envelope=envelope, receiving_account=receiving_account)
            if isinstance(parsed, Ignored) and parsed.event_id is None and envelope.id:
                return Ignored(parsed.reason, envelope.id, parsed.event_name)
            return parsed
        if "eventName" in item:
            record = ActionTrailRecord.model_validate(item)
            if event_format is not EventFormat.RAWDATA:
                return Ignored(
                    _wrong_form(event_format, "a bare ActionTrail record"), record.eventId, record.eventName
                )
            return from_record(record)
        if "triggerTime" in item:
            return Ignored("a timer event: the daily summary handles it, not the event function")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        return Ignored(f"malformed event: {where}: {first['msg']}"[:300], _plain_text(item.get("id")))
    return Ignored("not an ActionTrail event, a CloudEvents envelope or a manual invocation")


def parse_event(
    raw: bytes | str | Mapping[str, Any] | list[Any],
    event_format: EventFormat = EventFormat.CLOUDEVENTS,
    receiving_account: str | None = None,
) -> list[Parsed]:
    """Parse the bytes Function Compute passes. A batch gives one entry per item.

    ``receiving_account``: organization mode's central account (``from_record``); None in self mode."""
    decoded: Any = raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw)
        if len(raw) > MAX_EVENT_BYTES:
            return [Ignored(f"event is {len(raw)} bytes, more than the {MAX_EVENT_BYTES} accepted")]
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            return [Ignored("event is not UTF-8 text")]
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):
            return [Ignored("event is not valid JSON")]
    if isinstance(decoded, list):
        if not decoded:
            return [Ignored("empty batch")]
        if len(decoded) > MAX_BATCH:
            return [Ignored(f"batch of {len(decoded)} events, more than the {MAX_BATCH} accepted")]
        return [parse_one(item, event_format, receiving_account) for item in decoded]
    return [parse_one(decoded, event_format, receiving_account)]


def supported_events_markdown() -> str:
    """The table of supported events, as README.md shows it (a test keeps the two in step)."""
    lines = ["| ActionTrail service | Event | Means | Principal from |", "|---|---|---|---|"]
    for e in SUPPORTED_EVENTS:
        means = f"{e.principal_type.value} {e.kind.value}"
        lines.append(f"| {e.service} | `{e.event_name}` | {means} | {e.identified_by} |")
    return "\n".join(lines) + "\n"
