"""PEP 508 requirements: ``packaging``'s parser (or pip's vendored copy) behind a protocol,
canonical names, and the marker values of the Function Compute runtime."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol


class Specifier(Protocol):
    def contains(self, item: str, prereleases: bool | None = None) -> bool: ...


class Marker(Protocol):
    def evaluate(self, environment: dict[str, str] | None = None) -> bool: ...


class Requirement(Protocol):
    """What the build reads of ``packaging.requirements.Requirement``."""

    @property
    def name(self) -> str: ...

    @property
    def extras(self) -> set[str]: ...

    @property
    def specifier(self) -> Specifier: ...

    @property
    def marker(self) -> Marker | None: ...


def requirement_class() -> Callable[[str], Requirement]:
    """The parser of requirement lines: ``packaging``'s when installed, else the copy pip vendors."""
    try:
        from packaging.requirements import Requirement as Parser
    except ImportError:  # pip always vendors it
        from pip._vendor.packaging.requirements import Requirement as VendoredParser

        return VendoredParser
    return Parser


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_environment(python_version: str) -> dict[str, str]:
    """PEP 508 marker values of the Function Compute runtime (CPython on Linux x86_64)."""
    return {
        "implementation_name": "cpython",
        "implementation_version": f"{python_version}.0",
        "os_name": "posix",
        "platform_machine": "x86_64",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": f"{python_version}.0",
        "python_version": python_version,
        "sys_platform": "linux",
    }
