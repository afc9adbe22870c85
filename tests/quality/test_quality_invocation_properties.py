"""Property: the dbt arguments the flow builds mean exactly the parameters it was given.

Flow parameters (generated selections, vars, threads, full refresh, selector) → `plan_invocations` → the argument
list handed to dbt → parsed again with dbt's own click parser (dbt2prefect.dbt_cli) → the same parameters. This closes
the loop the migration side starts (dbt Cloud step → parameters), so a job's meaning survives both directions.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dbt2prefect.dbt_cli import parse_step_line
from dbt2prefect.params import FULL_REFRESH, THREADED, plan_invocations, validate
from migration.steps import step_parameters

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_NODE = st.builds(
    lambda prefix, name, suffix: f"{prefix}{name}{suffix}",
    st.sampled_from(["", "+", "tag:", "path:models/", "source:", "1+"]),
    _WORD,
    st.sampled_from(["", "+", "+2"]),
)
_SELECTION = st.lists(_NODE, min_size=1, max_size=4).map(" ".join)
_VALUE = st.one_of(st.integers(-(10**6), 10**6), st.booleans(), _WORD, _WORD.map(lambda w: f"{w} with 'quotes'"))
_VARS = st.dictionaries(_WORD, _VALUE, min_size=1, max_size=3)


@st.composite
def _flow_parameters(draw: st.DrawFn) -> dict[str, Any]:
    command = draw(st.sampled_from(["build", "run", "test", "seed", "snapshot", "compile", "ls"]))
    params: dict[str, Any] = {"command": command}
    if draw(st.booleans()):
        params["selector"] = draw(_WORD)
    else:
        for name in ("select", "exclude"):
            if draw(st.booleans()):
                params[name] = draw(_SELECTION)
    if draw(st.booleans()):
        # Both forms a schedule may carry: JSON (what plan writes) and YAML flow style (what people type).
        data = draw(_VARS)
        params["vars"] = json.dumps(data) if draw(st.booleans()) else yaml.safe_dump(data, default_flow_style=True)
    if command in FULL_REFRESH and draw(st.booleans()):
        params["full_refresh"] = True
    if command in THREADED and draw(st.booleans()):
        params["threads"] = draw(st.integers(min_value=1, max_value=64))
    return params


@settings(max_examples=60, deadline=None)
@given(_flow_parameters(), st.sampled_from(["dev", "prod", "parity"]))
def test_invocation_args_parse_back_to_the_parameters(params: dict[str, Any], target: str) -> None:
    (invocation,) = plan_invocations(validate(params), target, state_dir=None)
    parsed = step_parameters(parse_step_line(shlex.join(["dbt", *invocation.args])))
    assert parsed is not None, invocation.args
    expected = {**params, "target": target}
    if "vars" in expected:
        assert yaml.safe_load(parsed.pop("vars")) == yaml.safe_load(expected.pop("vars"))
    assert parsed == expected
