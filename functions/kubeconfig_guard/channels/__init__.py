"""Deliver a message to chat channels, and its JSON document to a generic webhook.

Shared by both functions: the daily summary sends its digest (``summary/digest.py``: the JSON
report to the webhook), the event function its notices (``notices.py``). Nothing here imports the
summary, so the event function loads this package (httpx, tenacity) only when it has a notice to
send, after the revocations.

Every channel is enabled by its own webhook setting and delivered independently (in parallel); a
failure is reported in that channel's ``Delivery`` and never raises, so one broken webhook loses
nothing else. Transient failures (network errors, HTTP 5xx/429, the channel's rate-limit error
codes) are retried with exponential back-off and full jitter. Webhook URLs and signing secrets carry
credentials: an error text only ever names the channel, the HTTP status and the API's own error
code and message, scrubbed of every secret fragment all the same.

Layout:

- ``base.py``: what every channel shares: the message (``Message``), the prepared request
  (``Prepared``), the verdict on one answer (``Verdict``) and on the delivery (``Delivery``),
  size fitting (``fit_message``: lists shrink 20 → 10 → 5 → 3 → 1 → 0 items, then a UTF-8 cut
  ending in ``TRUNCATION_LINE``), secret scrubbing and the retrying POST (``send``).
- one module per channel, holding its dialect (``inert.DINGTALK``, ``FEISHU``, ``WECOM``, ``SLACK``:
  untrusted names never become a link, a mention, a heading or a broken code span), its limits, its
  signing and its answer check:

  ========== ================================== ===================================
  channel    documented limit                   limit used here
  ========== ================================== ===================================
  DingTalk   markdown ``text`` 20,000 bytes     ``dingtalk.TEXT_LIMIT_BYTES`` 18,000
  Feishu     request body 20 KB                 ``feishu.BODY_LIMIT_BYTES`` 18,000
  WeCom      ``markdown.content`` 4,096 bytes   ``wecom.CONTENT_LIMIT_BYTES`` 4,000
  Slack      3,000 chars per section, 50 blocks ``slack.BLOCK_CHARS`` 3,000,
                                                ``slack.MAX_BLOCKS`` 50
  webhook    (the message's JSON document)      none
  ========== ================================== ===================================

- ``registry.py``: ``CHANNELS`` (one line per channel, in delivery order) and ``deliver_all``.

Channels never look inside a message. Adding a channel is one new file and one registry line:
write ``channels/<name>.py`` with a ``prepare(message, settings, clock) -> Prepared`` (render with
``base.fit_message`` in the channel's dialect, list the URL's fragments with ``base.url_secrets``,
pass a ``sign`` if the API signs each request) and an answer ``check(response) -> Verdict`` (start
with ``base.http_verdict``), end it with
``CHANNEL = Channel("<name>", "<name>_webhook", prepare, secret_settings=(...))``, and add
``<name>.CHANNEL`` to ``registry.CHANNELS``. The settings fields themselves live in ``settings.py``.
"""

from __future__ import annotations

from .base import Channel, Delivery, Message, Prepared, Verdict
from .registry import CHANNELS, deliver_all, enabled_channels

__all__ = [
    "CHANNELS",
    "Channel",
    "Delivery",
    "Message",
    "Prepared",
    "Verdict",
    "deliver_all",
    "enabled_channels",
]
