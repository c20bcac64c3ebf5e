"""Log lines: one physical JSON line whatever the values, the one redactor, text for a person at a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kubeconfig_guard import inert, logs
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.redaction import redact, register_secret
from support.worlds import EVENTS, EXAMPLE_WORLD, ROOT

LINE_BREAKERS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
FRAGMENTS = [
    *LINE_BREAKERS,
    "\u202e",
    "\u2066",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\x1b[2J",
    "\x00",
    "\x7f",
    "\ud800",  # a lone surrogate: cannot even be encoded as UTF-8 raw
    "\U000e0041",  # a tag character
    '"',
    "\\",
    "中文名",
    "[x](https://evil.example)",
    "<!channel>",
    "}{",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), min_size=0, max_size=6).map(
    "".join
)


@pytest.fixture
def log_state() -> Iterator[None]:
    """Whatever a test does to the ``kubeconfig_guard`` loggers is undone."""
    root = logging.getLogger("kubeconfig_guard")
    saved = (list(root.handlers), root.level, root.propagate, logs._chosen)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]
    logs._chosen = saved[3]


def capture(handler: logging.Handler) -> io.StringIO:
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    with handler.lock:
        handler.stream = buffer
    return buffer


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger("kubeconfig_guard").handlers if hasattr(h, "kcguard_format")]


# --- JSON lines ------------------------------------------------------------------------------------


@hsettings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(message=hostile, key=hostile, value=hostile, error=hostile)
def test_a_json_log_line_is_one_line_for_any_splitter(message: str, key: str, value: str, error: str) -> None:
    assume(all(redact(x) == x for x in (message, key, value, error)))
    log = logging.getLogger("kcguard-test.json-lines")
    log.propagate = False
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    try:
        raise ValueError(error)
    except ValueError:
        log.exception(message, extra={"fields": {"k": key, key or "empty": value, "nested": {value: [key]}}})
    out = buffer.getvalue()
    assert out.endswith("\n") and out.count("\n") == 1
    line = out[:-1]
    assert line.splitlines() == [line]  # str.splitlines knows every Unicode line boundary
    assert not inert.UNSAFE.search(line)
    line.encode("utf-8")  # no lone surrogate left raw
    entry = json.loads(line)
    assert entry["message"] == message and entry["k"] == key
    assert entry[key or "empty"] == value and entry["nested"] == {value: [key]}
    assert entry["error"] == f"ValueError: {error}"


def test_json_lines_of_the_installed_handler(log_state: None) -> None:
    logs.configure("INFO", fmt="json")
    (handler,) = ours()
    buffer = capture(handler)
    logs.log_fields(logging.getLogger("kubeconfig_guard.test"), "kubeconfig revoked", name="a\u2028b\u202ec")
    (line,) = buffer.getvalue().splitlines()
    assert '"name": "a\\u2028b\\u202ec"' in line and json.loads(line)["name"] == "a\u2028b\u202ec"


@hsettings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(message=hostile, key=hostile, value=hostile)
def test_a_text_log_line_is_one_line_with_visible_escapes(message: str, key: str, value: str) -> None:
    record = logging.LogRecord("kubeconfig_guard.x", logging.WARNING, __file__, 1, message, None, None)
    record.fields = {key: value, "counts": {"revoked": 1}}
    line = logs.TextFormatter().format(record)
    assert line.splitlines() == [line] and not inert.UNSAFE.search(line)
    assert "WARNING" in line


def test_text_line_reads_like_a_sentence() -> None:
    record = logging.LogRecord(
        "kubeconfig_guard.x", logging.INFO, __file__, 1, "kubeconfig revoked", None, None
    )
    record.fields = {
        "cluster_name": "prod",
        "account_name": "ali\u202ece\nx",
        "error_code": None,
        "reason": "",
    }
    assert logs.TextFormatter(prefix=False).format(record) == (
        "kubeconfig revoked  cluster_name=prod  account_name=ali\\u202ece\\nx"
    )


# --- the one redactor --------------------------------------------------------------------------------


def test_redact_known_secrets_and_webhook_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCGUARD_FEISHU_SECRET", "feishu-signing-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ak-secret-0123456789")
    register_secret("sts-token-registered-42")
    register_secret("short")  # too short to be treated as a secret
    text = (
        "secret feishu-signing-secret and ak-secret-0123456789 sts-token-registered-42 short "
        "https://oapi.dingtalk.com/robot/send?access_token=dt0123456789&timestamp=1&sign=abc%2Bdef "
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx "
        "https://hooks.slack.com/services/T0001ABC/B0002DEF/xoxbSlackToken42 "
        "https://open.feishu.cn/open-apis/bot/v2/hook/5a1e2c3d-feishu-token "
        'https://x.example/a?token=tok42&x=1 "https://oss.example/o?Signature=sig42&security-token=st42"'
    )
    out = redact(text)
    for leak in (
        "feishu-signing-secret",
        "ak-secret-0123456789",
        "sts-token-registered-42",
        "dt0123456789",
        "abc%2Bdef",
        "693a91f6",
        "T0001ABC",
        "xoxbSlackToken42",
        "5a1e2c3d",
        "tok42",
        "sig42",
        "st42",
    ):
        assert leak not in out, (leak, out)
    assert "short" in out and "timestamp=1" in out and "&x=1" in out
    assert "access_token=***" in out and "/services/***" in out and "/hook/***" in out
    assert redact("key=value in a sentence, not a URL") == "key=value in a sentence, not a URL"


def test_one_redactor_everywhere() -> None:
    from kubeconfig_guard.channels import base
    from kubeconfig_guard.summary import storage

    assert base.redact is redact and storage.redact is redact
    assert not hasattr(logs, "register_secret")  # imported from redaction.py only, never through logs


# --- formats: Function Compute, the terminal, the CLI -----------------------------------------------


def test_auto_is_json_in_function_compute_and_without_a_terminal(
    log_state: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("FC_FUNCTION_NAME", raising=False)
    assert logs.resolve_format("auto") == "text"
    monkeypatch.setenv("FC_FUNCTION_NAME", "kubeconfig-guard-event")
    assert logs.resolve_format("auto") == "json"
    monkeypatch.delenv("FC_FUNCTION_NAME")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert logs.resolve_format("auto") == "json"
    with pytest.raises(ValueError, match="log format must be one of auto, text, json"):
        logs.resolve_format("yaml")


def test_a_chosen_format_survives_the_handlers_configure(
    log_state: None, monkeypatch: pytest.MonkeyPatch, make_harness: Any, demo_env: None
) -> None:
    monkeypatch.delenv("KCGUARD_LOG_LEVEL", raising=False)
    logs.configure("INFO", fmt="text")
    (text_handler,) = ours()
    assert logs.current_format() == "text"
    # The real handler calls logs.configure(settings.log_level) on every invocation.
    runtime = make_harness().runtime(mode="dry-run", log_level="INFO")
    handle_event((EVENTS / "ram-delete-user.json").read_bytes(), None, runtime=runtime)
    assert ours() == [text_handler] and logs.current_format() == "text"
    # A person at a terminal sees warnings and errors unless KCGUARD_LOG_LEVEL asks for more.
    assert logging.getLogger("kubeconfig_guard").level == logging.WARNING
    monkeypatch.setenv("KCGUARD_LOG_LEVEL", "INFO")
    logs.configure("INFO")
    assert logging.getLogger("kubeconfig_guard").level == logging.INFO
    logs.configure("DEBUG", fmt="json")
    assert logs.current_format() == "json" and logging.getLogger("kubeconfig_guard").level == logging.DEBUG
    logs.configure("INFO")
    assert logs.current_format() == "json"


def test_rich_is_imported_only_for_text_lines() -> None:
    code = (
        "import sys\n"
        "from kubeconfig_guard import handlers, logs\n"
        "logs.configure('INFO')\n"
        "assert logs.current_format() == 'json', logs.current_format()\n"
        "assert 'rich' not in sys.modules and 'typer' not in sys.modules\n"
        "logs.configure('INFO', fmt='text')\n"
        "assert 'rich' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    env.pop("FC_FUNCTION_NAME", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def kcguard(*args: str, tty: bool, **env: str) -> tuple[str, str]:
    """Run ``kcguard`` as a user does; stderr on a pseudo-terminal when ``tty``. Returns (stdout, stderr)."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("KCGUARD_", "ALIBABA_CLOUD_", "FC_"))
    }
    environment.update(env, COLUMNS="200", TERM="xterm")
    command = [str(Path(sys.executable).with_name("kcguard")), *args]
    if not tty:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=follower, cwd=ROOT, close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout, _ = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return stdout.decode(), b"".join(chunks).decode(errors="replace")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_kcguard_on_a_terminal_speaks_to_a_person() -> None:
    args = ("invoke", str(EVENTS / "ram-delete-user.json"), "--fake", str(EXAMPLE_WORLD))
    # Default: quiet (warnings and errors only), the result JSON on stdout.
    stdout, stderr = kcguard(*args, tty=True)
    assert json.loads(stdout)["outcome"] == "ok"
    assert not json_lines(stderr) and "kubeconfig would-revoke" not in stderr
    # KCGUARD_LOG_LEVEL=INFO: one readable line per action.
    _, stderr = kcguard(*args, tty=True, KCGUARD_LOG_LEVEL="INFO")
    assert not json_lines(stderr), stderr
    assert "INFO" in stderr and "kubeconfig would-revoke" in stderr and "account_name=alice" in stderr
    # --log-format json (or KCGUARD_LOG_FORMAT=json) on a terminal: JSON lines, as in Function Compute.
    _, stderr = kcguard("--log-format", "json", *args, tty=True, KCGUARD_LOG_LEVEL="INFO")
    assert {e["message"] for e in json_lines(stderr)} >= {"kubeconfig would-revoke", "event ok"}
    _, stderr = kcguard(*args, tty=True, KCGUARD_LOG_FORMAT="json")
    assert {e["message"] for e in json_lines(stderr)} >= {"event ok"}


def test_kcguard_piped_writes_json_lines() -> None:
    args = ("invoke", str(EVENTS / "ram-delete-user.json"), "--fake", str(EXAMPLE_WORLD))
    _, stderr = kcguard(*args, tty=False)
    lines = stderr.splitlines()
    assert lines and all(json.loads(line)["level"] for line in lines), stderr
