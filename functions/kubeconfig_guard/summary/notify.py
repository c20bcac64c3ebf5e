"""Deliver the daily digest to chat channels, and the JSON report to a generic webhook.

Every channel is enabled by its own setting and delivered independently (in
parallel); a failure is reported in that channel's ``Delivery`` and never raises,
so one broken webhook loses nothing else. Transient failures (network errors,
HTTP 5xx/429, the channel's rate-limit error codes) are retried with exponential
back-off and full jitter.

Webhook URLs and signing secrets carry credentials: an error text only ever names
the channel, the HTTP status and the API's own error code and message (scrubbed
of every secret fragment all the same).

Size limits (the digest shrinks its lists, 20 → 10 → 5 → 3 → 1 → 0 items, until
the payload fits; as a last resort the text is cut at a UTF-8 boundary and ends
with ``TRUNCATION_LINE``):

========== ================================== ===================================
channel    documented limit                   limit used here
========== ================================== ===================================
DingTalk   markdown ``text`` 20,000 bytes     ``DINGTALK_TEXT_LIMIT_BYTES`` 18,000
Feishu     request body 20 KB                 ``FEISHU_BODY_LIMIT_BYTES`` 18,000
WeCom      ``markdown.content`` 4,096 bytes   ``WECOM_CONTENT_LIMIT_BYTES`` 4,000
Slack      3,000 chars per section, 50 blocks ``SLACK_BLOCK_CHARS`` 3,000,
                                              ``SLACK_MAX_BLOCKS`` 50
========== ================================== ===================================

Names, ids and reasons are untrusted: each channel gets the digest rendered in its own
dialect (``inert.DINGTALK``, ``FEISHU``, ``WECOM``, ``SLACK``), in which they can never
become a link, a mention (``<at id=all>``, ``<@user>``, ``<!channel>``, ``@all``), a
heading or a broken code span; Slack sections are sent with ``verbatim: true``. Error
texts go through the one redactor (``redaction.redact``) plus the channel's own URL
fragments, and are put on one line.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import BaseModel, SecretStr
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)

from ..inert import DINGTALK, FEISHU, MARKDOWN, SLACK, WECOM, Dialect, one_line, slack_escape
from ..logs import log_fields
from ..redaction import redact
from ..settings import Settings
from .markdown import render_markdown
from .report import Report

log = logging.getLogger("kubeconfig_guard.notify")

DINGTALK_TEXT_LIMIT_BYTES = 18_000
FEISHU_BODY_LIMIT_BYTES = 18_000
WECOM_CONTENT_LIMIT_BYTES = 4_000
SLACK_BLOCK_CHARS = 3_000
SLACK_MAX_BLOCKS = 50

ITEM_STEPS = (20, 10, 5, 3, 1, 0)
TRUNCATION_LINE = "... (truncated, see the full report)"

MAX_ATTEMPTS = 4
RETRY_WAIT_MAX = 8.0  # seconds, ceiling of one back-off (full jitter)
RETRY_WAIT_MULTIPLIER = 0.5
REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

DINGTALK_RETRY_CODES = frozenset({130101, -1})  # 130101: sending too fast; -1: system busy
WECOM_RETRY_CODES = frozenset({45009, -1})  # 45009: API frequency out of limit; -1: system busy
FEISHU_RETRY_CODES = frozenset({11232, 9499})  # frequency limited; too many requests
RETRY_STATUS = frozenset({408, 425, 429})
MAX_ANSWER_CHARS = 65_536  # of an error answer kept for scrubbing (secrets are removed before the cut)
MAX_ERROR_CHARS = 300


class Delivery(BaseModel):
    """What happened to one channel's message."""

    channel: str
    ok: bool
    status_code: int | None = None
    attempts: int = 0
    error: str | None = None
    truncated: bool = False
    bytes: int = 0


# --- text fitting --------------------------------------------------------------------------------


def _full_length(report: Report) -> int:
    """The longest list the digest caps with ``max_items``."""
    rec = report.reconciliation
    actions = len(rec.actions) if rec is not None and rec.enabled else 0
    return max(
        report.orphaned.total, report.root.total, report.expiring.total, len(report.skipped_clusters), actions
    )


