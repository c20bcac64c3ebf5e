"""Slack incoming webhook: mrkdwn section blocks (``verbatim``), the title as the fallback text.

Limits: 3,000 characters per section (``BLOCK_CHARS``), 50 blocks a message (``MAX_BLOCKS``). The
token is in the URL path, no signing. Answer: HTTP 200 with the body ``ok``; any other 200 body is an
error that is not retried (it names a malformed payload or a revoked hook).
"""

from __future__ import annotations

import httpx

from ..inert import SLACK, slack_escape
from ..settings import Settings
from .base import (
    MAX_ANSWER_CHARS,
    Channel,
    Clock,
    Message,
    Prepared,
    Verdict,
    fit_message,
    http_verdict,
    setting,
    url_secrets,
)

BLOCK_CHARS = 3_000
MAX_BLOCKS = 50

NAME = "slack"


def sections(text: str, limit: int | None = None) -> list[str]:
    """Split mrkdwn into section texts of at most ``limit`` characters, at line ends when possible."""
    limit = limit or BLOCK_CHARS
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                out.append(current)
                current = ""
            out.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            out.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        out.append(current)
    return [s for s in out if s.strip()] or [" "]


def check(response: httpx.Response) -> Verdict:
    if (verdict := http_verdict(response)) is not None:
        return verdict
    text = response.text.strip()
    if text == "ok":
        return Verdict(True, False, 200)
    return Verdict(False, False, 200, f"HTTP 200: {text[:MAX_ANSWER_CHARS]}")


def prepare(message: Message, settings: Settings, clock: Clock) -> Prepared:
    url = setting(settings.slack_webhook)
    text, truncated = fit_message(message, lambda t: len(sections(t)) <= MAX_BLOCKS, SLACK)
    # verbatim: Slack does not autolink URLs or parse mentions in the text (our link is explicit).
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": s, "verbatim": True}} for s in sections(text)
    ]
    payload = {"text": slack_escape(message.title()), "blocks": blocks}
    return Prepared(NAME, url, payload, truncated, check, url_secrets(url))


CHANNEL = Channel(NAME, "slack_webhook", prepare)
