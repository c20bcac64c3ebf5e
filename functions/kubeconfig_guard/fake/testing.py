"""Helpers for tests that talk to the fake ACK: signed raw requests and a small world.

``signed_request`` builds exactly what a well-behaved client sends (path, query and
ACS3 headers), so a test can then break one piece and check the fake notices.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from urllib.parse import quote

from .. import api, signing
from ..api import API_VERSION
from ..credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from .world import (
    MEMBER_ROLE_ACTIONS,
    AccessKeyRecord,
    ClusterRecord,
    KubeconfigRecord,
    MemberAccountRecord,
    OrganizationRecord,
    RegionRecord,
    RoleRecord,
    World,
    role_arn,
)


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
    version: str = API_VERSION,
    content_type: str | None = None,
) -> tuple[str, dict[str, str]]:
    """(raw target ``path?query``, headers) of a correctly signed ACS3 request.

    ``path`` is the raw (already percent-encoded) path, as it goes on the wire. RPC requests
    (STS, Resource Manager): ``signed_rpc``.
    """
    query = dict(query or {})
    headers = {
        "host": host,
        "x-acs-action": action or acs_action_of(method, path),
        "x-acs-version": version,
        "x-acs-date": signing.acs_date(),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
    }
    if content_type is not None:
        headers["content-type"] = content_type
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


def signed_rpc(
    operation: api.Operation,
    params: Mapping[str, str] | None = None,
    *,
    host: str | None = None,
    access_key_id: str = DEMO_ACCESS_KEY_ID,
    access_key_secret: str = DEMO_ACCESS_KEY_SECRET,
    security_token: str | None = None,
    form: bool = False,
) -> tuple[str, dict[str, str], bytes]:
    """(raw target, headers, body) of a correctly signed RPC request (``POST /``), as the official
    SDKs send one (``api.ASSUME_ROLE``, ``api.LIST_ACCOUNTS``): the operation in ``x-acs-action`` and
    ``x-acs-version``, the parameters in the query string, or with ``form`` in a form-encoded body.
    """
    body = b""
    query: Mapping[str, str] | None = params
    content_type = None
    if form:
        body = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in (params or {}).items()
        ).encode()
        query, content_type = None, "application/x-www-form-urlencoded"
    target, headers = signed_request(
        operation.method,
        operation.path,
        query,
        host=host or f"{operation.product}.aliyuncs.com",
        access_key_id=access_key_id,
        access_key_secret=access_key_secret,
        security_token=security_token,
        action=operation.name,
        body=body,
        version=operation.version,
        content_type=content_type,
    )
    return target, headers, body


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


# --- a small organization ----------------------------------------------------------------------

CENTRAL_ID = "5000000000000001"
PROD_ID, STAGING_ID, SANDBOX_ID = "1300000000000001", "1300000000000002", "1300000000000003"
OUTSIDER_ID = "9900000000000001"
MEMBER_ROLE = "kubeconfig-guard-member"
EXTERNAL_ID = "kcguard-test-external-id"
LEAVER, STAGING_LEAVER = "200000000000000777", "200000000000000778"
# Extra permanent keys: a role of an account outside the organization, and an administrator of prod.
OUTSIDER_KEY = ("LTAI-outsider-key", "outsider-secret")
PROD_ADMIN_KEY = ("LTAI-prod-admin-key", "prod-admin-secret")


def member_role(
    trusted: list[str] | None = None, *, actions: tuple[str, ...] = MEMBER_ROLE_ACTIONS
) -> RoleRecord:
    """The member role: trusts the central event and summary roles with ``EXTERNAL_ID``."""
    return RoleRecord(
        role_name=MEMBER_ROLE,
        trusted_principals=trusted
        if trusted is not None
        else [
            role_arn(CENTRAL_ID, "kubeconfig-guard-event"),
            role_arn(CENTRAL_ID, "kubeconfig-guard-summary"),
        ],
        external_id=EXTERNAL_ID,
        allowed_actions=list(actions),
    )


def small_organization() -> World:
    """``small_world()`` as the central account of a Resource Directory with three members.

    - prod (``PROD_ID``): ``c-prod-a`` (cn-hangzhou) and ``c-prod-b`` (ap-southeast-1), the Deleted
      user ``leaver`` (``LEAVER``) on both, pat (Active) on ``c-prod-a``.
    - staging (``STAGING_ID``): ``c-staging``, another RAM user named ``leaver``
      (``STAGING_LEAVER``, Deleted).
    - sandbox (``SANDBOX_ID``): ``c-sandbox``; its member role trusts only its own account.
    Every account has ``MEMBER_ROLE`` (sandbox's aside, trusting the central
    ``kubeconfig-guard-event`` and ``-summary`` roles with ``EXTERNAL_ID``; the three ACK actions).
    The demo key is the central ``kubeconfig-guard-event`` role; ``OUTSIDER_KEY`` a role of
    ``OUTSIDER_ID`` (outside the directory), ``PROD_ADMIN_KEY`` the role ``prod-admin`` of prod
    (every action allowed).
    """
    world = small_world()

    def leaver(uid: str) -> KubeconfigRecord:
        return kubeconfig(uid, "leaver", account_state="Deleted", last_access="2026-10-01T00:00:00Z")

    def member(
        uid: str, name: str, regions: dict[str, RegionRecord], role: RoleRecord
    ) -> MemberAccountRecord:
        return MemberAccountRecord(account_id=uid, display_name=name, regions=regions, roles=[role])

    world.organization = OrganizationRecord(
        resource_directory_id="rd-3k4v2x",
        roles=[member_role()],
        members=[
            member(
                PROD_ID,
                "prod",
                {
                    "cn-hangzhou": RegionRecord(
                        clusters=[
                            ClusterRecord(
                                cluster_id="c-prod-a",
                                name="prod-a",
                                kubeconfigs=[
                                    leaver(LEAVER),
                                    kubeconfig("200000000000000701", "pat"),
                                ],
                            )
                        ]
                    ),
                    "ap-southeast-1": RegionRecord(
                        clusters=[
                            ClusterRecord(
                                cluster_id="c-prod-b",
                                name="prod-b",
                                kubeconfigs=[leaver(LEAVER)],
                            )
                        ]
                    ),
                },
                member_role(),
            ),
            member(
                STAGING_ID,
                "staging",
                {
                    "cn-hangzhou": RegionRecord(
                        clusters=[
                            ClusterRecord(
                                cluster_id="c-staging",
                                name="staging",
                                kubeconfigs=[leaver(STAGING_LEAVER)],
                            )
                        ]
                    )
                },
                member_role(),
            ),
            member(
                SANDBOX_ID,
                "sandbox",
                {
                    "cn-shanghai": RegionRecord(
                        clusters=[
                            ClusterRecord(
                                cluster_id="c-sandbox",
                                name="sandbox",
                                kubeconfigs=[kubeconfig("200000000000000901", "kim")],
                            )
                        ]
                    )
                },
                member_role([f"acs:ram::{SANDBOX_ID}:root"]),
            ),
        ],
        access_keys=[
            AccessKeyRecord(
                access_key_id=OUTSIDER_KEY[0],
                access_key_secret=OUTSIDER_KEY[1],
                account_id=OUTSIDER_ID,
                role_name="intruder",
            ),
            AccessKeyRecord(
                access_key_id=PROD_ADMIN_KEY[0],
                access_key_secret=PROD_ADMIN_KEY[1],
                account_id=PROD_ID,
                role_name="prod-admin",
            ),
        ],
    )
    return world
