"""The one parser of dbt command lines: dbt's own click CLI reads every line the toolkit meets.

Translation (dbt Cloud execute_steps), the flow's parameter validation and parity's step selection all call
`parse_args`/`parse_step_line`, so a line dbt accepts is accepted everywhere, read the same way: global flags
before the subcommand (`dbt --warn-error run`), short flags (`-s`, `-t`, `-x`), repeated options, aliases
(`dbt list` = `dbt ls`, `dbt source snapshot-freshness` = `dbt source freshness`).

Only click's option parser runs (no type conversion, no callbacks), so no path is checked, no environment
variable is read, and the result depends on the line alone.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

from dbt2prefect.errors import DbtCommandError

ALIASES = {"list": "ls", "source snapshot-freshness": "source freshness"}
"""dbt's command aliases → the name the toolkit uses."""
RESERVED_OPTIONS = ("profiles_dir", "project_dir", "target_path", "log_path", "profile")
"""Options the flow sets for every run (its own paths and a profile built from blocks); a step must not."""


@dataclass(frozen=True)
class ParsedStep:
    """One dbt command line as dbt's parser reads it.

    Attributes:
        line: the line as written.
        command: the command path with aliases resolved ('build', 'source freshness', 'ls', 'run-operation').
        args: the arguments after `dbt`, in order (what `dbtRunner().invoke` takes).
        options: only what the line sets, by click parameter name, raw (global and command options merged;
            `--select a b --select c` as one list of values).
        flags: those names mapped back to the spelling dbt documents (`--select`).
    """

    line: str
    command: str
    args: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)

    def sets(self, name: str) -> bool:
        """True when the line sets click parameter `name` (e.g. 'target', 'threads', 'state')."""
        return name in self.options


def _cli() -> click.Group:
    from dbt.cli.main import cli

    group: click.Group = cli
    return group


def _parse_level(
    command: click.Command, ctx: click.Context, args: list[str], line: str
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    parser = command.make_parser(ctx)
    try:
        options, rest, _order = parser.parse_args(list(args))
    except click.UsageError as exc:
        raise DbtCommandError("step_unknown_flag", f"{line!r}: {exc.format_message()}") from None
    names = {param.name: param.opts[0] for param in command.params if param.name}
    given = {name: value for name, value in options.items() if name in names}
    return given, {name: names[name] for name in given}, list(rest)


def parse_args(args: Sequence[str], line: str | None = None) -> ParsedStep:
    """Parse dbt arguments (without the leading `dbt`), e.g. `['--warn-error', 'run', '-s', 'tag:a']`.

    Raises:
        DbtCommandError: no command, an unknown command or flag, or extra arguments dbt would reject.
    """
    text = line if line is not None else shlex.join(["dbt", *args])
    command: click.Command = _cli()
    ctx = click.Context(command, info_name="dbt")
    options: dict[str, Any] = {}
    flags: dict[str, str] = {}
    path: list[str] = []
    rest = list(args)
    while True:
        given, spelled, rest = _parse_level(command, ctx, rest, text)
        options.update(given)
        flags.update(spelled)
        if not isinstance(command, click.Group):
            break
        if not rest:
            raise DbtCommandError("step_unknown_command", f"{text!r} names no dbt command")
        name = rest[0]
        sub = command.get_command(ctx, name)
        if sub is None:
            raise DbtCommandError(
                "step_unknown_command", f"{text!r}: 'dbt {' '.join([*path, name])}' is not a dbt command"
            )
        path.append(sub.name or name)
        rest = rest[1:]
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    if rest:
        raise DbtCommandError("step_unknown_flag", f"{text!r}: unexpected extra arguments {' '.join(rest)!r}")
    joined = " ".join(path)
    return ParsedStep(line=text, command=ALIASES.get(joined, joined), args=tuple(args), options=options, flags=flags)


def parse_step_line(line: str, *, require_dbt: bool = True) -> ParsedStep:
    """Parse one command line as written in a dbt Cloud step (`dbt build --select tag:daily --vars '{...}'`).

    Args:
        require_dbt: False also takes a line without the leading `dbt` (`build --select a`), as the flow does.

    Raises:
        DbtCommandError: the line cannot be split, is blank, does not start with `dbt`, or dbt rejects it.
    """
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise DbtCommandError("step_unparseable", f"cannot split {line!r} like a shell line: {exc}") from None
    if not words:
        raise DbtCommandError("steps_empty", "an execute step is blank")
    if words[0] != "dbt" and not require_dbt:
        return parse_args(words, line)
    if words[0] != "dbt":
        raise DbtCommandError(
            "step_not_dbt", f"{line!r} does not start with 'dbt'; write a dbt command such as 'dbt build --select ...'"
        )
    return parse_args(words[1:], line)


def validate_step(step: ParsedStep) -> None:
    """Check what dbt would only check at run time: flags the flow owns, `--vars` and `--threads` values.

    Raises:
        DbtCommandError: with the reason code of the first problem.
    """
    for name in RESERVED_OPTIONS:
        if step.sets(name):
            raise DbtCommandError(
                "step_reserved_flag",
                f"{step.line!r}: {step.flags[name]} is set by the flow for every run; remove it from the step",
            )
    if step.sets("vars"):
        try:
            data = yaml.safe_load(step.options["vars"])
        except yaml.YAMLError as exc:
            raise DbtCommandError("step_bad_vars", f"{step.line!r}: --vars is not YAML/JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DbtCommandError("step_bad_vars", f"{step.line!r}: --vars must be a mapping such as '{{\"a\": 1}}'")
    if step.sets("threads"):
        raw = step.options["threads"]
        if not str(raw).isdigit() or int(raw) < 1:
            raise DbtCommandError("step_bad_threads", f"{step.line!r}: --threads {raw!r} is not a positive integer")


def flatten(value: Any) -> tuple[str, ...]:
    """A multi-value option as one tuple: `--select a b --select c` arrives as [('a', 'b'), ('c',)]."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    parts: list[str] = []
    for item in value:
        parts.extend(flatten(item))
    return tuple(parts)
