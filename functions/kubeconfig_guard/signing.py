"""ACS3-HMAC-SHA256 request signing (Alibaba Cloud OpenAPI signature V3), for ROA requests.

Canonical request::

    METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders \\n hex(sha256(body))

The canonical URI is the request path exactly as sent (segments RFC 3986-encoded);
query keys and values are RFC 3986-encoded and sorted; headers are lower-cased,
trimmed and sorted. The fake ACK verifies with the same functions.

Every request is signed, so repeated work is cached: the encoding of a value (cluster
ids, uids, page numbers repeat), the canonical query of a query (pages repeat), the
date of the current second, and the HMAC key schedule of the current secret (its
inner and outer pads, copied for each signature instead of derived again).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()


@functools.lru_cache(maxsize=4096)
def percent_encode(value: str) -> str:
    """RFC 3986 encoding: everything but unreserved characters (``A-Za-z0-9-_.~``)."""
    return quote(value, safe="~", encoding="utf-8")


def encode_path(template: str, **params: str) -> str:
    """Fill a ROA path template such as ``/clusters/{ClusterId}`` with encoded segments."""
    return template.format(**{name: percent_encode(value) for name, value in params.items()})


def canonical_query(query: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    items = tuple(query.items() if isinstance(query, Mapping) else query)
    return _canonical_query(items)


@functools.lru_cache(maxsize=1024)
def _canonical_query(items: tuple[tuple[str, str], ...]) -> str:
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in items)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: Mapping[str, str], names: Iterable[str]) -> tuple[str, str]:
    """Return (canonical headers block, signed headers list) for the given header names."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signed = sorted({name.lower() for name in names})
    block = "".join(f"{name}:{lowered[name].strip()}\n" for name in signed)
    return block, ";".join(signed)


def string_to_sign(
    method: str,
    path: str,
    query: Mapping[str, str] | Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_names: Iterable[str],
    payload_sha256: str,
) -> tuple[str, str]:
    """Return (string to sign, signed headers list)."""
    block, signed = canonical_headers(headers, signed_names)
    request = "\n".join([method.upper(), path or "/", canonical_query(query), block, signed, payload_sha256])
    return f"{ALGORITHM}\n{hashlib.sha256(request.encode('utf-8')).hexdigest()}", signed


class _KeyCache:
    """The HMAC-SHA256 state keyed with the latest secret (one entry: credentials rotate rarely)."""

    def __init__(self) -> None:
        self._secret: str | None = None
        self._keyed: hmac.HMAC | None = None

    def mac(self, secret: str) -> hmac.HMAC:
        keyed = self._keyed
        if keyed is None or secret != self._secret:
            keyed = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256)
            self._secret, self._keyed = secret, keyed
        return keyed.copy()


_keys = _KeyCache()


def signature(secret: str, to_sign: str) -> str:
    mac = _keys.mac(secret)
    mac.update(to_sign.encode("utf-8"))
    return mac.hexdigest()


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """The headers this client signs: host, content-type and every ``x-acs-*`` header."""
    return [k for k in headers if k.lower() in ("host", "content-type") or k.lower().startswith("x-acs-")]


def authorization(
    *,
    access_key_id: str,
    access_key_secret: str,
    method: str,
    path: str,
    query: Mapping[str, str] | Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    payload_sha256: str = EMPTY_PAYLOAD_SHA256,
) -> str:
    """The ``Authorization`` header value for a request whose headers are final."""
    to_sign, signed = string_to_sign(
        method, path, query, headers, signed_header_names(headers), payload_sha256
    )
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={signature(access_key_secret, to_sign)}"


_date_cache: tuple[int, str] = (-1, "")


def acs_date(now: datetime | None = None) -> str:
    """``x-acs-date``: UTC, to the second (the string is made once per second)."""
    global _date_cache
    if now is not None:
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    second = int(time.time())
    cached_second, text = _date_cache
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        _date_cache = (second, text)
    return text


def parse_authorization(value: str) -> dict[str, str] | None:
    """Split ``ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``; None if malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= parts.keys():
        return None
    return parts
