"""README.md stays true: its tables are generated from the code."""

from __future__ import annotations

import re

from kubeconfig_guard.cli import settings_markdown
from kubeconfig_guard.events import supported_events_markdown
from support.worlds import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def block(name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", README, re.S)
    assert match, name
    return match.group(1)


def test_settings_table_matches_the_code() -> None:
    assert block("settings") == settings_markdown()


def test_events_table_matches_the_code() -> None:
    assert block("events") == supported_events_markdown()


def test_two_setup_commands_at_the_top() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(first_block) == 2
    assert first_block[0].endswith("kcguard demo") and first_block[1].endswith(".venv/bin/pytest")
