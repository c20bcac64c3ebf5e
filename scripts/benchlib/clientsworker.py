"""One measured run of one HTTP client (a child of ``benchlib.clients``): N signed GETs at C in flight.

    python -m benchlib.clientsworker '<spec JSON>'

The spec names the client (``httpwire``: kubeconfig-guard's hand-written ``httpwire.Pool``;
``aiohttp``: an ``aiohttp.ClientSession``, llhttp's parser; ``httpx``: an ``httpx.AsyncClient``
with its default transport, httpcore and h11), the fake ACK's URL and access key, and the
clusters to list. Every request is the same for every client: a ``ListClusterKubeconfigStates``
page (pageSize 50) of one of the clusters in turn, signed by ``kubeconfig_guard.signing`` exactly
as ``AckClient`` signs it (fresh nonce and date), the same headers (``accept-encoding: identity``:
no client asks for compression), the body read whole. Not measured: imports, the client's
construction, and a warm-up that opens the connections (one request per slot). Measured: the
wall time and this process's CPU time of the N requests (``time.process_time``), with the
garbage collector set as ``kubeconfig_guard.runtime`` sets it on Function Compute.

Prints one JSON line: ``{"client", "requests", "wall", "cpu", "errors", "bytes"}``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from kubeconfig_guard import signing
from kubeconfig_guard.api import API_VERSION, LIST_CLUSTER_KUBECONFIG_STATES, STATES_PAGING
from kubeconfig_guard.client import BASE_HEADERS

CLIENTS = ("httpwire", "aiohttp", "httpx")
PAGE_SIZE = "50"

# (target: path and query, headers) -> (status, body length)
Send = Callable[[str, dict[str, str]], Awaitable[tuple[int, int]]]


def signed(netloc: str, key_id: str, secret: str, cluster: str) -> tuple[str, dict[str, str]]:
    """The target and headers of one signed page request, as ``AckClient._send_once`` makes them."""
    op = LIST_CLUSTER_KUBECONFIG_STATES
    path = signing.encode_path(op.path, ClusterId=cluster)
    query = {STATES_PAGING.number_param: "1", STATES_PAGING.size_param: PAGE_SIZE}
    headers = {
        "host": netloc,
        "x-acs-action": op.name,
        "x-acs-version": API_VERSION,
        "x-acs-date": signing.acs_date(),
        "x-acs-signature-nonce": os.urandom(16).hex(),
        "x-acs-content-sha256": signing.EMPTY_PAYLOAD_SHA256,
    }
    headers["authorization"] = signing.authorization(
        access_key_id=key_id,
        access_key_secret=secret,
        method=op.method,
        path=path,
        query=query,
        headers=headers,
    )
    headers.update(BASE_HEADERS)
    headers["accept-encoding"] = "identity"
    return f"{path}?{signing.canonical_query(query)}", headers


async def _httpwire(base: str, concurrency: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    from kubeconfig_guard.httpwire import Origin, Pool, request_head

    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    origin = Origin("http", parts.hostname, parts.port, parts.netloc)
    pool = Pool(timeout=30, connect_timeout=10, max_idle=concurrency)

    async def send(target: str, headers: dict[str, str]) -> tuple[int, int]:
        answer = await pool.request(origin, request_head("GET", target, headers))
        return answer.status, len(answer.content)

    return send, pool.aclose


async def _aiohttp(base: str, concurrency: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import aiohttp
    from yarl import URL

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=30, connect=10),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
    )

    async def send(target: str, headers: dict[str, str]) -> tuple[int, int]:
        async with session.get(URL(base + target, encoded=True), headers=headers) as resp:
            body = await resp.read()
            return resp.status, len(body)

    return send, session.close


async def _httpx(base: str, concurrency: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    import httpx

    client = httpx.AsyncClient(
        timeout=httpx.Timeout(30, connect=10),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        trust_env=False,
    )

    async def send(target: str, headers: dict[str, str]) -> tuple[int, int]:
        resp = await client.get(base + target, headers=headers)
        return resp.status_code, len(resp.content)

    return send, client.aclose


FACTORIES = {"httpwire": _httpwire, "aiohttp": _aiohttp, "httpx": _httpx}


async def measure(spec: dict[str, Any]) -> dict[str, Any]:
    base: str = spec["url"].rstrip("/")
    netloc = urlsplit(base).netloc
    key_id, secret = spec["access_key"]
    clusters = itertools.cycle(spec["clusters"])
    concurrency: int = spec["concurrency"]
    send, close = await FACTORIES[spec["client"]](base, concurrency)
    errors = 0
    received = 0

    async def one() -> None:
        nonlocal errors, received
        target, headers = signed(netloc, key_id, secret, next(clusters))
        try:
            status, length = await send(target, headers)
        except Exception:
            errors += 1
            return
        if status != 200 or not length:
            errors += 1
        received += length

    async def run(total: int) -> None:
        left = iter(range(total))

        async def worker() -> None:
            for _ in left:
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    try:
        await run(concurrency)  # warm-up: every slot's connection opened
        errors = received = 0
        started, cpu = time.perf_counter(), time.process_time()
        await run(spec["requests"])
        wall, spent = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await close()
    return {
        "client": spec["client"],
        "requests": spec["requests"],
        "wall": wall,
        "cpu": spent,
        "errors": errors,
        "bytes": received,
    }


def main() -> None:
    from kubeconfig_guard.runtime import tune_gc

    spec = json.loads(sys.argv[1])
    tune_gc()  # the garbage collector as on Function Compute
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(measure(spec))
    finally:
        loop.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
