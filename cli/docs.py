"""Write the CLI reference (docs/cli.md) from the commands' own definitions: `python -m cli.docs`.

The text is what `--help` shows (usage, description, options with defaults and environment variables), rendered
as plain Markdown without colours or terminal-width wrapping, so the file is the same on every machine. Paths
under the repository are written as `<repo>/...`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer
import typer.main

from dbt2prefect.tenant import REPO_ROOT

REGENERATE = "python -m cli.docs > docs/cli.md"
"""The command that regenerates the reference (the drift test prints it)."""


# Typer builds on its own copy of click, so commands and contexts are typed loosely here.
def _subcommands(command: Any, ctx: Any) -> list[tuple[str, Any]]:
    if not hasattr(command, "list_commands"):
        return []
    found = [(name, command.get_command(ctx, name)) for name in command.list_commands(ctx)]  # help's order
    return [(name, sub) for name, sub in found if sub is not None and not sub.hidden]


def _walk(command: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    yield command, ctx
    for name, sub in _subcommands(command, ctx):
        yield from _walk(sub, sub.context_class(sub, info_name=name, parent=ctx))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _section(command: Any, ctx: Any) -> list[str]:
    usage = " ".join(["Usage:", ctx.command_path, *command.collect_usage_pieces(ctx)])  # unwrapped, any terminal
    lines = [f"## `{ctx.command_path}`", "", "```", usage, "```", ""]
    help_text = (command.help or "").strip()
    for paragraph in help_text.split("\n\n") if help_text else []:
        lines += [" ".join(paragraph.split()), ""]
    records = [p.get_help_record(ctx) for p in command.get_params(ctx)]
    rows = [record for record in records if record is not None]
    if rows:
        lines += ["| Option | Description |", "|---|---|"]
        lines += [f"| `{_cell(opts)}` | {_cell(text)} |" for opts, text in rows]
        lines.append("")
    subs = _subcommands(command, ctx)
    if subs:
        lines += ["Commands: " + ", ".join(f"`{name}`" for name, _ in subs), ""]
    return lines


COMPLETION = [
    "Shell completion (commands, options, fixed choices) is Click's: `dbt2prefect --install-completion` adds it to",
    "the current shell's startup file; `--show-completion` prints the script instead. To load it yourself:",
    "",
    "```console",
    'eval "$(_DBT2PREFECT_COMPLETE=source_bash dbt2prefect)"   # in ~/.bashrc',
    'eval "$(_DBT2PREFECT_COMPLETE=source_zsh dbt2prefect)"    # in ~/.zshrc',
    "_DBT2PREFECT_COMPLETE=source_fish dbt2prefect > ~/.config/fish/completions/dbt2prefect.fish",
    "```",
    "",
]


def render(app: typer.Typer) -> str:
    """The Markdown reference of every command of `app`."""
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="dbt2prefect")
    lines = [
        "# CLI reference",
        "",
        f"Generated from the commands' `--help` by `{REGENERATE}`; do not edit by hand.",
        "",
        *COMPLETION,
    ]
    for command, sub_ctx in _walk(root, ctx):
        lines += _section(command, sub_ctx)
    text = "\n".join(lines).rstrip() + "\n"
    return text.replace(str(REPO_ROOT), "<repo>")


def main() -> None:
    from cli.app import app

    sys.stdout.write(render(app))


if __name__ == "__main__":
    main()
