"""The flow's parameters are spelled once: `run_dbt_wg`'s signature is `RunParameters`, and `dbt2prefect run` has an
option for each of them."""

from __future__ import annotations

import inspect
import typing

from pydantic import TypeAdapter

from cli.run_cmd import run
from dbt2prefect.params import RunParameters
from flows.dbt_wg_flow import run_dbt_wg

# CLI options whose name is not the parameter's: --step is repeated once per line, --lean is per_node_tasks=false,
# --env-var/--secret-env-var are NAME=VALUE once per variable.
CLI_NAMES = {"step": "steps", "lean": "per_node_tasks", "env_var": "env_vars", "secret_env_var": "secret_env_vars"}


def test_flow_signature_is_run_parameters() -> None:
    signature = inspect.signature(run_dbt_wg.fn)
    hints = typing.get_type_hints(run_dbt_wg.fn)
    fields = RunParameters.model_fields
    assert list(signature.parameters) == list(fields)
    for name, parameter in signature.parameters.items():
        assert parameter.default == fields[name].default, name
        flow_type = TypeAdapter(hints[name]).json_schema()
        assert flow_type == TypeAdapter(fields[name].annotation).json_schema(), name


def test_cli_run_has_an_option_for_each_parameter() -> None:
    options = [name for name in inspect.signature(run).parameters if name != "tenant_file"]
    assert sorted(CLI_NAMES.get(name, name) for name in options) == sorted(RunParameters.model_fields)
