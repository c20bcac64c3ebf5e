"""A loopback chat robot for the channel tests: a real HTTP server that records every request.

One server plays every channel, told apart by path (DingTalk ``/robot/send``, Feishu
``/open-apis/...``, WeCom ``/cgi-bin/webhook/send``, Slack ``/services/...``, the generic webhook
``/hook/...``); each answers as its API documents success unless a test scripts other answers.
Used by tests/test_notify.py (the daily digest) and tests/test_event_notices.py (event notices).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from support.receivers import local_http_server

DINGTALK_SECRET = "SEC0123456789abcdefdingtalk"
FEISHU_SECRET = "feishuSecret0123456789"
REPORT_URL = "https://reports.example.com/kubeconfig-guard/2026-11-26/report.html"

# The request path of each channel on the receiver (``urls``).
PATHS = {
    "dingtalk": "/robot/send",
    "feishu": "/open-apis/bot/v2/hook/5a1e2c3d-feishu-hook-token",
    "wecom": "/cgi-bin/webhook/send",
    "slack": "/services/T0001/B0002/slackToken123456",
    "webhook": "/hook/generic-token-42",
}
# Every secret fragment of ``urls`` and the signing secrets: never in an error text or a log line.
SECRETS = ("tok123dingtalk", "5a1e2c3d-feishu-hook-token", "wecom-key-693a91f6", "slackToken123456",
           "generic-token-42", DINGTALK_SECRET, FEISHU_SECRET)  # fmt: skip
CHANNEL_ENV = ("DINGTALK_WEBHOOK", "DINGTALK_SECRET", "FEISHU_WEBHOOK", "FEISHU_SECRET", "WECOM_WEBHOOK",
               "SLACK_WEBHOOK", "WEBHOOK_URL", "REPORT_URL")  # fmt: skip


@dataclass
class Captured:
    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Response = tuple[int, Any, dict[str, str]]


@dataclass
class Receiver:
    """A stdlib HTTP server recording every request; answers are scripted per path."""

    url: str = ""
    requests: list[Captured] = field(default_factory=list)
    scripts: dict[str, list[Response]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, path: str, *responses: Response) -> None:
        """Answer the next requests to ``path`` with ``responses`` (status, body, headers); the
        header ``X-Test-Delay`` (seconds) is not sent: the answer waits that long."""
        with self.lock:
            self.scripts.setdefault(path, []).extend(responses)

    def on(self, path: str) -> list[Captured]:
        return [r for r in self.requests if r.path == path]

    def answer(self, path: str) -> Response:
        with self.lock:
            queue = self.scripts.get(path)
            if queue:
                return queue.pop(0)
        if path.startswith("/services/"):
            return 200, "ok", {"Content-Type": "text/html"}
        if path.startswith("/open-apis/"):
            return (
                200,
                {"StatusCode": 0, "StatusMessage": "success", "code": 0, "msg": "success", "data": {}},
                {},
            )
        if path.startswith("/hook/"):
            return 202, "", {}
        return 200, {"errcode": 0, "errmsg": "ok"}, {}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            captured = Captured(
                method=self.command,
                path=parts.path,
                raw_query=parts.query,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            with receiver.lock:
                receiver.requests.append(captured)
            status, payload, headers = receiver.answer(parts.path)
            headers = dict(headers)
            time.sleep(float(headers.pop("X-Test-Delay", 0)))  # a robot slow to answer
            data = payload if isinstance(payload, bytes) else (
                payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            )  # fmt: skip
            if "Content-Type" not in headers:
                headers = {
                    **headers,
                    "Content-Type": "application/json" if not isinstance(payload, str) else "text/plain",
                }
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a late robot)
                self.close_connection = True

        do_POST = _serve
        do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver serving on 127.0.0.1 for the duration of the block."""
    rec = Receiver()
    with local_http_server(_handler(rec)) as url:
        rec.url = url
        yield rec


def urls(base: str) -> dict[str, str]:
    """Each channel's webhook setting, pointed at the receiver at ``base``."""
    return {
        "dingtalk_webhook": f"{base}/robot/send?access_token=tok123dingtalk",
        "feishu_webhook": f"{base}{PATHS['feishu']}",
        "wecom_webhook": f"{base}/cgi-bin/webhook/send?key=wecom-key-693a91f6",
        "slack_webhook": f"{base}{PATHS['slack']}",
        "webhook_url": f"{base}{PATHS['webhook']}",
    }


def channel_settings(base: str, **overrides: Any) -> dict[str, Any]:
    """Every channel on, signed, pointed at ``base`` (Settings keyword arguments)."""
    values: dict[str, Any] = {
        **urls(base),
        "dingtalk_secret": DINGTALK_SECRET,
        "feishu_secret": FEISHU_SECRET,
        "report_url": REPORT_URL,
    }
    values.update(overrides)
    return values


def channel_environment(base: str) -> dict[str, str]:
    """The ``KCGUARD_*`` variables of every channel pointed at ``base`` (for ``kcguard`` runs)."""
    values = channel_settings(base)
    values.pop("report_url")
    return {f"KCGUARD_{name.upper()}": str(value) for name, value in values.items()}


def refused_base() -> str:
    """A loopback address nothing listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_no_secret(text: str | None, base: str) -> None:
    assert text is not None
    assert base not in text
    for secret in SECRETS:
        assert secret not in text, (secret, text)
