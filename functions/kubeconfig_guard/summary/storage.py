"""Optional: keep ``report.json`` and ``report.html`` in an OSS bucket, one folder per day, and
the deferral ledger next to them.

Keys: ``{KCGUARD_REPORT_PREFIX}{YYYY-MM-DD}/report.json`` and ``.../report.html`` (the date of
``now`` in UTC, like the report's ``generated_at``), and ``{KCGUARD_REPORT_PREFIX}deferrals.json``
(``summary/deferrals.py``: since when ACK has refused each deferred revocation; read at the start
of a run, written at its end). Nothing happens, and the OSS SDK (the ``oss`` extra:
``alibabacloud-oss-v2``) is not even imported, unless ``KCGUARD_REPORT_BUCKET`` is set.

Credentials, first found wins: the ``credentials`` argument (the Function Compute
context's STS token); the ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``..._SECRET`` /
``ALIBABA_CLOUD_SECURITY_TOKEN`` variables that Function Compute sets; the OSS
SDK's own ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` / ``OSS_SESSION_TOKEN``;
the ``alibabacloud-credentials`` default chain. (The SDK's
``EnvironmentVariableCredentialsProvider`` reads only the ``OSS_*`` names, which
Function Compute does not set, hence this order.) The role needs ``oss:PutObject``
on ``acs:oss:*:*:BUCKET/PREFIX*`` (policies/kcguard-optional-report-oss.json), and
``oss:GetObject`` on ``acs:oss:*:*:BUCKET/PREFIXdeferrals.json`` to read the ledger back.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from pydantic import SecretStr

from ..credentials import Credentials
from ..errors import KcguardError
from ..redaction import redact
from ..settings import Settings

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
OSS_ATTEMPTS = 3  # the SDK's own retries (5xx, throttling, network errors)
LEDGER_NAME = "deferrals.json"
MAX_LEDGER_BYTES = 16 * 1024 * 1024  # a ledger larger than this is not read into memory


class StorageError(KcguardError):
    """Storing the report in OSS failed; the message names bucket, key and the OSS error, never a secret."""


def _prefix(settings: Settings) -> str:
    prefix = settings.report_prefix.strip().lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix


def report_keys(settings: Settings, now: datetime) -> tuple[str, str]:
    """The (json, html) object keys for a run at ``now``."""
    when = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    day = when.astimezone(timezone.utc).strftime("%Y-%m-%d")
    prefix = _prefix(settings)
    return f"{prefix}{day}/report.json", f"{prefix}{day}/report.html"


def ledger_key(settings: Settings) -> str:
    """The object key of the deferral ledger (``{KCGUARD_REPORT_PREFIX}deferrals.json``)."""
    return _prefix(settings) + LEDGER_NAME


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


def _unwrap(exc: BaseException) -> BaseException:
    inner: BaseException = exc
    while hasattr(inner, "unwrap") and callable(inner.unwrap) and inner.unwrap() is not None:
        nested = inner.unwrap()
        if nested is inner or not isinstance(nested, BaseException):
            break
        inner = nested
    return inner


def _describe(exc: BaseException, secrets: list[str]) -> str:
    """The OSS error code and message (or the network error) of an SDK exception, without secrets."""
    inner = _unwrap(exc)
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


def _no_such_key(exc: BaseException) -> bool:
    inner = _unwrap(exc)
    return getattr(inner, "code", None) == "NoSuchKey"


class ReportBucket:
    """``KCGUARD_REPORT_BUCKET`` through the OSS SDK: put and get objects; errors are ``StorageError``."""

    def __init__(
        self, settings: Settings, *, credentials: Credentials | None = None, endpoint: str | None = None
    ) -> None:
        bucket = (settings.report_bucket or "").strip()
        if not bucket:
            raise StorageError("KCGUARD_REPORT_BUCKET is not set")
        try:
            import alibabacloud_oss_v2 as oss
        except ImportError:
            raise StorageError(
                "KCGUARD_REPORT_BUCKET is set but the OSS SDK is not installed "
                "(pip install 'kubeconfig-guard[oss]', i.e. alibabacloud-oss-v2)"
            ) from None
        self._oss = oss
        self.settings = settings
        self.bucket = bucket
        self.region = (settings.report_oss_region or settings.watched_regions()[0]).strip()
        known = [c for c in (credentials, _environment_credentials()) if c is not None]
        self._secrets = [c.access_key_secret.get_secret_value() for c in known]
        self._secrets += [c.security_token.get_secret_value() for c in known if c.security_token is not None]
        cfg = oss.config.load_default()
        cfg.region = self.region
        cfg.credentials_provider = oss.credentials.CredentialsProviderFunc(
            _credentials_func(oss, credentials)
        )
        cfg.connect_timeout = settings.connect_timeout_seconds
        cfg.readwrite_timeout = max(settings.timeout_seconds, 30.0)
        cfg.retry_max_attempts = OSS_ATTEMPTS
        if endpoint:
            cfg.endpoint = endpoint
        try:
            self._client = oss.Client(cfg)
        except Exception as exc:
            raise StorageError(
                f"OSS client for region {self.region} not created: {_describe(exc, self._secrets)}"
            ) from None

    def put(self, key: str, body: bytes, content_type: str) -> None:
        request = self._oss.PutObjectRequest(
            bucket=self.bucket, key=key, body=body, content_type=content_type
        )
        try:
            self._client.put_object(request)
        except Exception as exc:
            raise StorageError(
                f"storing oss://{self.bucket}/{key} ({self.region}) failed: {_describe(exc, self._secrets)}"
            ) from None

    def get(self, key: str, *, max_bytes: int = MAX_LEDGER_BYTES) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        try:
            result = self._client.get_object(self._oss.GetObjectRequest(bucket=self.bucket, key=key))
            size = getattr(result, "content_length", None)
            if isinstance(size, int) and size > max_bytes:
                result.body.close()
                raise StorageError(
                    f"oss://{self.bucket}/{key} is {size} bytes, more than {max_bytes}: not read"
                )
            data: bytes = result.body.read()
            result.body.close()
        except StorageError:
            raise
        except Exception as exc:
            if _no_such_key(exc):
                return None
            raise StorageError(
                f"reading oss://{self.bucket}/{key} ({self.region}) failed: {_describe(exc, self._secrets)}"
            ) from None
        return data


def open_bucket(
    settings: Settings, *, credentials: Credentials | None = None, endpoint: str | None = None
) -> ReportBucket | None:
    """The report bucket, or None (the SDK not imported) when ``KCGUARD_REPORT_BUCKET`` is not set.

    ``endpoint`` overrides the region's public endpoint (``https://oss-{region}.aliyuncs.com``),
    e.g. an internal endpoint or, in tests, a local server. Raises ``StorageError``.
    """
    if not (settings.report_bucket or "").strip():
        return None
    return ReportBucket(settings, credentials=credentials, endpoint=endpoint)


def store_reports(
    report_json: str,
    report_html: str,
    settings: Settings,
    *,
    now: datetime,
    credentials: Credentials | None = None,
    endpoint: str | None = None,
    bucket: ReportBucket | None = None,
) -> list[str]:
    """Put report.json and report.html into ``KCGUARD_REPORT_BUCKET``; return the keys written.

    Returns ``[]`` without importing the OSS SDK when no bucket is configured. ``bucket``: an
    already opened ``ReportBucket`` (otherwise one is opened with ``credentials`` and
    ``endpoint``, see ``open_bucket``). Synchronous (the SDK is): call it from a worker thread
    inside an event loop. Raises ``StorageError``.
    """
    target = bucket or open_bucket(settings, credentials=credentials, endpoint=endpoint)
    if target is None:
        return []
    json_key, html_key = report_keys(settings, now)
    written: list[str] = []
    for key, body, content_type in (
        (json_key, report_json, JSON_CONTENT_TYPE),
        (html_key, report_html, HTML_CONTENT_TYPE),
    ):
        try:
            target.put(key, body.encode("utf-8"), content_type)
        except StorageError as exc:
            done = f" (already stored: {', '.join(written)})" if written else ""
            raise StorageError(f"{exc}{done}") from None
        written.append(key)
    return written
