"""Exceptions, and the one classification of ACK error codes. Messages never carry credentials or webhook URLs.

Every error answer is classified by ``classify`` through ``ERROR_FAMILIES``: one table of code
families (an exact code or a code prefix -> a category), with the public source of each family.
``AckApiError`` reads it for ``not_found``, ``throttled``, ``transient``, ``unauthorized`` and
``bad_parameter``; the executor (``executor.action_for_error``) and the listing paths
(``engine.listing_issue``) read those. Matching ignores case; an exact code beats a prefix, and
a longer prefix a shorter one.

ACK does not publish the code of a ``Force=false`` refusal (recent access, or unreadable access
records; CleanClusterUserPermissions' docs and the official SDK alibabacloud-cs20151215 name
none). So the table is a deny-list: every family of Alibaba Cloud's common client errors is
``failed`` with its code, and only an ACK code outside every family (``UNCLASSIFIED``) may be
taken for that refusal (``deferred``, with the raw code).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from .redaction import redact, redact_cut

# The longest code, message and request id an error keeps (after redaction).
CODE_LIMIT = 100
MESSAGE_LIMIT = 500
REQUEST_ID_LIMIT = 128


class ErrorCategory(str, Enum):
    """What an error code means to kubeconfig-guard."""

    CLUSTER_GONE = "cluster-gone"  # ACK: the cluster does not exist (skipped: nothing left to revoke)
    THROTTLED = "throttled"  # retried with back-off
    SERVER = "server"  # a server error: retried
    TRANSPORT = "transport"  # no answer (kubeconfig-guard's Transport.*): retried
    INVALID_RESPONSE = "invalid-response"  # an answer that fits no documented shape: retried
    LISTING = "listing"  # a listing whose paging does not add up (kubeconfig-guard's Listing.*)
    AUTH = "auth"  # authentication, authorization, credentials, identity: failed, never deferred
    REQUEST = "request"  # the request was refused as malformed (timestamp, version, action, ...): failed
    NOT_ACK = "not-ack"  # an error answer without an ACK error code (a proxy's or gateway's page): failed
    UNCLASSIFIED = "unclassified"  # an ACK code outside every family


@dataclass(frozen=True)
class ErrorFamily:
    name: str
    category: ErrorCategory
    codes: tuple[str, ...] = ()  # exact codes
    prefixes: tuple[str, ...] = ()  # every code starting with one of these
    source: str = ""  # the public sources that name the codes (keys of the list below)


# Sources (public; cited by their key in the table):
# [tf]      aliyun/terraform-provider-alicloud, alicloud/errors.go: `ErrorClusterNotFound =
#           "ErrorClusterNotFound"` (under "// Container"), and `RamEntityNotExist` (any code
#           containing "EntityNotExist").
# [client]  Alibaba Cloud's client error codes, https://help.aliyun.com/document_detail/51132.html
#           (also https://help.aliyun.com/en/polardb/client-error-codes): MissingParameter,
#           InvalidParameter, InvalidAccessKeyId.NotFound, IncompleteSignature, IllegalTimestamp,
#           InvalidOwnerId/InvalidOwnerAccount/InvalidOwner, Throttling, InvalidAction,
#           ActionUnauthorized, UnsupportedHTTPMethod, UnsupportedParameter, Forbidden.RAM,
#           Forbedden.NotSupportRAM (sic), Forbidden.RiskControl, InsufficientBalance.
# [pop]     The OpenAPI (POP) gateway's common client errors,
#           https://help.aliyun.com/en/document_detail/434846.html and
#           https://developer.aliyun.com/ask/278265: InvalidProduct.NotFound, InvalidApi.NotFound,
#           InvalidProtocol.NeedSsl, Missing{ParameterName}, Invalid{ParameterName},
#           InvalidParameter.Format, InvalidAccessKeyId.NotFound/.Inactive,
#           InvalidTimeStamp.Format/.Expired, SignatureNonceUsed, UnsupportedHTTPMethod,
#           InvalidSignatureMethod, SignatureDoesNotMatch, Throttling.User, Throttling.Api.
# [dns]     A product's common error table, https://help.aliyun.com/en/dns/error-code:
#           UnsupportedOperation, NoSuchVersion, Forbidden, SignatureDoesNotMatch,
#           InternalError (500), ServiceUnavailable (503).
# [sts]     STS AssumeRole's common errors, https://www.alibabacloud.com/help/doc-detail/42775.htm:
#           NoPermission, MissingSecurityToken, InvalidAccessKeyId.Inactive.
# [kept]    Codes the previous mapping already failed; no public source found (fail-closed).
# [ours]    kubeconfig-guard's own codes (never sent by ACK).
# [none]    No public source found (the code index, the API docs, the official SDK
#           alibabacloud-cs20151215, ack-ram-tool): the fake ACK's names for the refusals
#           CleanClusterUserPermissions' docs describe ("You cannot revoke the permissions of an
#           Alibaba Cloud account" / "... of the account that you use to call this operation").
#           Kept so the fake's answers read as those refusals; a real refusal under another code
#           falls to the generic path (deferred with Force=false, failed with Force=true), never
#           revoked.
ERROR_FAMILIES: tuple[ErrorFamily, ...] = (
    ErrorFamily(
        "cluster-not-found", ErrorCategory.CLUSTER_GONE, codes=("ErrorClusterNotFound",), source="tf"
    ),
    ErrorFamily("throttling", ErrorCategory.THROTTLED, prefixes=("Throttling",), source="client pop"),
    ErrorFamily("server", ErrorCategory.SERVER, codes=("InternalError", "ServiceUnavailable"), source="dns"),
    # Authentication: the key, the secret or the signature is wrong.
    ErrorFamily(
        "authentication",
        ErrorCategory.AUTH,
        prefixes=("InvalidAccessKeyId", "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignature"),
        source="client pop dns sts",
    ),
    ErrorFamily(
        "token",
        ErrorCategory.AUTH,
        prefixes=("MissingSecurityToken", "InvalidSecurityToken"),
        source="sts; InvalidSecurityToken* kept",
    ),
    # Authorization: the function role lacks an action, or the account may not call the API.
    ErrorFamily(
        "authorization",
        ErrorCategory.AUTH,
        prefixes=("Forbidden", "Forbedden", "NoPermission", "ActionUnauthorized", "InsufficientBalance"),
        source="client dns sts",
    ),
    ErrorFamily(
        "authorization",
        ErrorCategory.AUTH,
        prefixes=("StatusForbidden", "NotAuthorized", "Unauthorized", "AccessDenied"),
        source="kept",
    ),
    ErrorFamily("entity-not-exist", ErrorCategory.AUTH, prefixes=("EntityNotExist",), source="tf"),
    # The request itself: clock, replay, version, action, method, parameters.
    ErrorFamily(
        "timestamp",
        ErrorCategory.REQUEST,
        prefixes=("InvalidTimeStamp", "IllegalTimestamp"),
        source="pop client",
    ),
    ErrorFamily("nonce", ErrorCategory.REQUEST, prefixes=("SignatureNonce",), source="pop"),
    ErrorFamily(
        "version", ErrorCategory.REQUEST, prefixes=("InvalidVersion", "NoSuchVersion"), source="pop dns"
    ),
    ErrorFamily(
        "action",
        ErrorCategory.REQUEST,
        prefixes=("InvalidAction", "InvalidApi", "InvalidProduct", "InvalidProtocol", "UnsupportedOperation"),
        source="client pop dns",
    ),
    ErrorFamily("method", ErrorCategory.REQUEST, prefixes=("UnsupportedHTTPMethod",), source="client pop"),
    # Missing{ParameterName} and Invalid{ParameterName} [pop]: every Missing*/Invalid* code.
    ErrorFamily(
        "parameter",
        ErrorCategory.REQUEST,
        prefixes=("Missing", "Invalid", "Unsupported", "Illegal"),
        source="client pop",
    ),
    # kubeconfig-guard's own codes.
    ErrorFamily(
        "invalid-response", ErrorCategory.INVALID_RESPONSE, prefixes=("InvalidResponse",), source="ours"
    ),
    ErrorFamily("transport", ErrorCategory.TRANSPORT, prefixes=("Transport.",), source="ours"),
    ErrorFamily("listing", ErrorCategory.LISTING, prefixes=("Listing.",), source="ours"),
    # HTTP{status}: an error answer without an ACK error code.
    ErrorFamily("http-status", ErrorCategory.NOT_ACK, prefixes=("HTTP",), source="ours"),
)
# Not here: a code for ACK's refusal to revoke the root account or the caller (the API page says it
# refuses both, and publishes no code). kubeconfig-guard never asks for the root account (plan.py);
# the caller's refusal, under whatever code ACK uses, is an unclassified 4xx: deferred with
# Force=false, failed with Force=true, with the raw code in either case.
UNCLASSIFIED = ErrorFamily("unclassified", ErrorCategory.UNCLASSIFIED)

_EXACT = {code.lower(): family for family in ERROR_FAMILIES for code in family.codes}
# Longest first: the first prefix that matches is the most specific one.
_PREFIXES = sorted(
    ((prefix.lower(), family) for family in ERROR_FAMILIES for prefix in family.prefixes),
    key=lambda item: -len(item[0]),
)


def error_family(code: str) -> ErrorFamily:
    """The family of an error code (``UNCLASSIFIED`` when none fits)."""
    lowered = code.lower()
    exact = _EXACT.get(lowered)
    if exact is not None:
        return exact
    for prefix, family in _PREFIXES:
        if lowered.startswith(prefix):
            return family
    return UNCLASSIFIED


def classify(code: str, status: int) -> ErrorCategory:
    """The category of an error: its code's family, else what the HTTP status says."""
    category = error_family(code).category
    if category is not ErrorCategory.UNCLASSIFIED:
        return category
    if status == 429:
        return ErrorCategory.THROTTLED
    if status in (401, 403):
        return ErrorCategory.AUTH
    if status == 0:
        return ErrorCategory.TRANSPORT
    if status >= 500:
        return ErrorCategory.SERVER
    return ErrorCategory.UNCLASSIFIED


