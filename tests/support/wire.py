"""One ``httpwire`` connection fed by hand: a transport that sends nowhere, and a connection that
has written its request and waits for the answer the test gives it byte by byte."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeconfig_guard import httpwire
from kubeconfig_guard.httpwire import Answer, request_head

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
