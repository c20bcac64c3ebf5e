"""The lean HTTP/1.1 pool against a raw loopback server: framing, keep-alive, failures, timeouts.

The fake ACK always answers with Content-Length and keep-alive; real endpoints and proxies in
between may answer chunked, close-delimited, or close an idle connection. These scripted
answers cover what the fake does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from kubeconfig_guard.client import AckClient, endpoint_url
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.httpwire import Origin, Pool, TransportError, proxy_configured, request_head
from kubeconfig_guard.settings import Settings

Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def with_server(answer: Answerer, body: Callable[[Origin, list[int]], Awaitable[None]]) -> list[int]:
    """Run ``body`` against a loopback server; returns the request count per connection."""
    per_connection: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(per_connection)
        per_connection.append(0)
        try:
            while True:
                await _read_request(reader)
                per_connection[index] += 1
                await answer(reader, writer, per_connection[index])
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await body(Origin("http", "127.0.0.1", port, f"127.0.0.1:{port}"), per_connection)
    finally:
        server.close()
        await server.wait_closed()
    return per_connection


def head(target: str = "/x") -> bytes:
    return request_head("GET", target, {"host": "127.0.0.1", "accept": "application/json"})


def test_request_head_is_one_block() -> None:
    assert head("/a?b=1") == b"GET /a?b=1 HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: application/json\r\n\r\n"


def test_content_length_keep_alive_reuses_one_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        body = f'{{"n":{n}}}'.encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Acs-Request-Id: r%d\r\n\r\n" % (len(body), n) + body
        )
        await writer.drain()

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=2, connect_timeout=2, max_idle=4)
        answers = [await pool.request(origin, head()) for _ in range(3)]
        assert [(a.status, a.content, a.headers["x-acs-request-id"]) for a in answers] == [
            (200, b'{"n":1}', "r1"),
            (200, b'{"n":2}', "r2"),
            (200, b'{"n":3}', "r3"),
        ]
        assert pool.connections_opened == 1
        await pool.aclose()

    assert asyncio.run(with_server(answer, body)) == [3]


def test_chunked_body_with_extensions_and_trailers() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n'
        )
        await writer.drain()

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=2, connect_timeout=2, max_idle=4)
        for _ in range(2):  # the connection stays usable after a chunked answer
            answer_ = await pool.request(origin, head())
            assert answer_.content == b'{"a": 1}'
        assert pool.connections_opened == 1
        await pool.aclose()

    asyncio.run(with_server(answer, body))


def test_connection_close_and_close_delimited_bodies_are_not_reused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"until": "close"}')
        await writer.drain()
        writer.close()

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=2, connect_timeout=2, max_idle=4)
        assert (await pool.request(origin, head())).content == b'{"until": "close"}'
        assert (await pool.request(origin, head())).content == b'{"until": "close"}'
        assert pool.connections_opened == 2
        await pool.aclose()

    assert asyncio.run(with_server(answer, body)) == [1, 1]


def test_idle_connection_closed_by_the_server_is_not_reused() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()  # a keep-alive timeout on the server's side, without Connection: close

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=2, connect_timeout=2, max_idle=4)
        assert (await pool.request(origin, head())).status == 204
        await asyncio.sleep(0.05)  # the close reaches the client while the connection is idle
        assert (await pool.request(origin, head())).status == 204
        assert pool.connections_opened == 2
        await pool.aclose()

    asyncio.run(with_server(answer, body))


def test_disconnect_mid_body_timeout_and_refused_are_transport_errors() -> None:
    served: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        served.append(n)
        if len(served) == 1:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"half')
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(5)  # never answers

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=0.3, connect_timeout=2, max_idle=4)
        with pytest.raises(TransportError) as cut:
            await pool.request(origin, head())
        assert cut.value.kind == "RemoteProtocolError" and not cut.value.timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TransportError) as hung:
            await pool.request(origin, head())
        assert hung.value.kind == "ReadTimeout" and hung.value.timeout
        assert 0.3 <= loop.time() - started < 1.5
        await pool.aclose()

    asyncio.run(with_server(answer, body))

    async def refused() -> None:
        pool = Pool(timeout=1, connect_timeout=1, max_idle=1)
        with pytest.raises(TransportError) as raised:
            await pool.request(Origin("http", "127.0.0.1", 9, "127.0.0.1:9"), head())
        assert raised.value.kind == "ConnectError"

    asyncio.run(refused())


def test_malformed_answers_are_protocol_errors() -> None:
    served: list[int] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        served.append(n)
        bad = b"HTTP/1.1 OK\r\n\r\n" if len(served) == 1 else b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"
        writer.write(bad)
        await writer.drain()

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=1, connect_timeout=1, max_idle=1)
        for _ in range(2):
            with pytest.raises(TransportError) as raised:
                await pool.request(origin, head())
            assert raised.value.kind == "RemoteProtocolError"
        await pool.aclose()

    asyncio.run(with_server(answer, body))


def test_proxy_variables_route_the_client_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not proxy_configured()
    settings = Settings(cs_endpoint="http://127.0.0.1:1")
    direct = AckClient(settings, StaticCredentials(from_environment_or_demo()))
    assert direct._pool is not None and direct._httpx is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxy_configured()
    proxied = AckClient(settings, StaticCredentials(from_environment_or_demo()))
    assert proxied._pool is None and proxied._httpx is not None

    async def close() -> None:
        await direct.aclose()
        await proxied.aclose()

    asyncio.run(close())


def test_endpoint_origins() -> None:
    assert endpoint_url("cn-beijing", None) == Origin(
        "https", "cs.cn-beijing.aliyuncs.com", 443, "cs.cn-beijing.aliyuncs.com"
    )
    assert endpoint_url("x", "https://cs-vpc.x.aliyuncs.com:8443/a?b=1") == Origin(
        "https", "cs-vpc.x.aliyuncs.com", 8443, "cs-vpc.x.aliyuncs.com:8443", "/"
    )
    assert endpoint_url("x", "http://[::1]:8080").netloc == "[::1]:8080"
    assert endpoint_url("x", "https://cs.x.aliyuncs.com:443").netloc == "cs.x.aliyuncs.com"


@pytest.mark.parametrize(
    "answer_bytes",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc\r\n0\r\n\r\n",  # a negative size
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",  # int()'s prefix
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\nabc\r\n0\r\n\r\n",  # int()'s separator
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",  # no size
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",  # data past its size
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"  # endless trailers
        + b"X-T: "
        + b"t" * (64 * 1024)
        + b"\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: ²\r\n\r\n".encode("latin-1"),  # a digit, not ASCII
        "HTTP/1.1 ²00 OK\r\nContent-Length: 0\r\n\r\n".encode("latin-1"),
    ],
    ids=["negative", "0x", "underscore", "empty", "overrun", "trailers", "cl-unicode", "status-unicode"],
)
def test_malformed_framing_is_a_protocol_error(answer_bytes: bytes) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(answer_bytes)
        await writer.drain()

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=2, connect_timeout=2, max_idle=1)
        with pytest.raises(TransportError) as raised:
            await pool.request(origin, head())
        assert raised.value.kind == "RemoteProtocolError", raised.value
        await pool.aclose()

    asyncio.run(with_server(answer, body))


def test_byte_at_a_time_answers_decode_and_keep_the_connection() -> None:
    """Every framing, written one byte per packet, decodes the same (the resumable parser)."""
    answers = [
        b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"a": 1}',
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{"a":\r\n3\r\n 1}\r\n0\r\nX-T: t\r\n\r\n',
        b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n{"a": 1}',
    ]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        for byte in answers[n - 1]:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)

    async def body(origin: Origin, _: list[int]) -> None:
        pool = Pool(timeout=5, connect_timeout=2, max_idle=1)
        for _ in answers:
            assert (await pool.request(origin, head())).content == b'{"a": 1}'
        assert pool.connections_opened == 1
        await pool.aclose()

    assert asyncio.run(with_server(answer, body)) == [3]
