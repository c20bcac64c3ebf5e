#!/usr/bin/env python3
"""One Function Compute instance for ``scripts/bench``: the runtime's calling convention (python3.10's;
python3.12's when this interpreter is 3.12: the role's token in the environment, not the context).

    python scripts/benchlib/fc.py '{"handler": "kubeconfig_guard.handlers.event_handler",
                                   "function": {"name": ..., "memory": 512, "timeout": 300},
                                   "credentials": ["key id", "secret", "token"], "region": ...}'

What Function Compute does with a standard runtime, and so does this process: it is a fresh
process; it imports the module of the handler template.yml names, then calls the handler with
the event bytes and a context object (``request_id``, ``credentials`` with the function role's
STS token, ``function`` with ``name``/``handler``/``memory``/``timeout``, ``service``,
``region``, ``account_id``), one invocation at a time (no instance concurrency on standard
runtimes). ``scripts/bench`` starts it inside a cgroup whose CPU quota is the ``cpu`` of
template.yml, so it runs at the vCPU the deployed function gets.

Protocol: one JSON object per line on standard input, one JSON line per invocation on standard
output, after a first ``{"ready": true}`` once the handler is imported. ``{"event": <JSON>}``
invokes the handler with that JSON as bytes (what EventBridge delivers); ``{"quit": true}`` or
end of input exits. The first answer also carries the import timings. With ``"full_result":
true`` in the spec, answers carry the handler's whole result (a retryable error's too). Times are ``time.perf_counter()`` (CLOCK_MONOTONIC: comparable across processes), so
the bench measures "process started -> first result" from its side.
"""

from __future__ import annotations

import time

T_MAIN = time.perf_counter()
CPU_MAIN = time.process_time()

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


class _Credentials:
    def __init__(self, key_id: str, secret: str, token: str | None) -> None:
        self.access_key_id = key_id
        self.access_key_secret = secret
        self.security_token = token


class _Function:
    def __init__(self, name: str, handler: str, memory: int, timeout: int) -> None:
        self.name = name
        self.handler = handler
        self.memory = memory
        self.timeout = timeout


class _Service:
    def __init__(self, name: str) -> None:
        self.name = name
        self.log_project = ""
        self.log_store = ""
        self.qualifier = "LATEST"
        self.version_id = ""


# Python 3.12's runtime has no context.credentials (and no service): the function role's STS token
# is in ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / ALIBABA_CLOUD_SECURITY_TOKEN
# (https://help.aliyun.com/en/functioncompute/fc/context-1, "Runtime differences").
ROLE_IN_ENVIRONMENT = sys.version_info >= (3, 12)


class Context:
    """The attributes of the runtime's ``context`` (FC 3.0): python3.10's, or python3.12's (no
    ``credentials``, no ``service``) when this interpreter is 3.12 or later."""

    def __init__(self, spec: dict[str, Any], request_id: str) -> None:
        fn: dict[str, Any] = spec["function"]
        self.request_id = request_id
        if not ROLE_IN_ENVIRONMENT:
            key_id, secret, token = (str(v) if v is not None else None for v in spec["credentials"])
            self.credentials = _Credentials(str(key_id), str(secret), token)
            self.service = _Service(str(fn["name"]))
        self.function = _Function(
            str(fn["name"]), str(spec["handler"]), int(fn["memory"]), int(fn["timeout"])
        )
        self.region = str(spec.get("region", "cn-hangzhou"))
        self.account_id = str(spec.get("account_id", "5000000000000001"))


def role_environment(spec: dict[str, Any]) -> dict[str, str]:
    """What the python3.12 runtime puts in the instance's environment for the function role."""
    if not ROLE_IN_ENVIRONMENT:
        return {}
    key_id, secret, token = spec["credentials"]
    names = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")
    return {
        name: str(value)
        for name, value in zip(names, (key_id, secret, token), strict=True)
        if value is not None
    }


WATCHED_MODULES = ("httpx", "httpcore", "anyio", "tenacity", "jinja2", "alibabacloud_credentials", "ssl")
RESULT_FIELDS = ("outcome", "reason", "counts", "clusters_scanned", "duration_ms")


def _result(raw: object, full: bool) -> dict[str, object]:
    try:
        result = json.loads(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return {"raw": str(raw)[:300]}
    if not isinstance(result, dict):
        return {"raw": str(raw)[:300]}
    return result if full else {k: result.get(k) for k in RESULT_FIELDS}


def _rss_now_mb() -> float | None:
    """The process's resident memory now (not its peak): what it keeps between invocations."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.update(role_environment(spec))  # set before any import, as the runtime's process has it
    full = bool(spec.get("full_result"))
    module_name, _, attr = spec["handler"].rpartition(".")
    t_import = time.perf_counter()
    cpu_import = time.process_time()
    handler = getattr(importlib.import_module(module_name), attr)
    timings = {
        "t_main": T_MAIN,
        "t_import_start": t_import,
        "t_imported": time.perf_counter(),
        "cpu_at_main": CPU_MAIN,
        "cpu_import": time.process_time() - cpu_import,
        "modules_after_import": len(sys.modules),
        "rss_at_import_mb": _rss_now_mb(),
    }
    sys.stdout.write(json.dumps({"ready": True}) + "\n")  # initialised: the handler is imported
    sys.stdout.flush()
    n = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd.get("quit"):
            break
        n += 1
        event = json.dumps(cmd["event"]).encode()
        context = Context(spec, f"bench-request-{n:05d}")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result: dict[str, object] | None = None
        try:
            result = _result(handler(event, context), full)
            error = None
        except Exception as exc:  # Function Compute records the error (and retries an async call)
            error = f"{type(exc).__name__}: {str(exc)[:4000]}"
            carried = getattr(exc, "result", None)  # RetryableInvocationError carries its result
            dump = getattr(carried, "model_dump_json", None)
            if full and callable(dump):
                result = _result(dump(), full)
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        answer: dict[str, object] = {
            "n": n,
            "wall": t1 - t0,
            "cpu": cpu1 - cpu0,
            "cpu_total": cpu1,
            "error": error,
            "result": result,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "rss_now_mb": _rss_now_mb(),
        }
        if n == 1:
            answer.update(timings)
            answer["modules_after_first_event"] = len(sys.modules)
            answer["loaded"] = sorted(m for m in WATCHED_MODULES if m in sys.modules)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    sys.stdout.flush()
    os._exit(0)  # like an instance being frozen: no interpreter teardown counted


if __name__ == "__main__":
    main()
