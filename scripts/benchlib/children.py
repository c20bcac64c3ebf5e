"""How the bench starts its child processes: a clean environment, bytecode trees, measured runs.

Every child (the fake ACK, workers, Function Compute instances) gets this process's environment
without settings, credentials, proxies (Function Compute has none; with one the client goes
through httpx) or bytecode settings, with ``scripts/`` on ``PYTHONPATH`` (``python -m
benchlib.x``), plus what the run asks: the bytecode tree, ``--child-env``, settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1]
ROOT = SCRIPTS.parent
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")
DROPPED_PREFIXES = ("KCGUARD_", "ALIBABA_CLOUD_", "FC_", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


class BenchError(RuntimeError):
    pass


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without settings, credentials, proxies or bytecode settings; ``scripts/``
    on ``PYTHONPATH``; then ``overrides``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(DROPPED_PREFIXES) and k.upper() not in PROXY_VARIABLES
    }
    env["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), *filter(None, [env.get("PYTHONPATH")])])
    env.update(overrides)
    return env


@dataclass(frozen=True)
class ChildRun:
    """A finished child: its output, and its own usage from ``os.wait4``."""

    stdout: str
    stderr_tail: str
    returncode: int
    process_wall: float
    peak_rss_mb: float
    cpu_seconds: float


def run_child(
    argv: list[str], env: dict[str, str], timeout: float, wrap: list[str] | None = None
) -> ChildRun:
    """Run a child (``wrap`` prefixes it, e.g. a CPU quota's shell) and measure it; killed at ``timeout``."""
    argv = [*(wrap or []), *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=str(ROOT))
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode(errors="replace")
    return ChildRun(
        stdout=stdout,
        stderr_tail=stderr[-4000:],
        returncode=proc.returncode,
        process_wall=elapsed,
        peak_rss_mb=usage.ru_maxrss / 1024.0,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


@dataclass
class Children:
    """The environments of the bench's children: bytecode trees and ``--child-env``.

    Bytecode: ``"shipped"`` holds every module's .pyc (a package that ships bytecode); ``"stdlib"``
    the standard library's only (a package without .pyc on Function Compute's read-only code
    directory); ``"none"`` leaves the interpreter's own caching alone.
    """

    extra: dict[str, str] = field(default_factory=dict)  # --child-env (kcguard children only)
    pycache: dict[str, str] = field(default_factory=dict)

    def env(self, *, bytecode: str = "shipped", **overrides: str) -> dict[str, str]:
        env = clean_env()
        if bytecode in self.pycache:
            env["PYTHONPYCACHEPREFIX"] = self.pycache[bytecode]
            if bytecode != "shipped":
                env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(overrides)
        return env

    def setting(self, name: str, default: float) -> float:
        """A setting as the kcguard children get it (--child-env may override the default)."""
        return float(self.extra.get(f"KCGUARD_{name.upper()}", default))

    def prepare_bytecode(self, pythons: list[str], workdir: Path) -> None:
        """Fill the "shipped" and "stdlib" bytecode trees (``PYTHONPYCACHEPREFIX``) for these interpreters."""
        shipped, stdlib = workdir / "pyc-shipped", workdir / "pyc-stdlib"
        shipped.mkdir()
        stdlib.mkdir()
        self.pycache["shipped"] = str(shipped)
        code = (
            "import importlib, pkgutil, sysconfig\n"
            "import kubeconfig_guard, kubeconfig_guard.handlers, kubeconfig_guard.fake, alibabacloud_cs20151215.client, yaml\n"
            "for m in pkgutil.walk_packages(kubeconfig_guard.__path__, 'kubeconfig_guard.'):\n"
            "    if m.name.endswith('__main__'):\n"
            "        continue\n"
            "    try:\n"
            "        importlib.import_module(m.name)\n"
            "    except (Exception, SystemExit):\n"
            "        pass\n"
            "print(sysconfig.get_paths()['stdlib'])\n"
        )
        # The package the kcguard children import: --child-env PYTHONPATH=DIR (another revision) too.
        env = self.env(**{k: v for k, v in self.extra.items() if k == "PYTHONPATH"})
        for python in dict.fromkeys(pythons):
            out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, cwd=str(ROOT))
            if out.returncode != 0:
                raise BenchError(f"{python} cannot import the package measured:\n{out.stderr[-2000:]}")
            lib = Path(out.stdout.strip().splitlines()[-1])
            mirrored = shipped / lib.relative_to(lib.anchor)
            if mirrored.is_dir():
                shutil.copytree(mirrored, stdlib / lib.relative_to(lib.anchor), dirs_exist_ok=True)
        self.pycache["stdlib"] = str(stdlib)
