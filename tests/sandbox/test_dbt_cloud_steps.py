"""Sandbox runs follow dbt Cloud's step layout; execute steps are parsed with shlex."""

from __future__ import annotations

import json

import pytest

from sandbox.dbt_cloud import SEED_JOBS
from sandbox.dbt_cloud.runner import StepParseError, parse_step, plan_steps, step_targets

SEED = {j["name"]: j for j in json.loads(SEED_JOBS.read_text())["data"]}


def test_nightly_steps_in_dbt_cloud_order() -> None:
    steps = plan_steps(SEED["Nightly production build"])
    assert [s.name for s in steps] == [
        "Clone git repository",
        "Create profile from connection DuckDB (sandbox)",
        "Invoke dbt with `dbt deps`",
        "Invoke dbt with `dbt source freshness`",
        "Invoke dbt with `dbt build --selector nightly`",
        "Invoke dbt with `dbt docs generate`",
    ]
    # The checkbox steps do not fail the run; the execute step does.
    assert [s.fails_run for s in steps[3:]] == [False, True, False]


def test_quoted_vars_survive_parsing() -> None:
    steps = plan_steps(SEED["Month-start finance close"])
    run = steps[4].args
    assert run is not None and run[:3] == ("run", "--select", "tag:finance")
    assert json.loads(run[run.index("--vars") + 1]) == {"run_date": "2024-01-01"}


def test_overrides_replace_steps_and_docs() -> None:
    steps = plan_steps(
        SEED["Nightly production build"], {"steps_override": ["dbt seed"], "generate_docs_override": False}
    )
    assert [s.args for s in steps[3:]] == [("source", "freshness"), ("seed",)]


@pytest.mark.parametrize("command", ["build", "dbt", "dbtx run", "dbt run --vars '{unclosed"])
def test_non_dbt_steps_are_rejected(command: str) -> None:
    with pytest.raises(StepParseError, match="step"):
        parse_step(command)


def test_targets_named_in_steps() -> None:
    # dbt's own parser reads them: the last one wins, and a global --target before the command counts too.
    assert step_targets(("build", "--target", "parity", "-t", "dev", "--target=prod")) == ["prod"]
    assert step_targets(("--target", "dev", "run")) == ["dev"]
    assert step_targets(("build", "--no-such-flag")) == []  # dbt reports it when the step runs
