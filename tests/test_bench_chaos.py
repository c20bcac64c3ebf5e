"""Smoke test of the bench's chaos mode (``python -m benchlib.chaos``, issue 11) on a tiny seeded world.

It runs the real thing: the fake ACK's HTTP server in its own process with the bad day's faults
(latency, 5xx, rate-independent 429s, Clean writes applied but their answers lost), each attempt
a fresh process with template.yml's handler, timeout and environment, async retries. It asserts
the invariants only (no timing): the leaver is fully revoked, nothing else and nothing twice, and
the summary's report accounts for every cluster. Speed targets live in the bench (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_chaos_scenario_keeps_the_invariants(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchlib.chaos", "--tiny", "--seed", "7", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "scripts")},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    event, summary = doc["outcomes"]["event-tiny"], doc["outcomes"]["summary-tiny"]

    # Faults were really injected on the wire.
    assert event["faults"].get("latency", 0) > 0
    assert sum(event["calls"].values()) > 0
    # The event path: attempts until the leaver is gone (within the 3 the tiny scenario allows).
    attempts = event["attempts"]
    assert attempts and attempts[-1]["leaver_remaining"] == 0
    assert all(not a["killed"] for a in attempts)
    assert event["violations"] == []
    # The summary ends with a result that accounts for every cluster, and delivers its report.
    last = summary["attempts"][-1]
    assert not last["killed"]
    result = last["result"]
    assert result["clusters_scanned"] + result["clusters_not_scanned"] == result["clusters_total"]
    assert result["clusters_total"] == 6
    assert summary["report_received"] is True
    assert summary["violations"] == []
    (invariants,) = [t for t in doc["targets"] if t[0].startswith("nothing outside")]
    assert invariants[2] is True
