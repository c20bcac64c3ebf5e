"""Hostile sizes: a huge or slow-to-parse answer costs bounded memory and linear CPU.

A broken or hostile endpoint (or a proxy in between) can answer with a body of any size,
or with a body cut into tiny chunks. ``httpwire.MAX_BODY_BYTES`` caps every body on both
wires (the lean pool: Content-Length, chunked and close-delimited; the httpx path) and a
body over it fails early with ``TransportError`` of kind ``httpwire.BODY_TOO_LARGE``;
the chunked decoder's work grows linearly with the bytes received.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kubeconfig_guard import httpwire
from kubeconfig_guard.client import STATES_PAGE_SIZE, AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.errors import AckApiError, RetryableInvocationError
from kubeconfig_guard.handlers import handle_event
from kubeconfig_guard.httpwire import (
    BODY_TOO_LARGE,
    MAX_BODY_BYTES,
    HttpxSender,
    Origin,
    Pool,
    TransportError,
)
from support.events import delete_user
from support.resilience import result_of
from support.wire import HEAD, Answerer, CountingBuffer, serve, waiting_connection
from support.worlds import cluster, kc, settings, world

LIST = "ListClusterKubeconfigStates"
ALICE = "200000000000000011"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in httpwire.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def one_byte_chunks(n: int) -> bytes:
    return CHUNKED_HEAD + b"1\r\nx\r\n" * n + b"0\r\n\r\n"


# --- the chunked decoder is linear --------------------------------------------------------------


def decode(wire: bytes, piece: int | None = None, buf: bytearray | None = None) -> tuple[float, bytes]:
    """(CPU seconds, body): ``wire`` fed to one connection's parser in pieces of ``piece`` bytes."""

    async def go() -> tuple[float, bytes]:
        conn, answer = await waiting_connection(buf)
        step = piece or len(wire)
        started = time.process_time()
        for i in range(0, len(wire), step):
            conn.data_received(wire[i : i + step])
        spent = time.process_time() - started
        return spent, (await answer).content

    return asyncio.run(go())


def test_chunked_decoding_cpu_grows_linearly() -> None:
    """10x the one-byte chunks cost about 10x the CPU (quadratic decoding would cost 100x)."""
    small, large = 40_000, 400_000
    for n in (small, large):  # the answer is right, fed whole or as a socket reads it (64 KiB)
        assert decode(one_byte_chunks(n))[1] == b"x" * n
    small_cpu = min(decode(one_byte_chunks(small), 65536)[0] for _ in range(3))
    large_cpu = min(decode(one_byte_chunks(large), 65536)[0] for _ in range(2))
    assert large_cpu / max(small_cpu, 1e-3) < 30, (small_cpu, large_cpu)


@pytest.mark.parametrize(
    ("name", "wire", "piece"),
    [
        ("40k one-byte chunks", one_byte_chunks(40_000), 65536),
        ("400k one-byte chunks", one_byte_chunks(400_000), 65536),
        ("trickled one-byte chunks", one_byte_chunks(4_000), 1),
        # A chunk line with a 60 KB extension, then a 60 KB head, each a byte at a time.
        ("trickled long chunk line", CHUNKED_HEAD + b"3;" + b"e" * 60_000 + b"\r\nabc\r\n0\r\n\r\n", 1),
        (
            "trickled long head",
            b"HTTP/1.1 200 OK\r\nX: " + b"h" * 60_000 + b"\r\nContent-Length: 3\r\n\r\nabc",
            1,
        ),
    ],
)
def test_parser_work_is_linear_in_the_bytes_received(name: str, wire: bytes, piece: int) -> None:
    """Deterministic: the buffer bytes searched, copied or moved stay a small multiple of the wire's."""
    buf = CountingBuffer()
    _, body = decode(wire, piece, buf)
    assert body
    assert buf.touched <= 16 * len(wire), (name, buf.touched / len(wire))


# --- the body cap, on the lean pool -------------------------------------------------------------


