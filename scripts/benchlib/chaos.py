#!/usr/bin/env python3
"""Chaos mode of ``scripts/bench`` (issue 11): an operator's bad day, run as Function Compute runs it.

    .venv/bin/python scripts/bench chaos                       # every scenario (as root: CPU quota)
    .venv/bin/python scripts/benchlib/chaos.py                 # the same
    .venv/bin/python scripts/benchlib/chaos.py --scenario event-60 --scenario summary-60
    .venv/bin/python scripts/benchlib/chaos.py --tiny          # the smoke test's seconds-long world

Faults (the fake's FaultSpec on every operation, seeded ``--seed``): 20 ms per call, 15% of calls
answered 5xx (the fake picks 503 or 500) before the operation runs, 10% answered 429
``Throttling.User`` whatever the rate, and on ``CleanClusterUserPermissions`` 10% of the writes
applied but their answers lost (connection reset after apply). The seed fixes the draws' sequence;
which request gets which draw depends on the order requests arrive, which concurrency varies.

How it runs: the fake ACK in its own process (``chaos.py serve``, the fake's real HTTP server);
every attempt a fresh process (``chaos.py child``) under a cgroup v1 CPU quota of the function's
``cpu`` (``fcsim.CpuQuota``; "NOT enforced" when it cannot be made), with template.yml's handler,
``timeout`` (or ``--timeout`` for the short-timeout variant) and environment, the python3.10-style
context of ``scripts/benchlib/fc.py``. An attempt still running at its timeout is killed (as Function
Compute does); one that raises ``RetryableInvocationError`` (or is killed) is run again in a fresh
process, up to ``asyncInvokeConfig.maxAsyncRetryAttempts`` retries. The summary's report goes to a
loopback webhook (``KCGUARD_WEBHOOK_URL``): its ``skipped_clusters`` is checked against the world.

Invariants checked on every scenario (from the fake's revocation records and recycle bins):
nothing outside the allowed set (event: the leaver's kubeconfigs; summary: revokable kubeconfigs
of Deleted accounts) is revoked, no (cluster, uid) is revoked twice, and the summary accounts for
every cluster (scanned, or listed in ``skipped_clusters``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TEMPLATE = ROOT / "template.yml"
if str(HERE) not in sys.path:  # the bench's modules are imported as top-level modules (scripts/bench)
    sys.path.insert(0, str(HERE))

import fcsim  # noqa: E402

LEAVER = "departed.dev"
LATENCY_SECONDS = 0.02
ERROR_RATE_5XX = 0.15
LOST_WRITE_RATE = 0.10
THROTTLE_RATE = 0.10
CLEAN = "CleanClusterUserPermissions"
KILL_GRACE_SECONDS = 1.0  # a child still running this long after its timeout is killed


# --- the fake ACK process ------------------------------------------------------------------


def serve(spec: dict[str, Any]) -> None:
    """The fake ACK with a generated world; one JSON command per line on stdin (see ``FakeProcess``)."""
    import server as benchserver  # scripts/benchlib/server.py: describe the world as the bench does

    from kubeconfig_guard.fake import FakeAck, FakeAckServer, FaultSpec, generate_world
    from kubeconfig_guard.models import CLUSTER_STATES_WITHOUT_API_SERVER

    world = generate_world(
        spec["seed"],
        regions=spec["regions"],
        clusters_per_region=spec["clusters_per_region"],
        kubeconfigs_per_cluster=spec["kubeconfigs_per_cluster"],
        deleted_user=LEAVER,
        deleted_user_clusters=spec["leaver_clusters"],
    )
    backend = FakeAck(world, fault_seed=spec["seed"])
    meta = benchserver.describe(world, {**spec, "deleted_user": LEAVER}, [], None)
    running = {
        c.cluster_id
        for r in world.regions.values()
        for c in r.clusters
        if c.state.lower() not in CLUSTER_STATES_WITHOUT_API_SERVER
    }
    meta["cluster_ids"] = sorted(c.cluster_id for r in world.regions.values() for c in r.clusters)
    meta["leaver_pairs"] = sorted(
        {
            (c.cluster_id, k.account_id)
            for r in world.regions.values()
            for c in r.clusters
            if c.cluster_id in running
            for k in c.kubeconfigs
            if k.account_name == LEAVER and k.account_type == "RamUser"
        }
    )
    # What the summary may revoke (KCGUARD_REMEDIATE_DELETED=true, locked accounts left alone).
    meta["deleted_pairs"] = sorted(
        {
            (c.cluster_id, k.account_id)
            for r in world.regions.values()
            for c in r.clusters
            if c.cluster_id in running
            for k in c.kubeconfigs
            if k.account_state == "Deleted" and k.revokable and k.account_type != "RootAccount"
        }
    )
    srv = FakeAckServer(backend).start()
    sys.stdout.write(json.dumps({"url": srv.url, "meta": meta}) + "\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            answer: dict[str, Any] = {"ok": True}
            if cmd["cmd"] == "reset":  # the world as generated, counters zeroed, the bad day's faults
                backend.from_world(world)
                backend.reset_counters()
                backend.faults.clear()
                backend.faults.reseed(int(cmd["seed"]))
                if cmd.get("faults", True):
                    bad = FaultSpec(
                        latency_seconds=LATENCY_SECONDS,
                        error_rate_5xx=ERROR_RATE_5XX,
                        throttle_rate=THROTTLE_RATE,
                    )
                    backend.faults.set(None, bad)
                    backend.faults.set(CLEAN, dataclasses.replace(bad, reset_rate=LOST_WRITE_RATE))
            elif cmd["cmd"] == "stats":
                state = backend.to_world()
                remaining = sorted(
                    {
                        (c.cluster_id, k.account_id)
                        for r in state.regions.values()
                        for c in r.clusters
                        if c.cluster_id in running
                        for k in c.kubeconfigs
                        if k.account_name == LEAVER and k.revokable
                    }
                )
                binned = [
                    (c.cluster_id, k.account_id)
                    for r in state.regions.values()
                    for c in r.clusters
                    for k in c.recycle_bin
                ]
                answer = {
                    "calls": dict(backend.calls),
                    "faults": dict(backend.fault_counts),
                    "revocations": [(r.cluster_id, r.uid, r.revoked) for r in backend.revocations],
                    "clean_calls": len(backend.clean_calls),
                    "leaver_remaining": remaining,
                    "recycle_bin": binned,
                }
            else:
                answer = {"error": f"unknown command {cmd['cmd']!r}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    finally:
        srv.stop()


class FakeProcess:
    """``chaos.py serve`` in its own process; ``reset(seed)`` and ``stats()``."""

    def __init__(self, python: str, spec: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "serve", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=child_env({}),
        )
        first = self._read()
        self.url: str = first["url"]
        self.meta: dict[str, Any] = first["meta"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fake ACK process exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def command(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.command(cmd="quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- one Function Compute attempt ------------------------------------------------------------


def child(spec: dict[str, Any]) -> None:
    """One attempt in a fresh process: import the handler, say ready, run one event, print the result."""
    import importlib

    import fc  # scripts/benchlib/fc.py: the python3.10 runtime's context

    module_name, _, attr = spec["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), attr)
    from kubeconfig_guard.errors import RetryableInvocationError

    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    event = sys.stdin.readline().encode()
    context = fc.Context(spec, spec["request_id"])
    t0 = time.perf_counter()
    result: Any
    try:
        raw = handler(event, context)
        result, error, retryable = json.loads(raw), None, False
    except RetryableInvocationError as exc:
        doc = exc.result
        result = json.loads(doc.model_dump_json()) if hasattr(doc, "model_dump_json") else doc
        error, retryable = "RetryableInvocationError", True
    except Exception as exc:  # Function Compute records it and retries an async invocation
        result, error, retryable = None, f"{type(exc).__name__}: {str(exc)[:300]}", True
    wall = time.perf_counter() - t0
    sys.stdout.write(
        json.dumps({"wall": wall, "error": error, "retryable": retryable, "result": result}) + "\n"
    )
    sys.stdout.flush()
    os._exit(0)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without settings, credentials or proxies (Function Compute sets its own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KCGUARD_", "ALIBABA_CLOUD_", "FC_")) and "proxy" not in k.lower()
    }
    env.update(extra)
    return env


def function_props(resource: str, timeout: int | None = None) -> dict[str, Any]:
    """template.yml's handler, cpu, timeout, environment and async retries of one function."""
    import yaml

    doc = yaml.safe_load(TEMPLATE.read_text())
    variables = doc.get("vars") or {}
    raw = doc["resources"][resource]["props"]
    env = dict(os.environ)
    props = fcsim.resolve(raw, variables, env)
    environment = fcsim.resolve(raw.get("environmentVariables") or {}, variables, env, typed=False)
    payload = next(
        (
            t.get("triggerConfig", {}).get("payload")
            for t in props.get("triggers") or []
            if t.get("triggerType") == "timer"
        ),
        None,
    )
    return {
        "resource": resource,
        "handler": props["handler"],
        "function_name": props["functionName"],
        "cpu": float(props.get("cpu") or fcsim.FC3_DEFAULT_CPU_512MB),
        "memory_mb": int(props.get("memorySize") or 512),
        "timeout": int(timeout or props.get("timeout") or 60),
        "template_timeout": int(props.get("timeout") or 60),
        "retries": int((props.get("asyncInvokeConfig") or {}).get("maxAsyncRetryAttempts") or 0),
        "environment": {k: "" if v is None else str(v) for k, v in environment.items()},
        "timer_payload": payload,
    }


