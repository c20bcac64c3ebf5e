"""Chaos mode of the bench (issue 11): an operator's bad day, run as Function Compute runs it.

    scripts/bench chaos                                        # every scenario (as root: CPU quota)
    cd scripts && python -m benchlib.chaos                     # the same
    cd scripts && python -m benchlib.chaos --scenario event-60 --scenario summary-60
    cd scripts && python -m benchlib.chaos --tiny              # the smoke test's seconds-long world
    scripts/bench chaos --double --scenario event-medium-t60 --max-attempts 6   # twice the faults
    scripts/bench chaos --scenario event-medium-t10 --attempts 10               # a sample of 10 attempts

Faults (the fake's FaultSpec on every operation, seeded ``--seed``): 20 ms per call, 15% of calls
answered 5xx (the fake picks 503 or 500) before the operation runs, 10% answered 429
``Throttling.User`` whatever the rate, and on ``CleanClusterUserPermissions`` 10% of the writes
applied but their answers lost (connection reset after apply). The seed fixes the draws' sequence;
which request gets which draw depends on the order requests arrive, which concurrency varies.
``--double`` doubles them (30% 5xx, 20% rate-independent 429s, 20% of the Clean answers lost; issue
19); ``--error-rate-5xx``, ``--throttle-rate``, ``--lost-write-rate`` and ``--latency-ms`` set each.

How it runs: the fake ACK in its own process (``benchlib.fakeproc``, the fake's real HTTP server);
every attempt a fresh Function Compute instance (``benchlib.fcsim.FcInstance``: a process running
``benchlib/fc.py``, the runtime's context) under a cgroup v1 CPU quota of the function's
``cpu`` (``fcsim.CpuQuota``; "NOT enforced" when it cannot be made), with template.yml's handler,
``timeout`` (or the scenario's, for the short-timeout variants) and environment. The handler's
import is not timed (Function Compute's initialisation). An attempt still running at its timeout
(+ 1 s) is killed (as Function Compute does); one that raises (``RetryableInvocationError`` or
anything else) or is killed is run again in a fresh instance, up to
``asyncInvokeConfig.maxAsyncRetryAttempts`` retries (``--max-attempts`` sets the limit of every
scenario; ``--attempts N`` runs exactly N attempts whatever their outcome, a sample of attempts: the
clusters each one scans are compared). The summary's report goes to a loopback
webhook (``KCGUARD_WEBHOOK_URL``): its ``skipped_clusters`` is checked against the world.

Invariants checked on every scenario (from the fake's revocation records and recycle bins):
nothing outside the allowed set (event: the leaver's kubeconfigs; summary: revokable kubeconfigs
whose account state calls for a revocation, Deleted or InActive: ``state_rule``) is revoked, no (cluster, uid) is revoked twice, and the summary accounts for
every cluster (scanned, or listed in ``skipped_clusters``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from benchlib import children, fakeproc, fcsim
from kubeconfig_guard.fake.faults import FaultSpec

R = TypeVar("R")

TEMPLATE = children.ROOT / "template.yml"
LEAVER = "departed.dev"
LATENCY_SECONDS = 0.02
ERROR_RATE_5XX = 0.15
LOST_WRITE_RATE = 0.10
THROTTLE_RATE = 0.10


@dataclass(frozen=True)
class Faults:
    """The bad day's levels: on every operation, and on CleanClusterUserPermissions its lost answers."""

    latency_seconds: float = LATENCY_SECONDS
    error_rate_5xx: float = ERROR_RATE_5XX
    throttle_rate: float = THROTTLE_RATE
    lost_write_rate: float = LOST_WRITE_RATE

    def spec(self) -> FaultSpec:
        return FaultSpec(
            latency_seconds=self.latency_seconds,
            error_rate_5xx=self.error_rate_5xx,
            throttle_rate=self.throttle_rate,
        )

    def clean_spec(self) -> FaultSpec:
        return dataclasses.replace(self.spec(), reset_rate=self.lost_write_rate)

    def describe(self) -> str:
        return (
            f"{self.latency_seconds * 1000:.0f} ms per call, {self.error_rate_5xx:.0%} 5xx, "
            f"{self.throttle_rate:.0%} 429 Throttling.User regardless of rate, {self.lost_write_rate:.0%} of "
            "Clean writes applied and their answers lost"
        )


