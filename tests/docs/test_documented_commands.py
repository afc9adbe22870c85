"""Every `dbt2prefect` command README and the runbook show is one the command line accepts as written.

The runbook's `bash runnable` blocks and README's "Add your team's project" run for real (tests/docs/test_runbook.py,
tests/docs/test_tenant_guide.py); the other commands need dbt Cloud, a warehouse or a real build. Here each of them,
in a code block or inline, is parsed by the CLI's own parser: the command exists, every option exists and every
value is one the option takes. `prefect` commands are parsed by Prefect's command line the same way; a `jupyter` command's subcommand must be
installed and its notebooks must exist. Placeholders (`<name>`, `N`, `"$JOB_ID"`) stand for the values in PLACEHOLDERS; a
placeholder missing there fails the test, so a new one is a deliberate choice. `make` targets must exist in the
Makefile.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.app import app
from dbt2prefect.tenant import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", REPO_ROOT / "docs" / "runbook.md"]
FENCE = re.compile(r"^[ \t]*```(\w*)[^\n]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`((?:\.venv/bin/)?(?:dbt2prefect|prefect|jupyter) [^`]+|make [a-z][^`]*)`(?!`)")
SHELL_BLOCKS = {"bash", "console", "sh", "shell", ""}
EXECUTABLES = {"dbt2prefect", ".venv/bin/dbt2prefect"}
PREFECT = {"prefect", ".venv/bin/prefect"}
JUPYTER = {"jupyter", ".venv/bin/jupyter"}

PLACEHOLDERS = {
    "N": "70403103936332",
    "JOB": "70403103936332",
    "<name>": "dbt_williamgrant",
    "<target>": "prod",
    "<project>": "tenants/dbt_williamgrant",
    "$JOB_ID": "70403103936332",
    "$TENANT": "dbt_williamgrant",
    "$DBT2PREFECT_PARITY_DIR": "reports",
}
PLACEHOLDER = re.compile(r"<[^<>\s]+>|\$\{?[A-Z_]+\}?|\b[A-Z]+\b")


def _commands_in_shell(text: str) -> list[str]:
    """The commands of a shell block: prompts, comments and redirections dropped, continuations joined, split at
    `&&`, `;` and `|`."""
    lines = [line[2:] if line.startswith("$ ") else line for line in text.splitlines()]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    commands = []
    for line in joined.splitlines():
        code = re.sub(r"\s[12]?>>?\s*\S+", "", line.split(" #", 1)[0]).strip()  # no redirection
        if code and not code.startswith("#"):
            commands.extend(part.strip() for part in re.split(r"&&|;|\|", code) if part.strip())
    return commands


def documented_commands(document: Path) -> list[str]:
    text = document.read_text(encoding="utf-8")
    found: list[str] = []
    for kind, body in FENCE.findall(text):
        if kind in SHELL_BLOCKS or kind in {"bash runnable", "console runnable"}:
            found.extend(_commands_in_shell(body))
    found.extend(match for match in INLINE.findall(FENCE.sub("", text)))
    # `dbt2prefect ...` stands for any command
    return [
        c for c in found if c.split(" ", 1)[0] in EXECUTABLES | PREFECT | JUPYTER | {"make"} and not c.endswith(" ...")
    ]


def _substitute(command: str) -> str:
    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        key = token.replace("{", "").replace("}", "")
        if key in PLACEHOLDERS:
            return PLACEHOLDERS[key]
        return token

    return PLACEHOLDER.sub(value, command)


class Refused(Exception):
    """The command line refuses a command line: what it would print."""


def parse(words: list[str]) -> None:
    """Parse a command line as `dbt2prefect` would, without running the command.

    Raises:
        Refused: the command or an option does not exist, or a value is not one the option takes.
    """
    command: Any = typer.main.get_command(app)
    path = ["dbt2prefect"]
    rest = list(words)
    while hasattr(command, "commands") and not (rest and rest[0].startswith("-")):
        if not rest or rest[0] not in command.commands:
            raise Refused(f"no command {' '.join([*path[1:], *rest[:1]])!r}")
        command = command.commands[rest[0]]
        path.append(rest.pop(0))
    if hasattr(command, "commands"):  # an option of a command group itself, such as --install-completion
        options = {name for param in command.params for name in param.opts} | {"--help"}
        if rest[0] not in options:
            raise Refused(f"no option {rest[0]!r} of {' '.join(path)!r}")
        return
    if "--help" in rest:
        return
    try:
        command.make_context(" ".join(path), rest)
    except Exception as exc:  # the CLI's parser errors: exit code 2 with the message it prints
        if getattr(exc, "exit_code", None) == 2:
            raise Refused(exc.format_message()) from None
        raise


def _parse_prefect(document: str, command: str, words: list[str]) -> None:
    # Prefect's command line (cyclopts) binds the words to its command without running it.
    from prefect.cli._app import _app as prefect_cli

    try:
        prefect_cli.parse_args(words, exit_on_error=False, print_error=False)
    except Exception as exc:  # cyclopts' errors: an unknown command or option, a missing or bad value
        pytest.fail(f"{document}: `{command}` is not accepted by Prefect's command line: {exc}")


def _cases() -> list[tuple[str, str]]:
    return [(doc.name, command) for doc in DOCUMENTS for command in documented_commands(doc)]


def _makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


@pytest.mark.parametrize(("document", "command"), _cases())
def test_a_documented_command_is_accepted_as_written(document: str, command: str) -> None:
    words = shlex.split(_substitute(command))
    if words[0] == "make":
        targets = [word for word in words[1:] if "=" not in word]
        assert set(targets) <= _makefile_targets(), f"{document}: `{command}` names no Makefile target"
        return
    if words[0] in JUPYTER:  # a subcommand is an executable `jupyter-<name>` beside `jupyter`
        assert (Path(sys.executable).parent / f"jupyter-{words[1]}").exists(), (
            f"{document}: `{command}`: no such command"
        )
        assert all((REPO_ROOT / word).exists() for word in words[2:] if word.endswith(".ipynb")), command
        return
    if words[0] in PREFECT:
        _parse_prefect(document, command, words[1:])
        return
    unknown = [word for word in words if PLACEHOLDER.fullmatch(word) and not word.startswith("-")]
    assert not unknown, f"{document}: `{command}` has placeholders {unknown}: add them to PLACEHOLDERS"
    try:
        parse(words[1:])
    except Refused as exc:
        pytest.fail(f"{document}: `{command}` is not accepted by the command line: {exc}")


def test_the_documents_show_the_workflows_commands() -> None:
    shown = {" ".join(shlex.split(command)[1:3]) for _, command in _cases()}
    for needed in ("export", "plan", "apply", "emit", "run-job", "parity", "cutover", "rollback", "status", "doctor"):
        assert any(entry.split(" ")[0] == needed for entry in shown), needed


@pytest.mark.parametrize(
    "written",
    ["cutover --job not-a-number", "apply --no-such-option", "no-such-command", "blocks nothing"],
)
def test_a_command_the_cli_would_refuse_is_caught(written: str) -> None:
    with pytest.raises(Refused):
        parse(shlex.split(written))


def test_the_webhook_command_the_runbook_points_to_is_accepted_by_prefect() -> None:
    from migration.shadow_feed import webhook_create_command

    command = webhook_create_command()
    _parse_prefect("migration.shadow_feed", command, shlex.split(command)[1:])
