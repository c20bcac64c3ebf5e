"""Smoke test of the bench's organization mode (``scripts/bench organization --quick``, issue 17 item 8).

It runs the real thing on a tiny Resource Directory: the fake organization (``FakeCloud`` behind the
fake's HTTP server, every account's ACK throttled and slowed) in its own process, the daily summary
and a routed deletion each in a fresh Function Compute instance with template.yml's handler and
environment in organization mode. It asserts the figures' shape and what they must agree on, never
timings: every guarded account is in the delivered report with all its clusters and kubeconfigs,
the member whose role does not trust us is reported ``denied`` (first), and the deletion calls the
same ACK operations, in its own account only, whatever the organization's size. Speed and memory
targets live in the bench's own report (BENCHMARKS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench"

pytestmark = pytest.mark.slow


def test_quick_organization_bench_scans_every_account_and_reports_the_denied_one(tmp_path: Path) -> None:
    out = tmp_path / "organization.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "organization", "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("KCGUARD_")},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    worlds = doc["worlds"]
    assert set(worlds) == {"2", "4"}  # the event comparison's organization and the full one (quick)

    # The daily summary: one row per view of the full organization, one for the small one.
    rows = doc["summaries"]
    assert {(r["members"], r["cpu"] is None) for r in rows} == {(2, False), (4, False), (4, True)}
    for row in rows:
        world = worlds[str(row["members"])]
        (denied,) = world["denied"]
        guarded = row["members"] - 1 + 1  # the members whose role trusts us, and the central account
        assert row["kubeconfigs"] == world["kubeconfigs"] and row["running_clusters"] == world["running"]
        for run in row["runs"]:
            report = run["report"]
            assert report["received"] and report["problems"] == [], report["problems"]
            assert report["statuses"] == {"ok": guarded, "denied": 1}
            assert report["denied"] == [denied]
            assert report["kubeconfigs"] == world["kubeconfigs"]
            assert report["clusters_scanned"] == world["running"] <= report["clusters_total"]
            assert run["error"] is None and run["outcome"] == "partial"  # a denied account: fix today
            assert f"account {denied} denied" in run["reason"]
            assert run["accounts_called"] == guarded  # every reachable account listed, not the denied one
            assert run["sts_calls"] == row["members"] and run["list_accounts_calls"] == 1
            assert run["peak_rss_mb"] > 0 and run["handler_cpu"] > 0

    # The routed deletion: the same calls in a bigger organization, all in the leaver's account.
    events = doc["events"]
    assert [e["members"] for e in events] == [2, 4]
    runs = [r for e in events for r in e["runs"]]
    leaver_account = worlds["4"]["leaver_account"]
    assert leaver_account == worlds["2"]["leaver_account"]
    for run in runs:
        assert run["outcome"] == "ok" and run["account_id"] == leaver_account
        assert run["accounts_called"] == [leaver_account]
        assert (
            run["revoked"] == run["expected"] == worlds["4"]["leaver_pairs"] and run["revoked_outside"] == 0
        )
        assert run["sts_calls"] == 1
    assert runs[0]["ack_served"] == runs[1]["ack_served"]
    assert runs[0]["ack_served"]["CleanClusterUserPermissions"] == worlds["4"]["leaver_pairs"]

    # The targets are judged (correctness ones met; timings are not asserted here).
    targets = {t["name"]: t for t in doc["targets"]}
    correctness = [t for name, t in targets.items() if "every account in the report" in name]
    assert len(correctness) == 3 and all(t["met"] for t in correctness)
    assert any(
        t["met"] for name, t in targets.items() if name.startswith("routed deletion: the same ACK calls")
    )
    assert any(name.endswith("one invocation within 120 s") for name in targets)
    assert doc["extrapolation"]["kubeconfigs_per_account"] == 4 * 12
    assert "Targets:" in proc.stdout and "routed deletion" in proc.stdout
