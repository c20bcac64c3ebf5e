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
from collections.abc import Iterable

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


def secret_values() -> Iterable[str]:
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= MIN_SECRET_LENGTH:
            yield value
    yield from _extra_secrets


def redact(text: str) -> str:
    """``text`` without any known secret or webhook token (see the module docstring)."""
    # Longest first: a webhook URL is replaced whole before its token alone would be.
    for secret in sorted(secret_values(), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    if any(trigger in text for trigger in _CHEAP_TRIGGERS):
        text = _QUERY_TOKEN.sub(rf"\1{MASK}", text)
        text = _SLACK_HOOK.sub(rf"\1{MASK}", text)
        text = _FEISHU_HOOK.sub(rf"\1{MASK}", text)
    return text
