"""Where things are, what is built for which runtime, and pyproject.toml as typed data."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10: tomli, or the copy pip vendors
    try:
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]  # when installed
    except ImportError:
        from pip._vendor import tomli as tomllib

# Read at call time by every module (``project.ROOT``), so tests can point them at a copy.
ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "locks"
PACKAGE = "kubeconfig_guard"
PACKAGE_SRC = ROOT / "functions" / PACKAGE
RUNTIMES = {"python3.10": "3.10", "python3.12": "3.12"}
# pip's name of the Function Compute platform, and uv's name of the same one.
PLATFORM = "manylinux2014_x86_64"
UV_PLATFORM = "x86_64-manylinux_2_17"
# Optional dependency groups that may be deployed (each has its own lock).
DEPLOYABLE_EXTRAS = ("oss",)
LOCAL_ONLY_EXTRAS = ("cli", "dev")

__all__ = [
    "DEPLOYABLE_EXTRAS",
    "LOCAL_ONLY_EXTRAS",
    "LOCKS",
    "PACKAGE",
    "PACKAGE_SRC",
    "PLATFORM",
    "ROOT",
    "RUNTIMES",
    "UV_PLATFORM",
    "Project",
    "package_dir_name",
    "read_project",
    "runtime_requirements",
    "tomllib",
    "zip_name",
]


def package_dir_name(runtime: str) -> str:
    return f"fc-{runtime}"


def zip_name(runtime: str) -> str:
    return f"kubeconfig-guard-fc-{runtime}.zip"


@dataclass(frozen=True)
class Project:
    """The ``[project]`` table of pyproject.toml, as far as the build reads it."""

    name: str
    dependencies: tuple[str, ...]
    optional_dependencies: Mapping[str, tuple[str, ...]]


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SystemExit(f"pyproject.toml: {where} must be a list of strings, got {value!r}")
    return tuple(value)


def read_project() -> Project:
    """``[project]`` of ``ROOT/pyproject.toml``; a clear error when it is not what the build needs."""
    try:
        table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8")).get("project")
    except tomllib.TOMLDecodeError as error:
        raise SystemExit(f"pyproject.toml is not valid TOML: {error}") from None
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        raise SystemExit("pyproject.toml has no [project] table with a name")
    optional = table.get("optional-dependencies", {})
    if not isinstance(optional, dict):
        raise SystemExit("pyproject.toml: [project.optional-dependencies] must be a table")
    return Project(
        name=table["name"],
        dependencies=_strings(table.get("dependencies", []), "[project].dependencies"),
        optional_dependencies={
            str(extra): _strings(lines, f"[project.optional-dependencies].{extra}")
            for extra, lines in optional.items()
        },
    )


def runtime_requirements(extras: list[str]) -> list[str]:
    """``[project].dependencies`` plus the requested extras (never ``dev``/``cli``)."""
    project = read_project()
    requirements = list(project.dependencies)
    optional = project.optional_dependencies
    for extra in extras:
        if extra in LOCAL_ONLY_EXTRAS:
            raise SystemExit(f"the {extra!r} extra is local-only and is not deployed")
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; pyproject.toml has {sorted(optional)}")
        if extra not in DEPLOYABLE_EXTRAS:
            raise SystemExit(f"the {extra!r} extra has no lock; deployable extras: {list(DEPLOYABLE_EXTRAS)}")
        requirements += [r for r in optional[extra] if not r.startswith("kubeconfig-guard")]
    return requirements
