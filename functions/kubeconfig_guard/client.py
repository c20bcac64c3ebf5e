"""The ACK OpenAPI client (product CS, version 2015-12-15).

One client per process: one keep-alive connection pool (``httpwire.Pool``), one global
concurrency cap, one adaptive request-rate limiter, retries with exponential back-off
and full jitter on throttling, 5xx, timeouts, connection errors and answers that fit no
documented shape. A 4xx business error is never retried. The fake ACK plugs in as an httpx
transport (``transport=``), and a proxy from the environment is used through httpx; httpx is
imported only then.

Every answer is checked against the API docs inside the retry loop, whatever its HTTP status:
a body carrying an error code (``code``/``Code``) is an error with that code; a listing must be
a JSON object with its items array and page object (validated by pydantic-core straight from
the response bytes); CleanClusterUserPermissions' documented answer is ``{}`` (any JSON object
without an error code). An answer that fits none is ``InvalidResponse.Empty``,
``InvalidResponse.NotJson`` or ``InvalidResponse.Shape``: transient, so retried. Every field of
an answer is read defensively: the code, message and request id only as short redacted text
(``errors.AckApiError``); values of another type are ignored.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import ipaddress
import json
import logging
import math
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from . import __version__, httpwire, signing
from .api import (
    CLEAN_CLUSTER_USER_PERMISSIONS,
    CLEAN_FORCE_PARAM,
    CLUSTERS_PAGING,
    CLUSTERS_REGION_PARAM,
    DESCRIBE_CLUSTERS_V1,
    LIST_CLUSTER_KUBECONFIG_STATES,
    STATES_PAGING,
    Operation,
)
from .credentials import CredentialsProvider
from .errors import AckApiError, KcguardError
from .models import (
    ApiAnswer,
    Cluster,
    DescribeClustersV1Response,
    KubeconfigState,
    ListClusterKubeconfigStatesResponse,
)
from .ratelimit import AdaptiveRateLimiter
from .settings import Settings

# The largest pages the operations accept (api.py: ListClusterKubeconfigStates pageSize 10 to 50,
# DescribeClustersV1 page_size up to 100).
STATES_PAGE_SIZE = (
    LIST_CLUSTER_KUBECONFIG_STATES.paging.used_size if LIST_CLUSTER_KUBECONFIG_STATES.paging else 50
)
CLUSTERS_PAGE_SIZE = CLUSTERS_PAGING.used_size
# Hard caps on one listing, so that a broken or hostile answer (a total_count of millions, the
# same page forever) costs a bounded number of calls and bounded memory. A listing claiming more
# fails that cluster or region (Listing.TooLarge) instead of being read.
# 200 pages x 50 = 10,000 kubeconfigs on one cluster: ACK lists one state per RAM user, role or
# root account that holds a kubeconfig of the cluster, so this is a cluster shared by 10,000
# principals, far beyond any real account (the benchmarks' largest cluster has 120).
MAX_STATES_PAGES = 200
# 100 pages x 100 = 10,000 clusters in one region (the benchmarks' largest region has 1,000).
MAX_CLUSTERS_PAGES = 100
STATES_WINDOW = 16  # pages of one kubeconfig listing in flight at once (a sliding window)
LISTING_PASSES = 3  # reads of a listing that keeps changing before giving up on it

log = logging.getLogger("kubeconfig_guard.client")

if TYPE_CHECKING:
    import httpx

# Sent with every request (signed headers are added per request).
BASE_HEADERS = {"accept": "application/json", "user-agent": f"kubeconfig-guard/{__version__}"}
BACKOFF_MULTIPLIER = 0.2  # seconds: the n-th retry waits uniform(0, min(max, 0.2 * 2**(n-1)))

M = TypeVar("M", bound=ApiAnswer)
T = TypeVar("T")


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
def endpoint_url(region: str, override: str | None) -> httpwire.Origin:
    """``https://cs.{region}.aliyuncs.com``, or the override (plain http only to loopback)."""
    return service_origin(f"cs.{region}.aliyuncs.com", override, "KCGUARD_CS_ENDPOINT")


