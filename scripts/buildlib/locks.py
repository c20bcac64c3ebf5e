"""The locks: one per runtime and deployable extra, made with uv, fingerprinted, checked offline."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple

from buildlib import project
from buildlib.requirements import canonical, marker_environment, requirement_class

# Bumped when the lock format or the resolver flags change: every lock is then stale.
LOCK_FORMAT = 1

FINGERPRINT_LINE = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})\b", re.MULTILINE)
PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


class LockVariant(NamedTuple):
    runtime: str
    extras: tuple[str, ...] = ()

    @property
    def python_version(self) -> str:
        return project.RUNTIMES[self.runtime]

    @property
    def path(self) -> Path:
        suffix = "".join(f"-{extra}" for extra in self.extras)
        return project.LOCKS / f"fc-{self.runtime}{suffix}.txt"

    def describe(self) -> str:
        return f"{self.runtime} (extras: {', '.join(self.extras) or 'none'})"


def lock_variants() -> list[LockVariant]:
    return [
        LockVariant(runtime, extras)
        for runtime in project.RUNTIMES
        for extras in ((), *((extra,) for extra in project.DEPLOYABLE_EXTRAS))
    ]


def uv_compile_flags(variant: LockVariant) -> list[str]:
    flags = [
        "--python-version",
        variant.python_version,
        "--python-platform",
        project.UV_PLATFORM,
        "--only-binary",
        ":all:",
        "--generate-hashes",
    ]
    for extra in variant.extras:
        flags += ["--extra", extra]
    return flags


def lock_fingerprint(variant: LockVariant) -> str:
    """sha256 of everything a lock is resolved from: requirements, Python, platform, flags."""
    inputs = {
        "format": LOCK_FORMAT,
        "requirements": sorted(project.runtime_requirements(list(variant.extras))),
        "python": variant.python_version,
        "platform": project.UV_PLATFORM,
        "flags": uv_compile_flags(variant),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def lock_header(variant: LockVariant) -> str:
    flags = " ".join(uv_compile_flags(variant))
    return (
        f"# kubeconfig-guard: the Function Compute package of {variant.describe()}.\n"
        "# Made by `scripts/build --lock`; do not edit. scripts/build installs exactly these\n"
        "# distributions with `pip install --require-hashes --no-deps --only-binary=:all:`.\n"
        f"# uv pip compile pyproject.toml {flags}\n"
        f"# inputs-sha256: {lock_fingerprint(variant)}  (pyproject.toml runtime dependencies,\n"
        "# extras, Python version, platform and flags: `scripts/build --check-locks` compares it)\n"
    )


def find_uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # type: ignore[import-not-found, unused-ignore]  # the dev extra's; absent in CI's system Python
    except ImportError:
        raise SystemExit("scripts/build --lock needs uv: pip install uv (the dev extra has it)") from None
    return [str(uv.find_uv_bin())]


def write_lock(variant: LockVariant) -> Path:
    """Resolve one lock with uv (needs PyPI) and write it with its header."""
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "lock.txt"
        command = [
            *find_uv(),
            "pip",
            "compile",
            "pyproject.toml",
            *uv_compile_flags(variant),
            "--no-header",
            "--quiet",
            "--output-file",
            str(output),
        ]
        subprocess.run(command, check=True, cwd=project.ROOT)
        body = output.read_text(encoding="utf-8")
    variant.path.parent.mkdir(parents=True, exist_ok=True)
    variant.path.write_text(lock_header(variant) + body, encoding="utf-8")
    return variant.path


def lock_pins(text: str) -> dict[str, str]:
    """Canonical name -> pinned version of every requirement of a lock."""
    return {canonical(name): version for name, version in PIN_LINE.findall(text)}


def _requirement_blocks(text: str) -> list[str]:
    """The requirement entries of a lock (a pin and its continuation lines)."""
    blocks: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and blocks:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
    return blocks


def check_lock(variant: LockVariant) -> list[str]:
    """What is wrong with one lock against pyproject.toml, offline; empty when it is current."""
    name = variant.path.relative_to(project.ROOT).as_posix()
    if not variant.path.exists():
        return [f"{name} is missing"]
    text = variant.path.read_text(encoding="utf-8")
    problems: list[str] = []
    recorded = FINGERPRINT_LINE.search(text)
    if recorded is None:
        problems.append(f"{name} has no inputs-sha256 header")
    elif recorded.group(1) != lock_fingerprint(variant):
        problems.append(
            f"{name} is stale: pyproject.toml's runtime dependencies (or the lock flags) changed since it was made"
        )
    for block in _requirement_blocks(text):
        pin = PIN_LINE.match(block)
        if pin is None:
            problems.append(f"{name}: not an exact pin: {block.splitlines()[0]!r}")
        elif "--hash=sha256:" not in block:
            problems.append(f"{name}: {pin.group(1)}=={pin.group(2)} has no sha256")
    pins = lock_pins(text)
    requirement = requirement_class()
    environment = marker_environment(variant.python_version)
    deployed = project.runtime_requirements(list(variant.extras))
    for line in deployed:
        req = requirement(line)
        if req.marker is not None and not req.marker.evaluate({**environment, "extra": ""}):
            continue
        pinned = pins.get(canonical(req.name))
        if pinned is None:
            problems.append(f"{name} does not pin {req.name} ({line})")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{name} pins {req.name}=={pinned}, outside {line!r}")
    metadata = project.read_project()
    local_only = (
        {
            canonical(requirement(line).name)
            for extra in project.LOCAL_ONLY_EXTRAS
            for line in metadata.optional_dependencies.get(extra, ())
        }
        - {canonical(metadata.name)}
        - {canonical(requirement(line).name) for line in deployed}
    )
    for leaked in sorted(local_only & pins.keys()):
        problems.append(f"{name} pins the local-only {leaked}")
    return problems


def check_locks() -> list[str]:
    return [problem for variant in lock_variants() for problem in check_lock(variant)]
