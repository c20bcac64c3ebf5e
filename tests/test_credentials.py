"""Where credentials come from, and that they never print."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from kubeconfig_guard import httpwire
from kubeconfig_guard import organization as org
from kubeconfig_guard.credentials import (
    Credentials,
    DefaultChainCredentials,
    from_fc_context,
)
from kubeconfig_guard.errors import AckApiError, CredentialsError, RetryableInvocationError
from kubeconfig_guard.fake import FakeAck, FakeAckTransport, load_world
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.redaction import redact
from kubeconfig_guard.runtime import InvocationCredentials, Runtime
from support.events import delete_user
from support.worlds import EXAMPLE_WORLD, settings


def test_fc_context_credentials() -> None:
    ctx = SimpleNamespace(
        credentials=SimpleNamespace(
            access_key_id="STS.id", access_key_secret="sec-ret-1", security_token="tok-en-1"
        )
    )
    creds = from_fc_context(ctx)
    assert creds is not None and creds.access_key_id == "STS.id"
    assert creds.security_token is not None and creds.security_token.get_secret_value() == "tok-en-1"
    assert "sec-ret-1" not in repr(creds) and "tok-en-1" not in str(creds)
    assert from_fc_context(SimpleNamespace()) is None  # python3.12 runtime: no context.credentials


SPLITTING = [
    "LTAI-id\r\nX-Injected: 1",  # a header added to every request
    "LTAI-id\n",  # a copy-paste's line break
    "LTAI id",  # a space
    "LTAI-\x00id",  # a control character
    "LTAI-id-\u20ac",  # not ASCII: the request head is latin-1
]


@pytest.mark.parametrize("bad", SPLITTING)
def test_credentials_that_could_split_a_request_are_refused(bad: str) -> None:
    """The access key id and the token travel in headers: visible ASCII only, whoever made them; the
    error names the field, never the value, and the secret is still registered with the redactor."""
    with pytest.raises(CredentialsError, match="access key id holds") as refused:
        Credentials(bad, SecretStr("secret-of-a-refused-id"))
    assert bad not in str(refused.value)
    assert "secret-of-a-refused-id" not in redact("secret-of-a-refused-id")
    with pytest.raises(CredentialsError, match="security token holds") as refused:
        Credentials("STS.ok-id", SecretStr("another-refused-secret"), SecretStr(f"CAIS{bad}"))
    assert bad not in str(refused.value)
    assert redact(f"CAIS{bad}") != f"CAIS{bad}"  # the refused token is redacted all the same
    # a Function Compute context carrying such credentials: ignored, the default chain is asked instead
    ctx = SimpleNamespace(
        credentials=SimpleNamespace(
            access_key_id="STS.id", access_key_secret="s-ctx-secret", security_token=bad
        )
    )
    assert from_fc_context(ctx) is None


@pytest.mark.parametrize("bad", SPLITTING)
def test_an_sts_answer_that_could_split_a_request_is_no_session(bad: str) -> None:
    """Organization mode: an AssumeRole answer (untrusted) whose key id or token could add a header
    fails as a misshapen answer (retried, then the member account reports it), before any use."""
    for field in ("AccessKeyId", "SecurityToken"):
        creds = {
            "AccessKeyId": "STS.ok",
            "AccessKeySecret": "s",
            "SecurityToken": "CAISok",
            "Expiration": "2030-01-01T00:00:00Z",
        }
        body = json.dumps({"Credentials": {**creds, field: bad}}).encode()
        with pytest.raises(AckApiError) as refused:
            org._parse_answer(org._AssumeRoleAnswer, httpwire.Answer(200, "OK", {}, body), "AssumeRole")
        assert refused.value.code == "InvalidResponse.Shape" and bad not in str(refused.value)


def test_the_environment_with_a_line_break_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key id pasted with its line break: the invocation says so (the chain raises, the handler
    reports ``credentials: ...``), instead of a request the gateway cannot read."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-pasted-id\n")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret-value")
    with pytest.raises(CredentialsError, match="access key id holds"):
        asyncio.run(DefaultChainCredentials().get())


def test_an_invocation_whose_credentials_cannot_be_sent_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the handler (no context credentials, as on python3.12; the environment's key id pasted
    with its line break): nothing is sent or revoked, and the result says why, not "internal error"."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-pasted-id\n")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret-value")
    backend = FakeAck(load_world(EXAMPLE_WORLD))
    nowhere = "http://127.0.0.1:1"  # the transport answers: nothing is sent there
    runtime = Runtime(settings(cs_endpoint=nowhere), transport=FakeAckTransport(backend))
    try:
        with pytest.raises(RetryableInvocationError) as raised:
            handle_event(delete_user("alice"), None, runtime=runtime)
    finally:
        runtime.close()
    result = raised.value.result
    assert result.reason.startswith("credentials: the access key id holds a space, a line break"), (
        result.reason
    )
    assert not result.actions and not backend.calls and not backend.clean_calls, backend.calls


def test_default_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI-test-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "env-secret-value")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "env-sts-token")
    creds = asyncio.run(DefaultChainCredentials().get())
    assert creds.access_key_id == "LTAI-test-id"
    assert creds.access_key_secret.get_secret_value() == "env-secret-value"
    assert creds.security_token is not None and creds.security_token.get_secret_value() == "env-sts-token"


def run_in_clean_environment(code: str, home: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: no credential variables but ``variables``, no CLI profile
    (``home``), no metadata service."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        **variables,
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


CHAIN_PROBE = """
import asyncio, json, sys
from kubeconfig_guard.credentials import DefaultChainCredentials
chain = DefaultChainCredentials()
first, again = asyncio.run(chain.get()), asyncio.run(chain.get())
print(json.dumps({
    "id": first.access_key_id,
    "token": first.security_token.get_secret_value() if first.security_token else None,
    "same": first is again,
    "sdk_imported": "alibabacloud_credentials" in sys.modules,
}))
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        # Function Compute's python3.12 runtime: the role's STS token in the environment
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-1",
             "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token-1"},
            {"id": "STS.env-id", "token": "env-token-1", "same": True, "sdk_imported": False},
        ),
        # an access key pair, an empty token: no token, as the chain reads it
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-env-id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-2",
             "ALIBABA_CLOUD_SECURITY_TOKEN": ""},
            {"id": "LTAI-env-id", "token": None, "same": True, "sdk_imported": False},
        ),
        # an id without its secret is not the environment's: the library's chain goes on (its
        # profile file here), exactly as it would
        (
            {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-half", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
             "ALIBABA_CLOUD_CREDENTIALS_FILE": "{profile}"},
            {"id": "LTAI-from-profile", "token": None, "same": False, "sdk_imported": True},
        ),
    ],
)  # fmt: skip
def test_the_chains_environment_is_read_without_importing_the_library(
    tmp_path: Path, variables: dict[str, str], expected: dict[str, object]
) -> None:
    """The chain's first source (the environment) answers without importing alibabacloud-credentials
    (about half the CPU of a python3.12 cold start), once, with what the chain would answer."""
    profile = tmp_path / "credentials.ini"
    profile.write_text(
        "[default]\ntype = access_key\naccess_key_id = LTAI-from-profile\naccess_key_secret = profile-secret\n"
    )
    run = run_in_clean_environment(
        CHAIN_PROBE, tmp_path, **{k: v.format(profile=profile) for k, v in variables.items()}
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout) == expected


def test_no_credentials_is_a_clear_error(tmp_path: Path) -> None:
    """In a clean environment (no variables, no CLI profile, no metadata service) the chain fails clearly."""
    code = (
        "import asyncio\n"
        "from kubeconfig_guard.credentials import DefaultChainCredentials\n"
        "try:\n"
        "    asyncio.run(DefaultChainCredentials().get())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    run = run_in_clean_environment(code, tmp_path)
    assert run.stdout.startswith("CredentialsError") and "credentials" in run.stdout, run.stdout + run.stderr
    assert "Traceback" not in run.stderr


def test_each_invocation_brings_fresh_sts_credentials() -> None:
    provider = InvocationCredentials(fallback=None)
    first = Credentials("STS.a", SecretStr("s1-secret"), SecretStr("t1-token"))
    second = Credentials("STS.b", SecretStr("s2-secret"), SecretStr("t2-token"))
    provider.update(first)
    assert asyncio.run(provider.get()).access_key_id == "STS.a"
    provider.update(None)  # an invocation without credentials keeps the last ones
    provider.update(second)
    assert asyncio.run(provider.get()).access_key_id == "STS.b"
