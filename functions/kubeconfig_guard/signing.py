"""ACS3-HMAC-SHA256 request signing (Alibaba Cloud OpenAPI signature V3), for ROA requests.

Canonical request::

    METHOD \\n CanonicalURI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders \\n hex(sha256(body))

The canonical URI is the request path exactly as sent (segments RFC 3986-encoded);
query keys and values are RFC 3986-encoded and sorted; headers are lower-cased,
trimmed and sorted. The fake ACK verifies with the same functions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: everything but unreserved characters (``A-Za-z0-9-_.~``)."""
    return quote(value, safe="~", encoding="utf-8")


def encode_path(template: str, **params: str) -> str:
    """Fill a ROA path template such as ``/clusters/{ClusterId}`` with encoded segments."""
    return template.format(**{name: percent_encode(value) for name, value in params.items()})


def canonical_query(query: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    items = query.items() if isinstance(query, Mapping) else query
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


def signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


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


def acs_date(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")


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
