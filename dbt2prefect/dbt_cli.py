"""The one parser of dbt command lines: dbt's own click CLI reads every line the toolkit meets.

Translation (dbt Cloud execute_steps), the flow's parameter validation and parity's step selection all call
`parse_args`/`parse_step_line`, so a line dbt accepts is accepted everywhere, read the same way: global flags
before the subcommand (`dbt --warn-error run`), short flags (`-s`, `-t`, `-x`), repeated options, aliases
(`dbt list` = `dbt ls`, `dbt source snapshot-freshness` = `dbt source freshness`).

Only click's option parser runs (no type conversion, no callbacks), so no path is checked, no environment
variable is read, and the result depends on the line alone.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

from dbt2prefect.errors import DbtCommandError
from dbt2prefect.reasons import ReasonCode

ALIASES = {"list": "ls", "source snapshot-freshness": "source freshness"}
"""dbt's command aliases → the name the toolkit uses."""
RESERVED_OPTIONS = ("profiles_dir", "project_dir", "target_path", "log_path", "profile")
"""Options the flow sets for every run (its own paths and a profile built from blocks); a step must not."""
INTERACTIVE = ("docs serve", "init", "debug")
"""Commands that wait for a person or check a laptop's setup: they hang or mean nothing in an unattended run."""
MAX_VARS_CHARS = 100_000
"""Upper bound of a `--vars` value once parsed (as JSON text): YAML aliases can make a few bytes huge."""


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


@functools.cache
def reserved_env_names() -> frozenset[str]:
    """The environment variables through which dbt reads the options of `RESERVED_OPTIONS` (`DBT_PROFILES_DIR`,
    `DBT_ENGINE_PROFILES_DIR`, ...), as dbt's own CLI declares them."""
    names: set[str] = set()
    for param in _cli().commands["build"].params:
        if param.name in RESERVED_OPTIONS and param.envvar:
            names.update([param.envvar] if isinstance(param.envvar, str) else param.envvar)
    return frozenset(names)


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
        raise DbtCommandError(ReasonCode.STEP_UNKNOWN_FLAG, f"{line!r}: {exc.format_message()}") from None
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
            raise DbtCommandError(ReasonCode.STEP_UNKNOWN_COMMAND, f"{text!r} names no dbt command")
        name = rest[0]
        sub = command.get_command(ctx, name)
        if sub is None:
            raise DbtCommandError(
                ReasonCode.STEP_UNKNOWN_COMMAND, f"{text!r}: 'dbt {' '.join([*path, name])}' is not a dbt command"
            )
        path.append(sub.name or name)
        rest = rest[1:]
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    if rest:
        raise DbtCommandError(ReasonCode.STEP_UNKNOWN_FLAG, f"{text!r}: unexpected extra arguments {' '.join(rest)!r}")
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
        raise DbtCommandError(ReasonCode.STEP_UNPARSEABLE, f"cannot split {line!r} like a shell line: {exc}") from None
    if not words:
        raise DbtCommandError(ReasonCode.STEPS_EMPTY, "an execute step is blank")
    if words[0] != "dbt" and not require_dbt:
        return parse_args(words, line)
    if words[0] != "dbt":
        raise DbtCommandError(
            ReasonCode.STEP_NOT_DBT,
            f"{line!r} does not start with 'dbt'; write a dbt command such as 'dbt build --select ...'",
        )
    return parse_args(words[1:], line)


def validate_step(step: ParsedStep) -> None:
    """Check what dbt would only check at run time: flags the flow owns, `--vars` and `--threads` values.

    Raises:
        DbtCommandError: with the reason code of the first problem.
    """
    if step.command in INTERACTIVE:
        raise DbtCommandError(
            ReasonCode.STEP_INTERACTIVE,
            f"{step.line!r}: 'dbt {step.command}' is interactive or checks a local setup; it cannot run unattended. "
            "Remove the step",
        )
    for name in RESERVED_OPTIONS:
        if step.sets(name):
            raise DbtCommandError(
                ReasonCode.STEP_RESERVED_FLAG,
                f"{step.line!r}: {step.flags[name]} is set by the flow for every run; remove it from the step",
            )
    if step.sets("vars"):
        try:
            parse_vars(str(step.options["vars"]))
        except ValueError as exc:
            raise DbtCommandError(ReasonCode.STEP_BAD_VARS, f"{step.line!r}: --vars {exc}") from None
    if step.sets("threads"):
        raw = step.options["threads"]
        if not str(raw).isdigit() or int(raw) < 1:
            raise DbtCommandError(
                ReasonCode.STEP_BAD_THREADS, f"{step.line!r}: --threads {raw!r} is not a positive integer"
            )


def parse_vars(text: str) -> dict[str, Any]:
    """Parse a `--vars` value (YAML or JSON) that must be a mapping of bounded size.

    Raises:
        ValueError: not YAML, not a mapping, or larger than MAX_VARS_CHARS once parsed (the message says which).
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError('must parse to a mapping, e.g. \'{"run_date": "2024-01-01"}\'')
    if _parsed_size(data, MAX_VARS_CHARS) > MAX_VARS_CHARS:
        raise ValueError(
            f"expands to more than {MAX_VARS_CHARS} characters once parsed (YAML aliases?); pass smaller vars"
        )
    return data


def _parsed_size(value: Any, limit: int) -> int:
    """Characters of `value` as text, counted without building it, stopping once past `limit`.

    Aliases share objects, so the walk counts each use again: that is the size dbt would see.
    """
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += len(str(item))
    return total


def check_selection(value: str, name: str) -> tuple[str, ...]:
    """The words of a selection parameter (`select`, `exclude`), none of which may be read as a dbt flag.

    Raises:
        ValueError: a word starts with '-' (`'fct_orders --empty'` would otherwise empty a table).
    """
    words = tuple(value.split())
    flags = [word for word in words if word.startswith("-")]
    if flags:
        raise ValueError(
            f"{flags[0]!r} in {name} {value!r} would reach dbt as a flag; a selection holds only node selectors "
            "(set flags as their own parameters, or use `steps`)"
        )
    return words


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
