"""The kcguard command line, run as a user would (a subprocess of the installed console script)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.worlds import EVENTS, EXAMPLE_WORLD, ROOT

KCGUARD = shutil.which("kcguard", path=str(Path(sys.executable).parent)) or "kcguard"


def kcguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    for name in list(full_env):
        if name.startswith("KCGUARD_") and name not in (env or {}):
            del full_env[name]
    return subprocess.run(
        [KCGUARD, *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def test_invoke_against_the_fake_writes_the_final_world(tmp_path: Path) -> None:
    dump = tmp_path / "after.json"
    run = kcguard(
        "invoke", str(EVENTS / "ram-delete-user.json"), "--fake", str(EXAMPLE_WORLD), "--dump-world", str(dump),
        env={"KCGUARD_MODE": "enforce"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["outcome"] == "ok" and result["counts"]["revoked"] == 2
    after = json.loads(dump.read_text())
    binned = [
        k["account_name"] for r in after["regions"].values() for c in r["clusters"] for k in c["recycle_bin"]
    ]
    assert binned.count("alice") == 2


def test_invoke_defaults_to_dry_run_and_ignores_bad_events(tmp_path: Path) -> None:
    run = kcguard("invoke", str(EVENTS / "ram-delete-user.json"), "--fake", str(EXAMPLE_WORLD))
    assert run.returncode == 0 and json.loads(run.stdout)["counts"]["would-revoke"] == 2
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"truncated": ')
    run = kcguard("invoke", str(bad), "--fake", str(EXAMPLE_WORLD))
    assert run.returncode == 0 and json.loads(run.stdout)["outcome"] == "ignored"
    assert "Traceback" not in run.stderr


def test_invoke_needs_exactly_one_target() -> None:
    run = kcguard("invoke", str(EVENTS / "ram-delete-user.json"))
    assert run.returncode == 2 and "--fake" in run.stderr


def test_demo_prints_what_was_revoked() -> None:
    run = kcguard("demo")
    assert run.returncode == 0, run.stderr
    assert "alice" in run.stdout and "revoked" in run.stdout and "2 revoked" in run.stdout


def test_states_lists_every_kubeconfig() -> None:
    run = kcguard("states", "--fake", str(EXAMPLE_WORLD))
    assert run.returncode == 0, run.stderr
    world = json.loads(EXAMPLE_WORLD.read_text())
    listed = sum(
        len(c["kubeconfigs"])
        for r in world["regions"].values()
        for c in r["clusters"]
        if c["state"] not in ("deleting",)
    )
    assert f"{listed} kubeconfigs" in run.stdout


def test_summary_writes_three_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = kcguard("summary", "--fake", str(EXAMPLE_WORLD), "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "kubeconfig-guard daily summary" in run.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["totals"]["orphaned"] >= 1
    assert (out / "report.md").read_text() in run.stdout
    assert "<svg" in (out / "report.html").read_text()


def test_summary_rejects_bad_options(tmp_path: Path) -> None:
    run = kcguard(
        "summary", "--fake", str(EXAMPLE_WORLD), "--out", str(tmp_path), "--options", '{"bogus": 1}'
    )
    assert run.returncode == 2 and "bogus" in run.stderr and "Traceback" not in run.stderr


def test_names_from_the_api_are_text_not_console_markup(tmp_path: Path) -> None:
    """A cluster or account name that is rich markup stays literal: no terminal link, no style."""
    world = json.loads(EXAMPLE_WORLD.read_text())
    clusters = next(iter(world["regions"].values()))["clusters"]
    clusters[0]["name"] = "[link=https://evil.example]prod[/link]"
    clusters[0]["kubeconfigs"][1]["account_name"] = "[blink]alice[/blink]"
    hostile = tmp_path / "world.json"
    hostile.write_text(json.dumps(world))
    run = kcguard("states", "--fake", str(hostile), env={"FORCE_COLOR": "1"})
    assert run.returncode == 0, run.stderr
    assert "\x1b]8;" not in run.stdout  # OSC 8: a terminal hyperlink
    assert "[link=https://evil.example]prod[/link]" in run.stdout and "[blink]alice[/blink]" in run.stdout
