"""``scripts/bench``: parse the options, run the workloads world by world, print and write the figures.

``scripts/bench chaos ...`` runs the chaos mode (``benchlib.chaos``), ``scripts/bench clients ...`` the
HTTP clients' comparison (``benchlib.clients``), ``scripts/bench organization ...`` organization mode at
scale (``benchlib.organization``). ``--source REV`` exports that
revision's tree and runs its own bench from there, so the package, the fake, the workers and the
instances all come from one commit while others edit the working tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import fcsim, fleet
from .children import ROOT, Children, clean_env
from .deployed import burst_workload, cold_workload, fc_workload
from .fakeproc import FakeProcess, WorldRecipe
from .fleet import fleet_workload
from .options import VARIANT_NAMES, WORKLOADS, BenchOptions
from .report import evaluate, render
from .results import BenchResults, Machine, SourceState
from .twocores import rate_limited_workload, scan_workload

DELETED_USER = "departed.dev"
# The world each workload runs on.
WORLD_OF = {
    "small": "small",
    "cold": "small",
    "medium": "medium",
    "fc": "medium",
    "rate-limited": "medium",
    "large": "large",
    "burst": "burst",
    "fleet": "fleet",
}


def world_recipes(seed: int, quick: bool) -> dict[str, WorldRecipe]:
    three = ("cn-hangzhou", "cn-shanghai", "cn-beijing")
    one = ("cn-hangzhou",)
    medium_clusters, deleted_on = (12, 8) if quick else (100, 40)
    return {
        "small": WorldRecipe(seed, one, 10, 30, deleted_user=DELETED_USER, deleted_user_clusters=3),
        "medium": WorldRecipe(
            seed, three, medium_clusters, 120, DELETED_USER, deleted_user_clusters=deleted_on, warm_user=True
        ),
        "large": WorldRecipe(seed, one, 100 if quick else 1000, 100),
        "burst": WorldRecipe(seed, one, 20 if quick else 60, 60 if quick else 120, burst_users=50),
        "fleet": WorldRecipe(
            seed,
            fleet.REGIONS,
            fleet.QUICK[0] if quick else fleet.CLUSTERS_PER_REGION,
            fleet.KUBECONFIGS_PER_CLUSTER,
            DELETED_USER,
            deleted_user_clusters=fleet.QUICK[1] if quick else fleet.LEAVER_CLUSTERS,
        ),
    }


def parser() -> argparse.ArgumentParser:
    import benchlib

    p = argparse.ArgumentParser(
        prog="scripts/bench",
        description=benchlib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick", action="store_true", help="smaller worlds: a smoke run (targets are for the full sizes)"
    )
    p.add_argument("--only", action="append", choices=WORKLOADS, help="run only this workload (repeatable)")
    p.add_argument("--seed", type=int, default=20261125, help="world seed (default %(default)s)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="latency per request (default 50)")
    p.add_argument(
        "--rate-limit", type=float, default=40.0, help="rate-limited: requests/s per operation (default 40)"
    )
    p.add_argument(
        "--rate-burst", type=float, default=5.0, help="rate-limited: token bucket size (default 5)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="repetitions of the fast kcguard runs and of every CPU floor, median kept (default 3, quick 1)",
    )
    p.add_argument("--repeat", type=int, default=None, help="cold-start repetitions (default 5, quick 2)")
    p.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help="comma list of the variants of small/medium/large to run (default all: kcguard,kcguard-c1,sdk)",
    )
    p.add_argument(
        "--child-env",
        action="append",
        metavar="KEY=VALUE",
        help="extra environment of the kcguard children (repeatable), e.g. KCGUARD_MAX_RPS=600 or "
        "PYTHONPATH=DIR to try a change; the bounds follow KCGUARD_MAX_CONCURRENCY / KCGUARD_MAX_RPS",
    )
    p.add_argument(
        "--template",
        type=Path,
        default=ROOT / "template.yml",
        help="the Serverless Devs template whose event function is simulated (default template.yml)",
    )
    p.add_argument(
        "--fc-cpu",
        help="comma list of vCPU quotas for the deployed view (fc, cold, burst: the first), 'none' for whole "
        "cores (default: the event function's cpu in the template)",
    )
    p.add_argument(
        "--reserved",
        help="comma list of reservedConcurrency values for the burst (default: 1,2 and the template's)",
    )
    p.add_argument(
        "--burst-events",
        type=int,
        default=None,
        help="simultaneous deletions in the burst (default 50, quick 25)",
    )
    p.add_argument(
        "--fc-python",
        help="interpreter of the Function Compute instances and the SDK loop beside them (default --python), "
        "e.g. a python3.10 virtual environment with kubeconfig-guard[dev], the runtime's version",
    )
    p.add_argument(
        "--source",
        metavar="REV",
        help="measure a git revision (e.g. HEAD): its tree is exported to a temporary directory and its own "
        "bench runs from there, instead of the working tree (which others may be editing)",
    )
    p.add_argument("--source-label", help=argparse.SUPPRESS)  # set by --source for the exported run
    p.add_argument("--json", type=Path, help="write every figure (raw runs included) here")
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter with kubeconfig-guard[dev] installed (default: this one)",
    )
    return p


def options(argv: list[str]) -> tuple[BenchOptions, Children, fcsim.FunctionSpec, argparse.Namespace]:
    p = parser()
    args = p.parse_args(argv)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    if unknown := set(variants) - set(VARIANT_NAMES):
        p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if "kcguard" not in variants:
        p.error("--variants must include kcguard (the other rows are compared to it)")
    try:
        function = fcsim.function_spec(args.template)
    except (OSError, KeyError, ValueError) as exc:
        p.error(f"cannot read the event function from {args.template}: {exc}")
    try:
        fc_cpus = tuple(
            None if v.strip().lower() == "none" else float(v)
            for v in (args.fc_cpu or str(function.cpu)).split(",")
            if v.strip()
        )
        reserved = [int(v) for v in (args.reserved or "1,2").split(",") if v.strip()]
    except ValueError as exc:
        p.error(str(exc))
    if not args.reserved and function.reserved_concurrency:
        reserved.append(function.reserved_concurrency)
    children = Children()
    for item in args.child_env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--child-env wants KEY=VALUE, got {item!r}")
        children.extra[key] = value
    from kubeconfig_guard.settings import Settings

    opts = BenchOptions(
        quick=args.quick,
        workloads=tuple(w for w in WORKLOADS if not args.only or w in args.only),
        seed=args.seed,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        runs=args.runs or (1 if args.quick else 3),
        repeat=args.repeat or (2 if args.quick else 5),
        variants=variants,
        template=args.template,
        fc_cpus=fc_cpus,
        reserved=tuple(sorted(set(reserved))),
        burst_events=args.burst_events or (25 if args.quick else 50),
        python=args.python,
        fc_python=args.fc_python or args.python,
        json=args.json,
        default_concurrency=int(Settings.model_fields["max_concurrency"].default),
        default_max_rps=float(Settings.model_fields["max_rps"].default),
    )
    return opts, children, function, args


def git(*argv: str) -> str:
    proc = subprocess.run(["git", *argv], capture_output=True, text=True, cwd=str(ROOT))
    return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""


def source_state(label: str | None) -> SourceState:
    """The commit measured, and (working tree) the package files that differ from it."""
    if label:
        return SourceState(commit=label, dirty=[], exported=True)
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "functions").splitlines()]
    return SourceState(commit=git("rev-parse", "--short", "HEAD").strip(), dirty=dirty, exported=False)


def run_exported(rev: str, argv: list[str]) -> int:
    """Export ``rev``'s tree (package, scripts, events, template.yml) and run its bench from there."""
    workdir = Path(tempfile.mkdtemp(prefix="kcguard-bench-source-"))
    try:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", rev, "functions", "scripts", "events", "template.yml"],
            capture_output=True,
            cwd=str(ROOT),
        )
        if archive.returncode != 0:
            sys.stderr.write(f"cannot export --source {rev}: {archive.stderr.decode(errors='replace')}\n")
            return 2
        subprocess.run(["tar", "-x", "-C", str(workdir)], input=archive.stdout, check=True)
        label = f"{rev} ({git('rev-parse', '--short', rev)})"
        rest = [a for i, a in enumerate(argv) if a != "--source" and (i == 0 or argv[i - 1] != "--source")]
        rest = [a for a in rest if not a.startswith("--source=")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(workdir / "functions"), str(workdir / "scripts")]),
        }
        log(f"measuring {label} exported to {workdir}")
        return subprocess.run(
            [sys.executable, str(workdir / "scripts" / "bench"), *rest, "--source-label", label], env=env
        ).returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def check_pythons(opts: BenchOptions) -> str | None:
    for python in dict.fromkeys([opts.python, opts.fc_python]):
        check = subprocess.run(
            [python, "-c", "import kubeconfig_guard.fake, alibabacloud_cs20151215.client"],
            capture_output=True,
            text=True,
            env=clean_env(),
        )
        if check.returncode != 0:
            return (
                f"{python} cannot import kubeconfig_guard and alibabacloud_cs20151215: install "
                "kubeconfig-guard[dev] (pip install -e '.[dev]') or pass --python / --fc-python\n"
                + check.stderr[-1000:]
            )
    return None