@functools.lru_cache(maxsize=64)
def service_origin(default_host: str, override: str | None, setting: str) -> httpwire.Origin:
    """``https://{default_host}``, or the override named by ``setting`` (plain http only to loopback)."""
    if not override:
        return httpwire.Origin("https", default_host, 443, default_host)
    parts = urlsplit(override if "://" in override else f"https://{override}")
    scheme = parts.scheme.lower()
    try:
        name, port = parts.hostname, parts.port
    except ValueError:
        raise KcguardError(f"{setting} is not a valid URL (port or address)") from None
    if scheme not in ("http", "https") or not name:
        raise KcguardError(f"{setting} must be an http(s) host, got scheme {scheme!r}")
    if scheme == "http" and not _is_loopback(name):
        raise KcguardError(f"{setting}: plain http is allowed only to loopback addresses")
    default = 443 if scheme == "https" else 80
    port = port or default
    shown = f"[{name}]" if ":" in name else name
    return httpwire.Origin(scheme, name, port, shown if port == default else f"{shown}:{port}", "/")


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
        # The lean pool, unless requests must go through httpx: an injected transport (the fake
        # in-process, tests) or a proxy named by the environment (httpx honours it and NO_PROXY).
        self._pool: httpwire.Pool | None = None
        self._httpx: httpwire.HttpxSender | None = None
        if transport is not None or httpwire.proxy_configured():
            self._httpx = httpwire.HttpxSender(
                timeout=settings.timeout_seconds,
                connect_timeout=settings.connect_timeout_seconds,
                max_connections=settings.max_concurrency,
                headers=BASE_HEADERS,
                transport=transport,
            )
        else:
            self._pool = httpwire.Pool(
                timeout=settings.timeout_seconds,
                connect_timeout=settings.connect_timeout_seconds,
                max_idle=settings.max_concurrency,
            )
        self._concurrency = asyncio.Semaphore(settings.max_concurrency)
        self.rate_limiter = AdaptiveRateLimiter(settings.max_rps)
        self.stats = ClientStats()
        self._owns_connections = True

    def scoped(
        self, credentials: CredentialsProvider, rate_limiter: AdaptiveRateLimiter | None = None
    ) -> AckClient:
        """A client for another account (organization mode): the same connections and concurrency
        cap (the instance's), its own credentials, rate controller (one per quota: ACK's quota is the
        account's) and statistics. Closing it leaves the shared connections open."""
        view = copy.copy(self)
        view._credentials = credentials
        view.rate_limiter = rate_limiter or AdaptiveRateLimiter(self.settings.max_rps)
        view.stats = ClientStats()
        view._owns_connections = False
        return view

    @property
    def credentials(self) -> CredentialsProvider:
        return self._credentials

    async def aclose(self) -> None:
        if not self._owns_connections:
            return
        if self._pool is not None:
            await self._pool.aclose()
        if self._httpx is not None:
            await self._httpx.aclose()

    async def __aenter__(self) -> AckClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- operations -----------------------------------------------------------------

    async def describe_clusters(self, region: str) -> list[Cluster]:
        """Every cluster of a region (DescribeClustersV1, page after page).

        Ends at a short page, or at a full page the total says is the last. Odd paging
        metadata fails the region with ``Listing.InvalidPage`` (a page echo that disagrees,
        a negative total, a short page while the total claims more, a full page adding no
        new cluster); a total above ``MAX_CLUSTERS_PAGES`` pages fails it with
        ``Listing.TooLarge``. Without a total, pages are read until a short one (capped).
        """
        op = DESCRIBE_CLUSTERS_V1
        size = CLUSTERS_PAGE_SIZE
        cap = MAX_CLUSTERS_PAGES * size

        def failure(code: str, message: str) -> AckApiError:
            return AckApiError(status=200, code=code, message=f"{message}: not listed", operation=op.name)

        clusters: dict[str, Cluster] = {}
        for page in range(1, MAX_CLUSTERS_PAGES + 1):
            query = {
                CLUSTERS_REGION_PARAM: region,
                CLUSTERS_PAGING.number_param: str(page),
                CLUSTERS_PAGING.size_param: str(size),
            }
            resp = await self._call(
                op, region, {}, query, lambda answer: _parse(DescribeClustersV1Response, answer, op)
            )
            info, given, count = resp.page_info, resp.page_info.model_fields_set, len(resp.clusters)
            total = info.total_count if "total_count" in given else None
            if "page_number" in given and info.page_number != page:
                raise failure(
                    "Listing.InvalidPage", f"asked for page {page}, the API answered page {info.page_number}"
                )
            if ("page_size" in given and info.page_size != size) or count > size:
                raise failure(
                    "Listing.InvalidPage",
                    f"asked for pages of {size} clusters, the API answered page_size {info.page_size} "
                    f"with {count} clusters",
                )
            if total is not None and total < 0:
                raise failure("Listing.InvalidPage", f"the API claims a total of {total} clusters")
            if total is not None and total > cap:
                raise failure(
                    "Listing.TooLarge",
                    f"the API claims {total} clusters, more than the cap {cap} ({MAX_CLUSTERS_PAGES} pages of {size})",
                )
            before = len(clusters)
            for cluster in resp.clusters:
                clusters.setdefault(cluster.cluster_id, cluster)
            if count < size:
                if total is not None and total > page * size:
                    raise failure(
                        "Listing.InvalidPage",
                        f"page {page} holds {count} clusters but the API claims {total}",
                    )
                return list(clusters.values())
            if page > 1 and len(clusters) == before:
                raise failure(
                    "Listing.InvalidPage",
                    f"page {page} repeats clusters already listed (the API claims {total} clusters)",
                )
            if total is not None and page * size >= total:
                return list(clusters.values())
        raise failure(
            "Listing.TooLarge",
            f"the API answered {MAX_CLUSTERS_PAGES} full pages of {size} clusters and more may follow, "
            f"more than the cap {cap}",
        )

    async def _states_page(
        self, region: str, cluster_id: str, page: int
    ) -> ListClusterKubeconfigStatesResponse:
        """One page; odd metadata (echo, negative total) and a total over the cap fail the listing."""
        op = LIST_CLUSTER_KUBECONFIG_STATES
        query = {STATES_PAGING.number_param: str(page), STATES_PAGING.size_param: str(STATES_PAGE_SIZE)}
        resp = await self._call(
            op,
            region,
            {"ClusterId": cluster_id},
            query,
            lambda answer: _parse(ListClusterKubeconfigStatesResponse, answer, op),
        )
        info, given, count = resp.page, resp.page.model_fields_set, len(resp.states)
        problem = None
        if "page_number" in given and info.page_number != page:
            problem = f"asked for page {page}, the API answered page {info.page_number}"
        elif ("page_size" in given and info.page_size != STATES_PAGE_SIZE) or count > STATES_PAGE_SIZE:
            problem = (
                f"asked for pages of {STATES_PAGE_SIZE} kubeconfigs, the API answered page_size "
                f"{info.page_size} with {count} kubeconfigs"
            )
        elif info.total_count < 0:
            problem = f"the API claims a total of {info.total_count} kubeconfigs"
        if problem is not None:
            raise AckApiError(
                status=200, code="Listing.InvalidPage", message=f"{problem}: not listed", operation=op.name
            )
        cap = MAX_STATES_PAGES * STATES_PAGE_SIZE
        if info.total_count > cap:
            raise AckApiError(
                status=200,
                code="Listing.TooLarge",
                message=f"the API claims {info.total_count} kubeconfigs, more than the cap {cap} "
                f"({MAX_STATES_PAGES} pages of {STATES_PAGE_SIZE}): not listed",
                operation=op.name,
            )
        return resp

    async def list_kubeconfig_states(self, region: str, cluster_id: str) -> list[KubeconfigState]:
        """Every kubeconfig state of a cluster: page 1, then the others in a sliding window.

        Correct when the list changes while it is read: duplicates (an item pushed onto
        the next page) are dropped, and when the total moved the listing is read again
        so an item pulled onto an earlier page is not lost. A short page ends it.
        Bounded whatever the API answers: at most ``STATES_WINDOW`` pages in flight,
        ``MAX_STATES_PAGES`` pages per pass and ``LISTING_PASSES`` passes. A total over the
        cap fails with ``Listing.TooLarge``; odd metadata with ``Listing.InvalidPage`` (at
        once for a page echo that disagrees or a negative total; after every pass for a
        short page while the total claims further pages, or a full page adding nothing).
        """
        previous: dict[tuple[str, str], KubeconfigState] | None = None
        problem: str | None = None
        for _attempt in range(LISTING_PASSES):
            states, stable, problem = await self._list_states_once(region, cluster_id)
            if problem is None and (stable or (previous is not None and previous.keys() == states.keys())):
                return list(states.values())
            previous = states if problem is None else None
        raise AckApiError(
            status=0 if problem is None else 200,
            code="Listing.Unstable" if problem is None else "Listing.InvalidPage",
            message=f"the kubeconfig list kept changing while it was read ({LISTING_PASSES} passes)"
            if problem is None
            else f"{problem}: not listed ({LISTING_PASSES} passes)",
            operation=LIST_CLUSTER_KUBECONFIG_STATES.name,
        )

    async def _list_states_once(
        self, region: str, cluster_id: str
    ) -> tuple[dict[tuple[str, str], KubeconfigState], bool, str | None]:
        """One pass: (states, stable: every page agreed on a total that was read, problem).

        Pages are merged in order while later ones are in flight (at most ``STATES_WINDOW``);
        the pass ends at a short page, at the last page the largest total claims, or at a
        problem: a short page while its total claims further pages, or a full page that
        adds no new state (the same page answered again).
        """
        size = STATES_PAGE_SIZE
        pages = {1: await self._states_page(region, cluster_id, 1)}
        tasks: dict[int, asyncio.Future[ListClusterKubeconfigStatesResponse]] = {}
        states: dict[tuple[str, str], KubeconfigState] = {}
        totals: set[int | None] = set()
        most = 0  # the largest total a page claimed
        problem: str | None = None
        number = requested = 1
        try:
            while True:
                page = pages.pop(number)
                total = page.page.total_count if "total_count" in page.page.model_fields_set else None
                totals.add(total)
                before = len(states)
                for state in page.states:
                    states.setdefault((state.account_type or "", state.account_id), state)
                if len(page.states) < size:
                    if total is not None and total > number * size:
                        problem = (
                            f"page {number} holds {len(page.states)} kubeconfigs but the API claims {total}"
                        )
                    break
                if number > 1 and len(states) == before:
                    problem = f"page {number} repeats kubeconfigs already listed (the API claims {total})"
                    break
                most = max(most, total or 0)
                # Without a total, read until a short page; either way never past the cap.
                last = MAX_STATES_PAGES if None in totals else min(math.ceil(most / size), MAX_STATES_PAGES)
                if number >= last:
                    if None in totals:  # a full page at the cap, and nothing says it is the last
                        raise AckApiError(
                            status=200,
                            code="Listing.TooLarge",
                            message=f"the API answered {MAX_STATES_PAGES} full pages of {size} "
                            f"kubeconfigs and more may follow, more than the cap "
                            f"{MAX_STATES_PAGES * size}: not listed",
                            operation=LIST_CLUSTER_KUBECONFIG_STATES.name,
                        )
                    break
                while requested < min(last, number + STATES_WINDOW):
                    requested += 1
                    tasks[requested] = asyncio.ensure_future(self._states_page(region, cluster_id, requested))
                number += 1
                pages[number] = await tasks.pop(number)
        finally:
            for task in tasks.values():
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks.values(), return_exceptions=True)
        stable = len(totals) == 1 and (only := next(iter(totals))) is not None and len(states) == only
        return states, stable, problem

    async def clean_user_permissions(self, region: str, cluster_id: str, uid: str, *, force: bool) -> None:
        """Revoke every kubeconfig and RBAC binding of ``uid`` on the cluster.

        Returns only on the documented answer (a JSON object without an error code); an empty or
        non-object body is no confirmed revocation (``InvalidResponse.*``, transient).
        """
        op = CLEAN_CLUSTER_USER_PERMISSIONS
        await self._call(
            op,
            region,
            {"ClusterId": cluster_id, "Uid": uid},
            {CLEAN_FORCE_PARAM: "true" if force else "false"},
            lambda answer: _check_clean_answer(answer, op),
        )

    # --- wire -----------------------------------------------------------------------

    async def call_rpc(
        self,
        op: Operation,
        origin: httpwire.Origin,
        query: dict[str, str],
        parse: Callable[[httpwire.Answer], T],
    ) -> T:
        """An RPC operation (``POST /``, parameters in the query: STS, Resource Manager) with the
        same signing, retries and answer checks as ACK's; ``parse`` reads the 2xx answer."""
        return await self._call(op, "", {}, query, parse, origin=origin)

    async def _call(
        self,
        op: Operation,
        region: str,
        path_params: dict[str, str],
        query: dict[str, str],
        parse: Callable[[httpwire.Answer], T],
        *,
        origin: httpwire.Origin | None = None,
    ) -> T:
        """A 2xx answer as ``parse`` reads it. Transient errors (``parse``'s included) are retried
        (``max_attempts`` in all), the n-th retry after uniform(0, min(backoff_max, 0.2 s x
        2^(n-1))); other errors raise."""
        attempt = 1
        while True:
            try:
                async with self._concurrency:
                    # The rate slot is taken inside the cap, so a decrease reaches every waiter.
                    await self.rate_limiter.acquire()
                    return await self._send_once(op, region, path_params, query, parse, origin)
            except AckApiError as error:
                invalidate = getattr(self._credentials, "invalidate", None)
                if error.code.startswith("InvalidSecurityToken") and invalidate is not None and attempt == 1:
                    # A session token refused (expired early, clocks apart): a new session, once.
                    invalidate()
                    attempt += 1
                    continue
                if not error.transient or attempt >= self.settings.max_attempts:
                    raise
                self.stats.retries += 1
                log.debug("retrying %s after %s", op.name, error.code)
                ceiling = min(self.settings.backoff_max_seconds, BACKOFF_MULTIPLIER * 2 ** (attempt - 1))
                await asyncio.sleep(random.uniform(0, ceiling))
                attempt += 1

    async def _send_once(
        self,
        op: Operation,
        region: str,
        path_params: dict[str, str],
        query: dict[str, str],
        parse: Callable[[httpwire.Answer], T],
        origin: httpwire.Origin | None = None,
    ) -> T:
        origin = origin or endpoint_url(region, self.settings.cs_endpoint)
        path = signing.encode_path(op.path, **path_params)
        creds = await self._credentials.get()
        headers = {
            "host": origin.netloc,
            "x-acs-action": op.name,
            "x-acs-version": op.version,
            "x-acs-date": signing.acs_date(),
            "x-acs-signature-nonce": os.urandom(16).hex(),  # 128 random bits, as uuid4 without its cost
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
        target = path + (f"?{raw_query}" if raw_query else "")
        self.stats.calls[op.name] += 1
        try:
            if self._pool is not None:
                head = httpwire.request_head(op.method, target, {**headers, **BASE_HEADERS})
                answer = await self._pool.request(origin, head)
            else:
                assert self._httpx is not None
                answer = await self._httpx.send(op.method, origin, target, headers)
        except httpwire.TransportError as exc:
            self.stats.transport_errors += 1
            self.rate_limiter.on_failure()  # a reset or a timeout: retried, never lowers the rate
            if exc.kind == httpwire.BODY_TOO_LARGE:
                # Over httpwire.MAX_BODY_BYTES: an answer that fits no documented shape (errors.py:
                # invalid-response, retried a bounded number of times; a Clean is then confirmed by a listing).
                raise AckApiError(
                    status=exc.status if 0 < exc.status < 500 else 200,
                    code="InvalidResponse.TooLarge",
                    message=str(exc),
                    operation=op.name,
                ) from None
            raise AckApiError(
                status=0,
                code="Transport.Timeout" if exc.timeout else "Transport.Error",
                message=exc.kind,
                operation=op.name,
            ) from None
        try:
            result = parse(self._decode(op, answer))
        except AckApiError as error:
            self._count(error)
            raise
        self.rate_limiter.on_success()
        return result

    def _count(self, error: AckApiError) -> None:
        """Tell the statistics and the rate limiter about an answer that was an error."""
        if error.throttled:
            self.stats.throttled += 1
            self.rate_limiter.on_throttled()
        else:  # a 5xx or another error the API served: it never lowers the rate
            if error.status >= 500:
                self.stats.server_errors += 1
            self.rate_limiter.on_failure()

    @staticmethod
    def _decode(op: Operation, answer: httpwire.Answer) -> httpwire.Answer:
        """A 2xx answer (read by the operation's parser); any other answer raises its error."""
        if 200 <= answer.status < 300:
            return answer
        raise _answer_error(answer, _json_object(answer.content) or {}, op)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (empty, not JSON, nested too deep, or not an object)."""
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _text_field(fields: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` whose value is a non-blank string; values of other types are ignored."""
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def _carried_code(fields: Mapping[str, Any]) -> Any:
    """The error code a JSON object carries (``code`` or ``Code``, not null or ""), raw; else None."""
    for name in ("code", "Code"):
        value = fields.get(name)
        if value is not None and value != "":
            return value
    return None


def _answer_error(
    answer: httpwire.Answer, fields: Mapping[str, Any], op: Operation, *, code: str | None = None
) -> AckApiError:
    """The error an answer carries: its code (``HTTP{status}`` without one), message and request id.

    Only string fields are read (a number, list or object in their place is ignored); the error
    keeps them as short redacted text.
    """
    return AckApiError(
        status=answer.status,
        code=code or _text_field(fields, "code", "Code") or f"HTTP{answer.status}",
        message=_text_field(fields, "message", "Message") or answer.reason or "(no message)",
        request_id=_text_field(fields, "requestId", "RequestId", "request_id")
        or answer.headers.get("x-acs-request-id"),
        operation=op.name,
    )


def _invalid(answer: httpwire.Answer, op: Operation, code: str, message: str) -> AckApiError:
    """An answer that fits no documented shape (``InvalidResponse.*``: transient)."""
    return AckApiError(
        status=answer.status,
        code=code,
        message=message,
        request_id=answer.headers.get("x-acs-request-id"),
        operation=op.name,
    )


def _carried_error(answer: httpwire.Answer, fields: Mapping[str, Any], op: Operation) -> AckApiError:
    """A 2xx answer carrying an error code: an error with that code (``InvalidResponse.Shape`` for a
    code that is not text)."""
    carried = _carried_code(fields)
    if not isinstance(carried, str):
        return _invalid(
            answer,
            op,
            "InvalidResponse.Shape",
            f"the answer carries an error code that is not text (a JSON {type(carried).__name__})",
        )
    return _answer_error(answer, fields, op, code=carried)


def _parse(model: type[M], answer: httpwire.Answer, op: Operation) -> M:
    """A listing answer validated by pydantic-core straight from the JSON bytes.

    Raises ``InvalidResponse.Empty`` (no body), ``InvalidResponse.NotJson``,
    ``InvalidResponse.Shape`` (not the documented object, items array and page object), or the
    error the answer carries (``code``/``Code``), whatever its HTTP status.
    """
    body = answer.content
    if not body.strip():
        raise _invalid(answer, op, "InvalidResponse.Empty", "the answer has an empty body: not listed")
    try:
        resp = model.model_validate_json(body)
    except ValidationError as exc:
        fields = _json_object(body)
        if fields is not None and _carried_code(fields) is not None:
            raise _carried_error(answer, fields, op) from None
        errors = exc.errors(include_url=False, include_input=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise _invalid(
                answer, op, "InvalidResponse.NotJson", "the answer is not JSON: not listed"
            ) from None
        where = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'the answer'}: {e['type']}" for e in errors[:3]
        )
        raise _invalid(
            answer,
            op,
            "InvalidResponse.Shape",
            f"the answer does not have the documented shape ({exc.error_count()} problems: {where}): "
            "not listed",
        ) from None
    if resp.carried_code is not None:
        raise _carried_error(answer, _json_object(body) or {}, op)
    return resp


def _check_clean_answer(answer: httpwire.Answer, op: Operation) -> None:
    """CleanClusterUserPermissions' documented answer is ``{}`` (a JSON object; extra keys such as
    a request id are fine). An error code in it, or any other body, is no confirmed revocation."""
    body = answer.content
    if not body.strip():
        raise _invalid(
            answer,
            op,
            "InvalidResponse.Empty",
            "the answer has an empty body: the revocation is not confirmed",
        )
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _invalid(
            answer, op, "InvalidResponse.NotJson", "the answer is not JSON: the revocation is not confirmed"
        ) from None
    if not isinstance(value, dict):
        raise _invalid(
            answer,
            op,
            "InvalidResponse.Shape",
            f"the answer is a JSON {type(value).__name__}, not the documented object: "
            "the revocation is not confirmed",
        )
    if _carried_code(value) is not None:
        raise _carried_error(answer, value, op)