@dataclass
class Attempt:
    number: int
    wall: float
    killed: bool
    error: str | None
    retryable: bool
    result: Any
    leaver_remaining: int
    revoked_so_far: int


def run_attempt(
    python: str,
    function: dict[str, Any],
    fake: FakeProcess,
    event: Any,
    number: int,
    quota: fcsim.CpuQuota,
    extra_env: dict[str, str],
    log_dir: Path | None = None,
) -> Attempt:
    spec = fcsim.instance_spec(
        function,
        [*fake.meta["access_key"], None],
        fake.meta["regions"] and next(iter(fake.meta["regions"])),
        fake.meta["account_id"],
        request_id=f"chaos-{function['resource']}-{number}",
    )
    regions = list(fake.meta["regions"])
    env = child_env(
        {
            **function["environment"],
            "KCGUARD_MODE": "enforce",
            "KCGUARD_REGIONS": ",".join(regions),
            "KCGUARD_CS_ENDPOINT": fake.url,
            "FC_FUNCTION_NAME": function["function_name"],
            "FC_REGION": regions[0],
            "FC_ACCOUNT_ID": fake.meta["account_id"],
            **extra_env,
        }
    )
    log = (log_dir / f"{spec['request_id']}.log").open("w") if log_dir else None
    proc = subprocess.Popen(
        quota.wrap([python, str(Path(__file__).resolve()), "child", json.dumps(spec)]),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log if log is not None else subprocess.DEVNULL,
        text=True,
        bufsize=1,
        env=env,
        cwd=str(ROOT),
    )
    assert proc.stdin is not None and proc.stdout is not None
    ready = proc.stdout.readline()  # the import (Function Compute's initialisation) is not timed
    if not ready:
        raise RuntimeError("the attempt's process exited before its handler was imported")
    proc.stdin.write(json.dumps(event) + "\n")
    proc.stdin.flush()
    sent = time.perf_counter()
    timer = threading.Timer(function["timeout"] + KILL_GRACE_SECONDS, proc.kill)  # Function Compute's kill
    timer.start()
    line = proc.stdout.readline()
    timer.cancel()
    wall = time.perf_counter() - sent
    proc.wait()
    if log is not None:
        log.close()
    stats = fake.command(cmd="stats")
    common = {"leaver_remaining": len(stats["leaver_remaining"]), "revoked_so_far": len(stats["revocations"])}
    if not line:
        return Attempt(number, wall, True, "killed at the timeout", True, None, **common)
    answer = json.loads(line)
    return Attempt(
        number, answer["wall"], False, answer["error"], answer["retryable"], answer["result"], **common
    )


