"""The fake ACK in its own process, for the bench and its chaos mode: one world recipe, one command loop.

The child (``python -m benchlib.fakeproc '<recipe JSON>'``) generates the world, serves it with the
fake's real threaded HTTP server (``FakeAckServer``), writes one JSON line
``{"url": ..., "meta": WorldMeta}``, then answers one JSON command per line on standard input:

* ``{"cmd": "reset", "faults": FaultSpec | null, "clean_faults": FaultSpec | null, "seed": int | null,
  "world": true}``: the world as generated again (unless ``world`` is false), counters and the
  timeline zeroed, ``faults`` set for every operation (the fake's token buckets are per
  operation), ``clean_faults`` for CleanClusterUserPermissions, the fault draws reseeded.
* ``{"cmd": "stats", "world_state": false}``: ``ServerStats`` (requests per operation as the
  backend counts them, throttled ones included; injected faults; revocations; Clean calls; the
  server's CPU seconds since the reset; requests served and throttled per half second, seen
  through the fault injector's observers). With ``world_state`` also the deleted user's
  kubeconfigs still present and the recycle bins' (cluster, uid) pairs.
* ``{"cmd": "quit"}`` (or end of input): stop.

The parent side is ``FakeProcess``: typed ``reset`` and ``stats`` over that protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from typing_extensions import Self

from kubeconfig_guard.api import CLEAN_CLUSTER_USER_PERMISSIONS
from kubeconfig_guard.fake.faults import FaultDecision, FaultSpec
from kubeconfig_guard.models import AccountState
from kubeconfig_guard.state_rule import revocation_kind

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubeconfig_guard.fake import FakeAck, FakeAckServer, World

Pair = tuple[str, str]  # (cluster id, uid)


@dataclass(frozen=True)
class WorldRecipe:
    """What world to generate (``generate_world``), and which users to mark deleted in it."""

    seed: int
    regions: tuple[str, ...]
    clusters_per_region: int
    kubeconfigs_per_cluster: int
    deleted_user: str | None = None
    deleted_user_clusters: int = 0
    burst_users: int = 0  # RAM users with a unique name marked Deleted (the burst's leavers)
    warm_user: bool = False  # a second leaver on about as many clusters as the first


@dataclass(frozen=True)
class RegionMeta:
    clusters: int
    running: int
    states: list[int]  # kubeconfig states per running cluster


@dataclass(frozen=True)
class WorldMeta:
    """What the bench needs to know of the world: call counts, bounds, the allowed revocations."""

    now: str | None  # the world's pinned clock, if any
    account_id: str
    regions: dict[str, RegionMeta]
    kubeconfigs: int
    cluster_ids: list[str]
    deleted_user: str | None
    deleted_user_clusters: int
    warm_user: str | None
    warm_user_clusters: int
    burst_users: list[str]
    burst_pairs_by_user: dict[str, int]
    # The deleted user's RAM-user kubeconfigs on running clusters (what its deletion may revoke).
    leaver_pairs: list[Pair]
    # Revokable kubeconfigs on running clusters whose account state calls for a revocation
    # (state_rule: Deleted, and InActive since KCGUARD_REMEDIATE_LOCKED is on by default): what the
    # summary may revoke.
    deleted_pairs: list[Pair]
    # For the SDK worker, which must not import kubeconfig_guard (its RSS would include it).
    not_running: list[str]
    access_key: tuple[str, str]
    generate_seconds: float

    @property
    def clusters(self) -> int:
        return sum(r.clusters for r in self.regions.values())

    @property
    def running(self) -> int:
        return sum(r.running for r in self.regions.values())


@dataclass(frozen=True)
class Timeline:
    """Requests served and throttled per time slice since the reset."""

    slice_seconds: float
    served: list[int]
    throttled: list[int]
    throttled_by_operation: dict[str, int]


@dataclass(frozen=True)
class ServerStats:
    calls: dict[str, int]
    faults: dict[str, int]
    revocations: list[tuple[str, str, int]]  # (cluster id, uid, kubeconfigs revoked), in order
    clean_calls: int
    server_cpu_seconds: float
    timeline: Timeline
    leaver_remaining: list[Pair] | None = None  # with world_state
    recycle_bin: list[Pair] | None = None  # with world_state

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    def calls_of(self, operation: str) -> int:
        return self.calls.get(operation, 0)

    @property
    def revoked_pairs_unique(self) -> int:
        return len({(c, u) for c, u, _n in self.revocations})


@dataclass(frozen=True)
class _Started:
    url: str
    meta: WorldMeta


_STARTED = TypeAdapter(_Started)
_STATS = TypeAdapter(ServerStats)


# --- the child: world, server, command loop ----------------------------------------------------


class _TimelineRecorder:
    """A fault observer: served and throttled requests per slice since ``reset``."""

    def __init__(self, slice_seconds: float = 0.5) -> None:
        self.slice = slice_seconds
        self.start = time.monotonic()
        self.served: dict[int, int] = {}
        self.throttled: dict[int, int] = {}
        self.throttled_by_op: dict[str, int] = {}

    def reset(self) -> None:
        self.start = time.monotonic()
        self.served.clear()
        self.throttled.clear()
        self.throttled_by_op.clear()

    def __call__(self, operation: str, decision: FaultDecision) -> None:
        index = int((time.monotonic() - self.start) / self.slice)
        target = self.throttled if decision.throttled else self.served
        target[index] = target.get(index, 0) + 1
        if decision.throttled:
            self.throttled_by_op[operation] = self.throttled_by_op.get(operation, 0) + 1

    def timeline(self) -> Timeline:
        last = max([*self.served, *self.throttled], default=-1)
        return Timeline(
            self.slice,
            [self.served.get(i, 0) for i in range(last + 1)],
            [self.throttled.get(i, 0) for i in range(last + 1)],
            dict(self.throttled_by_op),
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mark_deleted_users(
    world: World, count: int, exclude: frozenset[str] = frozenset(), near_clusters: int | None = None
) -> list[str]:
    """Pick ``count`` RAM users with a unique name and mark them Deleted on every cluster.

    ``near_clusters``: pick the users whose kubeconfigs are on the number of clusters closest to it
    (their kubeconfigs beyond the first ``near_clusters`` clusters are removed)."""
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
        unique = [n for n in unique if on_clusters.get(n, 0) >= near_clusters] or unique
        unique.sort(key=lambda name: (on_clusters.get(name, 0), name))
        chosen = unique[:count]
        seen: dict[str, int] = {}
        for region in world.regions.values():
            for cluster in region.clusters:
                for name in set(chosen) & {k.account_name for k in cluster.kubeconfigs}:
                    seen[name] = seen.get(name, 0) + 1
                    if seen[name] > near_clusters:
                        cluster.kubeconfigs = [k for k in cluster.kubeconfigs if k.account_name != name]
    else:  # deterministic: every k-th name, spread over the principal pool
        step = len(unique) / count
        chosen = [unique[int(i * step)] for i in range(count)]
    for region in world.regions.values():
        for cluster in region.clusters:
            for k in cluster.kubeconfigs:
                if k.account_type == "RamUser" and k.account_name in chosen:
                    k.account_state = "Deleted"
                    k.revokable = True
    return chosen


def build_world(recipe: WorldRecipe) -> tuple[World, WorldMeta]:
    from kubeconfig_guard.credentials import from_environment_or_demo
    from kubeconfig_guard.fake import generate_world
    from kubeconfig_guard.models import CLUSTER_STATES_WITHOUT_API_SERVER

    started = time.perf_counter()
    world = generate_world(
        recipe.seed,
        regions=list(recipe.regions),
        clusters_per_region=recipe.clusters_per_region,
        kubeconfigs_per_cluster=recipe.kubeconfigs_per_cluster,
        deleted_user=recipe.deleted_user,
        deleted_user_clusters=recipe.deleted_user_clusters,
    )
    burst = mark_deleted_users(world, recipe.burst_users) if recipe.burst_users else []
    warm: str | None = None
    if recipe.warm_user:
        near = recipe.deleted_user_clusters or 10
        (warm,) = mark_deleted_users(world, 1, frozenset({recipe.deleted_user or ""}), near)

    def running(state: str) -> bool:
        return state.lower() not in CLUSTER_STATES_WITHOUT_API_SERVER

    clusters = [c for r in world.regions.values() for c in r.clusters]
    live = [c for c in clusters if running(c.state)]

    def on_clusters(name: str | None) -> int:
        return sum(1 for c in clusters if name and any(k.account_name == name for k in c.kubeconfigs))

    by_user: dict[str, int] = {}
    wanted = set(burst)
    for c in live:
        for name, _uid in {(k.account_name, k.account_id) for k in c.kubeconfigs if k.account_name in wanted}:
            by_user[name] = by_user.get(name, 0) + 1
    credentials = from_environment_or_demo()
    meta = WorldMeta(
        now=world.now,
        account_id=world.account_id,
        regions={
            name: RegionMeta(
                clusters=len(region.clusters),
                running=sum(1 for c in region.clusters if running(c.state)),
                states=[len(c.kubeconfigs) for c in region.clusters if running(c.state)],
            )
            for name, region in world.regions.items()
        },
        kubeconfigs=sum(len(c.kubeconfigs) for c in clusters),
        cluster_ids=sorted(c.cluster_id for c in clusters),
        deleted_user=recipe.deleted_user,
        deleted_user_clusters=on_clusters(recipe.deleted_user),
        warm_user=warm,
        warm_user_clusters=on_clusters(warm),
        burst_users=burst,
        burst_pairs_by_user=by_user,
        leaver_pairs=sorted(
            {
                (c.cluster_id, k.account_id)
                for c in live
                for k in c.kubeconfigs
                if recipe.deleted_user
                and k.account_name == recipe.deleted_user
                and k.account_type == "RamUser"
            }
        ),
        deleted_pairs=sorted(
            {
                (c.cluster_id, k.account_id)
                for c in live
                for k in c.kubeconfigs
                if revocation_kind(AccountState(k.account_state)) is not None
                and k.revokable
                and k.account_type != "RootAccount"
            }
        ),
        not_running=sorted(CLUSTER_STATES_WITHOUT_API_SERVER),
        access_key=(credentials.access_key_id, credentials.access_key_secret.get_secret_value()),
        generate_seconds=round(time.perf_counter() - started, 2),
    )
    return world, meta


def _stats(
    backend: FakeAck, timeline: _TimelineRecorder, cpu_mark: float, meta: WorldMeta, world_state: bool
) -> ServerStats:
    remaining: list[Pair] | None = None
    binned: list[Pair] | None = None
    if world_state:
        leaver = set(meta.leaver_pairs)
        state = backend.to_world()
        clusters = [c for r in state.regions.values() for c in r.clusters]
        remaining = sorted(
            {(c.cluster_id, k.account_id) for c in clusters for k in c.kubeconfigs if k.revokable} & leaver
        )
        binned = [(c.cluster_id, k.account_id) for c in clusters for k in c.recycle_bin]
    return ServerStats(
        calls=dict(backend.calls),
        faults=dict(backend.fault_counts),
        revocations=[(r.cluster_id, r.uid, r.revoked) for r in backend.revocations],
        clean_calls=len(backend.clean_calls),
        server_cpu_seconds=round(_cpu() - cpu_mark, 3),
        timeline=timeline.timeline(),
        leaver_remaining=remaining,
        recycle_bin=binned,
    )


def serve(recipe: WorldRecipe) -> None:
    """The child's main: generate, serve, answer commands until ``quit`` or end of input."""
    from kubeconfig_guard.fake import FakeAck, FakeAckServer

    world, meta = build_world(recipe)
    backend = FakeAck(world, fault_seed=recipe.seed)
    timeline = _TimelineRecorder()
    backend.faults.observers.append(timeline)
    faults = TypeAdapter(FaultSpec | None)

    def reset(cmd: dict[str, Any]) -> None:
        if cmd.get("world", True):
            backend.from_world(world)
        backend.faults.clear()
        if cmd.get("seed") is not None:
            backend.faults.reseed(int(cmd["seed"]))
        every = faults.validate_python(cmd.get("faults"))
        clean = faults.validate_python(cmd.get("clean_faults"))
        if every is not None:
            backend.faults.set(None, every)
        if clean is not None:
            backend.faults.set(CLEAN_CLUSTER_USER_PERMISSIONS.name, clean)
        backend.reset_counters()
        timeline.reset()

    def stats(cmd: dict[str, Any], cpu_mark: float) -> object:
        return _stats(backend, timeline, cpu_mark, meta, bool(cmd.get("world_state")))

    serve_commands(FakeAckServer(backend).start(), meta, reset, stats)


