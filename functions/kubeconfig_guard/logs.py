"""Log lines, one per action, with secrets redacted: JSON for Log Service, text for a person.

Two formats for the ``kubeconfig_guard`` loggers, on stderr:

* ``json`` (Function Compute, pipes, ``--log-format json``): one JSON object per line,
  queried by field in Log Service. A line is one physical line for any splitter: the
  characters ``json.dumps`` leaves raw (U+2028/U+2029, NEL, C1 controls, bidi and
  zero-width characters, lone surrogates) are escaped (``inert.json_line``), so values
  round-trip exactly.
* ``text`` (``kcguard`` on a terminal): ``message  key=value ...`` through rich's log
  handler (time, level, colour) when rich is installed (the ``cli`` extra; imported only
  then), plain otherwise. Untrusted values show their control and format characters
  escaped (``\\u202e``).

``auto`` (the default) picks ``json`` inside Function Compute (``FC_FUNCTION_NAME`` and
friends are set) or when stderr is not a terminal, else ``text``. A format chosen
explicitly (``configure(level, fmt="text")``, the CLI's ``--log-format``) sticks: later
``configure(level)`` calls (every handler invocation makes one) only change the level.

Every line goes through the one redactor, ``redaction.redact`` (import it from there; this module
does not re-export it).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, Literal

from .inert import json_line, visible
from .redaction import redact
from .results import Action, ActionStatus

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure",
    "log_action",
    "log_fields",
    "resolve_format",
]

LogFormat = Literal["auto", "text", "json"]
LOG_FORMATS: tuple[str, ...] = ("auto", "text", "json")
# Set by Function Compute in every instance (FC 3.0 and 2.0 names).
FC_ENV_VARS = ("FC_FUNCTION_NAME", "FC_INSTANCE_ID", "FC_FUNC_CODE_PATH")

LEVEL_ENV_VAR = "KCGUARD_LOG_LEVEL"

_chosen: str | None = None  # an explicit "text" or "json" (the CLI), kept across configure() calls


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
        return json_line(redact(json.dumps(entry, default=str, ensure_ascii=False)))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return visible(text)


class TextFormatter(logging.Formatter):
    """``message  key=value ...`` on one line; empty fields left out. ``prefix`` adds time and level."""

    def __init__(self, prefix: bool = True) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        parts = [_shown(record.getMessage())]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts += [
                f"{_shown(k)}={_shown(v)}" for k, v in fields.items() if v is not None and v != "" and v != {}
            ]
        if record.exc_info and record.exc_info[0] is not None:
            parts.append(f"error={_shown(f'{record.exc_info[0].__name__}: {record.exc_info[1]}')}")
        line = "  ".join(parts)
        if self.prefix:
            line = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {line}"
        return line


def resolve_format(fmt: str = "auto") -> str:
    """``text`` or ``json`` for ``fmt`` (``auto``: json in Function Compute or without a terminal)."""
    if fmt in ("text", "json"):
        return fmt
    if fmt != "auto":
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    if any(os.environ.get(name) for name in FC_ENV_VARS):
        return "json"
    try:
        return "text" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):  # no stderr, or a closed one
        return "json"


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The plain handler of either format (a marker class: ``configure`` replaces only its own)."""

    kcguard_format = "json"


def _text_handler(console: Any = None) -> logging.Handler:
    try:
        from rich.console import Console
        from rich.highlighter import NullHighlighter
        from rich.logging import RichHandler
    except ImportError:  # the deployed package has no rich: plain text lines
        handler: logging.Handler = _OurHandler(sys.stderr)
        handler.setFormatter(TextFormatter())
    else:
        handler = RichHandler(
            console=console if console is not None else Console(stderr=True),
            show_path=False,
            markup=False,  # names are untrusted: never console markup
            highlighter=NullHighlighter(),
            rich_tracebacks=False,
            log_time_format="%H:%M:%S",
        )
        handler.setFormatter(TextFormatter(prefix=False))
    handler.kcguard_format = "text"  # type: ignore[attr-defined]
    return handler


def _json_handler() -> logging.Handler:
    handler = _OurHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def configure(level: str = "INFO", fmt: str | None = None, *, console: Any = None) -> None:
    """Log lines on stderr for the ``kubeconfig_guard`` loggers (idempotent).

    ``fmt`` (``auto``, ``text``, ``json``) chooses the format for this and every later call;
    without it, an earlier explicit choice holds, else ``auto`` decides. In ``text``, unless
    ``KCGUARD_LOG_LEVEL`` is set, only warnings and errors are shown (a person at a terminal
    reads the result or the digest; ``KCGUARD_LOG_LEVEL=INFO`` shows a line per action).
    ``console``: the rich console to write text lines with (the CLI's, so that log lines
    and its progress bar share one screen).
    """
    global _chosen
    if fmt is not None:
        resolved = resolve_format(fmt)
        _chosen = resolved if fmt != "auto" else None
    else:
        resolved = _chosen or resolve_format("auto")
    root = logging.getLogger("kubeconfig_guard")
    ours = [h for h in root.handlers if getattr(h, "kcguard_format", None) is not None]
    same = any(h.kcguard_format == resolved for h in ours)  # type: ignore[attr-defined]
    if not same or (console is not None and resolved == "text"):
        for handler in ours:
            root.removeHandler(handler)
        root.addHandler(_text_handler(console) if resolved == "text" else _json_handler())
    root.propagate = False
    # httpx logs every request URL at INFO; webhook URLs carry tokens and Function Compute's
    # runtime ships the root logger at INFO. Only its warnings get through.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else logging.INFO
    if resolved == "text" and not os.environ.get(LEVEL_ENV_VAR):
        numeric = max(numeric, logging.WARNING)
    root.setLevel(numeric)


def current_format() -> str | None:
    """The format of the installed handler (``text``/``json``), or None before ``configure``."""
    for handler in logging.getLogger("kubeconfig_guard").handlers:
        fmt = getattr(handler, "kcguard_format", None)
        if fmt is not None:
            return str(fmt)
    return None


def log_fields(logger: logging.Logger, message: str, level: int = logging.INFO, /, **fields: Any) -> None:
    logger.log(level, message, extra={"fields": fields})


def log_action(logger: logging.Logger, action: Action, context: dict[str, object] | None = None) -> None:
    level = logging.WARNING if action.status is ActionStatus.FAILED else logging.INFO
    fields = action.model_dump(mode="json")
    if fields.get("cloud_account_id") is None:  # the context's account (organization mode), if any
        fields.pop("cloud_account_id", None)
    log_fields(logger, f"kubeconfig {action.status.value}", level, **(context or {}), **fields)
