"""HTTP/1.1 for the ACK client: a lean keep-alive connection pool on asyncio, or httpx.

The ACK OpenAPI calls kubeconfig-guard makes are small ``GET`` and ``DELETE`` requests
without a body, answered with a JSON document. On Function Compute the event function
runs on a fraction of a vCPU, where the per-request CPU of httpx + httpcore + anyio
(request and URL objects, header models, the pool's bookkeeping, anyio's typed-attribute
lookups) was most of the client's CPU. ``Pool`` does only what these calls need on an
``asyncio.Protocol`` per connection:

* one connection per request in flight, kept alive and reused (LIFO) per origin; a
  connection the server closed, answered ``Connection: close`` on, or left with
  unread bytes is dropped, never reused;
* requests written in one ``write`` from a prepared header block; responses parsed
  from the buffer (status line, headers, a ``Content-Length``, ``chunked`` or
  close-delimited body); no compression asked for, no redirects followed;
* TLS with certificate and host name verification (``ssl.create_default_context``
  with ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, else certifi's bundle when
  installed, else the system's), built on the first ``https`` connection;
* a connect timeout, and a timeout on the whole answer, kept by one watchdog timer per
  pool (every ``timeout / 20``, at most 0.5 s) rather than a timer per request; a request
  cancelled midway closes its connection;
* bounded memory and linear CPU whatever the server sends: a head of at most
  ``MAX_HEAD_BYTES``, a body of at most ``MAX_BODY_BYTES`` however it is framed (one past
  it fails as soon as its declared length or the bytes received pass the cap, before it is
  buffered), and a parser that consumes each byte received a bounded number of times
  (searches resume where the last one stopped; chunk data is copied out as it arrives;
  repeated header fields are joined once);
* strict framing, the same whatever pieces the answer arrives in (tests/test_httpwire_fuzz.py):
  a status line ``HTTP/1.x NNN reason``, field names that are tokens, no control character
  but HTAB in a head or chunk line (no bare CR or LF), one decimal Content-Length, and a
  ``Transfer-Encoding`` only as ``chunked`` alone, in an HTTP/1.1 answer without a
  Content-Length (anything else could be read two ways: a protocol error).

Errors are ``TransportError`` with httpx's names (``ConnectTimeout``, ``ReadTimeout``,
``ConnectError``, ``ReadError``, ``RemoteProtocolError``), so results and logs read the
same on both paths, and ``BODY_TOO_LARGE`` for a body over the cap (on both paths). No
retry happens here: the client decides.

``HttpxSender`` keeps the httpx path for an injected transport (the fake ACK in-process,
tests) and for proxies: when ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` is set, the
client uses httpx, which honours them and ``NO_PROXY``. httpx is imported only then. It
streams the body and stops reading at the same cap.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import httpx

# The largest response head (status line and headers), and the largest chunk-size line or
# trailer section of a chunked body.
MAX_HEAD_BYTES = 64 * 1024
# The largest response body accepted, on both wires and however it is framed (Content-Length,
# chunked, until close; the httpx path too). ACK's answers are small: a ListClusterKubeconfigStates
# page holds at most 50 states of ~300 bytes (~15 KB), a DescribeClustersV1 page at most 100
# clusters of ~2 KB (~200 KB), an error or CleanClusterUserPermissions answer well under 1 KB.
# 1 MiB is 5x the largest real page. A body past it is never buffered: it fails as soon as the
# declared Content-Length, a declared chunk or the bytes received pass the cap, so one request in
# flight costs at most ~1 MiB (not the 400 MB of 40 pages of 200 KB names).
MAX_BODY_BYTES = 1024 * 1024
# ``TransportError.kind`` of an answer whose body is over ``MAX_BODY_BYTES`` (never a timeout).
BODY_TOO_LARGE = "ResponseTooLarge"
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class TransportError(Exception):
    """The request got no complete answer. ``kind``: httpx's name for it (or ``BODY_TOO_LARGE``);
    ``timeout``: a timeout; ``status``: the answer's HTTP status when its head was read, else 0."""

    def __init__(self, kind: str, detail: str = "", *, timeout: bool = False, status: int = 0) -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.timeout = timeout
        self.status = status