def serve_commands(
    server: FakeAckServer,
    meta: object,
    reset: Callable[[dict[str, Any]], None],
    stats: Callable[[dict[str, Any], float], object],
) -> None:
    """The child's side of ``ChildProcess``: the line ``{"url", "meta"}``, then one JSON command per line
    (``reset``, ``stats`` with the server's CPU since the last reset, ``quit``) until ``quit`` or the end
    of input; the server is stopped at the end."""
    sys.stdout.write(json.dumps({"url": server.url, "meta": dataclasses.asdict(meta)}) + "\n")  # type: ignore[call-overload]
    sys.stdout.flush()
    cpu_mark = _cpu()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            answer: dict[str, Any] = {"ok": True}
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "reset":
                reset(cmd)
                cpu_mark = _cpu()
            elif cmd["cmd"] == "stats":
                answer = dataclasses.asdict(stats(cmd, cpu_mark))  # type: ignore[call-overload]
            else:
                answer = {"error": f"unknown command {cmd['cmd']!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        server.stop()


# --- the parent: FakeProcess ---------------------------------------------------------------------


class FakeProcessError(RuntimeError):
    pass


class ChildProcess:
    """A bench server in its own process (``python -m <module> '<recipe JSON>'``): its first line is
    ``{"url", "meta"}``, then one JSON command per line on standard input, one JSON answer per line.

    ``FakeProcess`` (one account) and ``orgfake.OrgFakeProcess`` (an organization) are this with their
    recipe, their ``meta`` and their commands."""

    module = ""  # ``benchlib.fakeproc``...
    what = "the fake process"  # in the error when it exits
    quit_seconds = 10.0
    error: type[RuntimeError] = FakeProcessError

    def __init__(self, python: str, recipe: Any, env: dict[str, str]) -> None:
        self.python, self.recipe, self.env = python, recipe, env
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [python, "-m", self.module, json.dumps(dataclasses.asdict(recipe))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
        )
        self.started_line = self._line()

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace")[-3000:]
            raise self.error(f"{self.what} exited:\n" + tail)
        return line

    def _command(self, **cmd: Any) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> None:
        with contextlib.suppress(self.error, OSError, ValueError):
            self._command(cmd="quit")
        try:
            self.proc.wait(self.quit_seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeProcess(ChildProcess):
    """``python -m benchlib.fakeproc`` in its own process; ``reset`` and ``stats``."""

    module = "benchlib.fakeproc"
    what = "the fake ACK process"

    def __init__(self, python: str, recipe: WorldRecipe, env: dict[str, str]) -> None:
        super().__init__(python, recipe, env)
        started = _STARTED.validate_json(self.started_line)
        self.url: str = started.url
        self.meta: WorldMeta = started.meta

    def reset(
        self,
        faults: FaultSpec | None = None,
        *,
        clean_faults: FaultSpec | None = None,
        seed: int | None = None,
        world: bool = True,
    ) -> None:
        """Counters zeroed, faults set; the world restored as generated unless ``world=False``."""
        self._command(
            cmd="reset",
            faults=dataclasses.asdict(faults) if faults else None,
            clean_faults=dataclasses.asdict(clean_faults) if clean_faults else None,
            seed=seed,
            world=world,
        )

    def reset_latency(
        self,
        latency_ms: float,
        rate_limit: float | None = None,
        burst: float | None = None,
        *,
        world: bool = True,
    ) -> None:
        """The bench's reset: ``latency_ms`` on every request, an optional token bucket per operation."""
        spec = None
        if latency_ms or rate_limit is not None:
            spec = FaultSpec(latency_seconds=latency_ms / 1000.0, rate_limit_rps=rate_limit, burst=burst)
        self.reset(spec, world=world)

    def stats(self, *, world_state: bool = False) -> ServerStats:
        return _STATS.validate_json(self._command(cmd="stats", world_state=world_state))


if __name__ == "__main__":
    serve(TypeAdapter(WorldRecipe).validate_json(sys.argv[1]))
