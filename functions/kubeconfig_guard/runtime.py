"""One engine per process, on one background event loop.

Every invocation of an instance submits its work to the same event loop, so they share
one connection pool, one concurrency cap, one rate limiter and the single-flight
listings. On Function Compute 3.0's standard runtimes an instance runs one invocation
at a time: a burst queues onto the few instances ``reservedConcurrency`` allows, and each
later invocation finds the pool's connections open and the listings its predecessors
took (the engine re-lists only the clusters where its principal has candidates). When
several threads call the handler at once (a custom runtime, local runs), they share the
same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from .client import AckClient
from .credentials import Credentials, CredentialsProvider, DefaultChainCredentials
from .engine import Engine
from .settings import Settings

if TYPE_CHECKING:
    import httpx

    from .organization import Organization

T = TypeVar("T")

# The cyclic garbage collector's first-generation threshold while a Runtime exists. A listing
# allocates tens of thousands of long-lived objects (models of kubeconfig states, kept for the
# freshness window) and almost no cyclic garbage (reference counting frees the rest); at the
# default threshold (700) the collector ran ~150 times per medium event and re-scanned those
# objects, 10-15 % of the event's CPU. Raised, never lowered.
GC_GEN0_THRESHOLD = 50_000
_gc_tuned = False


def tune_gc() -> None:
    """Once per process: freeze what the imports made (never scanned again), collect less often."""
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 and gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


class InvocationCredentials:
    """The credentials of the latest invocation's context, else the default chain."""

    def __init__(self, fallback: CredentialsProvider | None = None) -> None:
        self._latest: Credentials | None = None
        self._fallback = fallback or DefaultChainCredentials()

    def update(self, credentials: Credentials | None) -> None:
        if credentials is not None:
            credentials.register()  # registered when made (``Credentials.__post_init__``); a copy too
            self._latest = credentials

    async def get(self) -> Credentials:
        if self._latest is not None:
            return self._latest
        credentials = await self._fallback.get()
        credentials.register()  # registered when made (``Credentials.__post_init__``); a copy too
        return credentials


class Runtime:
    """A background event loop thread that owns the process's engine."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: CredentialsProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        caller_uids: frozenset[str] = frozenset(),
    ) -> None:
        tune_gc()
        self.settings = settings
        self.credentials = InvocationCredentials(credentials)
        self._transport = transport
        self._caller_uids = caller_uids
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kcguard-loop", daemon=True)
        self._thread.start()
        self.engine: Engine = self.run(self._make_engine())
        self._organization: Organization | None = None

    @property
    def organization(self) -> Organization | None:
        """Organization mode's accounts and their scopes (``KCGUARD_ACCOUNTS`` other than ``self``),
        made on first use; None in self mode."""
        if self._organization is None and self.settings.accounts_spec().organization:
            from .organization import Organization

            function = os.environ.get("FC_FUNCTION_NAME", "")
            self._organization = Organization(self.settings, self.engine, function_name=function)
        return self._organization

    async def _make_engine(self) -> Engine:
        client = AckClient(self.settings, self.credentials, transport=self._transport)
        return Engine(self.settings, client, caller_uids=self._caller_uids)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine's loop from any thread and wait for its result.

        After ``timeout`` seconds the coroutine is cancelled and ``TimeoutError`` raised.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the work did not finish within {timeout} s") from None

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.run(_cancel_background_tasks())  # e.g. shared listings no invocation waits for any more
        self.run(self.engine.client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _cancel_background_tasks() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_default: Runtime | None = None
_default_lock = threading.Lock()


def default_runtime() -> Runtime:
    """The process-wide runtime, built from the environment on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Runtime(Settings())
        return _default


def install(runtime: Runtime | None) -> Runtime | None:
    """Replace the process-wide runtime (local runs and tests); returns the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, runtime
        return previous