def plain_text(value: object, limit: int) -> str | None:
    """``value`` as one short line of redacted text, or None when it is not a non-empty string.

    Control characters (newlines included) become spaces; secrets are redacted before the text
    is cut to ``limit`` characters, so a secret straddling the cut is never half kept.
    """
    if not isinstance(value, str):
        return None
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in redact(value)).split())
    return redact_cut(text, limit) or None


def _text_or_type(value: object, limit: int) -> str | None:
    if value is None or isinstance(value, str):
        return plain_text(value, limit)
    return f"<{type(value).__name__}>"


class KcguardError(Exception):
    """Base class of kubeconfig-guard's own errors."""


class AckApiError(KcguardError):
    """An error answer of the ACK OpenAPI, an answer that fits no documented shape, or a transport
    failure (status 0). ``code``, ``message`` and ``request_id`` are always short redacted text
    (``str``, ``str`` and ``str | None``), whatever was passed."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        operation: str = "",
    ) -> None:
        self.status = status if isinstance(status, int) and not isinstance(status, bool) else 0
        self.code: str = _text_or_type(code, CODE_LIMIT) or "Unknown"
        self.message: str = _text_or_type(message, MESSAGE_LIMIT) or ""
        self.request_id: str | None = _text_or_type(request_id, REQUEST_ID_LIMIT)
        self.operation: str = _text_or_type(operation, CODE_LIMIT) or ""
        super().__init__(
            f"{self.operation} failed: HTTP {self.status} {self.code}: {self.message} "
            f"(request id {self.request_id})"
        )

    @property
    def family(self) -> ErrorFamily:
        return error_family(self.code)

    @property
    def category(self) -> ErrorCategory:
        return classify(self.code, self.status)

    @property
    def throttled(self) -> bool:
        return self.category is ErrorCategory.THROTTLED

    @property
    def transient(self) -> bool:
        """Worth retrying: throttling, a server error, a transport failure, an answer that fits no
        documented shape, or a 2xx answer carrying an unclassified error code."""
        category = self.category
        if category in (
            ErrorCategory.THROTTLED,
            ErrorCategory.SERVER,
            ErrorCategory.TRANSPORT,
            ErrorCategory.INVALID_RESPONSE,
        ):
            return True
        if self.status == 0 or self.status >= 500:
            return True
        return category is ErrorCategory.UNCLASSIFIED and 200 <= self.status < 300

    @property
    def may_have_landed(self) -> bool:
        """A write whose outcome is unknown: no answer, a server error, throttling, or an answer that
        fits no documented shape. Never a 2xx answer carrying an error code (ACK said no)."""
        if 200 <= self.status < 300:
            return self.category is ErrorCategory.INVALID_RESPONSE
        return self.transient

    @property
    def not_found(self) -> bool:
        """The cluster no longer exists: ACK's own code only (``ErrorClusterNotFound``), never any 404."""
        return self.category is ErrorCategory.CLUSTER_GONE

    @property
    def unauthorized(self) -> bool:
        """Authentication or authorization failed (HTTP 401/403 or such a code)."""
        return self.category is ErrorCategory.AUTH

    @property
    def bad_parameter(self) -> bool:
        """The request was refused as malformed (a common client error other than authentication)."""
        return self.category is ErrorCategory.REQUEST

    def deferrable(self, force: bool) -> bool:
        """May this be ACK's refusal of a ``Force=false`` revocation? Only an unclassified 4xx code."""
        return not force and self.category is ErrorCategory.UNCLASSIFIED and 400 <= self.status < 500


class CredentialsError(KcguardError):
    """No usable credentials were found."""


class RetryableInvocationError(KcguardError):
    """Raised by a handler after finishing what it could, so Function Compute retries the event.

    ``result`` is the result document (data, not text to parse); the message is redacted.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
