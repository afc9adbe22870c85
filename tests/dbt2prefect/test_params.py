"""Flow parameters are validated before any dbt process starts; each bad input names the parameter."""

from __future__ import annotations

import pytest

from dbt2prefect.errors import ParameterError
from dbt2prefect.params import plan_invocations, step_targets, validate


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"command": "explode"}, "'command'"),
        ({"command": "run-operation"}, "'command'"),
        ({"vars": "[1, 2]"}, "'vars'"),
        ({"vars": "{unclosed: [1"}, "'vars'"),
        ({"threads": 0}, "'threads'"),
        ({"threads": "many"}, "'threads'"),
        ({"target": "../prod"}, "'target'"),
        ({"profiles_strategy": "env"}, "'profiles_strategy'"),
        ({"steps": []}, "'steps'"),
        ({"steps": ["rm -rf /"]}, "'steps'"),
        ({"steps": ["dbt build --profiles-dir /tmp"]}, "--profiles-dir"),
        ({"steps": ["dbt build --select 'unclosed"]}, "'steps'"),
        ({"steps": ["dbt run"], "select": "x"}, "select"),
        ({"steps": ["dbt run"], "command": "test"}, "command"),
        ({"command": "deps", "select": "x"}, "select"),
        ({"selector": "nightly", "select": "x"}, "selector"),
        ({"command": "test", "full_refresh": True}, "full_refresh"),
        ({"timeout_seconds": -5}, "'timeout_seconds'"),
        ({"colour": "blue"}, "'colour'"),
        ({"env_vars": {"DBT_ENV_SECRET_KEY": "x"}}, "secret_env_vars"),
        ({"env_vars": {"NOT A NAME": "x"}}, "'env_vars'"),
        ({"env_vars": {"PREFECT_API_URL": "http://elsewhere"}}, "must start with DBT_"),
        ({"env_vars": {"DBT_PROFILES_DIR": "/tmp"}}, "dbt's own setting"),
        ({"secret_env_vars": {"DBT_REGION": "some-block"}}, "must be in env_vars"),
        ({"secret_env_vars": {"DBT_ENV_SECRET_KEY": " "}}, "must name a Secret block"),
    ],
)
def test_bad_parameter_is_named(raw: dict[str, object], named: str) -> None:
    with pytest.raises(ParameterError) as info:
        validate(raw)
    assert named in str(info.value)
    assert str(info.value).startswith("invalid run_dbt_wg parameters")


def test_single_command_becomes_one_argument_list() -> None:
    params = validate(
        {"command": "build", "select": "tag:daily fct_orders", "exclude": "tag:hourly", "vars": "run_date: 2024-01-01"}
    )
    (invocation,) = plan_invocations(params, "prod", None)
    assert invocation.args == [
        "build",
        "--target",
        "prod",
        "--select",
        "tag:daily",
        "fct_orders",
        "--exclude",
        "tag:hourly",
        "--vars",
        "run_date: 2024-01-01",
    ]
    assert invocation.fails_run


def test_steps_keep_order_and_quoting_and_checkboxes_do_not_fail_the_run() -> None:
    params = validate(
        {
            "steps": ["dbt seed", 'dbt build --vars \'{"run_date": "2024-01-01", "note": "a b"}\''],
            "source_freshness": True,
            "generate_docs": True,
            "threads": 8,
        }
    )
    invocations = plan_invocations(params, "dev", "/state")
    assert [i.command for i in invocations] == ["source freshness", "seed", "build", "docs generate"]
    assert [i.fails_run for i in invocations] == [False, True, True, False]
    build = invocations[2].args
    assert build[:3] == ["build", "--vars", '{"run_date": "2024-01-01", "note": "a b"}']
    assert build[build.index("--state") + 1] == "/state" and "--defer" in build
    assert build[build.index("--threads") + 1] == "8"


def test_target_inside_a_step_wins() -> None:
    params = validate({"steps": ["dbt run --target prod"]})
    (invocation,) = plan_invocations(params, "dev", None)
    assert invocation.args.count("--target") == 1
    assert invocation.args[invocation.args.index("--target") + 1] == "prod"
    assert step_targets(params) == {"prod"}


def test_state_adds_defer_only_for_run_and_build() -> None:
    test_args = plan_invocations(validate({"command": "test"}), "dev", "/s")[0].args
    run_args = plan_invocations(validate({"command": "run"}), "dev", "/s")[0].args
    assert "--state" in test_args and "--defer" not in test_args
    assert "--defer" in run_args
