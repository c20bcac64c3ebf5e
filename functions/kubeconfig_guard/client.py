"""The ACK OpenAPI client (product CS, version 2015-12-15) over httpx.

One client per process: one connection pool per endpoint, one global concurrency
cap, one adaptive request-rate limiter, retries with exponential back-off and
full jitter (tenacity) on throttling, 5xx, timeouts and connection errors. A 4xx
business error is never retried. The fake ACK plugs in as the httpx transport.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from . import __version__, signing
from .credentials import CredentialsProvider
from .errors import AckApiError, KcguardError
from .models import (
    Cluster,
    DescribeClustersV1Response,
    KubeconfigState,
    ListClusterKubeconfigStatesResponse,
)
from .ratelimit import AdaptiveRateLimiter
from .settings import Settings

API_VERSION = "2015-12-15"
STATES_PAGE_SIZE = 50
CLUSTERS_PAGE_SIZE = 100
MAX_STATES_PAGES = 2000
LISTING_PASSES = 3  # reads of a listing that keeps changing before giving up on it

log = logging.getLogger("kubeconfig_guard.client")

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Operation:
    """An ACK OpenAPI operation and the RAM action that authorizes it."""

    name: str
    method: str
    path: str
    ram_action: str


DESCRIBE_CLUSTERS_V1 = Operation("DescribeClustersV1", "GET", "/api/v1/clusters", "cs:DescribeClustersV1")
LIST_CLUSTER_KUBECONFIG_STATES = Operation(
    "ListClusterKubeconfigStates",
    "GET",
    "/clusters/{ClusterId}/kubeconfig/states",
    "cs:ListClusterKubeconfigStates",
)
CLEAN_CLUSTER_USER_PERMISSIONS = Operation(
    "CleanClusterUserPermissions",
    "DELETE",
    "/cluster/{ClusterId}/user/{Uid}/permissions",
    "cs:CleanClusterUserPermissions",
)
# Every operation the code can call. The least-privilege policy is derived from this
# (plus ram:ListUsers / ram:ListRoles, which ACK requires for ListClusterKubeconfigStates).
OPERATIONS = (DESCRIBE_CLUSTERS_V1, LIST_CLUSTER_KUBECONFIG_STATES, CLEAN_CLUSTER_USER_PERMISSIONS)
ASSOCIATED_RAM_ACTIONS = {LIST_CLUSTER_KUBECONFIG_STATES.name: ("ram:ListUsers", "ram:ListRoles")}


@dataclass
class ClientStats:
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    retries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "transport_errors": self.transport_errors,
            "retries": self.retries,
        }


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@functools.lru_cache(maxsize=256)
def endpoint_url(region: str, override: str | None) -> httpx.URL:
    """``https://cs.{region}.aliyuncs.com``, or the override (plain http only to loopback)."""
    if not override:
        return httpx.URL(f"https://cs.{region}.aliyuncs.com")
    url = httpx.URL(override if "://" in override else f"https://{override}")
    if url.scheme not in ("http", "https") or not url.host:
        raise KcguardError(f"KCGUARD_CS_ENDPOINT must be an http(s) host, got scheme {url.scheme!r}")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise KcguardError("KCGUARD_CS_ENDPOINT: plain http is allowed only to loopback addresses")
    return url.copy_with(path="/", query=None)