def cut_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` bytes of UTF-8."""
    return text.encode("utf-8")[: max(0, max_bytes)].decode("utf-8", errors="ignore")


def _hard_cut(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix (whole lines when possible) + ``TRUNCATION_LINE`` that fits."""

    def candidate(n: int) -> str:
        head = cut_utf8(text, n)
        if "\n" in head and n < len(text.encode("utf-8")):
            head = head[: head.rfind("\n")]
        return head.rstrip() + "\n\n" + TRUNCATION_LINE + "\n"

    low, high = 0, len(text.encode("utf-8"))
    while low < high:
        mid = (low + high + 1) // 2
        if fits(candidate(mid)):
            low = mid
        else:
            high = mid - 1
    return candidate(low) if fits(candidate(low)) else cut_utf8(TRUNCATION_LINE, 0)


def fit_digest(
    report: Report,
    report_url: str | None,
    fits: Callable[[str], bool],
    dialect: Dialect = MARKDOWN,
) -> tuple[str, bool]:
    """The longest digest (in the channel's dialect) that ``fits``, and whether it was truncated."""
    full = _full_length(report)
    text = ""
    for n in ITEM_STEPS:
        text = render_markdown(report, max_items=n, report_url=report_url, dialect=dialect)
        if fits(text):
            return text, n < full
    return _hard_cut(text, fits), True


# --- chat dialects -------------------------------------------------------------------------------
# Each channel renders the digest in its own dialect (``inert``): untrusted names can never become
# links, mentions, headings or broken code spans there.


def slack_sections(text: str, limit: int | None = None) -> list[str]:
    """Split mrkdwn into section texts of at most ``limit`` characters, at line ends when possible."""
    limit = limit or SLACK_BLOCK_CHARS
    sections: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                sections.append(current)
                current = ""
            sections.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            sections.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        sections.append(current)
    return [s for s in sections if s.strip()] or [" "]


def _title(report: Report) -> str:
    t = report.totals
    return (
        f"kubeconfig-guard {report.generated_at[:10]}: {t.get('orphaned', 0)} orphaned, "
        f"{t.get('root', 0)} root, {t.get('expiring', 0)} expiring"
    )


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- signing -------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")) (URL-encoded by the caller)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- channels ------------------------------------------------------------------------------------


@dataclass
class Verdict:
    ok: bool
    retry: bool
    status_code: int | None
    error: str | None = None
    retry_after: float | None = None


@dataclass
class Prepared:
    """One channel's request, ready to send (``sign`` adds fresh signatures per attempt)."""

    channel: str
    url: str
    payload: Any
    truncated: bool
    check: Callable[[httpx.Response], Verdict]
    secrets: list[str]
    sign: Callable[[str, Any], tuple[str, Any]] | None = None


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _http_verdict(response: httpx.Response) -> Verdict | None:
    """A verdict from the status alone when it is not a 200, else None."""
    status = response.status_code
    if status == 200:
        return None
    retry = status >= 500 or status in RETRY_STATUS
    detail = (
        response.text.strip()[:MAX_ANSWER_CHARS]
        if "json" not in response.headers.get("content-type", "")
        else ""
    )
    body = _json_body(response)
    code = body.get("errcode", body.get("code"))
    message = body.get("errmsg", body.get("msg", detail))
    error = (
        f"HTTP {status}" + (f" code {code}" if code is not None else "") + (f": {message}" if message else "")
    )
    return Verdict(False, retry, status, error, _retry_after(response))


def _errcode_check(retry_codes: frozenset[int]) -> Callable[[httpx.Response], Verdict]:
    """DingTalk and WeCom: HTTP 200 with ``{"errcode": 0}``."""

    def check(response: httpx.Response) -> Verdict:
        if (verdict := _http_verdict(response)) is not None:
            return verdict
        body = _json_body(response)
        code = body.get("errcode")
        if code == 0:
            return Verdict(True, False, 200)
        message = str(body.get("errmsg", ""))
        retry = isinstance(code, int) and code in retry_codes
        what = f"errcode {code}" if code is not None else "no errcode in the answer"
        return Verdict(False, retry, 200, f"HTTP 200 {what}: {message}".rstrip(": "))

    return check


def _feishu_check(response: httpx.Response) -> Verdict:
    if (verdict := _http_verdict(response)) is not None:
        return verdict
    body = _json_body(response)
    code = body.get("code", body.get("StatusCode"))
    if code == 0:
        return Verdict(True, False, 200)
    message = str(body.get("msg", body.get("StatusMessage", "")))
    retry = isinstance(code, int) and code in FEISHU_RETRY_CODES
    what = f"code {code}" if code is not None else "no code in the answer"
    return Verdict(False, retry, 200, f"HTTP 200 {what}: {message}".rstrip(": "))


def _slack_check(response: httpx.Response) -> Verdict:
    if (verdict := _http_verdict(response)) is not None:
        return verdict
    text = response.text.strip()
    if text == "ok":
        return Verdict(True, False, 200)
    return Verdict(False, False, 200, f"HTTP 200: {text[:MAX_ANSWER_CHARS]}")


def _generic_check(response: httpx.Response) -> Verdict:
    status = response.status_code
    if 200 <= status < 300:
        return Verdict(True, False, status)
    retry = status >= 500 or status in RETRY_STATUS
    return Verdict(False, retry, status, f"HTTP {status}", _retry_after(response))


def _url_secrets(url: str) -> list[str]:
    """The URL and every fragment of it that may carry a token (path segments, query values)."""
    parts = urlsplit(url)
    fragments = [url, f"{parts.scheme}://{parts.netloc}{parts.path}", parts.path, parts.query]
    fragments += [segment for segment in parts.path.split("/") if len(segment) >= 6]
    fragments += [value for _, value in parse_qsl(parts.query)]
    fragments += [pair.partition("=")[2] for pair in parts.query.split("&")]  # as sent (URL-encoded)
    return [f for f in fragments if f and len(f) >= 6 and f != "/"]


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value().strip() if value is not None else ""


def _all_secrets(settings: Settings) -> list[str]:
    out: list[str] = []
    for _, field, _ in CHANNELS:
        out += _url_secrets(_secret(getattr(settings, field)))
    return [*out, _secret(settings.dingtalk_secret), _secret(settings.feishu_secret)]


def prepare_dingtalk(report: Report, settings: Settings, clock: Callable[[], float]) -> Prepared:
    url, secret = _secret(settings.dingtalk_webhook), _secret(settings.dingtalk_secret)
    title = _title(report)
    text, truncated = fit_digest(
        report,
        settings.report_url,
        lambda t: len(t.encode("utf-8")) <= DINGTALK_TEXT_LIMIT_BYTES,
        DINGTALK,
    )
    payload = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

    def sign(target: str, body: Any) -> tuple[str, Any]:
        timestamp = int(clock() * 1000)
        signed = httpx.URL(target).copy_merge_params(
            {"timestamp": str(timestamp), "sign": dingtalk_sign(secret, timestamp)}
        )
        return str(signed), body

    secrets = [*_url_secrets(url), secret]
    check = _errcode_check(DINGTALK_RETRY_CODES)
    return Prepared("dingtalk", url, payload, truncated, check, secrets, sign if secret else None)


def prepare_feishu(report: Report, settings: Settings, clock: Callable[[], float]) -> Prepared:
    url, secret = _secret(settings.feishu_webhook), _secret(settings.feishu_secret)
    header = {
        "title": {"tag": "plain_text", "content": _title(report)},
        "template": "red" if report.needs_attention else "green",
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
    signature_room = len(_json_bytes({"timestamp": "1" * 10, "sign": "x" * 44})) if secret else 0
    text, truncated = fit_digest(
        report,
        settings.report_url,
        lambda t: len(_json_bytes(card(t))) + signature_room <= FEISHU_BODY_LIMIT_BYTES,
        FEISHU,
    )

    def sign(target: str, body: Any) -> tuple[str, Any]:
        timestamp = int(clock())
        return target, {"timestamp": str(timestamp), "sign": feishu_sign(secret, timestamp), **body}

    return Prepared(
        "feishu",
        url,
        card(text),
        truncated,
        _feishu_check,
        [*_url_secrets(url), secret],
        sign if secret else None,
    )


def prepare_wecom(report: Report, settings: Settings, clock: Callable[[], float]) -> Prepared:
    url = _secret(settings.wecom_webhook)
    text, truncated = fit_digest(
        report,
        settings.report_url,
        lambda t: len(t.encode("utf-8")) <= WECOM_CONTENT_LIMIT_BYTES,
        WECOM,
    )
    payload = {"msgtype": "markdown", "markdown": {"content": text}}
    return Prepared("wecom", url, payload, truncated, _errcode_check(WECOM_RETRY_CODES), _url_secrets(url))


def prepare_slack(report: Report, settings: Settings, clock: Callable[[], float]) -> Prepared:
    url = _secret(settings.slack_webhook)
    text, truncated = fit_digest(
        report,
        settings.report_url,
        lambda t: len(slack_sections(t)) <= SLACK_MAX_BLOCKS,
        SLACK,
    )
    # verbatim: Slack does not autolink URLs or parse mentions in the text (our link is explicit).
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": s, "verbatim": True}}
        for s in slack_sections(text)
    ]
    payload = {"text": slack_escape(_title(report)), "blocks": blocks}
    return Prepared("slack", url, payload, truncated, _slack_check, _url_secrets(url))


def prepare_webhook(report: Report, settings: Settings, clock: Callable[[], float]) -> Prepared:
    url = _secret(settings.webhook_url)
    return Prepared("webhook", url, report.model_dump(mode="json"), False, _generic_check, _url_secrets(url))


CHANNELS: tuple[tuple[str, str, Callable[[Report, Settings, Callable[[], float]], Prepared]], ...] = (
    ("dingtalk", "dingtalk_webhook", prepare_dingtalk),
    ("feishu", "feishu_webhook", prepare_feishu),
    ("wecom", "wecom_webhook", prepare_wecom),
    ("slack", "slack_webhook", prepare_slack),
    ("webhook", "webhook_url", prepare_webhook),
)


# --- sending -------------------------------------------------------------------------------------


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(one_line(redact(text)).split())


def _transport_error(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def send(
    client: httpx.AsyncClient,
    prepared: Prepared,
    *,
    max_attempts: int,
    retry_wait_max: float,
) -> Delivery:
    """POST one channel's payload with retries; never raises."""
    attempts = 0
    size = 0
    last: Verdict | None = None
    exponential = wait_random_exponential(multiplier=RETRY_WAIT_MULTIPLIER, max=retry_wait_max)

    def wait(state: RetryCallState) -> float:
        if last is not None and last.retry_after is not None:
            return min(last.retry_after, retry_wait_max)
        return float(exponential(state))

    async def attempt() -> Verdict:
        nonlocal attempts, size, last
        attempts += 1
        last = None
        url, body = prepared.url, prepared.payload
        if prepared.sign is not None:
            url, body = prepared.sign(url, body)
            # A signature is short-lived, but still no business in an error text.
            prepared.secrets.extend(_url_secrets(url))
            if isinstance(body, dict) and isinstance(body.get("sign"), str):
                prepared.secrets.append(body["sign"])
        content = _json_bytes(body)
        size = len(content)
        response = await client.post(
            url, content=content, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        last = prepared.check(response)
        return last

    def give_up(state: RetryCallState) -> Verdict:
        """Out of attempts: the last answer, or the last transport error, as the verdict."""
        if state.outcome is None:  # pragma: no cover - tenacity always sets it
            return Verdict(False, False, None, "no attempt made")
        error = state.outcome.exception()
        if error is not None:
            return Verdict(False, True, None, _transport_error(error))
        result: Verdict = state.outcome.result()
        return result

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max_attempts),
        wait=wait,
        retry=retry_if_exception_type(httpx.TransportError) | retry_if_result(lambda v: bool(v.retry)),
        retry_error_callback=give_up,
    )
    verdict: Verdict
    try:
        verdict = await retrying(attempt)
    except Exception as exc:  # never raise: the report must reach the other channels
        verdict = Verdict(False, False, None, _transport_error(exc))
    error = None
    if not verdict.ok:
        detail = verdict.error or "failed"
        error = _scrub(f"{prepared.channel}: {detail}", prepared.secrets)[:MAX_ERROR_CHARS]
        if attempts > 1:
            error += f" (after {attempts} attempts)"
    return Delivery(
        channel=prepared.channel,
        ok=verdict.ok,
        status_code=verdict.status_code,
        attempts=attempts,
        error=error,
        truncated=prepared.truncated,
        bytes=size,
    )


async def _deliver(
    client: httpx.AsyncClient,
    channel: str,
    build: Callable[[Report, Settings, Callable[[], float]], Prepared],
    report: Report,
    settings: Settings,
    clock: Callable[[], float],
    max_attempts: int,
    retry_wait_max: float,
) -> Delivery:
    try:
        prepared = build(report, settings, clock)
        delivery = await send(client, prepared, max_attempts=max_attempts, retry_wait_max=retry_wait_max)
    except Exception as exc:  # a bug in one channel must not cost the others their message
        delivery = Delivery(
            channel=channel,
            ok=False,
            error=_scrub(f"{channel}: {_transport_error(exc)}", _all_secrets(settings))[:MAX_ERROR_CHARS],
        )
    log_fields(
        log,
        "summary delivered" if delivery.ok else "summary delivery failed",
        logging.INFO if delivery.ok else logging.WARNING,
        **delivery.model_dump(mode="json"),
    )
    return delivery


async def deliver_all(
    report: Report,
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    max_attempts: int = MAX_ATTEMPTS,
    retry_wait_max: float = RETRY_WAIT_MAX,
) -> list[Delivery]:
    """Send the digest to every configured channel (and the JSON report to the generic webhook).

    Returns one ``Delivery`` per enabled channel, in a fixed order; never raises.
    """
    enabled = [(name, build) for name, field, build in CHANNELS if _secret(getattr(settings, field))]
    if not enabled:
        return []
    timeout = httpx.Timeout(REQUEST_TIMEOUT, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False) as client:
        return list(
            await asyncio.gather(
                *(
                    _deliver(client, name, build, report, settings, clock, max_attempts, retry_wait_max)
                    for name, build in enabled
                )
            )
        )
