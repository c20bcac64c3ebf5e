"""Function Compute as ``scripts/bench`` simulates it: template.yml's sizes, a cgroup CPU quota,
instances (fresh processes running scripts/benchlib/fc.py) and the async queue of a burst.

* ``function_spec(template, resource)``: a function's ``handler``, ``cpu``, ``memorySize``,
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
import dataclasses
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FunctionSpec:
    """One function of template.yml as Serverless Devs would deploy it (expressions resolved)."""

    resource: str
    handler: str
    function_name: str
    runtime: str | None
    cpu: float
    memory_mb: int
    timeout: int  # the run's (a scenario may shorten it)
    template_timeout: int
    instance_concurrency: int | None
    reserved_concurrency: int | None
    retries: int  # asyncInvokeConfig.maxAsyncRetryAttempts
    environment: dict[str, str]
    timer_payload: str | None
    notes: tuple[str, ...] = ()

    def described(self) -> FunctionSpec:
        """The spec without its environment (for the figures: the environment may hold secrets)."""
        return dataclasses.replace(self, environment={})


def function_spec(
    template: Path,
    resource: str = "kcguard-event",
    *,
    timeout: int | None = None,
    env: dict[str, str] | None = None,
) -> FunctionSpec:
    """The ``resource``'s function in ``template``: handler, sizes, environment, retries, timer payload."""
    import yaml

    doc = yaml.safe_load(template.read_text())
    env = dict(os.environ) if env is None else env
    variables = doc.get("vars") or {}
    raw = doc["resources"][resource]["props"]
    props = resolve(raw, variables, env)
    environment = resolve(raw.get("environmentVariables") or {}, variables, env, typed=False)
    cpu = props.get("cpu")
    notes = []
    if cpu in (None, ""):
        cpu = FC3_DEFAULT_CPU_512MB
        notes.append(f"template.yml sets no cpu: {cpu} (what fc3 adds for 512 MB)")
    reserved = (props.get("concurrencyConfig") or {}).get("reservedConcurrency")
    payload = next(
        (
            t.get("triggerConfig", {}).get("payload")
            for t in props.get("triggers") or []
            if t.get("triggerType") == "timer"
        ),
        None,
    )
    template_timeout = int(props.get("timeout") or 60)
    concurrency = props.get("instanceConcurrency")
    return FunctionSpec(
        resource=resource,
        handler=props["handler"],
        function_name=props.get("functionName", f"kubeconfig-guard-{resource}"),
        runtime=props.get("runtime"),
        cpu=float(cpu),
        memory_mb=int(props.get("memorySize") or 512),
        timeout=int(timeout or template_timeout),
        template_timeout=template_timeout,
        instance_concurrency=int(concurrency) if concurrency not in (None, "") else None,
        reserved_concurrency=int(reserved) if reserved not in (None, "") else None,
        retries=int((props.get("asyncInvokeConfig") or {}).get("maxAsyncRetryAttempts") or 0),
        environment={k: "" if v is None else str(v) for k, v in environment.items()},
        timer_payload=payload,
        notes=tuple(notes),
    )


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

    def prefix(self) -> list[str]:
        """What starts a command inside the group: a shell that puts itself in it, then becomes
        the command, so the quota holds from its first instruction ([] without a group)."""
        if self.path is None:
            return []
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path)]

    def wrap(self, argv: list[str]) -> list[str]:
        return [*self.prefix(), *argv]

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
    function: FunctionSpec, credentials: tuple[str, str, str | None], region: str, account_id: str
) -> dict[str, object]:
    """What an instance process (``fc.py``) needs: the handler and the context Function Compute gives it."""
    return {
        "handler": function.handler,
        "function": {
            "name": function.function_name,
            "memory": function.memory_mb,
            "timeout": function.timeout,
        },
        "credentials": list(credentials),
        "region": region,
        "account_id": account_id,
    }


@dataclass(frozen=True)
class Usage:
    """A finished process, from ``os.wait4``."""

    cpu_seconds: float
    peak_rss_mb: float
    returncode: int


