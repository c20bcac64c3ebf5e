"""OSS storage of the reports: the real OSS SDK against a local HTTP receiver."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from pydantic import SecretStr

from kubeconfig_guard.credentials import Credentials
from kubeconfig_guard.settings import Settings
from kubeconfig_guard.summary.html import render_html
from kubeconfig_guard.summary.storage import StorageError, report_keys, store_reports
from support.receivers import local_http_server
from support.reports import build_report

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
AK_ID = "LTAI5tTestAccessKeyId"
AK_SECRET = "testAccessKeySecret0123456789"
TOKEN = "CAIS-test-security-token-0123456789"

oss = pytest.importorskip("alibabacloud_oss_v2", reason="the OSS SDK (extra 'oss') is not installed")


@dataclass
class Put:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class OssReceiver:
    url: str = ""
    requests: list[Put] = field(default_factory=list)
    script: list[tuple[int, bytes, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    crc: str | None = None  # "good": answer the body's real CRC-64; "bad": a wrong one


def _handler(receiver: OssReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(
                    Put(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                answer = receiver.script.pop(0) if receiver.script else (200, b"", {})
            status, payload, headers = answer
            self.send_response(status)
            self.send_header("x-oss-request-id", "65A1B2C3D4E5F60718293A4B")
            if status == 200:
                self.send_header("ETag", '"5B3C1A2E053D763E1B002CC607C5A0FE"')
                if receiver.crc:
                    crc = oss.crc.Crc64(init_crc=0)
                    crc.write(body)
                    value = crc.sum64() if receiver.crc == "good" else crc.sum64() ^ 1
                    self.send_header("x-oss-hash-crc64ecma", str(value))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[OssReceiver]:
    rec = OssReceiver()
    with local_http_server(_handler(rec)) as url:
        rec.url = url
        yield rec


@pytest.fixture(autouse=True)
def _credentials_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN", "ALIBABA_CLOUD_ACCESS_KEY_ID",
                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", AK_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET)
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", TOKEN)


def settings(**values: Any) -> Settings:
    values.setdefault("report_bucket", "kcguard-reports")
    values.setdefault("regions", "cn-shanghai,cn-hangzhou")
    return Settings(**values)


@pytest.fixture(scope="module")
def reports() -> tuple[str, str]:
    report = build_report(evil_name=True)
    return report.model_dump_json(indent=2), render_html(report)


ERROR_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n  <Code>AccessDenied</Code>\n'
    b"  <Message>You have no right to access this object because of bucket acl.</Message>\n"
    b"  <RequestId>65A1B2C3D4E5F60718293A4B</RequestId>\n  <HostId>kcguard-reports.oss-cn-shanghai.aliyuncs.com</HostId>\n"
    b"  <OSSAccessKeyId>" + AK_ID.encode() + b"</OSSAccessKeyId>\n  <EC>0003-00000001</EC>\n</Error>\n"
)


def test_no_bucket_does_nothing_and_never_imports_the_sdk() -> None:
    code = (
        "import sys\n"
        "from datetime import datetime, timezone\n"
        "from kubeconfig_guard.settings import Settings\n"
        "from kubeconfig_guard.summary.storage import store_reports\n"
        "keys = store_reports('{}', '<html></html>', Settings(report_bucket=None), now=datetime.now(timezone.utc))\n"
        "print(keys, 'alibabacloud_oss_v2' in sys.modules)\n"
    )
    env = {**os.environ, "KCGUARD_REPORT_BUCKET": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[] False"
    assert store_reports("{}", "<html></html>", Settings(report_bucket=None), now=NOW) == []
    assert store_reports("{}", "<html></html>", Settings(report_bucket="  "), now=NOW) == []


def test_puts_both_reports(receiver: OssReceiver, reports: tuple[str, str]) -> None:
    report_json, report_html = reports
    receiver.crc = "good"
    keys = store_reports(report_json, report_html, settings(), now=NOW, endpoint=receiver.url)
    assert keys == ["kubeconfig-guard/2026-11-26/report.json", "kubeconfig-guard/2026-11-26/report.html"]
    assert [(r.method, r.path) for r in receiver.requests] == [
        ("PUT", "/kcguard-reports/kubeconfig-guard/2026-11-26/report.json"),
        ("PUT", "/kcguard-reports/kubeconfig-guard/2026-11-26/report.html"),
    ]
    put_json, put_html = receiver.requests
    assert put_json.body == report_json.encode()
    assert put_html.body == report_html.encode()
    assert put_json.headers["content-type"] == "application/json; charset=utf-8"
    assert put_html.headers["content-type"] == "text/html; charset=utf-8"
    for put in receiver.requests:
        # Signature V4 with the environment's STS credentials, scoped to the report region (the first region).
        auth = put.headers["authorization"]
        assert re.match(
            rf"OSS4-HMAC-SHA256 Credential={AK_ID}/\d{{8}}/cn-shanghai/oss/aliyun_v4_request,", auth
        )
        assert AK_SECRET not in auth
        assert put.headers["x-oss-security-token"] == TOKEN
        assert int(put.headers["content-length"]) == len(put.body)


def test_explicit_credentials_region_and_prefix(receiver: OssReceiver) -> None:
    creds = Credentials("LTAI5tFromTheFcContext", SecretStr("fcContextSecret0123"), None)
    cfg = settings(report_oss_region="cn-beijing", report_prefix="/audit/kcguard")
    late = datetime(2026, 11, 26, 23, 30, tzinfo=timezone(timedelta(hours=-3)))  # 2026-11-27 in UTC
    keys = store_reports("{}", "<html></html>", cfg, now=late, credentials=creds, endpoint=receiver.url)
    assert keys == ["audit/kcguard/2026-11-27/report.json", "audit/kcguard/2026-11-27/report.html"]
    auth = receiver.requests[0].headers["authorization"]
    assert re.match(r"OSS4-HMAC-SHA256 Credential=LTAI5tFromTheFcContext/\d{8}/cn-beijing/oss/", auth)
    assert "x-oss-security-token" not in receiver.requests[0].headers


def test_sdk_env_names_are_accepted(receiver: OssReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ):
        monkeypatch.delenv(name)
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "LTAI5tOssEnvName")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "ossEnvSecret0123")
    store_reports("{}", "<p>", settings(), now=NOW, endpoint=receiver.url)
    assert "Credential=LTAI5tOssEnvName/" in receiver.requests[0].headers["authorization"]


def test_access_denied_becomes_a_clear_storage_error(receiver: OssReceiver) -> None:
    receiver.script.append((403, ERROR_XML, {"Content-Type": "application/xml"}))
    with pytest.raises(StorageError) as caught:
        store_reports("{}", "<p>", settings(), now=NOW, endpoint=receiver.url)
    message = str(caught.value)
    assert message.startswith(
        "storing oss://kcguard-reports/kubeconfig-guard/2026-11-26/report.json (cn-shanghai) failed:"
    )
    assert "HTTP 403 AccessDenied: You have no right to access this object because of bucket acl." in message
    assert "65A1B2C3D4E5F60718293A4B" in message
    assert AK_SECRET not in message and TOKEN not in message
    assert len(receiver.requests) == 1  # a 403 is not retried, the HTML is not attempted


def test_second_put_failure_names_what_was_stored(receiver: OssReceiver) -> None:
    receiver.script += [(200, b"", {}), (403, ERROR_XML, {"Content-Type": "application/xml"})]
    with pytest.raises(
        StorageError, match=r"report\.html .* \(already stored: kubeconfig-guard/2026-11-26/report\.json\)"
    ):
        store_reports("{}", "<p>", settings(), now=NOW, endpoint=receiver.url)


def test_server_error_is_retried_by_the_sdk(receiver: OssReceiver) -> None:
    receiver.script.append((503, b"", {}))
    keys = store_reports("{}", "<p>", settings(), now=NOW, endpoint=receiver.url)
    assert len(keys) == 2
    assert [r.path.rsplit("/", 1)[1] for r in receiver.requests] == [
        "report.json",
        "report.json",
        "report.html",
    ]


def test_crc_mismatch_is_an_error(receiver: OssReceiver) -> None:
    receiver.crc = "bad"
    with pytest.raises(StorageError, match="InconsistentError"):
        store_reports("{}", "<p>", settings(), now=NOW, endpoint=receiver.url)


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StorageError, match=r"^storing oss://kcguard-reports/.*failed: ") as caught:
        store_reports("{}", "<p>", settings(), now=NOW, endpoint=f"http://127.0.0.1:{port}")
    assert AK_SECRET not in str(caught.value)


def test_no_credentials_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
    ):
        monkeypatch.delenv(name)
    import alibabacloud_credentials.client

    def nothing(*_: Any, **__: Any) -> Any:
        raise RuntimeError("unable to load credentials from any of the providers in the chain")

    monkeypatch.setattr(alibabacloud_credentials.client, "Client", nothing)
    with pytest.raises(StorageError, match="no credentials for OSS"):
        store_reports("{}", "<p>", settings(), now=NOW, endpoint="http://127.0.0.1:9")


def test_report_keys() -> None:
    assert report_keys(settings(report_prefix=""), NOW) == (
        "2026-11-26/report.json",
        "2026-11-26/report.html",
    )
    assert (
        report_keys(settings(report_prefix="a/b/"), NOW.replace(tzinfo=None))[0]
        == "a/b/2026-11-26/report.json"
    )
