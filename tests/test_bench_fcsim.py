"""The bench's Function Compute instance (scripts/benchlib/fcsim.py + fc.py): answers, and the kill at
the timeout the chaos mode relies on (its scenarios end before their deadline, so they never kill)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import children, fcsim  # noqa: E402

pytestmark = pytest.mark.skipif(not hasattr(os, "wait4"), reason="the bench needs os.wait4 (Linux)")

HANDLER = """
import json, time

def handler(event, context):
    request = json.loads(event)
    time.sleep(request.get("sleep", 0))
    if request.get("fail"):
        raise RuntimeError("asked to fail")
    return json.dumps({"outcome": "ok", "counts": {"seen": context.function.timeout}})
"""


def instance(tmp_path: Path, timeout: int) -> fcsim.FcInstance:
    (tmp_path / "sleepy.py").write_text(HANDLER)
    function = fcsim.FunctionSpec(
        resource="test",
        handler="sleepy.handler",
        function_name="sleepy",
        runtime="python3.10",
        cpu=0.5,
        memory_mb=512,
        timeout=timeout,
        template_timeout=timeout,
        instance_concurrency=None,
        reserved_concurrency=None,
        retries=0,
        environment={},
        timer_payload=None,
    )
    env = children.clean_env(PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "scripts")]))
    quota = fcsim.CpuQuota(None)
    return fcsim.FcInstance(sys.executable, function, env, ("id", "secret", None), quota, str(tmp_path), "1")


def test_an_instance_answers_one_event_at_a_time_with_the_context(tmp_path: Path) -> None:
    inst = instance(tmp_path, timeout=30)
    first = inst.invoke({"sleep": 0})
    assert (first.outcome, first.counts, first.killed, first.n) == ("ok", {"seen": 30}, False, 1)
    assert first.t_imported is not None and first.t_main is not None  # the first answer's timings
    second = inst.invoke({"fail": True})
    assert second.outcome == "error" and second.error == "RuntimeError: asked to fail"
    assert second.t_main is None
    assert inst.close().returncode == 0


def test_an_instance_past_its_timeout_is_killed_and_closes_cleanly(tmp_path: Path) -> None:
    inst = instance(tmp_path, timeout=1)
    answer = inst.invoke({"sleep": 30}, kill_at_timeout=True)
    assert answer.killed and answer.outcome == "killed"
    assert 1.0 <= answer.wall < 10
    usage = inst.close()
    assert usage.returncode == -9  # SIGKILL, reaped once by close
    assert inst.close() is usage
