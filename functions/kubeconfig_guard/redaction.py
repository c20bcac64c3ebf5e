"""The one redactor: ``redact(text)`` removes every secret kubeconfig-guard knows of.

Used by the log formatters (JSON and terminal), the chat digests and the HTML report
(through ``inert``), the summary's delivery and storage errors, and the handlers'
exception messages. Import it as ``from kubeconfig_guard.redaction import redact``
(the only place to import it from). Text that must be shortened is
redacted first and cut after, by ``redact_cut(text, limit)``: never cut, then redact.

What is scrubbed, each replaced by ``***``:

* the values of the secret environment variables (``secret_env_vars()``): the
  credentials' own (``CREDENTIAL_ENV_VARS``: access key secret, STS token) and the
  ``KCGUARD_*`` variable of every secret setting. Which settings are secret is declared
  once, on the settings model: every field whose type is ``SecretStr`` (webhook URLs,
  signing secrets; ``settings.secret_fields``). Nothing here lists them;
* every value registered with ``register_secret``: every ``Credentials`` the process
  builds, whatever its source (Function Compute context, default chain: CLI profile, ECS
  role, OIDC, credentials URI; each refreshed STS token too), and the secret values of
  every ``Settings`` object built (from the environment, a ``.env`` file or explicit
  arguments);
* of each such value, also its percent-encoded and JSON-escaped forms and, for a URL,
  the token-like parts of its path and query (a segment or value of 6+ characters with a
  digit or mixed case), so a URL shown re-encoded, shortened or with another host still
  loses its token;
* anything that looks like a webhook token in a URL, configured or not: the value of
  a query parameter named ``access_token``, ``key``, ``token``, ``sign``, ``signature``,
  ``secret``, ``security-token``/``securitytoken`` (DingTalk, WeCom, signed URLs), the
  token path of a Slack incoming webhook (``hooks.slack.com/services/T…/B…/…``) and of a
  Feishu/Lark bot (``/open-apis/bot/v2/hook/…``).

Values shorter than 6 characters (``MIN_SECRET_LENGTH``) are not treated as secrets
(they would blank out ordinary words).
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any
from urllib.parse import quote, urlsplit

# Read at call time (``_settings.SECRET_ENV_VARS``), never at import: no import cycle even if
# settings.py one day imports a module that imports this one. Already imported on every path
# that imports this module (results.py imports it), so it costs no import time.
from . import settings as _settings

# The credentials' own variables (the default chain's environment source, and the OSS SDK's).
CREDENTIAL_ENV_VARS = (
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABACLOUD_ACCESS_KEY_SECRET",
    "ALIBABACLOUD_SECURITY_TOKEN",
    "OSS_ACCESS_KEY_SECRET",
    "OSS_SESSION_TOKEN",
)
MIN_SECRET_LENGTH = 6
MASK = "***"

# A token-carrying query parameter: its value runs to the next separator, quote or space.
_QUERY_TOKEN = re.compile(
    r"(?i)([?&;](?:access_token|access-token|key|token|sign|signature|secret|security-token|securitytoken"
    r"|x-acs-security-token)=)[^&#;\s\"'<>\\]+"
)
# Slack incoming webhook and Feishu/Lark bot webhook paths: the last segments are the token.
_SLACK_HOOK = re.compile(r"(?i)(/services/)T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+")
_FEISHU_HOOK = re.compile(r"(?i)(/open-apis/bot/v2/hook/)[A-Za-z0-9_-]+")
_CHEAP_TRIGGERS = ("=", "/services/", "/hook/")
_URL_PART_SEPARATORS = re.compile(r"[/?&;=#]")

_lock = threading.Lock()
_registered: dict[str, None] = {}  # every form of every registered value, in order (a set)
_forms_of: dict[str, tuple[str, ...]] = {}  # value -> its forms, for environment values
_generation = 0  # bumped when a new form is registered
_names: tuple[str, ...] | None = None  # the env var names _env_keys was made for
_env_keys: list[Any] = []
_cached: tuple[object, tuple[str, ...]] | None = None  # ((env values, generation), secrets)


def _token_like(part: str) -> bool:
    """A URL path segment or query value that looks like a token, not a word (``send``, ``hook``)."""
    if len(part) < MIN_SECRET_LENGTH:
        return False
    if any(ch.isdigit() for ch in part):
        return True
    return any(ch.isupper() for ch in part[1:]) and any(ch.islower() for ch in part)


def secret_forms(value: str) -> tuple[str, ...]:
    """``value`` and the other forms it may be shown in, each ``MIN_SECRET_LENGTH``+ characters.

    Its percent-encoded and JSON-escaped forms (a JSON log line escapes ``"`` and ``\\``),
    and for an ``http(s)`` URL the token-like segments of its path and values of its query.
    """
    if len(value) < MIN_SECRET_LENGTH:
        return ()
    forms = [
        value,
        quote(value, safe=""),
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1],
    ]
    if "://" in value:
        try:
            url = urlsplit(value.strip())
        except ValueError:
            url = None
        if url is not None and url.scheme.lower() in ("http", "https") and url.netloc:
            parts = [p for p in _URL_PART_SEPARATORS.split(f"{url.path}?{url.query}#{url.fragment}") if p]
            forms += [p for p in parts if _token_like(p)]
            if url.password:
                forms.append(url.password)
            tail = value.strip().split(url.netloc, 1)[-1]  # path, query and fragment, as written
            if any(_token_like(p) for p in parts) and len(tail) >= MIN_SECRET_LENGTH:
                forms.append(tail)
    return tuple(dict.fromkeys(f for f in forms if len(f) >= MIN_SECRET_LENGTH))


def register_secret(value: str | None) -> None:
    """Redact this value (and its other forms) from every output from now on."""
    global _generation
    if not value or len(value) < MIN_SECRET_LENGTH or value in _registered:
        return
    forms = secret_forms(value)
    with _lock:
        new = [form for form in forms if form not in _registered]
        if new:
            _registered.update(dict.fromkeys(new))
            _generation += 1


def secret_env_vars() -> tuple[str, ...]:
    """The environment variables whose values are secrets: the credentials' and the secret settings'."""
    return CREDENTIAL_ENV_VARS + _settings.SECRET_ENV_VARS


def _env_values() -> list[Any]:
    """The raw values of the secret environment variables (None where unset).

    ``redact`` runs for every log line and every rendered value: a dozen ``os.environ.get``
    calls cost ~60 µs, as many lookups in CPython's underlying dict ~1 µs. Read live, so a
    changed environment is seen at once; any other Python falls back to ``os.environ.get``.
    """
    global _names, _env_keys
    names = _settings.SECRET_ENV_VARS
    data = getattr(os.environ, "_data", None)
    if not isinstance(data, dict):  # pragma: no cover - not CPython
        return [os.environ.get(name) for name in secret_env_vars()]
    if names is not _names:  # a Settings subclass declared more secret fields
        _env_keys = [os.environ.encodekey(name) for name in CREDENTIAL_ENV_VARS + names]
        _names = names
    return [data.get(key) for key in _env_keys]


def _decode(raw: Any) -> str:
    return raw if isinstance(raw, str) else os.environ.decodevalue(raw)


def _secrets() -> tuple[str, ...]:
    """Every secret form known now, longest first (cached until the environment or registry changes)."""
    global _cached
    raw = _env_values()
    key = (raw, _generation)
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    found: dict[str, None] = {}
    for value in raw:
        if value is None:
            continue
        text = _decode(value)
        forms = _forms_of.get(text)
        if forms is None:
            forms = _forms_of[text] = secret_forms(text)
        found.update(dict.fromkeys(forms))
    with _lock:
        found.update(_registered)
    # Longest first: a webhook URL is replaced whole before its token alone.
    result = tuple(sorted(found, key=len, reverse=True))
    _cached = (key, result)
    return result


def secret_values() -> list[str]:
    """Every secret value (and form) known now, longest first."""
    return list(_secrets())


def redact(text: str) -> str:
    """``text`` without any known secret or webhook token (see the module docstring)."""
    for secret in _secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    if any(trigger in text for trigger in _CHEAP_TRIGGERS):
        text = _QUERY_TOKEN.sub(rf"\1{MASK}", text)
        text = _SLACK_HOOK.sub(rf"\1{MASK}", text)
        text = _FEISHU_HOOK.sub(rf"\1{MASK}", text)
    return text


def _partial_start(text: str, secrets: tuple[str, ...]) -> int | None:
    """Where a prefix (``MIN_SECRET_LENGTH``+ characters) of a known secret ends ``text``, if one does."""
    best: int | None = None
    for secret in secrets:
        head = secret[:MIN_SECRET_LENGTH]
        position = text.find(head, max(0, len(text) - len(secret)))
        while position != -1:
            if secret.startswith(text[position:]):
                if best is None or position < best:
                    best = position
                break  # the earliest start is the longest prefix
            position = text.find(head, position + 1)
    return best


def redact_cut(text: str, limit: int) -> str:
    """``text`` redacted, then cut to ``limit`` characters: never a secret's prefix at the end.

    A full secret is masked before the cut, so the cut cannot keep a part of it; and a
    secret's prefix (``MIN_SECRET_LENGTH``+ characters) left at the end of the cut text by
    any other way (the text already held the secret shortened) is masked too. The result
    is at most ``limit`` characters (``limit`` >= 3); shorter text is only redacted.
    """
    text = redact(text)
    if len(text) <= limit:
        return text
    secrets = _secrets()
    end = max(0, limit)
    masked = False
    while (start := _partial_start(text[:end], secrets)) is not None:
        end = min(start, max(0, limit - len(MASK)))
        masked = True
    cut = text[:end]
    return (cut + MASK)[: max(0, limit)] if masked else cut
