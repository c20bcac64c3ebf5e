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
"""

from .backend import CleanCall, FakeAck, FakeAckError, RevocationRecord
from .faults import FaultSpec
from .server import FakeAckServer
from .transport import FakeAckTransport
from .world import (
    ClusterRecord,
    KubeconfigRecord,
    RegionRecord,
    RevokedKubeconfig,
    World,
    dump_world,
    generate_world,
    load_world,
)

__all__ = [
    "CleanCall",
    "ClusterRecord",
    "FakeAck",
    "FakeAckError",
    "FakeAckServer",
    "FakeAckTransport",
    "FaultSpec",
    "KubeconfigRecord",
    "RegionRecord",
    "RevocationRecord",
    "RevokedKubeconfig",
    "World",
    "dump_world",
    "generate_world",
    "load_world",
]
