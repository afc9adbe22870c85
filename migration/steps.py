"""dbt Cloud execute_steps → `run_dbt_wg` parameters, parsed with dbt's own click parser (no regex).

A step line is split with shlex, then each click command on the path (`dbt`, `source`, `freshness`) parses its
options with the parser dbt itself builds. Only the option parser runs: no type conversion, no callbacks, so no
path checks and no environment variables are read, and the result depends on the line alone.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import click
import yaml

# dbt command path (as typed after `dbt`) → the flow's `command` parameter.
FLOW_COMMANDS: dict[str, str] = {
    "build": "build",
    "run": "run",
    "test": "test",
    "seed": "seed",
    "snapshot": "snapshot",
    "deps": "deps",
    "clean": "clean",
    "source freshness": "source freshness",
    "docs generate": "docs generate",
    "compile": "compile",
    "ls": "ls",
    "list": "ls",
    "retry": "retry",
}
# click parameter name → flow parameter. Anything else on a single step sends the job to `steps`.
MAPPED_OPTIONS = ("select", "exclude", "selector", "vars", "full_refresh", "target", "threads")
# Options the flow sets for every run (its own paths and profile); a step must not carry them.
RESERVED_OPTIONS = ("profiles_dir", "project_dir", "target_path", "log_path", "profile")
# Options that point at files in dbt Cloud's run environment.
STATE_OPTIONS = ("state", "defer", "defer_state", "favor_state")


class StepError(ValueError):
    """A step line cannot be translated; `reason_code` says why (the message says how to fix it)."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code


@dataclass(frozen=True)
class ParsedStep:
    """One execute_steps line as dbt's parser sees it.

    `options` holds only what the line sets (click parameter name → raw value; multi-value options such as
    `--select a b --select c` as one list of values); `flags` maps those names back to the spelling dbt documents.
    """

    line: str
    command: str
    options: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)


def _cli() -> click.Group:
    from dbt.cli.main import cli

    group: click.Group = cli
    return group


@dataclass(frozen=True)
class _Level:
    options: dict[str, Any]
    flags: dict[str, str]
    rest: list[str]


def _parse_options(command: click.Command, ctx: click.Context, args: list[str], line: str) -> _Level:
    parser = command.make_parser(ctx)
    try:
        options, rest, _order = parser.parse_args(list(args))
    except click.UsageError as exc:
        raise StepError("step_unknown_flag", f"{line!r}: {exc.format_message()}") from None
    names = {param.name: param.opts[0] for param in command.params if param.name}
    given = {name: value for name, value in options.items() if name in names}
    return _Level(given, {name: names[name] for name in given}, list(rest))


def parse_step_line(line: str) -> ParsedStep:
    """Parse one dbt Cloud step (`dbt build --select tag:daily --vars '{"a": 1}'`).

    Raises:
        StepError: the line cannot be split, is not a dbt command, names an unknown command or flag, or passes
            extra arguments dbt would reject.
    """
    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise StepError("step_unparseable", f"{line!r} cannot be split like a shell line: {exc}") from None
    if not args:
        raise StepError("steps_empty", "an execute step is blank")
    if args[0] != "dbt":
        raise StepError("step_not_dbt", f"{line!r} does not start with 'dbt'; dbt Cloud steps are dbt commands")
    command: click.Command = _cli()
    ctx = click.Context(command, info_name="dbt")
    options: dict[str, Any] = {}
    flags: dict[str, str] = {}
    path: list[str] = []
    rest = args[1:]
    while True:
        level = _parse_options(command, ctx, rest, line)
        options.update(level.options)
        flags.update(level.flags)
        rest = level.rest
        if not isinstance(command, click.Group):
            break
        if not rest:
            raise StepError("step_unknown_command", f"{line!r} names no dbt command")
        name = rest[0]
        sub = command.get_command(ctx, name)
        if sub is None:
            raise StepError("step_unknown_command", f"{line!r}: 'dbt {' '.join([*path, name])}' is not a dbt command")
        path.append(name)
        rest = rest[1:]
        ctx = click.Context(sub, info_name=name, parent=ctx)
        command = sub
    if rest:
        raise StepError("step_unknown_flag", f"{line!r}: unexpected extra arguments {' '.join(rest)!r}")
    return ParsedStep(line=line, command=" ".join(path), options=options, flags=flags)


def _joined(value: Any) -> str:
    """`--select a b --select c` arrives as [('a', 'b'), ('c',)]; the flow takes 'a b c'."""
    if isinstance(value, str):
        return value
    parts: list[str] = []
    for item in value:
        parts.extend([item] if isinstance(item, str) else list(item))
    return " ".join(parts)


def validate_step(step: ParsedStep) -> None:
    """Check what dbt would only check at run time: reserved flags, `--vars` and `--threads` values.

    Raises:
        StepError: with the reason code of the first problem.
    """
    for name in RESERVED_OPTIONS:
        if name in step.options:
            raise StepError(
                "step_reserved_flag",
                f"{step.line!r}: {step.flags[name]} is set by the flow for every run; remove it from the step",
            )
    if "vars" in step.options:
        try:
            data = yaml.safe_load(step.options["vars"])
        except yaml.YAMLError as exc:
            raise StepError("step_bad_vars", f"{step.line!r}: --vars is not YAML/JSON ({exc})") from None
        if not isinstance(data, dict):
            raise StepError("step_bad_vars", f"{step.line!r}: --vars must be a mapping such as '{{\"a\": 1}}'")
    if "threads" in step.options:
        raw = step.options["threads"]
        if not str(raw).isdigit() or int(raw) < 1:
            raise StepError("step_bad_threads", f"{step.line!r}: --threads {raw!r} is not a positive integer")


def unmapped_flags(step: ParsedStep) -> list[str]:
    """Flags of a step that have no flow parameter (sorted), e.g. `--fail-fast`."""
    return sorted(step.flags[name] for name in step.options if name not in MAPPED_OPTIONS)


def step_parameters(step: ParsedStep) -> dict[str, Any] | None:
    """The flow parameters that reproduce one step, or None when the step needs `steps` (a flag or command
    without a parameter). Only parameters the step sets are returned."""
    command = FLOW_COMMANDS.get(step.command)
    if command is None or unmapped_flags(step):
        return None
    params: dict[str, Any] = {"command": command}
    for name in ("select", "exclude"):
        if name in step.options:
            params[name] = _joined(step.options[name])
    for name in ("selector", "vars", "target"):
        if name in step.options:
            params[name] = step.options[name]
    if step.options.get("full_refresh"):
        params["full_refresh"] = True
    if "threads" in step.options:
        params["threads"] = int(step.options["threads"])
    return params


def render_step(params: dict[str, Any]) -> str:
    """The dbt command line for single-command parameters (the inverse of `step_parameters`)."""
    args = ["dbt", *str(params.get("command", "build")).split()]
    for name in ("select", "exclude"):
        if params.get(name):
            args += [f"--{name}", *str(params[name]).split()]
    for name in ("selector", "vars", "target"):
        if params.get(name) is not None:
            args += [f"--{name}", str(params[name])]
    if params.get("full_refresh"):
        args.append("--full-refresh")
    if params.get("threads") is not None:
        args += ["--threads", str(params["threads"])]
    return shlex.join(args)
