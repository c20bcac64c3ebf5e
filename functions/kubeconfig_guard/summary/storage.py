"""Optional: keep ``report.json`` and ``report.html`` in an OSS bucket, one folder per day.

Keys: ``{KCGUARD_REPORT_PREFIX}{YYYY-MM-DD}/report.json`` and ``.../report.html``
(the date of ``now`` in UTC, like the report's ``generated_at``). Nothing happens,
and the OSS SDK (the ``oss`` extra: ``alibabacloud-oss-v2``) is not even imported,
unless ``KCGUARD_REPORT_BUCKET`` is set.

Credentials, first found wins: the ``credentials`` argument (the Function Compute
context's STS token); the ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``..._SECRET`` /
``ALIBABA_CLOUD_SECURITY_TOKEN`` variables that Function Compute sets; the OSS
SDK's own ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN``;
the ``alibabacloud-credentials`` default chain. (The SDK's
``EnvironmentVariableCredentialsProvider`` reads only the ``OSS_*`` names, which
Function Compute does not set, hence this order.) The role needs ``oss:PutObject``
on ``acs:oss:*:*:BUCKET/PREFIX*`` (policies/kcguard-optional-report-oss.json).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from pydantic import SecretStr

from ..credentials import Credentials
from ..errors import KcguardError
from ..logs import redact
from ..settings import Settings

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
OSS_ATTEMPTS = 3  # the SDK's own retries (5xx, throttling, network errors)


class StorageError(KcguardError):
    """Storing the report in OSS failed; the message names bucket, key and the OSS error, never a secret."""


def report_keys(settings: Settings, now: datetime) -> tuple[str, str]:
    """The (json, html) object keys for a run at ``now``."""
    prefix = settings.report_prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    when = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    day = when.astimezone(timezone.utc).strftime("%Y-%m-%d")
    return f"{prefix}{day}/report.json", f"{prefix}{day}/report.html"


def _environment_credentials() -> Credentials | None:
    for key_id, secret, token in (
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
        ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"),
    ):
        if os.environ.get(key_id) and os.environ.get(secret):
            session = os.environ.get(token)
            return Credentials(
                os.environ[key_id], SecretStr(os.environ[secret]), SecretStr(session) if session else None
            )
    return None


def _credentials_func(oss: Any, credentials: Credentials | None) -> Any:
    """A function returning the SDK's ``Credentials``, asked by the SDK before each request."""
    fixed = credentials or _environment_credentials()
    if fixed is not None:
        value = oss.Credentials(
            fixed.access_key_id,
            fixed.access_key_secret.get_secret_value(),
            fixed.security_token.get_secret_value() if fixed.security_token else None,
        )
        return lambda: value
    try:
        from alibabacloud_credentials.client import Client as CredentialClient

        chain = CredentialClient()
        chain.get_credential()  # fail here, with a clear message, rather than inside the SDK
    except Exception as exc:  # the chain raises when it finds nothing
        raise StorageError(
            f"no credentials for OSS: none passed, none in ALIBABA_CLOUD_ACCESS_KEY_* or OSS_ACCESS_KEY_*, "
            f"and the default credential chain found none ({type(exc).__name__})"
        ) from None

    def from_chain() -> Any:
        model = chain.get_credential()  # cached by the chain, refreshed before expiry
        return oss.Credentials(model.access_key_id, model.access_key_secret, model.security_token or None)

    return from_chain


def _describe(exc: BaseException, secrets: list[str]) -> str:
    """The OSS error code and message (or the network error) of an SDK exception, without secrets."""
    inner: BaseException = exc
    while hasattr(inner, "unwrap") and callable(inner.unwrap) and inner.unwrap() is not None:
        nested = inner.unwrap()
        if nested is inner or not isinstance(nested, BaseException):
            break
        inner = nested
    status = getattr(inner, "status_code", None)
    code = getattr(inner, "code", None)
    if status is not None and code is not None:  # ServiceError
        message = getattr(inner, "message", "") or ""
        request_id = getattr(inner, "request_id", "") or ""
        text = f"HTTP {status} {code}: {message}" + (f" (request id {request_id})" if request_id else "")
    else:
        first_line = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
        text = f"{type(inner).__name__}: {first_line}" if first_line else type(inner).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return " ".join(redact(text).split())[:400]


def store_reports(
    report_json: str,
    report_html: str,
    settings: Settings,
    *,
    now: datetime,
    credentials: Credentials | None = None,
    endpoint: str | None = None,
) -> list[str]:
    """Put report.json and report.html into ``KCGUARD_REPORT_BUCKET``; return the keys written.

    Returns ``[]`` without importing the OSS SDK when no bucket is configured.
    ``endpoint`` overrides the region's public endpoint (``https://oss-{region}.aliyuncs.com``),
    e.g. an internal endpoint or, in tests, a local server. Synchronous (the SDK is):
    call it from a worker thread inside an event loop. Raises ``StorageError``.
    """
    bucket = (settings.report_bucket or "").strip()
    if not bucket:
        return []
    try:
        import alibabacloud_oss_v2 as oss
    except ImportError:
        raise StorageError(
            "KCGUARD_REPORT_BUCKET is set but the OSS SDK is not installed "
            "(pip install 'kubeconfig-guard[oss]', i.e. alibabacloud-oss-v2)"
        ) from None

    region = (settings.report_oss_region or settings.watched_regions()[0]).strip()
    known = [c for c in (credentials, _environment_credentials()) if c is not None]
    secrets = [c.access_key_secret.get_secret_value() for c in known]
    secrets += [c.security_token.get_secret_value() for c in known if c.security_token is not None]
    cfg = oss.config.load_default()
    cfg.region = region
    cfg.credentials_provider = oss.credentials.CredentialsProviderFunc(_credentials_func(oss, credentials))
    cfg.connect_timeout = settings.connect_timeout_seconds
    cfg.readwrite_timeout = max(settings.timeout_seconds, 30.0)
    cfg.retry_max_attempts = OSS_ATTEMPTS
    if endpoint:
        cfg.endpoint = endpoint
    try:
        client = oss.Client(cfg)
    except Exception as exc:
        raise StorageError(f"OSS client for region {region} not created: {_describe(exc, secrets)}") from None

    json_key, html_key = report_keys(settings, now)
    written: list[str] = []
    for key, body, content_type in (
        (json_key, report_json, JSON_CONTENT_TYPE),
        (html_key, report_html, HTML_CONTENT_TYPE),
    ):
        request = oss.PutObjectRequest(
            bucket=bucket, key=key, body=body.encode("utf-8"), content_type=content_type
        )
        try:
            client.put_object(request)
        except Exception as exc:
            done = f" (already stored: {', '.join(written)})" if written else ""
            raise StorageError(
                f"storing oss://{bucket}/{key} ({region}) failed: {_describe(exc, secrets)}{done}"
            ) from None
        written.append(key)
    return written
