"""docs/cli.md must be what the commands' `--help` says today."""

from __future__ import annotations

import difflib
from pathlib import Path

from cli.app import app
from cli.docs import REGENERATE, render

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_matches_the_commands() -> None:
    expected = render(app)
    current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
    diff = "".join(
        difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/cli.md", "generated", n=1)
    )
    assert current == expected, f"docs/cli.md is out of date; regenerate it with `{REGENERATE}`:\n{diff[:3000]}"


def test_every_command_has_a_section() -> None:
    text = render(app)
    for name in ("demo", "sandbox up", "export", "plan", "apply", "emit", "run", "blocks register", "parity"):
        assert f"## `dbt2prefect {name}`" in text
    assert "<repo>/" in text and str(REFERENCE.parents[1]) not in text