def version_of(python: str) -> str:
    return subprocess.run([python, "--version"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["chaos"]:  # `scripts/bench chaos [--seed N ...]`: issue 11's chaos mode
        from . import chaos

        return chaos.main(argv[1:])
    if argv[:1] == ["clients"]:  # `scripts/bench clients`: the HTTP clients compared (issue 19)
        from . import clients

        return clients.main(argv[1:])
    if argv[:1] == ["organization"]:  # `scripts/bench organization`: organization mode at scale (issue 17)
        from . import organization

        return organization.main(argv[1:])
    opts, children, function, args = options(argv)
    if args.source:
        return run_exported(args.source, argv)
    if problem := check_pythons(opts):
        sys.stderr.write(problem)
        return 2
    version, fc_version = version_of(opts.python), version_of(opts.fc_python)
    if stale := fcsim.sweep_stale():
        log(f"removed empty CPU groups of earlier runs that were killed: {', '.join(stale)}")
    workdir = Path(tempfile.mkdtemp(prefix="kcguard-bench-"))
    results = BenchResults(
        command=" ".join(["scripts/bench", *argv]),
        machine=Machine(
            nproc=os.cpu_count(),
            cpu=cpu_model(),
            platform=platform.platform(),
            python=version,
            fc_python=fc_version,
            loadavg_at_start=os.getloadavg(),
        ),
        function=function.described(),
        seed=opts.seed,
        latency_ms=opts.latency_ms,
        quick=opts.quick,
        child_env=children.extra,
        source=source_state(args.source_label),
    )
    started = time.perf_counter()
    try:
        log(f"compiling the children's bytecode (PYTHONPYCACHEPREFIX under {workdir})")
        children.prepare_bytecode([opts.python, opts.fc_python], workdir)
        run_worlds(opts, children, function, results, log)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.targets = evaluate(results)
    results.bench_seconds = time.perf_counter() - started
    results.loadavg_at_end = os.getloadavg()
    print(render(results))
    print(footer(results, opts))
    if opts.json:
        opts.json.write_text(json.dumps(dataclasses.asdict(results), indent=2, default=str) + "\n")
        log(f"figures written to {opts.json}")
    return 0


def footer(results: BenchResults, opts: BenchOptions) -> str:
    m, src = results.machine, results.source
    end = results.loadavg_at_end or (0.0, 0.0, 0.0)
    return (
        f"\n({m.nproc} CPUs, {m.cpu}, {m.python}"
        + (
            f", instances and SDK loop of the deployed view on {m.fc_python}"
            if m.fc_python != m.python
            else ""
        )
        + f"; latency {opts.latency_ms:g} ms; seed {opts.seed}; bench took {results.bench_seconds:.0f} s; "
        f"load average {m.loadavg_at_start[0]:.2f} at start, {end[0]:.2f} at end; commit {src.commit}"
        + (" (exported with --source)" if src.exported else "")
        + (f", uncommitted: {', '.join(src.dirty)}" if src.dirty else "")
        + ")"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def run_worlds(
    opts: BenchOptions,
    children: Children,
    function: fcsim.FunctionSpec,
    results: BenchResults,
    log: Callable[[str], None],
) -> None:
    recipes = world_recipes(opts.seed, opts.quick)
    w = results.workloads
    for world_name in ("small", "medium", "large", "burst", "fleet"):
        todo = [name for name in opts.workloads if WORLD_OF[name] == world_name]
        if not todo:
            continue
        log(f"world {world_name}: generating {recipes[world_name]}")
        with FakeProcess(opts.python, recipes[world_name], clean_env()) as server:
            log(
                f"world {world_name}: {server.meta.kubeconfigs} kubeconfigs, served at {server.url} "
                f"(generated in {server.meta.generate_seconds} s)"
            )
            for name in todo:
                if name == "small":
                    w.small = scan_workload(opts, children, server, name, "event", log)
                elif name == "medium":
                    w.medium = scan_workload(opts, children, server, name, "event", log)
                elif name == "large":
                    w.large = scan_workload(opts, children, server, name, "summary", log)
                elif name == "rate-limited":
                    w.rate_limited = rate_limited_workload(opts, children, server, log)
                elif name == "fc":
                    w.fc = fc_workload(opts, children, server, log, function)
                elif name == "burst":
                    w.burst = burst_workload(opts, children, server, log, function)
                elif name == "fleet":
                    w.fleet = fleet_workload(opts, children, server, log, function)
                else:
                    w.cold = cold_workload(opts, children, server, log, function)
