"""Where API credentials come from.

1. The Function Compute context, when it carries them (python3.10 runtime:
   ``context.credentials`` with the function role's STS token).
2. Otherwise the ``alibabacloud-credentials`` default chain (environment variables,
   CLI profile, OIDC, ECS RAM role, credentials URI); its providers cache and
   refresh STS credentials before they expire, so long runs keep working. Its first
   source, the environment (python3.12 runtime), is read without importing the library.

Secrets are ``SecretStr``: they print as ``**********``. And every ``Credentials`` object,
whatever built it (the FC context, the default chain's sources, a refreshed STS token, the
environment, a future provider), registers its access key secret and security token with the
redactor when it is made (``Credentials.register``): no provider can forget to. The access key
id is not a secret and stays readable (it names the key in an audit).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import SecretStr

from .errors import CredentialsError
from .redaction import register_secret

DEMO_ACCESS_KEY_ID = "kcguard-demo-access-key-id"
DEMO_ACCESS_KEY_SECRET = "kcguard-demo-access-key-secret"  # noqa: S105 - the fake's documented demo secret


# The access key id and the security token travel in request headers (``Authorization``,
# ``x-acs-security-token``): visible ASCII only, so that no value (an STS answer, the environment, a
# context) can add a header or split a request. Real ones are letters, digits and ``.+/=_-``.
HEADER_SAFE = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: SecretStr
    security_token: SecretStr | None = None

    def __post_init__(self) -> None:
        self.register()  # first: even credentials refused below never reach an output
        if not HEADER_SAFE.fullmatch(self.access_key_id):
            raise CredentialsError(
                "the access key id holds a space, a line break or another character no HTTP header may carry"
            )
        if self.security_token is not None and not HEADER_SAFE.fullmatch(
            self.security_token.get_secret_value()
        ):
            raise CredentialsError(
                "the security token holds a space, a line break or another character no HTTP header may carry"
            )

    def register(self) -> None:
        """Redact the access key secret and the security token from every output from now on."""
        register_secret(self.access_key_secret.get_secret_value())
        if self.security_token is not None:
            register_secret(self.security_token.get_secret_value())

    def __repr__(self) -> str:
        return f"Credentials(access_key_id={self.access_key_id!r}, secret=**********)"


class CredentialsProvider(Protocol):
    async def get(self) -> Credentials: ...


class StaticCredentials:
    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials

    async def get(self) -> Credentials:
        return self._credentials


ENVIRONMENT_KEYS = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
)


def chain_environment_credentials() -> Credentials | None:
    """The default chain's first source, read as the chain reads it: the ``ALIBABA_CLOUD_ACCESS_KEY_*``
    variables when the id and the secret are both non-empty, with ``ALIBABA_CLOUD_SECURITY_TOKEN``
    if set (alibabacloud-credentials ``provider/env.py``, first in ``provider/default.py``)."""
    key_id, secret, token = (os.environ.get(name) for name in ENVIRONMENT_KEYS)
    if not key_id or not secret:
        return None
    return Credentials(key_id, SecretStr(secret), SecretStr(token) if token else None)


class DefaultChainCredentials:
    """The ``alibabacloud-credentials`` default chain, imported only when first used.

    Its first source, the environment, is read here without the library: that is what Function
    Compute's python3.12 runtime gives the function role's STS token in (its context carries
    none), and the library (its import pulls in Tea, aiohttp, requests and APScheduler) made the
    first event's CPU 584 instead of 297 ms, its cold start 1.25 instead of 0.69 s at 0.5 vCPU
    (BENCHMARKS.md, "Issue 19, round 4"). The chain reads the environment once, when imported,
    and then always answers from it; so do these credentials, made once. Without them the
    library's chain runs (CLI profile, OIDC, ECS RAM role, credentials URI), as before.
    """

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._environment: Credentials | None = None
        self._environment_read = False

    async def get(self) -> Credentials:
        if not self._environment_read:
            self._environment, self._environment_read = chain_environment_credentials(), True
        if self._environment is not None:
            return self._environment
        async with self._lock:
            if self._client is None:
                try:
                    from alibabacloud_credentials.client import Client

                    self._client = Client()
                except Exception as exc:  # the chain raises when it finds nothing
                    raise CredentialsError(
                        f"no credentials found by the default chain ({type(exc).__name__})"
                    ) from None
        try:
            model = await self._client.get_credential_async()
        except Exception as exc:
            raise CredentialsError(f"could not obtain credentials ({type(exc).__name__})") from None
        token = getattr(model, "security_token", None)
        return Credentials(
            access_key_id=model.access_key_id,
            access_key_secret=SecretStr(model.access_key_secret),
            security_token=SecretStr(token) if token else None,
        )


def from_fc_context(context: object) -> Credentials | None:
    """The function role's STS credentials from a Function Compute context, if it has them."""
    creds = getattr(context, "credentials", None)
    key_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
    secret = getattr(creds, "access_key_secret", None) or getattr(creds, "accessKeySecret", None)
    token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
    if not key_id or not secret:
        return None
    try:
        return Credentials(str(key_id), SecretStr(str(secret)), SecretStr(str(token)) if token else None)
    except CredentialsError as exc:  # never sent; the default chain is asked instead
        logging.getLogger("kubeconfig_guard.credentials").warning(
            "the context's credentials are ignored: %s", exc
        )
        return None


def from_environment_or_demo() -> Credentials:
    """For the fake: the ``ALIBABA_CLOUD_ACCESS_KEY_*`` variables (as the chain reads them), or the
    documented demo pair."""
    return chain_environment_credentials() or Credentials(
        DEMO_ACCESS_KEY_ID, SecretStr(DEMO_ACCESS_KEY_SECRET)
    )
