"""Structured JSON log lines, one per action, with secrets redacted.

Function Compute ships stdout/stderr to Log Service; each line is a JSON object so
it can be queried by field. Known secret values (access key secret, STS token,
webhook URLs and signing secrets) are replaced by ``***`` wherever they appear.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from .results import Action

SECRET_ENV_VARS = (
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABACLOUD_ACCESS_KEY_SECRET",
    "ALIBABACLOUD_SECURITY_TOKEN",
    "KCGUARD_DINGTALK_WEBHOOK",
    "KCGUARD_DINGTALK_SECRET",
    "KCGUARD_FEISHU_WEBHOOK",
    "KCGUARD_FEISHU_SECRET",
    "KCGUARD_WECOM_WEBHOOK",
    "KCGUARD_SLACK_WEBHOOK",
    "KCGUARD_WEBHOOK_URL",
)

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact this value from every log line from now on (e.g. STS credentials from the FC context)."""
    if value and len(value) >= 6:
        _extra_secrets.add(value)


def secret_values() -> Iterable[str]:
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            yield value
    yield from _extra_secrets


def redact(text: str) -> str:
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, "***")
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


def configure(level: str = "INFO") -> None:
    """JSON lines on stderr for the ``kubeconfig_guard`` loggers (idempotent)."""
    root = logging.getLogger("kubeconfig_guard")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False
    # httpx logs every request URL at INFO; webhook URLs carry tokens and Function Compute's
    # runtime ships the root logger at INFO. Only its warnings get through.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)


def log_fields(logger: logging.Logger, message: str, level: int = logging.INFO, /, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})


def log_action(logger: logging.Logger, action: Action, context: dict[str, object] | None = None) -> None:
    level = logging.WARNING if action.status.value == "failed" else logging.INFO
    log_fields(
        logger,
        f"kubeconfig {action.status.value}",
        level,
        **(context or {}),
        **action.model_dump(mode="json"),
    )