# --- the summary's report receiver -------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    reports: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with contextlib.suppress(ValueError):
            type(self).reports.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    reports: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"reports": reports})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/report", reports
    finally:
        srv.shutdown()
        srv.server_close()


# --- scenarios -----------------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    world: str
    resource: str
    timeout: int | None = None  # None: template.yml's
    max_attempts: int | None = None  # None: 1 + maxAsyncRetryAttempts
    env: dict[str, str] = field(default_factory=dict)  # settings over template.yml's


@dataclass
class Outcome:
    scenario: Scenario
    function: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    leaver_pairs: int = 0
    report_received: bool = False
    quota_note: str = ""
    done_at_attempt: int | None = None


def worlds(seed: int, tiny: bool) -> dict[str, dict[str, Any]]:
    if tiny:
        return {
            "tiny": {
                "seed": seed,
                "regions": ["cn-hangzhou"],
                "clusters_per_region": 6,
                "kubeconfigs_per_cluster": 12,
                "leaver_clusters": 4,
            }
        }
    return {
        "60": {
            "seed": seed,
            "regions": ["cn-hangzhou"],
            "clusters_per_region": 60,
            "kubeconfigs_per_cluster": 120,
            "leaver_clusters": 25,
        },
        "medium": {
            "seed": seed,
            "regions": ["cn-hangzhou", "cn-beijing", "cn-shanghai"],
            "clusters_per_region": 100,
            "kubeconfigs_per_cluster": 120,
            "leaver_clusters": 40,
        },
    }


