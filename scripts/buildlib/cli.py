"""The command line of ``scripts/build`` (its docstring is the user-facing help)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from buildlib import project
from buildlib.locks import check_locks, lock_pins, lock_variants, write_lock
from buildlib.package import build
from buildlib.zipping import sha256_of

# The first paragraph of scripts/build's docstring (argparse's description).
DESCRIPTION = "Build the Function Compute code packages of kubeconfig-guard, reproducibly, from locks."


@dataclass(frozen=True)
class Options:
    runtime: str  # a key of project.RUNTIMES, or "all"
    out: Path
    extras: list[str]
    lock: bool
    check_locks: bool


def parse_options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(prog="scripts/build", description=DESCRIPTION)
    parser.add_argument("--runtime", choices=[*project.RUNTIMES, "all"], default="all")
    parser.add_argument(
        "--out", type=Path, default=project.ROOT / "dist", help="output directory (default: dist/)"
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help=f"also install this optional dependency group (deployable: {', '.join(project.DEPLOYABLE_EXTRAS)})",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--lock", action="store_true", help="re-resolve every lock in locks/ with uv")
    action.add_argument(
        "--check-locks", action="store_true", help="check the locks against pyproject.toml (offline)"
    )
    args = parser.parse_args(argv)
    return Options(
        runtime=args.runtime, out=args.out, extras=args.extra, lock=args.lock, check_locks=args.check_locks
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.lock:
        for variant in lock_variants():
            path = write_lock(variant)
            print(
                f"locked {variant.describe()}: {path.relative_to(project.ROOT)} ({len(lock_pins(path.read_text()))} pins)"
            )
        return 0
    if options.check_locks:
        problems = check_locks()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run scripts/build --lock, review the diff and commit locks/", file=sys.stderr)
            return 1
        print(
            f"locks current: {', '.join(v.path.relative_to(project.ROOT).as_posix() for v in lock_variants())}"
        )
        return 0

    runtimes = list(project.RUNTIMES) if options.runtime == "all" else [options.runtime]
    out = options.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    built = [build(runtime, out, options.extras) for runtime in runtimes]
    print("sha256 of the packages (also in <zip>.sha256):")
    for _directory, archive in built:
        print(f"{sha256_of(archive)}  {archive.name}  {archive.stat().st_size} bytes")
    return 0
