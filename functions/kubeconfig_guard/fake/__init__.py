"""A moto-style fake of the ACK OpenAPI: one stateful backend, two front ends.

    from kubeconfig_guard.fake import FakeAck, FakeAckServer, FakeAckTransport, FaultSpec, load_world

    backend = FakeAck(load_world("examples/world.json"))     # state + business rules
    client = AckClient(settings, creds, transport=FakeAckTransport(backend))   # in-process
    with FakeAckServer(backend) as server:                   # real HTTP/1.1 on loopback
        Settings(cs_endpoint=server.url)                     # -> http://127.0.0.1:PORT
    backend.faults.set("CleanClusterUserPermissions", FaultSpec(reset_rate=1.0))
    backend.revocations, backend.calls, backend.fault_counts  # what happened

Signatures (ACS3-HMAC-SHA256) are verified against ALIBABA_CLOUD_ACCESS_KEY_ID/SECRET
(default: the demo pair in ``kubeconfig_guard.credentials``). CLI: ``kcguard fake serve``.

An organization (a world with ``organization``: a Resource Directory, its member accounts, their
roles) is served by a ``FakeCloud`` on the same front ends: every account's ACK (each its own
``FakeAck``: ``cloud.account(id)``), STS ``AssumeRole`` and Resource Manager ``ListAccounts``::

    cloud = FakeCloud(load_world("examples/organization.json"))
    with FakeAckServer(cloud) as server: ...           # or FakeAckTransport(cloud)
    cloud.account("1300000000000001").faults.set(None, FaultSpec(rate_limit_rps=20))
    cloud.sts.faults.set("AssumeRole", FaultSpec(throttle_rate=1.0))
    cloud.clock.advance(3600)                          # STS tokens expire
"""

from .backend import CleanCall, FakeAck, FakeAckError, RevocationRecord
from .cloud import FakeCloud, Principal, SessionClock, StsSession
from .faults import FaultSpec
from .server import FakeAckServer
from .transport import FakeAckTransport
from .world import (
    AccessKeyRecord,
    ClusterRecord,
    KubeconfigRecord,
    MemberAccountRecord,
    OrganizationRecord,
    RegionRecord,
    RevokedKubeconfig,
    RoleRecord,
    World,
    dump_world,
    generate_organization,
    generate_world,
    load_world,
)

__all__ = [
    "AccessKeyRecord",
    "CleanCall",
    "ClusterRecord",
    "FakeAck",
    "FakeAckError",
    "FakeAckServer",
    "FakeAckTransport",
    "FakeCloud",
    "FaultSpec",
    "KubeconfigRecord",
    "MemberAccountRecord",
    "OrganizationRecord",
    "Principal",
    "RegionRecord",
    "RevocationRecord",
    "RevokedKubeconfig",
    "RoleRecord",
    "SessionClock",
    "StsSession",
    "World",
    "dump_world",
    "generate_organization",
    "generate_world",
    "load_world",
]