SCENARIOS = {
    "event-60": Scenario("event-60", "60", "kcguard-event"),
    "event-60-t60": Scenario("event-60-t60", "60", "kcguard-event", timeout=60),
    "summary-60": Scenario("summary-60", "60", "kcguard-summary"),
    # Three attempts judge "within 3 attempts" (the template allows 1 + 5).
    # The generated world has ~1,100 kubeconfigs of Deleted accounts: over the blast-radius limit
    # (KCGUARD_MAX_REVOCATIONS 50) the summary revokes none. This variant lifts the limit so the
    # summary's own revocations meet the lost answers.
    "summary-60-remediate": Scenario(
        "summary-60-remediate", "60", "kcguard-summary", env={"KCGUARD_MAX_REVOCATIONS": "5000"}
    ),
    "event-medium": Scenario("event-medium", "medium", "kcguard-event", max_attempts=3),
    "event-medium-t60": Scenario("event-medium-t60", "medium", "kcguard-event", timeout=60, max_attempts=3),
    # At 60 s the medium event finishes in its first attempt: a 10 s timeout (5 s of work after
    # KCGUARD_DEADLINE_MARGIN_SECONDS) makes the deadline cut attempts, and retries finish the job.
    "event-medium-t10": Scenario("event-medium-t10", "medium", "kcguard-event", timeout=10),
    "event-tiny": Scenario("event-tiny", "tiny", "kcguard-event", max_attempts=3),
    "summary-tiny": Scenario("summary-tiny", "tiny", "kcguard-summary"),
}


