"""The environment variables a run gives dbt: the `env_vars` parameter, and secrets read from Secret blocks.

dbt runs in the flow-run process, so the values go into that process's environment while dbt runs and are
taken out again afterwards. dbt keeps the values of `DBT_ENV_SECRET*` variables out of its logs and artifacts;
this module never logs a value, and an error names the variable and its block only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from dbt2prefect.dbt_cli import reserved_env_names
from dbt2prefect.errors import ParameterError

if TYPE_CHECKING:
    from dbt2prefect.params import RunParameters

SECRET_ENV_PREFIX = "DBT_ENV_SECRET"
"""dbt keeps the values of variables named so out of its logs and artifacts; dbt Cloud's API masks them.

dbt Cloud's documentation spells the prefix `DBT_ENV_SECRET_`; dbt-core masks every name starting with
`DBT_ENV_SECRET`, so the shorter prefix is the one that decides whether a value may be shown."""
ENV_NAME_PREFIX = "DBT_"
"""dbt Cloud accepts only environment variable names that start with this (its keys are upper case)."""
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def env_name_problem(name: str) -> str | None:
    """Why `name` may not be set for a dbt run, or None when it may: the one check of variable names, used by the
    plan (a job's dbt Cloud variables) and by the flow (its `env_vars` and `secret_env_vars`) before dbt starts.

    As dbt Cloud: `DBT_` and then capital letters, digits and underscores, so that no run can change the
    process's `PATH`, `LD_PRELOAD`, `PYTHONPATH`, proxies or cloud credentials. Nor dbt's own settings that the
    flow sets for every run (`DBT_PROFILES_DIR`, `DBT_PROJECT_DIR`, `DBT_TARGET_PATH`, ...).
    """
    if not (name.startswith(ENV_NAME_PREFIX) and len(name) > len(ENV_NAME_PREFIX) and set(name) <= _NAME_CHARS):
        return (
            f"{name!r} is not a name dbt Cloud accepts for an environment variable: it must start with "
            f"{ENV_NAME_PREFIX} and hold only capital letters, digits and underscores (rename it in dbt Cloud, "
            f"e.g. DBT_{''.join(c for c in name.upper() if c in _NAME_CHARS).removeprefix('DBT_') or 'NAME'})"
        )
    if name in reserved_env_names():
        return f"{name!r} is dbt's own setting, which the flow sets for every run (its own paths and profile)"
    return None


def read_secret(name: str, block: str) -> str:
    """The value of secret variable `name` from Prefect Secret block `block`.

    Raises:
        ParameterError: the block does not exist, is not a Secret block, or is empty.
    """
    from prefect.blocks.system import Secret

    try:
        # `_sync=True` runs the sync implementation even under an event loop.
        value = cast("Secret[Any]", Secret.load(block, _sync=True)).get()  # type: ignore[call-arg]
    except Exception as exc:
        # A missing block raises ValueError, an unreachable API httpx/Prefect errors. Only the type is kept,
        # so that no response payload can reach the message.
        raise ParameterError(
            f"parameter 'secret_env_vars': {name} names Prefect Secret block {block!r}, which could not be read "
            f"({type(exc).__name__}); save the value as that block (the plan's `env_var_secret` finding has the "
            "command)"
        ) from None
    if not isinstance(value, str) or not value:
        raise ParameterError(f"parameter 'secret_env_vars': Secret block {block!r} of {name} holds no text value")
    return value


def save_secret(block: str, value: str) -> None:
    """Save `value` as Prefect Secret block `block` (created or replaced), as `read_secret` reads it at run time.

    Raises:
        ParameterError: the block name is not one Prefect accepts, or the value is empty.
    """
    from prefect.blocks.system import Secret

    from dbt2prefect.tenant import block_name_problem

    problem = block_name_problem(block)
    if problem is not None:
        raise ParameterError(f"Secret block name {block!r}: {problem}")
    if not value:
        raise ParameterError(f"no value for Secret block {block!r}: an empty secret would fail every run that reads it")
    Secret(value=value).save(block, overwrite=True)


def run_environment(params: RunParameters) -> dict[str, str]:
    """Every variable the run sets for dbt: `env_vars` as given, then each secret from its block."""
    values = dict(params.env_vars or {})
    for name, block in (params.secret_env_vars or {}).items():
        values[name] = read_secret(name, block)
    for name in values:  # again here, whatever built the parameters: nothing else reaches the process environment
        problem = env_name_problem(name)
        if problem is not None:
            raise ParameterError(f"parameter 'env_vars': {problem}")
    return values


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in the process environment while the block runs; restore what was there afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
