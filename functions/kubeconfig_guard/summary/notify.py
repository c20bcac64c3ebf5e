"""The import path of the delivery step (``summary/channels/`` holds the channels themselves)."""

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
