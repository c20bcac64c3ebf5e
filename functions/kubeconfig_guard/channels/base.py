"""What every channel shares: the message, the verdict, size fitting, scrubbing, the POST.

A channel module only says how its message looks and how its answer reads (see the package
docstring); everything here is channel-blind, and blind to what is said too:

- ``Message``: what a channel sends, whoever sends it (the daily digest, ``summary/digest.py``;
  an event notice, ``notices.py``): a plain title, a text rendered in any dialect with its lists
  capped, and a JSON document for the generic webhook.
- ``Prepared``: one channel's request, ready to send (URL, payload, answer check, its secrets,
  and an optional ``sign`` that adds a fresh signature to every attempt).
- ``Verdict`` (one answer) and ``Delivery`` (what happened to the message, after all attempts).
- ``fit_message``: the text shrinks its lists 20 → 10 → 5 → 3 → 1 → 0 items until it fits; as a
  last resort the text is cut at a UTF-8 boundary and ends with ``TRUNCATION_LINE``.
- ``scrub``: an error text names the channel, the HTTP status and the API's own code and message,
  with every fragment of the webhook URL and the signing secret replaced, run through the one
  redactor (``redaction.redact``) and put on one line.
- ``send``: the POST, retried (tenacity) on transport errors, HTTP 5xx/408/425/429 and the
  channel's own rate-limit codes, with exponential back-off and full jitter (or ``Retry-After``);
  it never raises.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
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

from ..inert import MARKDOWN, Dialect, one_line
from ..redaction import redact
from ..settings import Settings

log = logging.getLogger("kubeconfig_guard.notify")

ITEM_STEPS = (20, 10, 5, 3, 1, 0)
TRUNCATION_LINE = "... (truncated, see the full report)"

MAX_ATTEMPTS = 4
RETRY_WAIT_MAX = 8.0  # seconds, ceiling of one back-off (full jitter)
RETRY_WAIT_MULTIPLIER = 0.5
REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0

RETRY_STATUS = frozenset({408, 425, 429})
MAX_ANSWER_CHARS = 65_536  # of an error answer kept for scrubbing (secrets are removed before the cut)
MAX_ERROR_CHARS = 300

Clock = Callable[[], float]


class Message(Protocol):
    """What a channel sends. Channels never look inside: they render, fit and post it.

    ``render`` writes the text in a chat dialect, every untrusted value through it (``inert``),
    each list cut to ``max_items`` with "... and N more"; ``longest_list`` says how long the
    longest uncut list is (the text is ``truncated`` when fewer are shown). ``title`` is plain
    text of our own words (no value from the API or an event): a channel escapes it only for its
    own syntax. ``document`` is the JSON the generic webhook receives (names exact).
    """

    @property
    def kind(self) -> str:
        """What the message is, in log lines: ``summary``, ``event notice``."""
        ...

    @property
    def needs_attention(self) -> bool:
        """Something a person must act on (Feishu's red header)."""
        ...

    def title(self) -> str: ...

    def render(self, dialect: Dialect, max_items: int) -> str: ...

    def longest_list(self) -> int: ...

    def document(self) -> Any: ...


class Delivery(BaseModel):
    """What happened to one channel's message."""

    channel: str
    ok: bool
    status_code: int | None = None
    attempts: int = 0
    error: str | None = None
    truncated: bool = False
    bytes: int = 0


@dataclass
class Verdict:
    """One answer, read by the channel's check."""

    ok: bool
    retry: bool
    status_code: int | None
    error: str | None = None
    retry_after: float | None = None


Check = Callable[[httpx.Response], Verdict]
Sign = Callable[[str, Any], tuple[str, Any]]


@dataclass
class Prepared:
    """One channel's request, ready to send (``sign`` adds fresh signatures per attempt)."""

    channel: str
    url: str
    payload: Any
    truncated: bool
    check: Check
    secrets: list[str]
    sign: Sign | None = None


@dataclass(frozen=True)
class Channel:
    """A registry entry: the channel is on when its ``url_setting`` is set."""

    name: str
    url_setting: str  # the Settings field holding the webhook URL
    prepare: Callable[[Message, Settings, Clock], Prepared]
    secret_settings: tuple[str, ...] = ()  # further Settings fields holding secrets (signing keys)


# --- text fitting --------------------------------------------------------------------------------


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


def fit_message(
    message: Message, fits: Callable[[str], bool], dialect: Dialect = MARKDOWN
) -> tuple[str, bool]:
    """The longest text of ``message`` (in the channel's dialect) that ``fits``, and whether it was cut."""
    full = message.longest_list()
    text = ""
    for n in ITEM_STEPS:
        text = message.render(dialect, n)
        if fits(text):
            return text, n < full
    return _hard_cut(text, fits), True


def utf8_within(limit: int) -> Callable[[str], bool]:
    """A ``fits`` for a text limited to ``limit`` bytes of UTF-8."""
    return lambda text: len(text.encode("utf-8")) <= limit


def json_bytes(payload: Any) -> bytes:
    """The payload as it goes on the wire (compact UTF-8 JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- reading answers -----------------------------------------------------------------------------


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}``."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def is_retry_status(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUS


def http_verdict(response: httpx.Response) -> Verdict | None:
    """A verdict from the status alone when it is not a 200, else None."""
    status = response.status_code
    if status == 200:
        return None
    detail = (
        response.text.strip()[:MAX_ANSWER_CHARS]
        if "json" not in response.headers.get("content-type", "")
        else ""
    )
    body = json_body(response)
    code = body.get("errcode", body.get("code"))
    message = body.get("errmsg", body.get("msg", detail))
    error = (
        f"HTTP {status}" + (f" code {code}" if code is not None else "") + (f": {message}" if message else "")
    )
    return Verdict(False, is_retry_status(status), status, error, retry_after(response))


def errcode_check(retry_codes: frozenset[int]) -> Check:
    """The answer check of the APIs that say HTTP 200 with ``{"errcode": 0}`` (DingTalk, WeCom)."""

    def check(response: httpx.Response) -> Verdict:
        if (verdict := http_verdict(response)) is not None:
            return verdict
        body = json_body(response)
        code = body.get("errcode")
        if code == 0:
            return Verdict(True, False, 200)
        message = str(body.get("errmsg", ""))
        retry = isinstance(code, int) and code in retry_codes
        what = f"errcode {code}" if code is not None else "no errcode in the answer"
        return Verdict(False, retry, 200, f"HTTP 200 {what}: {message}".rstrip(": "))

    return check


# --- secrets -------------------------------------------------------------------------------------


def url_secrets(url: str) -> list[str]:
    """The URL and every fragment of it that may carry a token (path segments, query values)."""
    parts = urlsplit(url)
    fragments = [url, f"{parts.scheme}://{parts.netloc}{parts.path}", parts.path, parts.query]
    fragments += [segment for segment in parts.path.split("/") if len(segment) >= 6]
    fragments += [value for _, value in parse_qsl(parts.query)]
    fragments += [pair.partition("=")[2] for pair in parts.query.split("&")]  # as sent (URL-encoded)
    return [f for f in fragments if f and len(f) >= 6 and f != "/"]


def setting(value: SecretStr | None) -> str:
    """A secret setting's value, stripped ("" when unset)."""
    return value.get_secret_value().strip() if value is not None else ""


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` without any of ``secrets`` (longest first), redacted and on one line."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return " ".join(one_line(redact(text)).split())


def transport_error(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- sending -------------------------------------------------------------------------------------


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
            prepared.secrets.extend(url_secrets(url))
            if isinstance(body, dict) and isinstance(body.get("sign"), str):
                prepared.secrets.append(body["sign"])
        content = json_bytes(body)
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
            return Verdict(False, True, None, transport_error(error))
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
        verdict = Verdict(False, False, None, transport_error(exc))
    error = None
    if not verdict.ok:
        detail = verdict.error or "failed"
        error = scrub(f"{prepared.channel}: {detail}", prepared.secrets)[:MAX_ERROR_CHARS]
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
