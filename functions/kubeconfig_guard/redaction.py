"""The one redactor: ``redact(text)`` removes every secret kubeconfig-guard knows of.

Used by the log formatters (JSON and terminal), the chat digests and the HTML report
(through ``inert``), the summary's delivery and storage errors, and the handlers'
exception messages. Import it as ``from kubeconfig_guard.redaction import redact``
(``kubeconfig_guard.logs.redact`` is the same function).

What is scrubbed, each replaced by ``***``:

* the values of the secret environment variables (``SECRET_ENV_VARS``: access key
  secret, STS token, webhook URLs and signing secrets), and values registered at run
  time with ``register_secret`` (the STS credentials of the Function Compute context);
* anything that looks like a webhook token in a URL, configured or not: the value of
  a query parameter named ``access_token``, ``key``, ``token``, ``sign``, ``signature``,
  ``secret``, ``security-token``/``securitytoken`` (DingTalk, WeCom, signed URLs), the
  token path of a Slack incoming webhook (``hooks.slack.com/services/T…/B…/…``) and of a
  Feishu/Lark bot (``/open-apis/bot/v2/hook/…``).

Values shorter than 6 characters are not treated as secrets (they would blank out
ordinary words).
"""

from __future__ import annotations

import os
import re
from typing import Any

SECRET_ENV_VARS = (
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABACLOUD_ACCESS_KEY_SECRET",
    "ALIBABACLOUD_SECURITY_TOKEN",
    "KCGUARD_DINGTALK_WEBHOOK",
    "KCGUARD_DINGTALK_SECRET",
    "KCGUARD_FEISHU_WEBHOOK",
    "KCGUARD_FEISHU_SECRET",
    "KCGUARD_WECOM_WEBHOOK",
    "KCGUARD_SLACK_WEBHOOK",
    "KCGUARD_WEBHOOK_URL",
)
MIN_SECRET_LENGTH = 6
MASK = "***"

# A token-carrying query parameter: its value runs to the next separator, quote or space.
_QUERY_TOKEN = re.compile(
    r"(?i)([?&;](?:access_token|access-token|key|token|sign|signature|secret|security-token|securitytoken"
    r"|x-acs-security-token)=)[^&#;\s\"'<>\\]+"
)
# Slack incoming webhook and Feishu/Lark bot webhook paths: the last segments are the token.
_SLACK_HOOK = re.compile(r"(?i)(/services/)T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")
_FEISHU_HOOK = re.compile(r"(?i)(/open-apis/bot/v2/hook/)[A-Za-z0-9_-]+")
_CHEAP_TRIGGERS = ("=", "/services/", "/hook/")

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this value from every output from now on (e.g. STS credentials from the FC context)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _extra_secrets.add(value)


def _env_reader() -> tuple[dict[Any, Any], list[Any], Any] | None:
    """CPython's ``os.environ`` store, its keys for ``SECRET_ENV_VARS`` and its value decoder.

    ``redact`` runs for every log line and every rendered value: eleven ``os.environ.get``
    calls cost ~60 µs, eleven lookups in the underlying dict ~1 µs. Read live, so a changed
    environment is seen at once; any other Python falls back to ``os.environ.get``.
    """
    try:
        data = os.environ._data  # type: ignore[attr-defined]
        keys = [os.environ.encodekey(name) for name in SECRET_ENV_VARS]
        decode = os.environ.decodevalue
    except AttributeError:  # pragma: no cover - not CPython
        return None
    return (data, keys, decode) if isinstance(data, dict) else None


_ENV = _env_reader()


def secret_values() -> list[str]:
    """Every secret value known now, longest first."""
    if _ENV is not None:
        data, keys, decode = _ENV
        env = [decode(v) for v in [data.get(key) for key in keys] if v is not None]
    else:  # pragma: no cover - not CPython
        env = [v for v in (os.environ.get(name) for name in SECRET_ENV_VARS) if v is not None]
    found = [value for value in env if len(value) >= MIN_SECRET_LENGTH]
    if _extra_secrets:
        found += _extra_secrets
    if len(found) > 1:
        found.sort(key=len, reverse=True)  # a webhook URL is replaced whole before its token alone
    return found


def redact(text: str) -> str:
    """``text`` without any known secret or webhook token (see the module docstring)."""
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    if any(trigger in text for trigger in _CHEAP_TRIGGERS):
        text = _QUERY_TOKEN.sub(rf"\1{MASK}", text)
        text = _SLACK_HOOK.sub(rf"\1{MASK}", text)
        text = _FEISHU_HOOK.sub(rf"\1{MASK}", text)
    return text
