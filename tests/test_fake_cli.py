"""``python -m kubeconfig_guard.fake serve``: a real process serving a world file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from kubeconfig_guard.client import AckClient
from kubeconfig_guard.credentials import StaticCredentials, from_environment_or_demo
from kubeconfig_guard.fake.cli import fake_app
from kubeconfig_guard.settings import Settings
from support.harness import fake_ack_process
from support.worlds import EXAMPLE_WORLD

PROD = "c5b5e80b0b64a4bf6939d2d8fbbc50a01"
ALICE = "200000000000000101"


def test_serve_prints_the_url_serves_and_dumps_the_world_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "final.json"
    with fake_ack_process(EXAMPLE_WORLD, out) as url:
        assert int(url.rsplit(":", 1)[1]) > 0

        async def revoke_alice() -> list[str]:
            async with AckClient(
                Settings(cs_endpoint=url, max_attempts=1), StaticCredentials(from_environment_or_demo())
            ) as client:
                clusters = await client.describe_clusters("cn-hangzhou")
                await client.clean_user_permissions("cn-hangzhou", PROD, ALICE, force=True)
                return [c.cluster_id for c in clusters]

        assert PROD in asyncio.run(revoke_alice())
    final = json.loads(out.read_text())
    [prod] = [c for c in final["regions"]["cn-hangzhou"]["clusters"] if c["cluster_id"] == PROD]
    assert ALICE not in [k["account_id"] for k in prod["kubeconfigs"]]
    assert [(k["account_id"], k["force"]) for k in prod["recycle_bin"]] == [(ALICE, True)]
    assert prod["recycle_bin"][0]["revoked_at"] == "2026-11-25T09:00:00Z"  # the example's pinned clock


def test_serve_help_lists_the_options() -> None:
    result = CliRunner().invoke(fake_app, ["serve", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for option in ("--world", "--host", "--port", "--dump-world", "--latency-ms", "--rate-limit"):
        assert option in result.output