def run_scenario(
    python: str,
    fake: FakeProcess,
    scenario: Scenario,
    seed: int,
    *,
    quota_cpu: bool = True,
    log_dir: Path | None = None,
) -> Outcome:
    function = function_props(scenario.resource, scenario.timeout)
    out = Outcome(scenario, function)
    fake.command(cmd="reset", seed=seed)
    summary = scenario.resource == "kcguard-summary"
    if summary:
        event: Any = json.loads(function["timer_payload"] or "{}")
    else:
        event = fcsim.deletion_event(LEAVER, 1, fake.meta["account_id"])
    allowed = {tuple(p) for p in fake.meta["deleted_pairs" if summary else "leaver_pairs"]}
    out.leaver_pairs = len(fake.meta["leaver_pairs"])
    limit = scenario.max_attempts or 1 + function["retries"]
    with fcsim.CpuQuota(function["cpu"] if quota_cpu else None) as quota, receiver() as (url, reports):
        out.quota_note = quota.note
        extra = {**({"KCGUARD_WEBHOOK_URL": url} if summary else {}), **scenario.env}
        for number in range(1, limit + 1):
            attempt = run_attempt(python, function, fake, event, number, quota, extra, log_dir)
            out.attempts.append(attempt)
            if not summary and attempt.leaver_remaining == 0 and out.done_at_attempt is None:
                out.done_at_attempt = number
            if not attempt.retryable:
                break
        out.report_received = bool(reports)
        stats = fake.command(cmd="stats")
        out.faults, out.calls = stats["faults"], stats["calls"]
        revoked = [(c, u) for c, u, _n in stats["revocations"]]
        outside = sorted(set(revoked) - allowed)
        if outside:
            out.violations.append(
                f"{len(outside)} (cluster, uid) revoked outside the allowed set: {outside[:3]}"
            )
        twice = len(revoked) - len(set(revoked))
        if twice:
            out.violations.append(f"{twice} (cluster, uid) revoked more than once")
        binned = [tuple(p) for p in stats["recycle_bin"]]
        if set(binned) - allowed:
            out.violations.append(
                f"recycle bin holds kubeconfigs outside the allowed set: {sorted(set(binned) - allowed)[:3]}"
            )
        for attempt in out.attempts:
            if summary and isinstance(attempt.result, dict):
                res = attempt.result
                if res.get("clusters_scanned", 0) + res.get("clusters_not_scanned", 0) != res.get(
                    "clusters_total"
                ):
                    out.violations.append(f"attempt {attempt.number}: scanned + not scanned != total ({res})")
                if res.get("clusters_total") != len(fake.meta["cluster_ids"]):
                    out.violations.append(
                        f"attempt {attempt.number}: clusters_total {res.get('clusters_total')} "
                        f"!= {len(fake.meta['cluster_ids'])} clusters in the world"
                    )
        for report in reports:
            listed = {c.get("cluster_id") for c in report.get("skipped_clusters") or []}
            covered = int(report.get("clusters_scanned") or 0) + len(listed)
            if covered != len(fake.meta["cluster_ids"]) or not listed <= set(fake.meta["cluster_ids"]):
                out.violations.append(
                    f"report covers {covered} of {len(fake.meta['cluster_ids'])} clusters (scanned + skipped)"
                )
        if summary and out.attempts and not out.attempts[-1].killed and not reports:
            out.violations.append("the summary returned but delivered no report")
    return out


# --- targets and the table -------------------------------------------------------------------------


def targets(outcomes: dict[str, Outcome]) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    if (o := outcomes.get("event-60")) is not None:
        first = o.attempts[0]
        ok = o.done_at_attempt == 1 and not first.killed and first.wall <= 30.0
        rows.append(
            (
                "60 clusters: deletion complete in attempt 1 within 30 s",
                f"attempt 1 {first.wall:.1f} s, complete at attempt {o.done_at_attempt}",
                ok,
            )
        )
    for name in ("summary-60", "summary-60-remediate"):
        if (o := outcomes.get(name)) is None:
            continue
        first = o.attempts[0]
        ok = not first.killed and first.wall <= 120.0 and o.report_received
        rows.append(
            (
                f"{name}: summary ends with its report within 120 s",
                f"{first.wall:.1f} s, report {'delivered' if o.report_received else 'MISSING'}",
                ok,
            )
        )
    for name in ("event-medium", "event-medium-t60", "event-medium-t10", "event-60-t60"):
        if (o := outcomes.get(name)) is None:
            continue
        t = o.function["timeout"]
        late = [a for a in o.attempts if a.killed or a.wall >= t]
        rows.append(
            (
                f"{name}: every attempt returns before its deadline ({t} s)",
                "walls " + ", ".join(f"{a.wall:.1f}" + (" KILLED" if a.killed else "") for a in o.attempts),
                not late,
            )
        )
        if name == "event-medium":
            ok = o.done_at_attempt is not None and o.done_at_attempt <= 3
            rows.append(
                (
                    "medium: leaver fully revoked within 3 attempts",
                    f"complete at attempt {o.done_at_attempt} ({o.leaver_pairs} pairs)",
                    ok,
                )
            )
    bad = [f"{n}: {v}" for n, o in outcomes.items() for v in o.violations]
    rows.append(
        (
            "nothing outside the allowed set, nothing twice, no cluster omitted",
            "; ".join(bad) if bad else "no violation in " + ", ".join(outcomes),
            not bad,
        )
    )
    return rows


