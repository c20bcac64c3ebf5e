"""Function Compute as ``scripts/bench`` simulates it: template.yml's sizes, a cgroup CPU quota,
instances (fresh processes running scripts/benchlib/fc.py) and the async queue of a burst.

* ``event_function(template)``: the event function's ``handler``, ``cpu``, ``memorySize``,
  ``timeout``, ``concurrencyConfig.reservedConcurrency`` and environment, read with PyYAML, with
  the ``${vars.x}`` and ``${env('NAME', 'default')}`` expressions resolved the way Serverless
  Devs resolves them (the environment of this process, else the default).
* ``CpuQuota(cpu)``: a cgroup v1 CPU controller group (``/sys/fs/cgroup/cpu/kcguard-bench-N``,
  ``cpu.cfs_period_us`` 100000, ``cpu.cfs_quota_us`` cpu x 100000); a child is started inside it
  by a shell that writes its own pid to ``cgroup.procs`` and then execs the child, so the quota
  holds from the child's first instruction. Removed on close. When the group cannot be made
  (not root, no cgroup v1 CPU controller), ``enforced`` is False and ``note`` says why: the child
  then runs on whole cores and the bench prints that next to the figures.
* ``FcInstance``: one instance: ``invoke(event)`` sends an event and waits for the handler's
  answer; ``close()`` returns the process's CPU seconds and peak RSS (``os.wait4``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
FC_CHILD = Path(__file__).resolve().parent / "fc.py"
# fc3 adds this when the event function sets no `cpu` (512 MB; issue 10, `s kcguard-event plan`).
FC3_DEFAULT_CPU_512MB = 0.35

# (also a bare numeric default and template.yml's `* 1`, which makes Serverless Devs yield a number)
_EXPR = re.compile(
    r"\$\{\s*(vars\.([A-Za-z0-9_]+)|env\(\s*'([^']+)'\s*(?:,\s*'?([^',)]*)'?\s*)?\)(?:\s*\*\s*1)?)\s*\}"
)


def resolve(
    value: Any, variables: dict[str, Any], env: dict[str, str], depth: int = 0, *, typed: bool = True
) -> Any:
    """Resolve ``${vars.x}`` and ``${env('NAME', 'default')}`` like Serverless Devs (recursively).

    ``typed``: a value that is one whole expression gets the YAML type of its result (``cpu: 0.35``),
    else strings stay strings (environment variables).
    """
    if isinstance(value, dict):
        return {k: resolve(v, variables, env, depth, typed=typed) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables, env, depth, typed=typed) for v in value]
    if not isinstance(value, str) or "${" not in value or depth > 10:
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(2):
            return str(resolve(variables.get(m.group(2), ""), variables, env, depth + 1, typed=False))
        return env.get(m.group(3), m.group(4) or "")

    whole = _EXPR.fullmatch(value.strip())
    if whole and typed:  # a value that is one expression keeps the type YAML would give the result
        import yaml

        text = one(whole)
        try:
            return yaml.safe_load(text) if text else text
        except yaml.YAMLError:
            return text
    return _EXPR.sub(one, value)


def event_function(template: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    import yaml

    doc = yaml.safe_load(template.read_text())
    env = dict(os.environ) if env is None else env
    variables = doc.get("vars") or {}
    raw = doc["resources"]["kcguard-event"]["props"]
    props = resolve(raw, variables, env)
    environment = resolve(raw.get("environmentVariables") or {}, variables, env, typed=False)
    cpu = props.get("cpu")
    notes = []
    if cpu in (None, ""):
        cpu = FC3_DEFAULT_CPU_512MB
        notes.append(f"template.yml sets no cpu: {cpu} (what fc3 adds for 512 MB)")
    concurrency = props.get("concurrencyConfig") or {}
    reserved = concurrency.get("reservedConcurrency")
    return {
        "handler": props["handler"],
        "function_name": props.get("functionName", "kubeconfig-guard-event"),
        "runtime": props.get("runtime"),
        "cpu": float(cpu),
        "memory_mb": int(props.get("memorySize") or 512),
        "timeout": int(props.get("timeout") or 60),
        "instance_concurrency": props.get("instanceConcurrency"),
        "reserved_concurrency": int(reserved) if reserved not in (None, "") else None,
        "environment": {k: "" if v is None else str(v) for k, v in environment.items()},
        "notes": notes,
    }


_counter = itertools.count()


class CpuQuota:
    """A cgroup v1 CPU quota of ``cpu`` vCPUs for the children started through ``wrap``."""

    def __init__(self, cpu: float | None) -> None:
        self.cpu = cpu
        self.path: Path | None = None
        self.note = ""
        if cpu is None:
            self.note = "no quota asked: whole cores"
            return
        path = CGROUP_CPU / f"kcguard-bench-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
            (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (path / "cpu.cfs_quota_us").write_text(str(round(cpu * PERIOD_US)))
            self.path = path
        except OSError as exc:
            self.note = (
                f"CPU quota NOT enforced ({type(exc).__name__}: {exc.strerror or exc}; needs root and "
                f"the cgroup v1 cpu controller at {CGROUP_CPU}): figures are on whole cores"
            )
            if path.exists():
                with contextlib.suppress(OSError):
                    path.rmdir()

    @property
    def enforced(self) -> bool:
        return self.path is not None

    def wrap(self, argv: list[str]) -> list[str]:
        if self.path is None:
            return argv
        # The shell puts itself in the group, then becomes the child: the quota holds from its start.
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *argv]

    def throttled(self) -> dict[str, int]:
        """cpu.stat of the group: periods, throttled periods, throttled time (ns)."""
        if self.path is None:
            return {}
        try:
            pairs = (line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            return {k: int(v) for k, v in pairs}
        except OSError:
            return {}

    def close(self) -> None:
        if self.path is None:
            return
        for _ in range(50):  # the group can be removed once its last process has exited
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.05)
        self.path = None

    def __enter__(self) -> CpuQuota:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sweep_stale() -> list[str]:
    """Remove empty ``kcguard-bench-PID-N`` groups whose bench process is gone (a run killed midway)."""
    removed: list[str] = []
    try:
        groups = list(CGROUP_CPU.glob("kcguard-bench-*-*"))
    except OSError:
        return removed
    for group in groups:
        pid = group.name.split("-")[2]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        with contextlib.suppress(OSError):
            if not (group / "cgroup.procs").read_text().strip():
                group.rmdir()
                removed.append(group.name)
    return removed


def calibrate(python: str, quota: CpuQuota, seconds: float = 0.6) -> float:
    """CPU seconds per wall second a busy loop gets inside the quota (checks the quota works)."""
    code = (
        "import time\n"
        f"end = time.perf_counter() + {seconds}\n"
        "c0 = time.process_time()\n"
        "while time.perf_counter() < end: pass\n"
        f"print(round((time.process_time() - c0) / {seconds}, 3))\n"
    )
    out = subprocess.run(quota.wrap([python, "-c", code]), capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def instance_spec(
    function: dict[str, Any],
    credentials: list[str | None],
    region: str,
    account_id: str,
    **extra: Any,
) -> dict[str, Any]:
    """What an instance process (``fc.py``) needs: the handler and the context Function Compute gives it."""
    return {
        "handler": function["handler"],
        "function": {
            "name": function["function_name"],
            "memory": function["memory_mb"],
            "timeout": function["timeout"],
        },
        "credentials": credentials,
        "region": region,
        "account_id": account_id,
        **extra,
    }


class FcInstance:
    """One Function Compute instance: a fresh process, handler imported, invoked one event at a time."""

    def __init__(
        self,
        python: str,
        function: dict[str, Any],
        env: dict[str, str],
        credentials: list[str | None],
        quota: CpuQuota,
        cwd: str,
        account_id: str,
    ) -> None:
        spec = instance_spec(function, credentials, env.get("FC_REGION") or "cn-hangzhou", account_id)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the instance
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            quota.wrap([python, str(FC_CHILD), json.dumps(spec)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=env,
            cwd=cwd,
        )
        self.usage: dict[str, float] = {}

    def invoke(self, event: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        sent = time.perf_counter()
        self.proc.stdin.write(json.dumps({"event": event}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        received = time.perf_counter()
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"the Function Compute instance exited:\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        answer["t_sent"] = sent
        answer["t_received"] = received
        return answer

    def close(self) -> dict[str, float]:
        if self.usage:
            return self.usage
        try:
            if self.proc.stdin:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
        except OSError:
            pass
        deadline = time.perf_counter() + 30
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                self.proc.kill()
                pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.01)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()
        self.usage = {
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0,
            "returncode": float(self.proc.returncode),
        }
        return self.usage


EVENT_TEMPLATE = Path(__file__).resolve().parents[2] / "events" / "ram-delete-user.json"


def deletion_event(name: str, index: int, account_id: str, when: float | None = None) -> dict[str, Any]:
    """A RAM DeleteUser event in the EventBridge CloudEvents envelope, dated ``when`` (epoch; now).

    ``time``, ``data.eventTime`` (the deletion) and ``aliyunpublishtime`` (EventBridge received it)
    are all ``when``: a burst is deletions that happened together, delivered at once.
    """
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(time.time() if when is None else when, timezone.utc)
    record: dict[str, Any] = json.loads(EVENT_TEMPLATE.read_text())
    record["id"] = f"bench-{index:04d}"
    record["aliyunaccountid"] = account_id
    record["time"] = record["data"]["eventTime"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    record["aliyunpublishtime"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    record["data"]["requestParameters"] = {"UserName": name}
    record["data"]["eventId"] = f"bench-evt-{index:04d}-{name}"
    record["data"]["referencedResources"] = {"ACS::RAM::User": [name]}
    record["data"]["userIdentity"]["accountId"] = account_id
    return record
