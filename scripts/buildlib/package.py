"""One runtime's package: the lock installed, the code copied, junk stripped, the report's templates
and the bytecode compiled, the zip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

from buildlib import project
from buildlib.install import install_dependencies
from buildlib.locks import LockVariant
from buildlib.zipping import make_zip, sha256_of

# Local-only parts of the package: never deployed.
EXCLUDED_FROM_PACKAGE = ("fake", "cli.py")
# Caches, test suites and build sources that Function Compute never loads.
# templates_compiled: made by compile_templates only, never copied from a source tree.
JUNK_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", "templates_compiled"}
JUNK_DEPENDENCY_DIRS = {"tests", "test"}
JUNK_SUFFIXES = (".pyc", ".pyo")
JUNK_DEPENDENCY_SUFFIXES = (".pyx", ".pxd", ".c", ".h")
# pip --target puts console scripts in bin/: FC never runs them.
JUNK_TOP_LEVEL = {"bin"}


class Built(NamedTuple):
    directory: Path  # fc-<runtime>/
    archive: Path  # kubeconfig-guard-fc-<runtime>.zip


def copy_package(target: Path) -> None:
    def ignore(directory: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in JUNK_DIRS or n.endswith(JUNK_SUFFIXES)}
        if Path(directory).resolve() == project.PACKAGE_SRC.resolve():
            skipped |= {n for n in names if n in EXCLUDED_FROM_PACKAGE}
        return skipped

    shutil.copytree(project.PACKAGE_SRC, target / project.PACKAGE, ignore=ignore)


def strip(target: Path) -> None:
    """Drop caches everywhere; test suites and C/Cython sources inside dependencies."""
    for name in JUNK_TOP_LEVEL:
        path = target / name
        if path.is_dir():
            shutil.rmtree(path)
    for path in sorted(target.rglob("*"), reverse=True):
        relative = path.relative_to(target)
        in_dependency = len(relative.parts) > 1 and relative.parts[0] != project.PACKAGE
        if path.is_dir():
            if path.name in JUNK_DIRS or (in_dependency and path.name in JUNK_DEPENDENCY_DIRS):
                shutil.rmtree(path)
        elif (
            path.name.endswith(JUNK_SUFFIXES)
            or (in_dependency and path.name.endswith(JUNK_DEPENDENCY_SUFFIXES))
            # pip's marker of what was asked for on its command line: varies between builds
            or (path.name == "REQUESTED" and path.parent.name.endswith(".dist-info"))
        ):
            path.unlink()


def runtime_python(runtime: str) -> str | None:
    """An interpreter of the runtime's Python version (``python3.10`` for python3.10), if installed.

    ``KCGUARD_BUILD_PYTHON`` overrides; pyenv's versions are looked at too.
    """
    version = runtime.removeprefix("python")
    candidates = [os.environ.get("KCGUARD_BUILD_PYTHON", "")]
    candidates += [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))[-1:]]
    candidates.append(shutil.which(f"python{version}") or "")
    for python in filter(None, candidates):
        probe = [
            python,
            "-c",
            f"import sys; sys.exit(sys.version_info[:2] != {tuple(map(int, version.split('.')))})",
        ]
        try:
            if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
                return python
        except OSError:  # KCGUARD_BUILD_PYTHON names no program: the next candidate
            continue
    return None


def compile_bytecode(target: Path, python: str) -> None:
    """Ship ``.pyc`` files: Function Compute's code directory is read-only, so a package without
    them compiles every module at every cold start (BENCHMARKS.md: +0.5 s at 0.5 vCPU).

    Compiled by ``python``, the runtime's own version (the tag must match), with hash-based
    invalidation that is never checked (no timestamps: two builds are identical) and the paths
    recorded as Function Compute's ``/code``.
    """
    subprocess.run(
        [
            python, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "unchecked-hash",
            "-s", str(target), "-p", "/code", str(target),
        ],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip


def compile_templates(target: Path, python: str) -> None:
    """Ship the report's templates compiled to Python modules (``summary/html.py``:
    ``COMPILED_TEMPLATES``), so the daily summary does not compile them at every cold start.

    Compiled by the package's own code and dependencies (``-S``: nothing of this machine's
    site-packages) on ``python``, the runtime's version, writing no bytecode (``compile_bytecode``
    does, after).
    """
    code = "from kubeconfig_guard.summary import html; html.compile_templates(html.COMPILED_TEMPLATES)"
    subprocess.run(
        [python, "-S", "-B", "-c", code],
        check=True,
        cwd=target,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(target), "PYTHONHASHSEED": "0"},
    )


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB ({size} bytes)"


def build(runtime: str, out: Path, extras: list[str]) -> Built:
    """``out/fc-<runtime>/``, its zip and the zip's ``.sha256`` line; prints sizes and the sha256."""
    variant = LockVariant(runtime, tuple(sorted(set(extras))))
    project.runtime_requirements(list(variant.extras))  # refuses local-only or unknown extras first
    target = out / project.package_dir_name(runtime)
    archive = out / project.zip_name(runtime)
    print(f"building {variant.describe()} -> {target}", flush=True)
    install_dependencies(target, variant)
    copy_package(target)
    strip(target)
    # What a cold start would otherwise compile on Function Compute's read-only code directory, by
    # an interpreter of the runtime's version; without one the package works but compiles at start.
    python = runtime_python(runtime)
    if python is None:
        print(f"  note: no {runtime} interpreter here: the package ships no .pyc and no compiled templates")
    else:
        compile_templates(target, python)
        compile_bytecode(target, python)
    make_zip(target, archive)
    digest = sha256_of(archive)
    (out / f"{archive.name}.sha256").write_text(f"{digest}  {archive.name}\n", encoding="utf-8")
    print(f"  {target.name}: {human(tree_size(target))} unzipped", flush=True)
    print(f"  {archive.name}: {human(archive.stat().st_size)} zipped", flush=True)
    print(f"  sha256 {digest}  {archive.name}", flush=True)
    return Built(target, archive)
