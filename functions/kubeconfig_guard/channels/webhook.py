"""A generic webhook: the message's JSON document (names exact, JSON-escaped), no size fitting, no signing.

The daily summary sends its whole JSON report; an event notice, the result documents it is about.

Answer: any 2xx; 5xx, 408, 425 and 429 are retried (honouring ``Retry-After``).
"""

from __future__ import annotations

import httpx

from ..settings import Settings
from .base import (
    Channel,
    Clock,
    Message,
    Prepared,
    Verdict,
    is_retry_status,
    retry_after,
    setting,
    url_secrets,
)

NAME = "webhook"


def check(response: httpx.Response) -> Verdict:
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(True, False, status)
    return Verdict(False, is_retry_status(status), status, f"HTTP {status}", retry_after(response))


def prepare(message: Message, settings: Settings, clock: Clock) -> Prepared:
    url = setting(settings.webhook_url)
    return Prepared(NAME, url, message.document(), False, check, url_secrets(url))


CHANNEL = Channel(NAME, "webhook_url", prepare)
