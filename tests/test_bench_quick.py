"""Smoke test of the bench's quick mode (scripts/bench, the benchlib package) on its small world.

It runs the real thing: the fake ACK in its own process, workers for the two-cores view (kcguard
and the official SDK's loop, each with its CPU floor) and Function Compute instances for the cold
start (under the template's vCPU when this machine lets the bench make a cgroup, else on whole
cores, as the figures then say). It asserts what the figures must agree on, never timings: the
calls the client really made equal the calls the bench's lower bound assumes (benchlib.listing
asks the client itself), the deletion revoked the deleted user's clusters, and every instance
answered. Speed targets live in the bench's own report (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench"

pytestmark = pytest.mark.slow


def test_quick_bench_small_world_and_cold_start(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--only",
            "small",
            "--only",
            "cold",
            "--variants",
            "kcguard,sdk",
            "--repeat",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    small = doc["workloads"]["small"]
    runs = {r["variant"]: r for r in small["runs"]}
    assert set(runs) == {"kcguard", "sdk"}

    kcguard = runs["kcguard"]
    deleted_on = 3  # the small world's deleted user (cli.world_recipes)
    for variant, run in runs.items():
        calls = run["server"]["calls"]
        # The fake counted exactly the calls the lower bound assumes for this variant's paging.
        assert calls == small["expected_calls"][variant], variant
        assert calls["CleanClusterUserPermissions"] == deleted_on
        assert run["server"]["faults"]["latency"] == sum(calls.values())  # 50 ms injected on each
        assert run["worker"]["wall"] > 0 and run["peak_rss_mb"] > 0
    assert kcguard["worker"]["outcome"] == "ok"
    assert kcguard["worker"]["counts"]["revoked"] == deleted_on
    assert len({(c, u) for c, u, _n in kcguard["server"]["revocations"]}) == deleted_on
    bound = kcguard["bound"]
    assert bound["depth_rounds"] == 3  # clusters page, the states page, the Clean round
    assert bound["cpu_floor_calls"] == sum(kcguard["server"]["calls"].values())

    cold = doc["workloads"]["cold"]
    assert {s["bytecode"] for s in cold["starts"]} == {"shipped", "stdlib"}
    for start in cold["starts"]:
        assert start["outcome"] == "ok", start
        assert 0 < start["start_to_main"] < start["total"]
    assert cold["references"] and cold["importtime_handlers_ms"]
    names = [t["name"] for t in doc["targets"]]
    assert any(n.startswith("cold start (") for n in names), names
    assert "Targets:" in proc.stdout and "| small" in proc.stdout
