"""WeCom (企业微信) group robot: a markdown message; the key is in the URL, no signing.

Limit: ``markdown.content`` may be 4,096 bytes; we keep to ``CONTENT_LIMIT_BYTES``. Answer: HTTP 200
with ``{"errcode": 0}``; 45009 (API frequency out of limit) and -1 (system busy) are retried.
"""

from __future__ import annotations

from ..inert import WECOM
from ..settings import Settings
from .base import (
    Channel,
    Clock,
    Message,
    Prepared,
    errcode_check,
    fit_message,
    setting,
    url_secrets,
    utf8_within,
)

CONTENT_LIMIT_BYTES = 4_000
RETRY_CODES = frozenset({45009, -1})  # 45009: API frequency out of limit; -1: system busy

NAME = "wecom"


def prepare(message: Message, settings: Settings, clock: Clock) -> Prepared:
    url = setting(settings.wecom_webhook)
    text, truncated = fit_message(message, utf8_within(CONTENT_LIMIT_BYTES), WECOM)
    payload = {"msgtype": "markdown", "markdown": {"content": text}}
    return Prepared(NAME, url, payload, truncated, errcode_check(RETRY_CODES), url_secrets(url))


CHANNEL = Channel(NAME, "wecom_webhook", prepare)
