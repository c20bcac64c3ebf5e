"""The old import path of the delivery step, kept for callers not yet moved (tests/test_inert_text.py).

The chat channels live in ``summary/channels/`` (see its docstring); new code imports from there.
"""

from __future__ import annotations

from .channels import Delivery, deliver_all
from .channels.dingtalk import prepare as prepare_dingtalk
from .channels.feishu import prepare as prepare_feishu
from .channels.slack import prepare as prepare_slack
from .channels.wecom import prepare as prepare_wecom

__all__ = [
    "Delivery",
    "deliver_all",
    "prepare_dingtalk",
    "prepare_feishu",
    "prepare_slack",
    "prepare_wecom",
]