BAD_DAY = Faults()
# Issue 19: twice the bad day's faults (the latency unchanged).
DOUBLE = Faults(error_rate_5xx=0.30, throttle_rate=0.20, lost_write_rate=0.20)
FAULTS = BAD_DAY.spec()
CLEAN_FAULTS = BAD_DAY.clean_spec()


# --- one Function Compute attempt ------------------------------------------------------------


@dataclass
class Attempt:
    number: int
    wall: float
    killed: bool
    error: str | None
    retryable: bool
    result: dict[str, Any] | None  # the handler's whole result (a RetryableInvocationError's too)
    leaver_remaining: int
    revoked_so_far: int
    calls_so_far: int = 0  # every call the fake counted since the scenario started (throttled too)
    calls: int = 0  # ... during this attempt


def run_attempt(
    python: str,
    function: fcsim.FunctionSpec,
    fake: fakeproc.FakeProcess,
    event: dict[str, Any],
    number: int,
    quota: fcsim.CpuQuota,
    extra_env: dict[str, str],
    log_dir: Path | None = None,
) -> Attempt:
    """One attempt: a fresh instance, one invocation (killed at the timeout), closed."""
    meta = fake.meta
    regions = list(meta.regions)
    env = children.clean_env(
        **{
            **function.environment,
            "KCGUARD_MODE": "enforce",
            "KCGUARD_REGIONS": ",".join(regions),
            "KCGUARD_CS_ENDPOINT": fake.url,
            "FC_FUNCTION_NAME": function.function_name,
            "FC_REGION": regions[0],
            "FC_ACCOUNT_ID": meta.account_id,
            **extra_env,
        }
    )
    key_id, secret = meta.access_key
    instance = fcsim.FcInstance(
        python,
        function,
        env,
        (key_id, secret, None),
        quota,
        str(children.ROOT),
        meta.account_id,
        full_result=True,
        stderr=log_dir / f"chaos-{function.resource}-{number}.log" if log_dir else None,
    )
    try:
        instance.wait_ready()  # the import (Function Compute's initialisation) is not timed
        answer = instance.invoke(event, kill_at_timeout=True)
    finally:
        instance.close()
    stats = fake.stats(world_state=True)
    return Attempt(
        number=number,
        wall=answer.wall,
        killed=answer.killed,
        error="killed at the timeout" if answer.killed else answer.error,
        retryable=answer.killed or answer.error is not None,  # Function Compute retries any failure
        result=answer.result,
        leaver_remaining=len(stats.leaver_remaining or []),
        revoked_so_far=len(stats.revocations),
        calls_so_far=stats.calls_total,
    )


# --- the summary's report receiver -------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """What the invariants read of a report the summary delivered to the webhook."""

    clusters_scanned: int
    skipped_cluster_ids: frozenset[str | None]

    @classmethod
    def from_json(cls, doc: object) -> Report | None:
        if not isinstance(doc, dict):
            return None
        skipped = doc.get("skipped_clusters") or []
        return cls(
            clusters_scanned=int(doc.get("clusters_scanned") or 0),
            skipped_cluster_ids=frozenset(c.get("cluster_id") for c in skipped if isinstance(c, dict)),
        )


@contextlib.contextmanager
def receiver(read: Callable[[Any], R | None]) -> Iterator[tuple[str, list[R]]]:
    """A loopback webhook (the generic channel posts the whole JSON report): its URL, and the reports
    POSTed to it as ``read`` takes them (None: not a report)."""
    reports: list[R] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with contextlib.suppress(ValueError):
                report = read(json.loads(body))
                if report is not None:
                    reports.append(report)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"ok": true}')

        def log_message(self, format: str, *args: object) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
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
    function: fcsim.FunctionSpec
    attempts: list[Attempt] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    leaver_pairs: int = 0
    report_received: bool = False
    quota_note: str = ""
    done_at_attempt: int | None = None


