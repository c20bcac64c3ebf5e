"""One ``httpwire`` connection fed by hand: a transport that sends nowhere, a connection that has
written its request and waits for the answer the test gives it byte by byte, and a receive buffer
that counts the bytes the parser touches (linear, not quadratic, whatever the split); and a loopback
server whose answers the test writes (``serve``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, SupportsIndex

from kubeconfig_guard import httpwire
from kubeconfig_guard.httpwire import Answer, Origin, request_head

HEAD = request_head("GET", "/x", {"host": "127.0.0.1", "accept": "application/json"})


class NullTransport(asyncio.Transport):
    """Writes go nowhere; closing is remembered."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class CountingBuffer(bytearray):
    """A receive buffer that counts the bytes its searches, copies and deletions may touch."""

    touched = 0

    def find(self, sub: Any, start: SupportsIndex | None = None, end: SupportsIndex | None = None) -> int:
        found = super().find(sub, start, end)
        lo = 0 if start is None else int(start)
        hi = len(self) if end is None else min(int(end), len(self))
        self.touched += max(0, (found + len(sub) if found >= 0 else hi) - lo)
        return found

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            self.touched += len(range(*key.indices(len(self))))
        return super().__getitem__(key)

    def __delitem__(self, key: Any) -> None:
        self.touched += len(self)  # at worst the rest is moved to the front
        super().__delitem__(key)


async def waiting_connection(
    buf: bytearray | None = None,
) -> tuple[httpwire._Connection, asyncio.Future[Answer]]:
    """(connection, its answer): the request written, the parser waiting; ``buf``: its receive buffer."""
    conn = httpwire._Connection(asyncio.get_running_loop())
    if buf is not None:
        conn._buf = buf
    conn.connection_made(NullTransport())
    answer = asyncio.ensure_future(conn.roundtrip(HEAD, deadline=float("inf")))
    await asyncio.sleep(0)  # the request is written; the connection waits for its answer
    return conn, answer


Answerer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(answer: Answerer) -> tuple[asyncio.base_events.Server, Origin]:
    """A loopback server that reads each connection's request head, then lets ``answer`` write (a
    reset or an early close by the client ends it quietly); the caller closes the server."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, Origin("http", "127.0.0.1", port, f"127.0.0.1:{port}")
