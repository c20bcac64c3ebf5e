"""Deliver the daily digest to chat channels, and the JSON report to a generic webhook.

Every channel is enabled by its own webhook setting and delivered independently (in parallel); a
failure is reported in that channel's ``Delivery`` and never raises, so one broken webhook loses
nothing else. Transient failures (network errors, HTTP 5xx/429, the channel's rate-limit error
codes) are retried with exponential back-off and full jitter. Webhook URLs and signing secrets carry
credentials: an error text only ever names the channel, the HTTP status and the API's own error
code and message, scrubbed of every secret fragment all the same.

Layout:

- ``base.py``: what every channel shares: the prepared message (``Prepared``), the verdict on one
  answer (``Verdict``) and on the delivery (``Delivery``), size fitting (``fit_digest``: lists shrink
  20 → 10 → 5 → 3 → 1 → 0 items, then a UTF-8 cut ending in ``TRUNCATION_LINE``), secret scrubbing
  and the retrying POST (``send``).
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
  webhook    (the whole JSON report)            none
  ========== ================================== ===================================

- ``registry.py``: ``CHANNELS`` (one line per channel, in delivery order) and ``deliver_all``.

Adding a channel is one new file and one registry line: write ``channels/<name>.py`` with a
``prepare(report, settings, clock) -> Prepared`` (render with ``base.fit_digest`` in the channel's
dialect, list the URL's fragments with ``base.url_secrets``, pass a ``sign`` if the API signs each
request) and an answer ``check(response) -> Verdict`` (start with ``base.http_verdict``), end it with
``CHANNEL = Channel("<name>", "<name>_webhook", prepare, secret_settings=(...))``, and add
``<name>.CHANNEL`` to ``registry.CHANNELS``. The settings fields themselves live in ``settings.py``.
"""

from __future__ import annotations

from .base import Channel, Delivery, Prepared, Verdict
from .registry import CHANNELS, deliver_all

__all__ = ["CHANNELS", "Channel", "Delivery", "Prepared", "Verdict", "deliver_all"]
