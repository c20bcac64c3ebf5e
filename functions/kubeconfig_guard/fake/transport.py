"""In-process front end: an httpx transport (async and sync) over a ``FakeAck`` backend or a ``FakeCloud``.

``httpx.AsyncClient(transport=FakeAckTransport(backend))`` sends requests straight to
the wire layer, no sockets (``FakeAckTransport(cloud)``: every account, STS and Resource Manager). Faults map to what httpx would raise: a hang or a slow
answer beyond the request's read timeout sleeps that long and raises
``httpx.ReadTimeout``; a reset raises ``httpx.RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from . import wire
from .cloudwire import Served, answer


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout")
    if isinstance(timeout, dict):
        value = timeout.get("read")
        return float(value) if value is not None else None
    return None


def _raw_target(request: httpx.Request) -> str:
    return request.url.raw_path.decode("ascii")


def _to_httpx(request: httpx.Request, answer: wire.WireResponse) -> httpx.Response:
    return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


class FakeAckTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """An httpx transport answering like ACK from a ``FakeAck`` backend (usable sync and async), or
    like the whole cloud (ACK per account, STS, Resource Manager) from a ``FakeCloud``."""

    def __init__(self, backend: Served) -> None:
        self.backend = backend

    def _plan(
        self, request: httpx.Request, body: bytes
    ) -> tuple[wire.WireResponse, float, BaseException | None]:
        """(answer, seconds to wait first, exception to raise after waiting instead of answering)."""
        served = answer(
            self.backend, request.method, _raw_target(request), request.headers.multi_items(), body
        )
        fault = served.fault
        delay = fault.latency_seconds
        read_timeout = _read_timeout(request)
        if fault.kind in ("hang", "slow"):
            if read_timeout is not None and fault.seconds >= read_timeout:
                return served, delay + read_timeout, httpx.ReadTimeout("fake ACK: no answer", request=request)
            if fault.kind == "hang":  # the server closes the connection without answering
                error = httpx.RemoteProtocolError("fake ACK: server disconnected", request=request)
                return served, delay + fault.seconds, error
            return served, delay + fault.seconds, None
        if fault.kind == "reset":
            error = httpx.RemoteProtocolError("fake ACK: connection reset by peer", request=request)
            return served, delay, error
        return served, delay, None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        served, delay, error = self._plan(request, body)
        if delay > 0:
            await asyncio.sleep(delay)
        if error is not None:
            raise error
        return _to_httpx(request, served)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        served, delay, error = self._plan(request, body)
        if delay > 0:
            time.sleep(delay)
        if error is not None:
            raise error
        return _to_httpx(request, served)
