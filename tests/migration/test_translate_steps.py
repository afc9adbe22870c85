"""execute_steps parsing with dbt's own click parser: edge cases and a round-trip property."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt2prefect.dbt_cli import parse_step_line, validate_step
from dbt2prefect.errors import DbtCommandError as StepError
from migration.steps import render_step, step_parameters, unmapped_flags


def test_repeated_select_values_are_joined_with_spaces() -> None:
    step = parse_step_line("dbt build -s tag:a tag:b --select c --exclude d")
    assert step_parameters(step) == {"command": "build", "select": "tag:a tag:b c", "exclude": "d"}


def test_quoted_vars_keep_their_spaces() -> None:
    step = parse_step_line("""dbt run --vars '{"key": "a value", "n": 1}'""")
    assert step.options["vars"] == '{"key": "a value", "n": 1}'


def test_subcommands_and_aliases() -> None:
    assert step_parameters(parse_step_line("dbt source freshness")) == {"command": "source freshness"}
    assert step_parameters(parse_step_line("dbt docs generate")) == {"command": "docs generate"}
    assert step_parameters(parse_step_line("dbt list --select a")) == {"command": "ls", "select": "a"}


def test_flags_without_parameter_are_listed() -> None:
    step = parse_step_line("dbt --warn-error build -x")
    assert unmapped_flags(step) == ["--fail-fast", "--warn-error"]
    assert step_parameters(step) is None


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("dbt build --no-such-flag", "step_unknown_flag"),
        ("dbt run stray", "step_unknown_flag"),
        ("dbt frobnicate", "step_unknown_command"),
        ("dbt", "step_unknown_command"),
        ("python run.py", "step_not_dbt"),
        ("dbt run --select 'unterminated", "step_unparseable"),
        ("", "steps_empty"),
    ],
)
def test_bad_lines_have_reason_codes(line: str, code: str) -> None:
    with pytest.raises(StepError) as info:
        parse_step_line(line)
    assert info.value.reason_code == code


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("dbt run --profiles-dir /tmp", "step_reserved_flag"),
        ("dbt run --vars '[1, 2]'", "step_bad_vars"),
        ("dbt run --vars '{a: [}'", "step_bad_vars"),
        ("dbt run --threads many", "step_bad_threads"),
    ],
)
def test_values_dbt_checks_late_are_checked_now(line: str, code: str) -> None:
    with pytest.raises(StepError) as info:
        validate_step(parse_step_line(line))
    assert info.value.reason_code == code


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_SELECTION = st.lists(
    st.builds(lambda kind, name: f"{kind}{name}", st.sampled_from(["", "tag:", "path:models/", "+", "source:"]), _WORD),
    min_size=1,
    max_size=4,
).map(" ".join)
_VARS = st.dictionaries(_WORD, st.one_of(st.integers(), _WORD.map(lambda w: f"{w} {w}")), min_size=1, max_size=3)


def _accepts(command: str) -> set[str]:
    """The click parameter names a dbt command takes (so generated lines are ones dbt accepts)."""
    from dbt.cli.main import cli

    node: Any = cli
    for part in command.split():
        node = node.commands[part]
    return {param.name for param in node.params}


@st.composite
def _parameters(draw: st.DrawFn) -> dict[str, Any]:
    command = draw(st.sampled_from(["build", "run", "test", "seed", "snapshot", "compile", "ls", "source freshness"]))
    params: dict[str, Any] = {"command": command}
    accepted = _accepts(command)
    if draw(st.booleans()):
        params["selector"] = draw(_WORD)
    else:
        if draw(st.booleans()):
            params["select"] = draw(_SELECTION)
        if draw(st.booleans()):
            params["exclude"] = draw(_SELECTION)
    if draw(st.booleans()):
        params["vars"] = json.dumps(draw(_VARS))
    if "full_refresh" in accepted and draw(st.booleans()):
        params["full_refresh"] = True
    if draw(st.booleans()):
        params["target"] = draw(st.sampled_from(["dev", "prod", "parity"]))
    if "threads" in accepted and draw(st.booleans()):
        params["threads"] = draw(st.integers(min_value=1, max_value=64))
    return params


@settings(max_examples=60, deadline=None)
@given(_parameters())
def test_render_then_parse_round_trips(params: dict[str, Any]) -> None:
    step = parse_step_line(render_step(params))
    validate_step(step)
    assert step_parameters(step) == params
