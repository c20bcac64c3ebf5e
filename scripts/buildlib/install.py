"""The target's dependencies: exactly the lock, installed for the target, checked with its markers."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from buildlib import project
from buildlib.locks import LockVariant, check_lock
from buildlib.requirements import Requirement, canonical, marker_environment, requirement_class


def pip_install_lock(target: Path, python_version: str, lock: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        project.PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--target",
        str(target),
        "--no-compile",
        "--no-warn-conflicts",
        "--requirement",
        str(lock),
    ]
    print(
        f"  pip install --require-hashes -r {lock.relative_to(project.ROOT)} (cp{python_version}, {project.PLATFORM})",
        flush=True,
    )
    subprocess.run(
        command,
        check=True,
        env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1", "PIP_ROOT_USER_ACTION": "ignore"},
    )


def installed_requirements(target: Path) -> dict[str, list[str]]:
    """Canonical name -> ``Requires-Dist`` lines of every distribution in ``target``."""
    found: dict[str, list[str]] = {}
    for metadata in target.glob("*.dist-info/METADATA"):
        headers = email.parser.Parser().parsestr(metadata.read_text(encoding="utf-8"), headersonly=True)
        found[canonical(headers["Name"])] = headers.get_all("Requires-Dist") or []
    return found


class Walk(NamedTuple):
    """The requirements followed from the top level with the target's markers."""

    missing: dict[str, str]  # canonical name -> the requirement that is not installed
    reached: set[str]  # canonical names of the installed distributions that were needed


def _walk(target: Path, python_version: str, top_level: list[str]) -> Walk:
    """Follow the requirements from ``top_level`` with the target's markers."""
    requirement = requirement_class()
    environment = marker_environment(python_version)
    installed = installed_requirements(target)
    missing: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[Requirement, str]] = [(requirement(line), "") for line in top_level]
    while pending:
        req, parent_extra = pending.pop()
        if req.marker is not None and not req.marker.evaluate({**environment, "extra": parent_extra}):
            continue
        name = canonical(req.name)
        if name not in installed:
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            missing.setdefault(name, f"{req.name}{extras}{req.specifier}")
            continue
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            pending += [(requirement(line), extra) for line in installed[name]]
    return Walk(missing, {name for name, _extra in seen})


def missing_requirements(target: Path, python_version: str, top_level: list[str]) -> list[str]:
    """Requirements the target runtime needs (its own markers) that are not installed."""
    return sorted(_walk(target, python_version, top_level).missing.values())


def unneeded_distributions(target: Path, python_version: str, top_level: list[str]) -> list[str]:
    """Installed distributions that nothing the target runtime needs requires."""
    return sorted(set(installed_requirements(target)) - _walk(target, python_version, top_level).reached)


def install_dependencies(target: Path, variant: LockVariant) -> None:
    """Exactly the lock, checked against the target's own markers."""
    problems = check_lock(variant)
    if problems:
        raise SystemExit("\n".join([*problems, "run scripts/build --lock, review and commit the locks"]))
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    pip_install_lock(target, variant.python_version, variant.path)
    requirements = project.runtime_requirements(list(variant.extras))
    missing = missing_requirements(target, variant.python_version, requirements)
    unneeded = unneeded_distributions(target, variant.python_version, requirements)
    if missing or unneeded:
        raise SystemExit(
            f"{variant.path.relative_to(project.ROOT)} does not match Python {variant.python_version}: "
            f"missing {missing}, not needed {unneeded}; run scripts/build --lock"
        )