def _recipe(
    seed: int, regions: tuple[str, ...], clusters: int, kubeconfigs: int, leaver_clusters: int
) -> fakeproc.WorldRecipe:
    return fakeproc.WorldRecipe(
        seed=seed,
        regions=regions,
        clusters_per_region=clusters,
        kubeconfigs_per_cluster=kubeconfigs,
        deleted_user=LEAVER,
        deleted_user_clusters=leaver_clusters,
    )


def worlds(seed: int, tiny: bool) -> dict[str, fakeproc.WorldRecipe]:
    if tiny:
        return {"tiny": _recipe(seed, ("cn-hangzhou",), 6, 12, 4)}
    return {
        "60": _recipe(seed, ("cn-hangzhou",), 60, 120, 25),
        "medium": _recipe(seed, ("cn-hangzhou", "cn-beijing", "cn-shanghai"), 100, 120, 40),
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
    fake: fakeproc.FakeProcess,
    scenario: Scenario,
    seed: int,
    *,
    quota_cpu: bool = True,
    log_dir: Path | None = None,
    faults: Faults = BAD_DAY,
    max_attempts: int | None = None,
    sample: int | None = None,
) -> Outcome:
    """``max_attempts``: the retry limit instead of the scenario's; ``sample``: exactly this many
    attempts, whatever their outcome."""
    function = fcsim.function_spec(TEMPLATE, scenario.resource, timeout=scenario.timeout)
    out = Outcome(scenario, function)
    fake.reset(faults.spec(), clean_faults=faults.clean_spec(), seed=seed)
    meta = fake.meta
    summary = scenario.resource == "kcguard-summary"
    if summary:
        event: dict[str, Any] = json.loads(function.timer_payload or "{}")
    else:
        event = fcsim.deletion_event(LEAVER, 1, meta.account_id)
    allowed = set(meta.deleted_pairs if summary else meta.leaver_pairs)
    out.leaver_pairs = len(meta.leaver_pairs)
    limit = sample or max_attempts or scenario.max_attempts or 1 + function.retries
    with (
        fcsim.CpuQuota(function.cpu if quota_cpu else None) as quota,
        receiver(Report.from_json) as (url, reports),
    ):
        out.quota_note = quota.note
        extra = {**({"KCGUARD_WEBHOOK_URL": url} if summary else {}), **scenario.env}
        for number in range(1, limit + 1):
            attempt = run_attempt(python, function, fake, event, number, quota, extra, log_dir)
            attempt.calls = attempt.calls_so_far - (out.attempts[-1].calls_so_far if out.attempts else 0)
            out.attempts.append(attempt)
            if not summary and attempt.leaver_remaining == 0 and out.done_at_attempt is None:
                out.done_at_attempt = number
            if not attempt.retryable and sample is None:
                break
        out.report_received = bool(reports)
        stats = fake.stats(world_state=True)
        out.faults, out.calls = stats.faults, stats.calls
        revoked = [(c, u) for c, u, _n in stats.revocations]
        outside = sorted(set(revoked) - allowed)
        if outside:
            out.violations.append(
                f"{len(outside)} (cluster, uid) revoked outside the allowed set: {outside[:3]}"
            )
        twice = len(revoked) - len(set(revoked))
        if twice:
            out.violations.append(f"{twice} (cluster, uid) revoked more than once")
        binned = set(stats.recycle_bin or [])
        if binned - allowed:
            out.violations.append(
                f"recycle bin holds kubeconfigs outside the allowed set: {sorted(binned - allowed)[:3]}"
            )
        clusters = len(meta.cluster_ids)
        for attempt in out.attempts:
            if summary and isinstance(attempt.result, dict):
                res = attempt.result
                if res.get("clusters_scanned", 0) + res.get("clusters_not_scanned", 0) != res.get(
                    "clusters_total"
                ):
                    out.violations.append(f"attempt {attempt.number}: scanned + not scanned != total ({res})")
                if res.get("clusters_total") != clusters:
                    out.violations.append(
                        f"attempt {attempt.number}: clusters_total {res.get('clusters_total')} "
                        f"!= {clusters} clusters in the world"
                    )
        for report in reports:
            covered = report.clusters_scanned + len(report.skipped_cluster_ids)
            if covered != clusters or not report.skipped_cluster_ids <= set(meta.cluster_ids):
                out.violations.append(f"report covers {covered} of {clusters} clusters (scanned + skipped)")
        if summary and out.attempts and not out.attempts[-1].killed and not reports:
            out.violations.append("the summary returned but delivered no report")
    return out


