"""Exceptions. Messages never carry credentials or webhook URLs."""

from __future__ import annotations

from typing import Any

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "Throttling.Tenant",
        "Throttling.Concurrency",
    }
)


def is_throttling_code(code: str | None) -> bool:
    return bool(code) and (code in THROTTLING_CODES or str(code).startswith("Throttling"))


# Codes that say the caller is not authenticated or not authorized: a configuration problem
# (the function role lacks an action, a wrong key), never a refusal about the kubeconfig.
AUTH_CODE_PREFIXES = (
    "Forbidden",
    "NoPermission",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidSecurityToken",
    "IncompleteSignature",
    "StatusForbidden",
    "NotAuthorized",
    "Unauthorized",
)
# Codes that say the request itself is wrong.
PARAMETER_CODE_PREFIXES = ("InvalidParameter", "MissingParameter")


class KcguardError(Exception):
    """Base class of kubeconfig-guard's own errors."""


class AckApiError(KcguardError):
    """An error answer of the ACK OpenAPI, or a transport failure (status 0)."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        operation: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.operation = operation
        super().__init__(f"{operation} failed: HTTP {status} {code}: {message} (request id {request_id})")

    @property
    def throttled(self) -> bool:
        return self.status == 429 or is_throttling_code(self.code)

    @property
    def transient(self) -> bool:
        """Worth retrying: throttling, a server error, or a transport failure."""
        return self.throttled or self.status == 0 or self.status >= 500

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def unauthorized(self) -> bool:
        """Authentication or authorization failed (HTTP 401/403 or such a code)."""
        return self.status in (401, 403) or self.code.startswith(AUTH_CODE_PREFIXES)

    @property
    def bad_parameter(self) -> bool:
        return self.code.startswith(PARAMETER_CODE_PREFIXES)


class CredentialsError(KcguardError):
    """No usable credentials were found."""


class RetryableInvocationError(KcguardError):
    """Raised by a handler after finishing what it could, so Function Compute retries the event.

    ``result`` is the result document (data, not text to parse); the message is redacted.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result
