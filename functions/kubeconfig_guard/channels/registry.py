"""The channels, in delivery order, and the fan-out that sends to every configured one."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from ..logs import log_fields
from ..settings import Settings
from . import dingtalk, feishu, slack, webhook, wecom
from .base import (
    CONNECT_TIMEOUT,
    MAX_ATTEMPTS,
    MAX_ERROR_CHARS,
    REQUEST_TIMEOUT,
    RETRY_WAIT_MAX,
    Channel,
    Clock,
    Delivery,
    Message,
    log,
    scrub,
    send,
    setting,
    transport_error,
    url_secrets,
)

CHANNELS: tuple[Channel, ...] = (
    dingtalk.CHANNEL,
    feishu.CHANNEL,
    wecom.CHANNEL,
    slack.CHANNEL,
    webhook.CHANNEL,
)


def all_secrets(settings: Settings) -> list[str]:
    """Every secret fragment of every channel's settings (for an error no channel got to prepare)."""
    out: list[str] = []
    for channel in CHANNELS:
        out += url_secrets(setting(getattr(settings, channel.url_setting)))
        out += [setting(getattr(settings, name)) for name in channel.secret_settings]
    return out


def enabled_channels(settings: Settings) -> list[Channel]:
    """The channels whose webhook setting is set, in delivery order."""
    return [channel for channel in CHANNELS if setting(getattr(settings, channel.url_setting))]


async def _deliver(
    client: httpx.AsyncClient,
    channel: Channel,
    message: Message,
    settings: Settings,
    clock: Clock,
    max_attempts: int,
    retry_wait_max: float,
) -> Delivery:
    try:
        prepared = channel.prepare(message, settings, clock)
        delivery = await send(client, prepared, max_attempts=max_attempts, retry_wait_max=retry_wait_max)
    except Exception as exc:  # a bug in one channel must not cost the others their message
        delivery = Delivery(
            channel=channel.name,
            ok=False,
            error=scrub(f"{channel.name}: {transport_error(exc)}", all_secrets(settings))[:MAX_ERROR_CHARS],
        )
    log_fields(
        log,
        f"{message.kind} delivered" if delivery.ok else f"{message.kind} delivery failed",
        logging.INFO if delivery.ok else logging.WARNING,
        **delivery.model_dump(mode="json"),
    )
    return delivery


async def deliver_all(
    message: Message,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = time.time,
    max_attempts: int = MAX_ATTEMPTS,
    retry_wait_max: float = RETRY_WAIT_MAX,
) -> list[Delivery]:
    """Send ``message`` to every configured channel (its JSON document to the generic webhook).

    Returns one ``Delivery`` per enabled channel, in the registry's order; never raises.
    """
    enabled = enabled_channels(settings)
    if not enabled:
        return []
    timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False) as client:
        return list(
            await asyncio.gather(
                *(
                    _deliver(client, channel, message, settings, clock, max_attempts, retry_wait_max)
                    for channel in enabled
                )
            )
        )