# --- targets and the table -------------------------------------------------------------------------


class Target(NamedTuple):
    target: str
    measured: str
    met: bool


def targets(outcomes: dict[str, Outcome]) -> list[Target]:
    rows: list[Target] = []
    if (o := outcomes.get("event-60")) is not None:
        first = o.attempts[0]
        ok = o.done_at_attempt == 1 and not first.killed and first.wall <= 30.0
        rows.append(
            Target(
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
            Target(
                f"{name}: summary ends with its report within 120 s",
                f"{first.wall:.1f} s, report {'delivered' if o.report_received else 'MISSING'}",
                ok,
            )
        )
    for name in ("event-medium", "event-medium-t60", "event-medium-t10", "event-60-t60"):
        if (o := outcomes.get(name)) is None:
            continue
        t = o.function.timeout
        late = [a for a in o.attempts if a.killed or a.wall >= t]
        rows.append(
            Target(
                f"{name}: every attempt returns before its deadline ({t} s)",
                "walls " + ", ".join(f"{a.wall:.1f}" + (" KILLED" if a.killed else "") for a in o.attempts),
                not late,
            )
        )
        if name in ("event-medium", "event-medium-t60"):
            ok = o.done_at_attempt is not None and o.done_at_attempt <= 3
            rows.append(
                Target(
                    f"{name}: leaver fully revoked within 3 attempts",
                    f"complete at attempt {o.done_at_attempt} ({o.leaver_pairs} pairs)",
                    ok,
                )
            )
        scanned = scanned_per_attempt(o)
        if name == "event-medium-t10" and len(scanned) >= 3:
            median = statistics.median(scanned)
            rows.append(
                Target(
                    f"{name}: the slowest attempt scans at least half the median's clusters",
                    f"scanned {', '.join(map(str, scanned))}: slowest {min(scanned)}, median {median:g}",
                    min(scanned) >= median / 2,
                )
            )
    bad = [f"{n}: {v}" for n, o in outcomes.items() for v in o.violations]
    rows.append(
        Target(
            "nothing outside the allowed set, nothing twice, no cluster omitted",
            "; ".join(bad) if bad else "no violation in " + ", ".join(outcomes),
            not bad,
        )
    )
    return rows


def scanned_per_attempt(o: Outcome) -> list[int]:
    """The clusters each attempt scanned (the event's result), in order."""
    return [
        int(a.result.get("clusters_scanned") or 0)
        for a in o.attempts
        if isinstance(a.result, dict) and not a.killed
    ]


@dataclass
class Header:
    faults: str
    seed: int
    machine: str


def render(outcomes: dict[str, Outcome], header: Header) -> str:
    lines = [f"chaos: {header.faults}", f"seed {header.seed}; {header.machine}"]
    lines.append("")
    lines.append(
        "| scenario | vCPU | timeout | attempt | wall s | calls | calls/s | outcome | leaver left | revocations so far |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, o in outcomes.items():
        for a in o.attempts:
            res = a.result if isinstance(a.result, dict) else {}
            outcome = "KILLED" if a.killed else str(res.get("outcome") or a.error)
            if a.retryable and not a.killed:
                outcome += " (retryable)"
            scanned = f", scanned {res.get('clusters_scanned')}/{res.get('clusters_total')}" if res else ""
            vcpu = f"{o.function.cpu}{'' if not o.quota_note else ' (NOT enforced)'}"
            lines.append(
                f"| {name} | {vcpu} | {o.function.timeout} | {a.number} | {a.wall:.1f} | {a.calls} | "
                f"{a.calls / a.wall if a.wall else 0:.0f} | {outcome}{scanned} | "
                f"{a.leaver_remaining}/{o.leaver_pairs} | {a.revoked_so_far} |"
            )
    lines.append("")
    lines.append("| target | measured | met |")
    lines.append("|---|---|---|")
    for row in targets(outcomes):
        lines.append(f"| {row.target} | {row.measured} | {'met' if row.met else 'MISSED'} |")
    for name, o in outcomes.items():
        lines.append(f"{name}: calls {o.calls}; injected {o.faults}")
    return "\n".join(lines)


def machine() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start"


def figures(outcomes: dict[str, Outcome], header: Header) -> dict[str, object]:
    """What ``--json`` writes (the function without its environment, which may hold secrets)."""
    return {
        "header": dataclasses.asdict(header),
        "targets": targets(outcomes),
        "outcomes": {
            n: {
                "function": o.function.described(),
                "attempts": [dataclasses.asdict(a) for a in o.attempts],
                "violations": o.violations,
                "faults": o.faults,
                "calls": o.calls,
                "report_received": o.report_received,
                "leaver_pairs": o.leaver_pairs,
                "quota_note": o.quota_note,
            }
            for n, o in outcomes.items()
        },
    }


DEFAULT_SCENARIOS = [
    "event-60",
    "event-60-t60",
    "summary-60",
    "summary-60-remediate",
    "event-medium",
    "event-medium-t60",
    "event-medium-t10",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench chaos", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--tiny", action="store_true", help="the smoke test's tiny world (event-tiny, summary-tiny)"
    )
    parser.add_argument(
        "--double",
        action="store_true",
        help="twice the bad day's faults: 30%% 5xx, 20%% rate-independent 429s, 20%% of Clean answers lost",
    )
    parser.add_argument("--error-rate-5xx", type=float, help="share of calls answered 5xx (default 0.15)")
    parser.add_argument("--throttle-rate", type=float, help="share answered 429 whatever the rate (0.10)")
    parser.add_argument("--lost-write-rate", type=float, help="share of Clean answers lost (0.10)")
    parser.add_argument("--latency-ms", type=float, help="latency per call (default 20)")
    parser.add_argument("--max-attempts", type=int, help="retry limit of every scenario (attempts in all)")
    parser.add_argument(
        "--attempts", type=int, help="run exactly this many attempts of each scenario, whatever their outcome"
    )
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--logs", type=Path, help="keep each attempt's log lines (stderr) in this directory")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    chosen: list[str] = args.scenario or (["event-tiny", "summary-tiny"] if args.tiny else DEFAULT_SCENARIOS)
    recipes = worlds(args.seed, args.tiny)
    faults = DOUBLE if args.double else BAD_DAY
    faults = dataclasses.replace(
        faults,
        **{
            k: v
            for k, v in {
                "error_rate_5xx": args.error_rate_5xx,
                "throttle_rate": args.throttle_rate,
                "lost_write_rate": args.lost_write_rate,
                "latency_seconds": None if args.latency_ms is None else args.latency_ms / 1000,
            }.items()
            if v is not None
        },
    )
    header = Header(faults=faults.describe(), seed=args.seed, machine=machine())
    log_dir: Path | None = args.logs
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    with contextlib.ExitStack() as stack:
        fakes: dict[str, fakeproc.FakeProcess] = {}
        for name in chosen:
            scenario = SCENARIOS[name]
            if scenario.world not in fakes:
                fake = fakeproc.FakeProcess(args.python, recipes[scenario.world], children.clean_env())
                fakes[scenario.world] = stack.enter_context(fake)
            outcomes[name] = run_scenario(
                args.python,
                fakes[scenario.world],
                scenario,
                args.seed,
                log_dir=log_dir,
                faults=faults,
                max_attempts=args.max_attempts,
                sample=args.attempts,
            )
            print(
                f"[{time.strftime('%H:%M:%S')}] {name}: "
                + ", ".join(f"{a.wall:.1f}s{' KILLED' if a.killed else ''}" for a in outcomes[name].attempts),
                file=sys.stderr,
                flush=True,
            )
    header.machine += f"; {os.getloadavg()[0]:.2f} at the end"
    print(render(outcomes, header))
    if args.json:
        args.json.write_text(json.dumps(figures(outcomes, header), indent=1, default=str))
    return 0 if all(row.met for row in targets(outcomes)) else 1


if __name__ == "__main__":
    sys.exit(main())