def too_large_body(framing: str) -> Answerer:
    """An answer whose body is over the cap; it would go on for 64 MiB if it were read."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = b"x" * 65536
        total = 64 * 1024 * 1024
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        elif framing == "chunked":
            writer.write(CHUNKED_HEAD)
            block = b"%x\r\n%s\r\n" % (len(block), block)
        elif framing == "chunked-declared":  # one chunk declared larger than the cap
            writer.write(CHUNKED_HEAD + b"%x\r\n" % total)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(total // 65536):
            writer.write(block)
            await writer.drain()

    return answer


FRAMINGS = ("content-length", "chunked", "chunked-declared", "close")


@pytest.mark.parametrize("framing", FRAMINGS)
def test_pool_fails_a_body_over_the_cap_early(framing: str) -> None:
    async def go() -> None:
        server, origin = await serve(too_large_body(framing))
        pool = Pool(timeout=10, connect_timeout=2, max_idle=2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(TransportError) as raised:
                await pool.request(origin, HEAD)
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()
        error = raised.value
        assert error.kind == BODY_TOO_LARGE and not error.timeout
        assert str(MAX_BODY_BYTES) in str(error)
        assert loop.time() - started < 5  # failed early: not at the timeout, not after 64 MiB

    asyncio.run(go())


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_pool_reads_a_body_at_the_cap(framing: str) -> None:
    content = b"y" * MAX_BODY_BYTES

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if framing == "content-length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(content) + content)
        elif framing == "chunked":
            half = len(content) // 2
            writer.write(CHUNKED_HEAD + b"%x\r\n%s\r\n" % (half, content[:half]) * 2 + b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + content)
        await writer.drain()

    async def go() -> None:
        server, origin = await serve(answer)
        pool = Pool(timeout=10, connect_timeout=2, max_idle=2)
        try:
            assert (await pool.request(origin, HEAD)).content == content
        finally:
            await pool.aclose()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


# --- the body cap, on the httpx path ------------------------------------------------------------


class _Stream(httpx.AsyncByteStream):
    """A streamed body of ``total`` bytes that counts what was read of it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += 65536
            yield b"x" * 65536

    async def aclose(self) -> None:
        self.closed = True


class _StreamingTransport(httpx.AsyncBaseTransport):
    def __init__(self, total: int, *, declare: bool) -> None:
        self.total, self.declare = total, declare
        self.streams: list[_Stream] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stream = _Stream(self.total)
        self.streams.append(stream)
        headers = {"content-length": str(self.total)} if self.declare else {"transfer-encoding": "chunked"}
        return httpx.Response(200, headers=headers, stream=stream, request=request)


def httpx_send(transport: httpx.AsyncBaseTransport) -> httpwire.Answer:
    async def go() -> httpwire.Answer:
        sender = HttpxSender(timeout=5, connect_timeout=5, max_connections=2, headers={}, transport=transport)
        try:
            return await sender.send("GET", Origin("http", "127.0.0.1", 1, "127.0.0.1:1"), "/x", {})
        finally:
            await sender.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "streamed"])
def test_httpx_path_fails_a_body_over_the_cap_early(declare: bool) -> None:
    transport = _StreamingTransport(64 * 1024 * 1024, declare=declare)
    with pytest.raises(TransportError) as raised:
        httpx_send(transport)
    assert raised.value.kind == BODY_TOO_LARGE and str(MAX_BODY_BYTES) in str(raised.value)
    (stream,) = transport.streams
    assert stream.closed
    assert stream.sent <= (0 if declare else MAX_BODY_BYTES + 65536)  # stopped at the cap


def test_httpx_path_reads_a_body_at_the_cap() -> None:
    transport = _StreamingTransport(MAX_BODY_BYTES, declare=False)
    assert httpx_send(transport).content == b"x" * MAX_BODY_BYTES


def test_httpx_proxy_client_fails_a_body_over_the_cap() -> None:
    """The proxied client (``transport=None``) streams too: a loopback server stands for the proxy."""

    async def go() -> None:
        server, origin = await serve(too_large_body("chunked"))
        sender = HttpxSender(timeout=10, connect_timeout=2, max_connections=2, headers={}, transport=None)
        try:
            with pytest.raises(TransportError) as raised:
                await sender.send("GET", origin, "/x", {"host": origin.netloc})
        finally:
            await sender.aclose()
            server.close()
            await server.wait_closed()
        assert raised.value.kind == BODY_TOO_LARGE

    asyncio.run(go())


# --- a slow-to-parse chunked answer from a real socket ------------------------------------------