def render(outcomes: dict[str, Outcome], header: dict[str, Any]) -> str:
    lines = [f"chaos: {header['faults']}", f"seed {header['seed']}; {header['machine']}"]
    lines.append("")
    lines.append(
        "| scenario | vCPU | timeout | attempt | wall s | outcome | leaver left | revocations so far |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for name, o in outcomes.items():
        for a in o.attempts:
            res = a.result if isinstance(a.result, dict) else {}
            outcome = "KILLED" if a.killed else str(res.get("outcome") or a.error)
            if a.retryable and not a.killed:
                outcome += " (retryable)"
            scanned = f", scanned {res.get('clusters_scanned')}/{res.get('clusters_total')}" if res else ""
            lines.append(
                f"| {name} | {o.function['cpu']}{'' if not o.quota_note else ' (NOT enforced)'} | {o.function['timeout']} | "
                f"{a.number} | {a.wall:.1f} | {outcome}{scanned} | {a.leaver_remaining}/{o.leaver_pairs} | {a.revoked_so_far} |"
            )
    lines.append("")
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for target, measured, ok in targets(outcomes):
        lines.append(f"| {target} | {measured} | {'met' if ok else 'MISSED'} |")
    for name, o in outcomes.items():
        lines.append(f"{name}: calls {o.calls}; injected {o.faults}")
    return "\n".join(lines)


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve(json.loads(argv[1]))
        return 0
    if argv[:1] == ["child"]:
        child(json.loads(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--tiny", action="store_true", help="the smoke test's tiny world (event-tiny, summary-tiny)"
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--logs", type=Path, help="keep each attempt's log lines (stderr) in this directory")
    args = parser.parse_args(argv)
    chosen = args.scenario or (
        ["event-tiny", "summary-tiny"]
        if args.tiny
        else [
            "event-60",
            "event-60-t60",
            "summary-60",
            "summary-60-remediate",
            "event-medium",
            "event-medium-t60",
            "event-medium-t10",
        ]
    )
    specs = worlds(args.seed, args.tiny)
    header = {
        "faults": f"{LATENCY_SECONDS * 1000:.0f} ms per call, {ERROR_RATE_5XX:.0%} 5xx, "
        f"{THROTTLE_RATE:.0%} 429 Throttling.User regardless of rate, {LOST_WRITE_RATE:.0%} of Clean writes applied "
        "and their answers lost",
        "seed": args.seed,
        "machine": machine(),
    }
    outcomes: dict[str, Outcome] = {}
    fakes: dict[str, FakeProcess] = {}
    try:
        for name in chosen:
            scenario = SCENARIOS[name]
            if scenario.world not in fakes:
                fakes[scenario.world] = FakeProcess(args.python, specs[scenario.world])
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
            outcomes[name] = run_scenario(
                args.python, fakes[scenario.world], scenario, args.seed, log_dir=args.logs
            )
            print(
                f"[{time.strftime('%H:%M:%S')}] {name}: "
                + ", ".join(f"{a.wall:.1f}s{' KILLED' if a.killed else ''}" for a in outcomes[name].attempts),
                file=sys.stderr,
                flush=True,
            )
    finally:
        for fake in fakes.values():
            fake.close()
    header["machine"] += f"; {os.getloadavg()[0]:.2f} at the end"
    text = render(outcomes, header)
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "header": header,
                    "targets": targets(outcomes),
                    "outcomes": {
                        n: {
                            "function": o.function,
                            "attempts": [a.__dict__ for a in o.attempts],
                            "violations": o.violations,
                            "faults": o.faults,
                            "calls": o.calls,
                            "report_received": o.report_received,
                            "leaver_pairs": o.leaver_pairs,
                            "quota_note": o.quota_note,
                        }
                        for n, o in outcomes.items()
                    },
                },
                indent=1,
                default=str,
            )
        )
    return 0 if all(ok for _t, _m, ok in targets(outcomes)) else 1


if __name__ == "__main__":
    sys.exit(main())
