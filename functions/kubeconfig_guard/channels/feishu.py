"""Feishu / Lark custom bot: an interactive card with one ``lark_md`` block, optionally signed.

Limit: the request body may be 20 KB; we keep to ``BODY_LIMIT_BYTES`` including the signature
fields. Signing: ``timestamp`` (s) and ``sign`` = base64(HMAC-SHA256(key="{timestamp}\\n{secret}",
msg=b"")) in the body, fresh for every attempt. Answer: HTTP 200 with ``{"code": 0}`` (older
answers: ``StatusCode``); 11232 (frequency limited) and 9499 (too many requests) are retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import httpx

from ..inert import FEISHU
from ..settings import Settings
from .base import (
    Channel,
    Clock,
    Message,
    Prepared,
    Verdict,
    fit_message,
    http_verdict,
    json_body,
    json_bytes,
    setting,
    url_secrets,
)

BODY_LIMIT_BYTES = 18_000
RETRY_CODES = frozenset({11232, 9499})  # frequency limited; too many requests

NAME = "feishu"


def signature(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check(response: httpx.Response) -> Verdict:
    if (verdict := http_verdict(response)) is not None:
        return verdict
    body = json_body(response)
    code = body.get("code", body.get("StatusCode"))
    if code == 0:
        return Verdict(True, False, 200)
    message = str(body.get("msg", body.get("StatusMessage", "")))
    retry = isinstance(code, int) and code in RETRY_CODES
    what = f"code {code}" if code is not None else "no code in the answer"
    return Verdict(False, retry, 200, f"HTTP 200 {what}: {message}".rstrip(": "))


def prepare(message: Message, settings: Settings, clock: Clock) -> Prepared:
    url, secret = setting(settings.feishu_webhook), setting(settings.feishu_secret)
    header = {
        "title": {"tag": "plain_text", "content": message.title()},
        "template": "red" if message.needs_attention else "green",
    }

    def card(text: str) -> dict[str, Any]:
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": header,
                "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": text}}],
            },
        }

    # Room for the signature fields added per attempt.
    signature_room = len(json_bytes({"timestamp": "1" * 10, "sign": "x" * 44})) if secret else 0
    text, truncated = fit_message(
        message, lambda t: len(json_bytes(card(t))) + signature_room <= BODY_LIMIT_BYTES, FEISHU
    )

    def sign(target: str, body: Any) -> tuple[str, Any]:
        timestamp = int(clock())
        return target, {"timestamp": str(timestamp), "sign": signature(secret, timestamp), **body}

    return Prepared(
        NAME, url, card(text), truncated, check, [*url_secrets(url), secret], sign if secret else None
    )


CHANNEL = Channel(NAME, "feishu_webhook", prepare, secret_settings=("feishu_secret",))