def body_too_large(status: int = 0) -> TransportError:
    """The error for a body over ``MAX_BODY_BYTES`` (declared or received), naming the cap."""
    return TransportError(
        BODY_TOO_LARGE,
        f"response body larger than the cap of {MAX_BODY_BYTES} bytes (MAX_BODY_BYTES)",
        status=status,
    )


def _digits(text: str) -> bool:
    """ASCII decimal digits only (``str.isdigit`` also accepts ``²`` and other digits)."""
    return text.isascii() and text.isdigit()


def _over_cap(length: str) -> bool:
    """Whether a Content-Length (ASCII digits) declares more than ``MAX_BODY_BYTES``, without
    converting a number of thousands of digits."""
    significant = length.lstrip("0")
    return len(significant) > len(str(MAX_BODY_BYTES)) or int(significant or "0") > MAX_BODY_BYTES


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
# A field name is a token (RFC 9110 5.1, 5.6.2).
_FIELD_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What a head (its CRLFs removed) or a chunk line may not hold: a control character but HTAB, or
# DEL; so no CR or LF outside a CRLF either (RFC 9112 2.2: a bare CR is invalid; a lone LF would
# be a line end to some parsers and not to others).
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FORBIDDEN_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class Answer(NamedTuple):
    status: int
    reason: str
    headers: Mapping[str, str]  # lower-case names
    content: bytes


@dataclass(frozen=True)
class Origin:
    scheme: str  # "http" or "https"
    host: str  # without brackets
    port: int
    netloc: str  # the Host header: host, [v6], :port unless the scheme's default
    path: str = ""  # only for display: "/" for a configured endpoint, as httpx showed it

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"


def proxy_configured(environ: Mapping[str, str] = os.environ) -> bool:
    return any(environ.get(name) for name in PROXY_VARIABLES)


