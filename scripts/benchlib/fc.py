#!/usr/bin/env python3
"""One Function Compute instance for ``scripts/bench``: the python3.10 runtime's calling convention.

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
output. ``{"event": <JSON>}`` invokes the handler with that JSON as bytes (what EventBridge
delivers); ``{"quit": true}`` or end of input exits. The first answer also carries the import
timings. Times are ``time.perf_counter()`` (CLOCK_MONOTONIC: comparable across processes), so
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


class Context:
    """The attributes of the python3.10 runtime's ``context`` (FC 3.0)."""

    def __init__(self, spec: dict[str, object], request_id: str) -> None:
        fn = spec["function"]
        assert isinstance(fn, dict)
        key_id, secret, token = spec["credentials"]  # type: ignore[misc]
        self.request_id = request_id
        self.credentials = _Credentials(key_id, secret, token)
        self.function = _Function(fn["name"], spec["handler"], fn["memory"], fn["timeout"])  # type: ignore[arg-type]
        self.service = _Service(fn["name"])
        self.region = spec.get("region", "cn-hangzhou")
        self.account_id = spec.get("account_id", "5000000000000001")


def main() -> None:
    spec = json.loads(sys.argv[1])
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
    }
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
        try:
            raw = handler(event, context)
            error = None
        except Exception as exc:  # Function Compute records the error; the bench reports it
            raw, error = None, f"{type(exc).__name__}: {str(exc)[:4000]}"
        t1 = time.perf_counter()
        cpu1 = time.process_time()
        answer: dict[str, object] = {
            "n": n,
            "t_call": t0,
            "t_done": t1,
            "wall": t1 - t0,
            "cpu": cpu1 - cpu0,
            "cpu_total": cpu1,
            "error": error,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        }
        if raw is not None:
            try:
                result = json.loads(raw)
                answer["result"] = {
                    k: result.get(k)
                    for k in ("outcome", "reason", "counts", "clusters_scanned", "duration_ms")
                }
            except (TypeError, ValueError):
                answer["result"] = {"raw": str(raw)[:300]}
        if n == 1:
            answer.update(timings)
            answer["modules_after_first_event"] = len(sys.modules)
            answer["loaded"] = sorted(
                m
                for m in (
                    "httpx",
                    "httpcore",
                    "anyio",
                    "tenacity",
                    "jinja2",
                    "alibabacloud_credentials",
                    "ssl",
                )
                if m in sys.modules
            )
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    sys.stdout.flush()
    os._exit(0)  # like an instance being frozen: no interpreter teardown counted


if __name__ == "__main__":
    main()