class AckClient:
    """Typed, signed, rate-limited access to the three ACK operations kubeconfig-guard uses."""

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=settings.max_concurrency,
                max_keepalive_connections=settings.max_concurrency,
            ),
            headers={"accept": "application/json", "user-agent": f"kubeconfig-guard/{__version__}"},
        )
        self._concurrency = asyncio.Semaphore(settings.max_concurrency)
        self.rate_limiter = AdaptiveRateLimiter(settings.max_rps)
        self.stats = ClientStats()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AckClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- operations -----------------------------------------------------------------

    async def describe_clusters(self, region: str) -> list[Cluster]:
        """Every cluster of a region (DescribeClustersV1, all pages)."""
        clusters: dict[str, Cluster] = {}
        page = 1
        while True:
            query = {"region_id": region, "page_number": str(page), "page_size": str(CLUSTERS_PAGE_SIZE)}
            body = await self._call(DESCRIBE_CLUSTERS_V1, region, {}, query)
            resp = _parse(DescribeClustersV1Response, body, DESCRIBE_CLUSTERS_V1)
            for cluster in resp.clusters:
                clusters.setdefault(cluster.cluster_id, cluster)
            total = resp.page_info.total_count
            if len(resp.clusters) < CLUSTERS_PAGE_SIZE or page * CLUSTERS_PAGE_SIZE >= total:
                return list(clusters.values())
            page += 1

    async def _states_page(
        self, region: str, cluster_id: str, page: int
    ) -> ListClusterKubeconfigStatesResponse:
        query = {"pageNumber": str(page), "pageSize": str(STATES_PAGE_SIZE)}
        body = await self._call(LIST_CLUSTER_KUBECONFIG_STATES, region, {"ClusterId": cluster_id}, query)
        return _parse(ListClusterKubeconfigStatesResponse, body, LIST_CLUSTER_KUBECONFIG_STATES)

    async def list_kubeconfig_states(self, region: str, cluster_id: str) -> list[KubeconfigState]:
        """Every kubeconfig state of a cluster: page 1, then the other pages concurrently.

        Correct when the list changes while it is read: duplicates (an item pushed onto
        the next page) are dropped, and when the total moved the listing is read again
        so an item pulled onto an earlier page is not lost. A short page ends it.
        """
        previous: dict[tuple[str, str], KubeconfigState] | None = None
        for _attempt in range(LISTING_PASSES):
            states, stable = await self._list_states_once(region, cluster_id)
            if stable or (previous is not None and previous.keys() == states.keys()):
                return list(states.values())
            previous = states
        raise AckApiError(
            status=0,
            code="Listing.Unstable",
            message=f"the kubeconfig list kept changing while it was read ({LISTING_PASSES} passes)",
            operation=LIST_CLUSTER_KUBECONFIG_STATES.name,
        )

    async def _list_states_once(
        self, region: str, cluster_id: str
    ) -> tuple[dict[tuple[str, str], KubeconfigState], bool]:
        first = await self._states_page(region, cluster_id, 1)
        total = first.page.total_count
        pages = [first]
        if len(first.states) >= STATES_PAGE_SIZE:
            last_page = math.ceil(total / STATES_PAGE_SIZE)
            if last_page > 1:
                pages += await asyncio.gather(
                    *(self._states_page(region, cluster_id, n) for n in range(2, last_page + 1))
                )
            # The list grew while we read it: keep reading while the last page is full and
            # some page reported more states than were read (a full last page is not a sign).
            while (
                len(pages[-1].states) >= STATES_PAGE_SIZE
                and len(pages) * STATES_PAGE_SIZE < max(p.page.total_count for p in pages)
                and len(pages) < MAX_STATES_PAGES
            ):
                pages.append(await self._states_page(region, cluster_id, len(pages) + 1))
        states: dict[tuple[str, str], KubeconfigState] = {}
        short_seen = False
        for page in pages:
            if short_seen:
                break
            for state in page.states:
                states.setdefault((state.account_type or "", state.account_id), state)
            short_seen = len(page.states) < STATES_PAGE_SIZE
        stable = all(p.page.total_count == total for p in pages) and len(states) == total
        return states, stable

    async def clean_user_permissions(self, region: str, cluster_id: str, uid: str, *, force: bool) -> None:
        """Revoke every kubeconfig and RBAC binding of ``uid`` on the cluster."""
        await self._call(
            CLEAN_CLUSTER_USER_PERMISSIONS,
            region,
            {"ClusterId": cluster_id, "Uid": uid},
            {"Force": "true" if force else "false"},
        )

    # --- wire -----------------------------------------------------------------------

    async def _call(
        self, op: Operation, region: str, path_params: dict[str, str], query: dict[str, str]
    ) -> Any:
        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.debug("retrying %s after %s", op.name, getattr(exc, "code", type(exc).__name__))

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, AckApiError) and e.transient),
            wait=wait_random_exponential(multiplier=0.2, max=self.settings.backoff_max_seconds),
            stop=stop_after_attempt(self.settings.max_attempts),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._concurrency:
                    # The rate slot is taken inside the cap, so a decrease reaches every waiter.
                    await self.rate_limiter.acquire()
                    return await self._send_once(op, region, path_params, query)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_once(
        self, op: Operation, region: str, path_params: dict[str, str], query: dict[str, str]
    ) -> Any:
        base = endpoint_url(region, self.settings.cs_endpoint)
        path = signing.encode_path(op.path, **path_params)
        creds = await self._credentials.get()
        headers = {
            "host": base.netloc.decode("ascii"),
            "x-acs-action": op.name,
            "x-acs-version": API_VERSION,
            "x-acs-date": signing.acs_date(),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": signing.EMPTY_PAYLOAD_SHA256,
        }
        if creds.security_token is not None:
            headers["x-acs-security-token"] = creds.security_token.get_secret_value()
        headers["authorization"] = signing.authorization(
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret.get_secret_value(),
            method=op.method,
            path=path,
            query=query,
            headers=headers,
        )
        raw_query = signing.canonical_query(query)
        url = base.copy_with(raw_path=(path + (f"?{raw_query}" if raw_query else "")).encode("ascii"))
        self.stats.calls[op.name] += 1
        try:
            response = await self._http.request(op.method, url, headers=headers)
        except httpx.TimeoutException as exc:
            self.stats.transport_errors += 1
            raise AckApiError(
                status=0, code="Transport.Timeout", message=type(exc).__name__, operation=op.name
            ) from None
        except httpx.TransportError as exc:
            self.stats.transport_errors += 1
            raise AckApiError(
                status=0, code="Transport.Error", message=type(exc).__name__, operation=op.name
            ) from None
        return self._decode(op, response)

    def _decode(self, op: Operation, response: httpx.Response) -> Any:
        request_id = response.headers.get("x-acs-request-id")
        try:
            body = json.loads(response.content) if response.content.strip() else {}
        except ValueError:
            body = None
        if response.is_success:
            if body is None:
                raise AckApiError(
                    status=response.status_code,
                    code="InvalidResponse",
                    message="the response body is not JSON",
                    request_id=request_id,
                    operation=op.name,
                )
            self.rate_limiter.on_success()
            return body
        fields = body if isinstance(body, dict) else {}
        error = AckApiError(
            status=response.status_code,
            code=str(fields.get("code") or fields.get("Code") or f"HTTP{response.status_code}"),
            message=str(fields.get("message") or fields.get("Message") or response.reason_phrase)[:500],
            request_id=fields.get("requestId") or fields.get("RequestId") or request_id,
            operation=op.name,
        )
        if error.throttled:
            self.stats.throttled += 1
            self.rate_limiter.on_throttled()
        elif error.status >= 500:
            self.stats.server_errors += 1
        raise error


def _parse(model: type[M], body: Any, op: Operation) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise AckApiError(
            status=200,
            code="InvalidResponse",
            message=f"unexpected response shape: {exc.error_count()} validation errors",
            operation=op.name,
        ) from None