@dataclass
class InstanceAnswer:
    """One invocation's answer (``fc.py``'s JSON line), with the parent's times of sending and receiving.

    ``killed``: no answer before the function's timeout (+ a grace second): the instance was killed,
    as Function Compute does. The first answer of an instance also carries its import timings.
    """

    n: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    cpu_total: float = 0.0
    error: str | None = None
    result: dict[str, Any] | None = None
    rss_mb: float = 0.0  # the peak so far
    rss_now_mb: float | None = None  # resident after the invocation
    t_sent: float = 0.0
    t_received: float = 0.0
    killed: bool = False
    # First invocation only.
    t_main: float | None = None
    t_import_start: float | None = None
    t_imported: float | None = None
    cpu_import: float | None = None
    modules_after_first_event: int | None = None
    rss_at_import_mb: float | None = None
    loaded: list[str] | None = None

    @property
    def outcome(self) -> str:
        if self.killed:
            return "killed"
        if self.error:
            return "error"
        return str((self.result or {}).get("outcome", "?"))

    @property
    def counts(self) -> dict[str, int] | None:
        counts = (self.result or {}).get("counts")
        return counts if isinstance(counts, dict) else None


_ANSWER_FIELDS = {f.name for f in dataclasses.fields(InstanceAnswer)}
KILL_GRACE_SECONDS = 1.0


class FcInstance:
    """One Function Compute instance: a fresh process, handler imported, invoked one event at a time.

    ``full_result``: answers carry the handler's whole result (and a retryable error's result)
    instead of its outcome, reason, counts and progress fields.
    """

    def __init__(
        self,
        python: str,
        function: FunctionSpec,
        env: dict[str, str],
        credentials: tuple[str, str, str | None],
        quota: CpuQuota,
        cwd: str,
        account_id: str,
        *,
        full_result: bool = False,
        stderr: Path | None = None,
    ) -> None:
        spec = instance_spec(function, credentials, env.get("FC_REGION") or "cn-hangzhou", account_id)
        spec["full_result"] = full_result
        self.function = function
        self._stderr = stderr.open("w+b") if stderr else tempfile.TemporaryFile()  # noqa: SIM115
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
        self._ready = False
        self.usage: Usage | None = None

    def _exited(self) -> RuntimeError:
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-3000:]
        return RuntimeError(f"the Function Compute instance exited:\n{tail}")

    def wait_ready(self) -> None:
        """Wait until the handler's module is imported (Function Compute's initialisation)."""
        assert self.proc.stdout is not None
        if not self._ready:
            if not self.proc.stdout.readline():
                raise self._exited()
            self._ready = True

    def invoke(self, event: Any, *, kill_at_timeout: bool = False) -> InstanceAnswer:
        """Send an event and wait for the handler's answer (killed at the timeout when asked)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        sent = time.perf_counter()
        self.proc.stdin.write(json.dumps({"event": event}) + "\n")
        self.proc.stdin.flush()
        self.wait_ready()
        killed = threading.Event()
        timer = None
        if kill_at_timeout:

            def kill() -> None:  # Function Compute's kill at the timeout
                killed.set()
                self.proc.kill()

            timer = threading.Timer(self.function.timeout + KILL_GRACE_SECONDS, kill)
            timer.start()
        line = self.proc.stdout.readline()
        if timer is not None:
            timer.cancel()
        received = time.perf_counter()
        if killed.is_set():
            return InstanceAnswer(wall=received - sent, t_sent=sent, t_received=received, killed=True)
        if not line:
            raise self._exited()
        raw = json.loads(line)
        answer = InstanceAnswer(**{k: v for k, v in raw.items() if k in _ANSWER_FIELDS})
        answer.t_sent, answer.t_received = sent, received
        return answer

    def close(self) -> Usage:
        if self.usage is not None:
            return self.usage
        with contextlib.suppress(OSError):
            if self.proc.stdin:
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
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
        self.usage = Usage(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, self.proc.returncode)
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
