"""``scripts/bench clients``: the hand-written HTTP/1.1 client against aiohttp and httpx (issue 19).

    scripts/bench clients                                  # 0.5 vCPU (the template's) and two cores
    scripts/bench clients --requests 3000 --runs 5 --fc-cpu 0.5,none --json /tmp/clients.json

The same workload for every client: N signed ``ListClusterKubeconfigStates`` pages (50 states,
about 16 KB of JSON each) against the fake ACK's real HTTP server (its own process, ``--latency-ms``
per request, 50 by default), C requests in flight (32: ``KCGUARD_MAX_CONCURRENCY``'s default),
each client in a fresh process (``benchlib.clientsworker``) under a cgroup v1 CPU quota of each
``--fc-cpu`` (the template's event function by default, as the deployed view; ``none``: the
machine's cores). Clients: ``httpwire`` (kubeconfig-guard's ``httpwire.Pool``), ``aiohttp``
(``ClientSession``: llhttp's C parser) and ``httpx`` (``AsyncClient``, its default transport:
httpcore and h11). Runs are interleaved (one of each client per round, the order rotated), and
each figure is the median of ``--runs``: CPU seconds per 1,000 requests (the worker's own CPU
during the requests) and the wall time of the N requests. The fake server's CPU per run is
printed beside them (the same work for every client).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import children, fcsim
from .fakeproc import FakeProcess, WorldRecipe

CLIENTS = ("httpwire", "aiohttp", "httpx")


@dataclass
class Run:
    client: str
    cpu_label: str
    wall: float
    cpu: float
    errors: int
    bytes: int
    server_cpu: float


@dataclass
class Row:
    client: str
    cpu_label: str
    requests: int
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        return float(statistics.median(float(getattr(r, name)) for r in self.runs))

    @property
    def cpu_per_1000(self) -> float:
        return self.median("cpu") * 1000 / self.requests

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.median("wall")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/bench clients",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--requests", type=int, default=2000, help="measured requests per run (default 2000)")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument(
        "--runs", type=int, default=3, help="runs of each client per quota, median kept (default 3)"
    )
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency per request (default 50)")
    p.add_argument(
        "--fc-cpu",
        help="comma list of vCPU quotas, 'none' for the machine's cores (default: the template's event "
        "function cpu, then none)",
    )
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma list (default all: %(default)s)")
    p.add_argument("--seed", type=int, default=20261125)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--json", type=Path, help="write every run here")
    return p


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def run_one(
    python: str, server: FakeProcess, quota: fcsim.CpuQuota, client: str, args: argparse.Namespace
) -> Run:
    meta = server.meta
    spec = {
        "client": client,
        "url": server.url,
        "access_key": list(meta.access_key),
        "clusters": [c for c in meta.cluster_ids if c not in set(meta.not_running)],
        "requests": args.requests,
        "concurrency": args.concurrency,
    }
    server.reset_latency(args.latency_ms, world=False)
    child = children.run_child(
        [python, "-m", "benchlib.clientsworker", json.dumps(spec)],
        children.clean_env(),
        timeout=600,
        wrap=quota.prefix(),
    )
    if child.returncode != 0 or not child.stdout.strip():
        raise children.BenchError(f"{client} worker failed ({child.returncode}):\n{child.stderr_tail}")
    out = json.loads(child.stdout.strip().splitlines()[-1])
    stats = server.stats()
    return Run(
        client=client,
        cpu_label="",
        wall=out["wall"],
        cpu=out["cpu"],
        errors=out["errors"],
        bytes=out["bytes"],
        server_cpu=stats.server_cpu_seconds,
    )


def render(rows: list[Row], args: argparse.Namespace, notes: list[str]) -> str:
    lines = [
        f"{args.requests} signed GETs of a 50-state page, {args.concurrency} in flight, "
        f"{args.latency_ms:g} ms per request; median of {args.runs} runs",
        "",
        "| quota | client | CPU s per 1,000 requests | vs httpwire | wall s | requests/s | errors | "
        "fake server CPU s | runs: CPU s / wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        base = next(r for r in rows if r.cpu_label == row.cpu_label and r.client == rows[0].client)
        ratio = row.cpu_per_1000 / base.cpu_per_1000 if base.cpu_per_1000 else 0.0
        runs = ", ".join(f"{r.cpu:.2f}/{r.wall:.2f}" for r in row.runs)
        lines.append(
            f"| {row.cpu_label} | {row.client} | {row.cpu_per_1000:.3f} | {ratio:.2f}x | {row.median('wall'):.2f} | "
            f"{row.requests_per_second:.0f} | {sum(r.errors for r in row.runs)} | "
            f"{row.median('server_cpu'):.2f} | {runs} |"
        )
    lines += ["", *notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if unknown := set(clients) - set(CLIENTS):
        parser().error(f"unknown clients: {', '.join(sorted(unknown))}")
    function = fcsim.function_spec(children.ROOT / "template.yml")
    cpus = [
        None if v.strip().lower() == "none" else float(v)
        for v in (args.fc_cpu or f"{function.cpu},none").split(",")
        if v.strip()
    ]
    recipe = WorldRecipe(args.seed, ("cn-hangzhou",), 40, 120)
    rows: list[Row] = []
    notes: list[str] = []
    load_start = os.getloadavg()
    started = time.perf_counter()
    with FakeProcess(args.python, recipe, children.clean_env()) as server:
        log(f"fake ACK at {server.url}: {len(server.meta.cluster_ids)} clusters")
        for cpu in cpus:
            with fcsim.CpuQuota(cpu) as quota:
                label = (
                    "two cores"
                    if cpu is None
                    else f"{cpu:g} vCPU" + ("" if quota.enforced else " (NOT enforced)")
                )
                if quota.enforced:
                    notes.append(
                        f"{label}: quota check {fcsim.calibrate(args.python, quota):.2f} CPU-s per s"
                    )
                by_client = {c: Row(c, label, args.requests) for c in clients}
                for i in range(args.runs):
                    order = clients[i % len(clients) :] + clients[: i % len(clients)]
                    for client in order:
                        run = run_one(args.python, server, quota, client, args)
                        run.cpu_label = label
                        by_client[client].runs.append(run)
                        log(
                            f"{label} {client} run {i + 1}: {run.cpu:.2f} CPU-s, {run.wall:.2f} s, {run.errors} errors"
                        )
                rows += by_client.values()
    load_end = os.getloadavg()
    version = subprocess.run([args.python, "--version"], capture_output=True, text=True).stdout.strip()
    notes.append(
        f"{os.cpu_count()} CPUs; workers on {version}; load average {load_start[0]:.2f} at the start, "
        f"{load_end[0]:.2f} at the end; {time.perf_counter() - started:.0f} s"
    )
    print(render(rows, args, notes))
    if args.json:
        doc = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [
                {
                    "client": r.client,
                    "quota": r.cpu_label,
                    "cpu_per_1000": r.cpu_per_1000,
                    "wall": r.median("wall"),
                    "runs": [dataclasses.asdict(x) for x in r.runs],
                }
                for r in rows
            ],
            "notes": notes,
        }
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
