#!/usr/bin/env python3
"""The fake ACK for ``scripts/bench``: a generated world behind the real HTTP server, in its own process.

    python scripts/benchlib/server.py '{"seed": 1, "regions": ["cn-hangzhou"], "clusters_per_region": 10,
                                        "kubeconfigs_per_cluster": 30, "deleted_user": "x",
                                        "deleted_user_clusters": 3, "burst_users": 0}'

The first line of standard output is JSON: ``{"url": "http://127.0.0.1:PORT", "meta": {...}}``
(``meta``: what the bench needs to know about the world to compute call counts and bounds).
Then it reads one JSON command per line on standard input and answers one JSON line each:

* ``{"cmd": "reset", "latency_ms": 50, "rate_limit": null, "burst": null}``: the world as
  generated again (every write undone), counters zeroed, faults set for every operation
  (the fake's token buckets are per operation). With ``"world": false`` the world is kept
  as it is (only counters and faults are reset).
* ``{"cmd": "stats"}``: requests per operation as counted by the backend (``backend.calls``:
  every request, throttled ones included), injected faults (``backend.fault_counts``),
  effective revocations, Clean calls, the server's CPU seconds since the last reset, and a
  timeline: requests served and throttled per half second since the reset.
* ``{"cmd": "quit"}`` (or end of input): stop.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from kubeconfig_guard.credentials import DEMO_ACCESS_KEY_ID, DEMO_ACCESS_KEY_SECRET
from kubeconfig_guard.fake import FakeAck, FakeAckServer, FaultSpec, World, generate_world
from kubeconfig_guard.models import CLUSTER_STATES_WITHOUT_API_SERVER


class Timeline:
    """Wraps ``backend.faults.decide`` to count served and throttled requests per time slice."""

    def __init__(self, backend: FakeAck, slice_seconds: float = 0.5) -> None:
        self._decide = backend.faults.decide
        self.slice = slice_seconds
        self.start = time.monotonic()
        self.served: dict[int, int] = {}
        self.throttled: dict[int, int] = {}
        self.throttled_by_op: dict[str, int] = {}
        backend.faults.decide = self.decide  # type: ignore[method-assign]

    def reset(self) -> None:
        self.start = time.monotonic()
        self.served.clear()
        self.throttled.clear()
        self.throttled_by_op.clear()

    def decide(self, operation: str) -> Any:
        decision = self._decide(operation)
        index = int((time.monotonic() - self.start) / self.slice)
        target = self.throttled if decision.throttled else self.served
        target[index] = target.get(index, 0) + 1
        if decision.throttled:
            self.throttled_by_op[operation] = self.throttled_by_op.get(operation, 0) + 1
        return decision

    def as_dict(self) -> dict[str, Any]:
        last = max([*self.served, *self.throttled], default=-1)
        return {
            "slice_seconds": self.slice,
            "served": [self.served.get(i, 0) for i in range(last + 1)],
            "throttled": [self.throttled.get(i, 0) for i in range(last + 1)],
            "throttled_by_operation": dict(self.throttled_by_op),
        }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mark_burst_users(
    world: World, count: int, exclude: frozenset[str] = frozenset(), near_clusters: int | None = None
) -> list[str]:
    """Pick ``count`` RAM users with a unique name and mark them Deleted on every cluster.

    ``near_clusters``: pick the users whose kubeconfigs are on the number of clusters closest to it."""
    by_name: dict[str, set[str]] = {}
    on_clusters: dict[str, int] = {}
    for region in world.regions.values():
        for cluster in region.clusters:
            for name in {k.account_name for k in cluster.kubeconfigs}:
                on_clusters[name] = on_clusters.get(name, 0) + 1
            for k in cluster.kubeconfigs:
                if k.account_type == "RamUser" and k.account_name:
                    by_name.setdefault(k.account_name, set()).add(k.account_id)
    unique = sorted(name for name, uids in by_name.items() if len(uids) == 1 and name not in exclude)
    if len(unique) < count:
        raise SystemExit(f"only {len(unique)} uniquely named RAM users in the world, {count} wanted")
    if near_clusters is not None:
        # The users on at least that many clusters, fewest first; their kubeconfigs beyond the first
        # ``near_clusters`` clusters are removed (a leaver on about as many clusters as asked).
        unique = [n for n in unique if on_clusters.get(n, 0) >= near_clusters] or unique
        unique.sort(key=lambda name: (on_clusters.get(name, 0), name))
        chosen = unique[:count]
        wanted = set(chosen)
        seen: dict[str, int] = {}
        for region in world.regions.values():
            for cluster in region.clusters:
                for name in wanted & {k.account_name for k in cluster.kubeconfigs}:
                    seen[name] = seen.get(name, 0) + 1
                    if seen[name] > near_clusters:
                        cluster.kubeconfigs = [k for k in cluster.kubeconfigs if k.account_name != name]
        _mark_deleted(world, wanted)
        return chosen
    # Deterministic: every k-th name, so they are spread over the principal pool.
    step = len(unique) / count
    chosen = [unique[int(i * step)] for i in range(count)]
    _mark_deleted(world, set(chosen))
    return chosen


def _mark_deleted(world: World, wanted: set[str]) -> None:
    for region in world.regions.values():
        for cluster in region.clusters:
            for k in cluster.kubeconfigs:
                if k.account_type == "RamUser" and k.account_name in wanted:
                    k.account_state = "Deleted"
                    k.revokable = True


def backend_key_id() -> str:
    return os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or DEMO_ACCESS_KEY_ID


def backend_key_secret() -> str:
    return os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or DEMO_ACCESS_KEY_SECRET


def clusters_of(world: World, name: str) -> int:
    return sum(
        1
        for region in world.regions.values()
        for c in region.clusters
        if any(k.account_name == name for k in c.kubeconfigs)
    )


def describe(
    world: World, spec: dict[str, Any], burst_names: list[str], warm_user: str | None
) -> dict[str, Any]:
    regions: dict[str, Any] = {}
    for name, region in world.regions.items():
        running = [c for c in region.clusters if c.state.lower() not in CLUSTER_STATES_WITHOUT_API_SERVER]
        regions[name] = {
            "clusters": len(region.clusters),
            "running": len(running),
            # Kubeconfig states per running cluster: the bench derives the listing calls from them.
            "states": [len(c.kubeconfigs) for c in running],
        }
    deleted = spec.get("deleted_user")
    on_clusters = clusters_of(world, deleted) if deleted else 0
    burst_pairs = 0
    pairs_by_user: dict[str, int] = {}
    if burst_names:
        wanted = set(burst_names)
        for region in world.regions.values():
            for c in region.clusters:
                if c.state.lower() in CLUSTER_STATES_WITHOUT_API_SERVER:
                    continue
                for k in {(k.account_name, k.account_id) for k in c.kubeconfigs if k.account_name in wanted}:
                    burst_pairs += 1
                    pairs_by_user[k[0]] = pairs_by_user.get(k[0], 0) + 1
    return {
        "now": world.now,
        "account_id": world.account_id,
        # A second deleted user (the warm event of the deployed-view workload) and its clusters.
        "warm_user": warm_user,
        "warm_user_clusters": clusters_of(world, warm_user) if warm_user else 0,
        "regions": regions,
        "kubeconfigs": sum(sum(len(c.kubeconfigs) for c in r.clusters) for r in world.regions.values()),
        "deleted_user": deleted,
        "deleted_user_clusters": on_clusters,
        "burst_users": burst_names,
        "burst_pairs_on_running_clusters": burst_pairs,
        "burst_pairs_by_user": pairs_by_user,
        # For the SDK worker, which must not import kubeconfig_guard (its RSS would include it).
        "not_running": sorted(CLUSTER_STATES_WITHOUT_API_SERVER),
        "access_key": [backend_key_id(), backend_key_secret()],
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    started = time.perf_counter()
    world = generate_world(
        spec["seed"],
        regions=spec["regions"],
        clusters_per_region=spec["clusters_per_region"],
        kubeconfigs_per_cluster=spec["kubeconfigs_per_cluster"],
        deleted_user=spec.get("deleted_user"),
        deleted_user_clusters=spec.get("deleted_user_clusters", 0),
    )
    burst_names = mark_burst_users(world, spec["burst_users"]) if spec.get("burst_users") else []
    warm_user = None
    if spec.get("warm_user"):
        # A second leaver on about as many clusters as the first (within the blast-radius limit).
        near = int(spec.get("deleted_user_clusters") or 10)
        (warm_user,) = mark_burst_users(world, 1, frozenset({spec.get("deleted_user") or ""}), near)
    backend = FakeAck(world)
    meta = describe(world, spec, burst_names, warm_user)
    meta["generate_seconds"] = round(time.perf_counter() - started, 2)
    timeline = Timeline(backend)
    server = FakeAckServer(backend).start()
    sys.stdout.write(json.dumps({"url": server.url, "meta": meta}) + "\n")
    sys.stdout.flush()
    cpu_mark = _cpu()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "reset":
                if cmd.get("world", True):
                    backend.from_world(world)
                backend.faults.clear()
                latency = float(cmd.get("latency_ms") or 0.0) / 1000.0
                rate = cmd.get("rate_limit")
                if latency or rate is not None:
                    backend.faults.set(
                        None, FaultSpec(latency_seconds=latency, rate_limit_rps=rate, burst=cmd.get("burst"))
                    )
                backend.reset_counters()
                timeline.reset()
                cpu_mark = _cpu()
                answer: dict[str, Any] = {"ok": True}
            elif cmd["cmd"] == "stats":
                answer = {
                    "calls": dict(backend.calls),
                    "faults": dict(backend.fault_counts),
                    "revocations": len(backend.revocations),
                    "revoked_kubeconfigs": sum(r.revoked for r in backend.revocations),
                    "revoked_pairs_unique": len({(r.cluster_id, r.uid) for r in backend.revocations}),
                    "clean_calls": len(backend.clean_calls),
                    "server_cpu_seconds": round(_cpu() - cpu_mark, 3),
                    "timeline": timeline.as_dict(),
                }
            else:
                answer = {"error": f"unknown command {cmd['cmd']!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