def request_head(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    """The request line and header block (``headers`` must hold ``host``)."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:  # pragma: no cover - certifi comes with httpx
            pass
    context = ssl.create_default_context(cafile=cafile, capath=capath)
    context.set_alpn_protocols(["http/1.1"])
    return context


# What a chunked body expects next.
_CHUNK_SIZE, _CHUNK_DATA, _CHUNK_DATA_END, _CHUNK_TRAILERS = range(4)


def _chunk_size(line: bytearray) -> int:
    """The size of a chunk-size line (``1f;ext=1``): 1 to 16 hex digits (spaces or tabs before an
    extension allowed), nothing else; no control character but HTAB in the line."""
    digits = line.split(b";", 1)[0].strip(b" \t")
    if not 0 < len(digits) <= 16 or not _HEX_DIGITS.issuperset(digits) or _FORBIDDEN_BYTES.search(line):
        raise TransportError("RemoteProtocolError", "malformed chunk size")
    return int(digits, 16)


def _fields(lines: list[str]) -> dict[str, str]:
    """Header (or trailer) field lines as {lower-case name: value}; a repeated field's values are
    joined with ", " once, at the end (linear however many times a name repeats)."""
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] | None = None
    for line in lines:
        name, sep, value = line.partition(":")
        # Letters, digits and "-" (every name ACK sends) checked without the regular expression.
        if not sep or (
            not (name.isascii() and name.replace("-", "").isalnum()) and _FIELD_NAME.fullmatch(name) is None
        ):
            raise TransportError("RemoteProtocolError", "malformed header line")
        key = name.lower()
        value = value.strip(" \t")
        if key in headers:
            if repeated is None:
                repeated = {}
            repeated.setdefault(key, [headers[key]]).append(value)
        else:
            headers[key] = value
    if repeated:
        for key, values in repeated.items():
            headers[key] = ", ".join(values)
    return headers


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: at most one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buf = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self.deadline = 0.0  # loop time by which the answer in flight must be complete
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._length = -1  # body bytes still expected; -1: until close
        self._chunked = False
        self._phase = _CHUNK_SIZE  # what the chunked body expects next
        self._chunk_left = 0  # bytes of the current chunk still to come
        self._body = bytearray()  # the chunked body decoded so far (at most MAX_BODY_BYTES)
        self._trailer_bytes = 0
        # Bytes at the start of the unread buffer known not to begin the delimiter awaited there:
        # a search for the end of a head or line resumes after them, not from the start again.
        self._scanned = 0
        self._keep_alive = False
        self._head_only = False

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        self._buf += data
        try:
            self._parse()
        except TransportError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if self._status and not self._chunked and self._length == -1:
                self._finish(bytes(self._buf))  # a close-delimited body ends here
            else:
                self._fail(
                    TransportError("RemoteProtocolError", "server disconnected without a complete answer")
                )
        self.closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None:
                self._fail(
                    TransportError("RemoteProtocolError", "server disconnected without a complete answer")
                )
            else:
                self._fail(TransportError("ReadError", type(exc).__name__))

    # --- requests ---------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    async def roundtrip(self, head: bytes, deadline: float, *, head_only: bool = False) -> Answer:
        """Send ``head`` and wait for the answer; past ``deadline`` (loop time) ``time_out`` ends it."""
        if not self.reusable:
            raise TransportError("WriteError", "connection closed")
        self._reset()
        self._head_only = head_only
        self._buf.clear()
        waiter: asyncio.Future[Answer] = self._loop.create_future()
        self._waiter = waiter
        self.deadline = deadline
        assert self.transport is not None
        self.transport.write(head)
        try:
            return await waiter
        finally:
            self._waiter = None

    def time_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TransportError("ReadTimeout", "no complete answer in time", timeout=True))
            self.close()

    def _fail(self, exc: TransportError) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _finish(self, body: bytes) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, self._reason, self._headers, body))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- parsing ----------------------------------------------------------------------

    def _find(self, delimiter: bytes, pos: int) -> int:
        """Where ``delimiter`` is in the buffer after ``pos`` (the start of the awaited item), or -1.

        When it is not there yet, ``_parse`` returns, the bytes before ``pos`` are dropped, and
        the next search for the same item resumes where this one stopped.
        """
        buf = self._buf
        found = buf.find(delimiter, pos + self._scanned)
        self._scanned = 0 if found >= 0 else max(0, len(buf) - pos - len(delimiter) + 1)
        return found

    def _parse(self) -> None:
        """Consume what the buffer holds of the answer; the bytes consumed are dropped once, at the end."""
        buf = self._buf
        pos = 0
        try:
            while not self._status:
                end = self._find(b"\r\n\r\n", pos)
                # The head's length, or the least it can be (the last 3 bytes may begin its end):
                # the cap is crossed at the same byte whatever pieces the answer arrives in.
                if (end - pos if end >= 0 else len(buf) - pos - 3) > MAX_HEAD_BYTES:
                    raise TransportError("RemoteProtocolError", "response head too large")
                if end < 0:
                    return
                head = buf[pos:end].decode("latin-1")
                pos = end + 4
                self._read_head(head)
            if self._chunked:
                pos = self._read_chunks(pos)
            elif self._length >= 0:
                if len(buf) - pos >= self._length:
                    body = bytes(buf[pos : pos + self._length])
                    if len(buf) - pos > self._length:
                        self._keep_alive = False  # more than the answer: do not trust this connection
                    pos += self._length
                    self._done(body)
            elif len(buf) - pos > MAX_BODY_BYTES:
                raise body_too_large(self._status)
        finally:
            if pos:
                del buf[:pos]

    def _read_head(self, head: str) -> None:
        if _FORBIDDEN.search(head.replace("\r\n", "")):
            raise TransportError(
                "RemoteProtocolError", "control character or bare CR/LF in the response head"
            )
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not (
            len(version) == 8
            and version.startswith("HTTP/1.")
            and _digits(version[7])
            and len(code) == 3
            and _digits(code)
            and 100 <= int(code) <= 599
        ):
            raise TransportError("RemoteProtocolError", "malformed status line")
        status = int(code)
        headers = _fields(lines)
        if status < 200:  # 1xx (never asked for): the final answer follows
            return
        connection = headers.get("connection", "").lower()
        http11 = version != "HTTP/1.0"
        if http11:
            self._keep_alive = "close" not in connection
        else:
            self._keep_alive = "keep-alive" in connection
        self._status, self._reason, self._headers = status, reason, headers
        encoding = headers.get("transfer-encoding")
        if self._head_only or status in (204, 304):
            self._length = 0
        elif encoding is not None:
            # Anything but chunked alone could be framed two ways (RFC 9112 6.1, 6.3): refused.
            if encoding.lower() != "chunked":
                raise TransportError("RemoteProtocolError", "Transfer-Encoding other than chunked")
            if not http11:
                raise TransportError("RemoteProtocolError", "Transfer-Encoding in an HTTP/1.0 answer")
            if "content-length" in headers:
                raise TransportError("RemoteProtocolError", "both Transfer-Encoding and Content-Length")
            self._chunked = True
        elif "content-length" in headers:
            length = headers["content-length"]
            if not _digits(length):  # also two fields, or a list: "5, 5"
                raise TransportError("RemoteProtocolError", "invalid Content-Length")
            if _over_cap(length):
                raise body_too_large(status)  # declared: fail before reading any of it
            self._length = int(length.lstrip("0") or "0")
        else:
            self._length = -1
            self._keep_alive = False

    def _read_chunks(self, pos: int) -> int:
        """Decode chunks from ``pos`` on; returns where the unconsumed bytes begin.

        Linear: chunk data is copied into the body as it arrives (never waiting in the buffer
        for the rest of its chunk), the body's length is the running total checked against the
        cap (a declared chunk past it fails at once), and a size or trailer line not complete
        yet is searched again only from where the last search stopped.
        """
        buf = self._buf
        body = self._body
        while True:
            phase = self._phase
            if phase == _CHUNK_DATA:
                take = min(self._chunk_left, len(buf) - pos)
                if take:
                    body += buf[pos : pos + take]
                    pos += take
                    self._chunk_left -= take
                if self._chunk_left:
                    return pos
                self._phase = _CHUNK_DATA_END
            elif phase == _CHUNK_DATA_END:
                if len(buf) - pos < 2:
                    return pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise TransportError("RemoteProtocolError", "malformed chunk: no CRLF after its data")
                pos += 2
                self._phase = _CHUNK_SIZE
            else:  # a chunk-size line, or a trailer line after the last chunk
                end = self._find(b"\r\n", pos)
                # The line's length, or the least it can be (the last byte may begin its CRLF).
                pending = end - pos if end >= 0 else len(buf) - pos - 1
                if phase == _CHUNK_TRAILERS:
                    if self._trailer_bytes + pending > MAX_HEAD_BYTES:
                        raise TransportError("RemoteProtocolError", "chunked trailers too large")
                elif pending > MAX_HEAD_BYTES:
                    raise TransportError("RemoteProtocolError", "chunk header too large")
                if end < 0:
                    return pos
                line = buf[pos:end]
                pos = end + 2
                if phase == _CHUNK_TRAILERS:
                    if line:
                        self._trailer_bytes += len(line) + 2
                        _fields([line.decode("latin-1")])  # a field line, like a header's (then dropped)
                        if _FORBIDDEN_BYTES.search(line):
                            raise TransportError("RemoteProtocolError", "control character in a trailer")
                        continue
                    if pos < len(buf):
                        self._keep_alive = False  # more than the answer: do not trust this connection
                    self._done(bytes(body))
                    return pos
                size = _chunk_size(line)
                if size == 0:
                    self._phase = _CHUNK_TRAILERS
                elif len(body) + size > MAX_BODY_BYTES:
                    raise body_too_large(self._status)
                else:
                    self._chunk_left = size
                    self._phase = _CHUNK_DATA

    def _done(self, body: bytes) -> None:
        self._finish(body)
        if not self._keep_alive:
            self.close()


class Pool:
    """Keep-alive HTTP/1.1 connections per origin, for one event loop."""

    def __init__(self, *, timeout: float, connect_timeout: float, max_idle: int) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.connections_opened = 0
        self._in_flight: set[_Connection] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._period = min(0.5, max(0.005, timeout / 20))

    async def request(self, origin: Origin, head: bytes, *, head_only: bool = False) -> Answer:
        conn = self._idle_connection(origin)
        if conn is None:
            conn = await self._connect(origin)
        loop = asyncio.get_running_loop()
        self._in_flight.add(conn)
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._period, self._check, loop)
        try:
            answer = await conn.roundtrip(head, loop.time() + self.timeout, head_only=head_only)
        except BaseException:
            conn.close()  # failed or cancelled midway: its state is unknown
            raise
        finally:
            self._in_flight.discard(conn)
        if conn.reusable:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
            else:
                conn.close()
        return answer

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watchdog: time out the answers past their deadline; re-armed while any is in flight."""
        self._watchdog = None
        now = loop.time()
        for conn in [c for c in self._in_flight if c.deadline <= now]:
            conn.time_out()
        if self._in_flight:
            self._watchdog = loop.call_later(self._period, self._check, loop)

    def _idle_connection(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.reusable:
                return conn
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            context = self._ssl
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop),
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context is not None else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise TransportError("ConnectTimeout", "no connection in time", timeout=True) from None
        except OSError as exc:  # refused, unreachable, name resolution, TLS verification
            raise TransportError("ConnectError", type(exc).__name__) from None
        self.connections_opened += 1
        return conn

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class HttpxSender:
    """The httpx path: an injected transport (the fake in-process, tests), or proxies from the environment."""

    def __init__(
        self,
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        headers: Mapping[str, str],
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._extensions: dict[str, Any] = {"timeout": self._timeout.as_dict()}
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        if transport is None:  # proxies: the client reads them (and NO_PROXY) from the environment
            self._client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                # Like the lean pool, ask for no compression: the cap is on the decoded body.
                headers={"accept-encoding": "identity", **headers},
            )
        self._base_headers = dict(headers)
        self._urls: dict[Origin, httpx.URL] = {}

    async def send(self, method: str, origin: Origin, target: str, headers: Mapping[str, str]) -> Answer:
        httpx = self._httpx
        base = self._urls.get(origin)
        if base is None:
            base = self._urls[origin] = httpx.URL(f"{origin.scheme}://{origin.netloc}")
        url = base.copy_with(raw_path=target.encode("ascii"))
        request = httpx.Request(
            method, url, headers={**self._base_headers, **headers}, extensions=self._extensions
        )
        try:
            if self._client is not None:
                response = await self._client.send(request, stream=True)
            else:
                assert self._transport is not None
                response = await self._transport.handle_async_request(request)
            try:
                content = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise TransportError(type(exc).__name__, timeout=True) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransportError(type(exc).__name__) from None
        headers_out = {k.lower(): v for k, v in response.headers.items()}
        return Answer(response.status_code, response.reason_phrase, headers_out, content)

    @staticmethod
    async def _read_capped(response: httpx.Response) -> bytes:
        """The body, read as it streams in; past ``MAX_BODY_BYTES`` (declared or read) it is not read on."""
        declared = response.headers.get("content-length", "")
        if _digits(declared) and _over_cap(declared):
            raise body_too_large(response.status_code)
        parts: list[bytes] = []
        received = 0
        async for part in response.aiter_bytes():  # decoded: the cap is on what would be kept
            received += len(part)
            if received > MAX_BODY_BYTES:
                raise body_too_large(response.status_code)
            parts.append(part)
        return b"".join(parts)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
