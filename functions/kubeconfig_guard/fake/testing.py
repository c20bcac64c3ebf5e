"""Helpers for tests that talk to the fake ACK: signed raw requests and a small world.

``signed_request`` builds exactly what a well-behaved client sends (path, query and
ACS3 headers), so a test can then break one piece and check the fake notices.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping

from .. import api, signing
from ..api import API_VERSION
from ..credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from .world import ClusterRecord, KubeconfigRecord, RegionRecord, World


def acs_action_of(method: str, path: str) -> str:
    """The operation name of a (method, raw path) pair (``api.route``); "" for no operation."""
    routed = api.route(method, path.split("?", 1)[0])
    return routed[0].name if routed else ""


def signed_request(
    method: str,
    path: str,
    query: Mapping[str, str] | None = None,
    *,
    host: str = "cs.cn-hangzhou.aliyuncs.com",
    access_key_id: str = DEMO_ACCESS_KEY_ID,
    access_key_secret: str = DEMO_ACCESS_KEY_SECRET,
    security_token: str | None = None,
    action: str | None = None,
    body: bytes = b"",
) -> tuple[str, dict[str, str]]:
    """(raw target ``path?query``, headers) of a correctly signed ACS3 request.

    ``path`` is the raw (already percent-encoded) path, as it goes on the wire.
    """
    query = dict(query or {})
    headers = {
        "host": host,
        "x-acs-action": action or acs_action_of(method, path),
        "x-acs-version": API_VERSION,
        "x-acs-date": signing.acs_date(),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if security_token is not None:
        headers["x-acs-security-token"] = security_token
    headers["authorization"] = signing.authorization(
        access_key_id=access_key_id,
        access_key_secret=access_key_secret,
        method=method,
        path=path,
        query=query,
        headers=headers,
        payload_sha256=headers["x-acs-content-sha256"],
    )
    raw_query = signing.canonical_query(query)
    return path + (f"?{raw_query}" if raw_query else ""), headers


def kubeconfig(
    uid: str,
    name: str,
    *,
    account_type: str = "RamUser",
    account_state: str = "Active",
    revokable: bool = True,
    last_access: str | None = None,
    cert_expire_time: str | None = "2027-07-15T01:32:20Z",
    cert_state: str = "Unexpired",
) -> KubeconfigRecord:
    """A kubeconfig record with sensible defaults."""
    return KubeconfigRecord(
        account_id=uid,
        account_name=name,
        account_display_name=name,
        account_type=account_type,
        account_state=account_state,
        cert_expire_time=cert_expire_time,
        cert_state=cert_state,
        revokable=revokable,
        last_access=last_access,
    )


def small_world(*, states_on_big: int = 123) -> World:
    """Two regions, four clusters, the clock pinned at 2026-11-25T00:00:00Z.

    - ``c-prod`` (cn-hangzhou, audit log on): tom (uid 200000000000000001, accessed 2 days
      ago), ann (200000000000000002, accessed 30 days ago), the root account's state, and
      a not-revokable state of jim (200000000000000003).
    - ``c-noaudit`` (cn-hangzhou, audit log off): ann.
    - ``c-big`` (cn-hangzhou): ``states_on_big`` users ``user-000``... (uids 2100000000000000NN).
    - ``c-sg`` (ap-southeast-1, state ``failed``): tom.
    """
    big = [kubeconfig(f"21{i:016d}", f"user-{i:03d}") for i in range(states_on_big)]
    return World(
        account_id="5000000000000001",
        caller_uid="300000000000000001",
        now="2026-11-25T00:00:00Z",
        regions={
            "cn-hangzhou": RegionRecord(
                clusters=[
                    ClusterRecord(
                        cluster_id="c-prod",
                        name="prod",
                        kubeconfigs=[
                            kubeconfig("200000000000000001", "tom", last_access="2026-11-23T00:00:00Z"),
                            kubeconfig("200000000000000002", "ann", last_access="2026-10-26T00:00:00Z"),
                            kubeconfig(
                                "5000000000000001", "root", account_type="RootAccount", revokable=False
                            ),
                            kubeconfig("200000000000000003", "jim", revokable=False),
                        ],
                        vpc_id="vpc-prod",
                    ),
                    ClusterRecord(
                        cluster_id="c-noaudit",
                        name="noaudit",
                        audit_log=False,
                        kubeconfigs=[kubeconfig("200000000000000002", "ann")],
                    ),
                    ClusterRecord(cluster_id="c-big", name="big", kubeconfigs=big),
                ]
            ),
            "ap-southeast-1": RegionRecord(
                clusters=[
                    ClusterRecord(
                        cluster_id="c-sg",
                        name="sg",
                        state="failed",
                        kubeconfigs=[kubeconfig("200000000000000001", "tom")],
                    )
                ]
            ),
        },
    )
