"""DingTalk custom robot: a markdown message, optionally signed ("加签").

Limit: the markdown ``text`` may be 20,000 bytes; we keep to ``TEXT_LIMIT_BYTES``.
Signing: ``timestamp`` (ms) and ``sign`` = base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}"))
as query parameters, fresh for every attempt. Answer: HTTP 200 with ``{"errcode": 0}``; 130101
(sending too fast) and -1 (system busy) are retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx

from ..inert import DINGTALK
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

TEXT_LIMIT_BYTES = 18_000
RETRY_CODES = frozenset({130101, -1})  # 130101: sending too fast; -1: system busy

NAME = "dingtalk"


def signature(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")) (URL-encoded by the caller)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def prepare(message: Message, settings: Settings, clock: Clock) -> Prepared:
    url, secret = setting(settings.dingtalk_webhook), setting(settings.dingtalk_secret)
    text, truncated = fit_message(message, utf8_within(TEXT_LIMIT_BYTES), DINGTALK)
    payload = {"msgtype": "markdown", "markdown": {"title": message.title(), "text": text}}

    def sign(target: str, body: Any) -> tuple[str, Any]:
        timestamp = int(clock() * 1000)
        signed = httpx.URL(target).copy_merge_params(
            {"timestamp": str(timestamp), "sign": signature(secret, timestamp)}
        )
        return str(signed), body

    check = errcode_check(RETRY_CODES)
    return Prepared(
        NAME, url, payload, truncated, check, [*url_secrets(url), secret], sign if secret else None
    )


CHANNEL = Channel(NAME, "dingtalk_webhook", prepare, secret_settings=("dingtalk_secret",))