def chunked_json(doc: bytes, chunks: int, size: int) -> bytes:
    """``doc`` padded with spaces to ``chunks`` chunks of ``size`` bytes (a valid JSON body)."""
    body = doc + b" " * (chunks * size - len(doc))
    parts = [b"%x\r\n%s\r\n" % (size, body[i : i + size]) for i in range(0, len(body), size)]
    return CHUNKED_HEAD + b"".join(parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("size", [1, 32], ids=["40k-one-byte-chunks", "40k-chunks-over-the-cap"])
def test_client_request_against_a_40k_chunk_server_ends_within_its_timeout(size: int) -> None:
    """The real client (a signed DescribeClustersV1) against a socket server answering with 40,000
    chunks, written as a server would (in pieces): done, or failed at the cap, within the timeout.

    40,000 one-byte chunks are a 40 KB body; 40,000 of 32 bytes pass the cap (1.28 MB).
    """
    wire = chunked_json(b'{"clusters": [], "page_info": {"total_count": 0}}', 40_000, size)
    timeout = 2.0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(0, len(wire), 16384):
            writer.write(wire[i : i + 16384])
            await writer.drain()

    async def go() -> None:
        server, origin = await serve(answer)
        client = AckClient(
            settings(cs_endpoint=f"http://{origin.netloc}", timeout_seconds=timeout, max_attempts=1),
            StaticCredentials(from_environment_or_demo()),
        )
        loop = asyncio.get_running_loop()
        started, cpu = loop.time(), time.process_time()
        try:
            if size == 1:
                assert await client.describe_clusters("cn-hangzhou") == []
            else:
                with pytest.raises(AckApiError) as raised:
                    await client.describe_clusters("cn-hangzhou")
                assert BODY_TOO_LARGE in str(raised.value) and raised.value.code != "Transport.Timeout"
        finally:
            await client.aclose()
            server.close()
            await server.wait_closed()
        elapsed, spent = loop.time() - started, time.process_time() - cpu
        assert elapsed < timeout, (elapsed, spent)

    asyncio.run(go())


# --- end to end: the event function against a fake ACK with 200 KB names ------------------------

NAME_BYTES = 200_000
STATES = 40 * STATES_PAGE_SIZE  # 40 full pages of kubeconfigs (page 1 alone is ~10 MB)


def huge_names_world() -> Any:
    """One cluster: alice (deleted, revokable) among 2,000 users whose names are 200 KB each.

    The names share one string, so the world itself costs ~200 KB; only the answers are large.
    """
    name = "n" * NAME_BYTES
    others = [kc(f"21000000000{i:07d}", name, account_state="Active") for i in range(STATES - 1)]
    return world({"cn-hangzhou": [cluster("big", kc(ALICE, "alice"), *others)]})


def test_event_with_200kb_names_fails_the_cluster_in_bounded_memory(make_harness: Any) -> None:
    """40 pages of 200 KB names (400 MB if read; 412 MiB in-process and 682 MiB over HTTP before the
    cap): the first page is over the cap, the cluster fails, nothing is revoked, memory stays low.

    tracemalloc starts after the world and the runtime are built, so its peak is what the handler
    call allocated: the client's, and the fake's own (it serializes a ~10 MB page per attempt, in
    this process on both wires) -- ~40 MiB, against 256 MiB allowed.
    """
    h = make_harness(huge_names_world())
    runtime = h.runtime()
    event = delete_user("alice")
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        try:
            result = handle_event(event, None, runtime=runtime)
            doc = json.loads(result.model_dump_json())
        except RetryableInvocationError as exc:  # a transient failure: Function Compute retries
            doc = result_of(exc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    grown = (peak - before) / 2**20
    assert grown < 256, f"peak {grown:.0f} MiB above the start"
    assert h.backend.revocations == [] and doc["actions"] == []
    (issue,) = doc["clusters"]
    assert (issue["cluster_id"], issue["status"]) == ("big", "failed"), issue
    # client.py maps the kind to its own code: an answer that fits no documented shape.
    assert issue["error_code"] == "InvalidResponse.TooLarge" and str(MAX_BODY_BYTES) in issue["reason"], issue
    assert h.backend.calls[LIST] <= runtime.settings.max_attempts
