"""Flow parameters are validated before any dbt process starts; each bad input names the parameter."""

from __future__ import annotations

from collections.abc import Sequence

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


def test_each_step_is_parsed_once_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt2prefect import dbt_cli

    lines = ["dbt seed", "dbt build --select staging+", "dbt test --target prod"]
    calls: list[str | None] = []
    parse_args = dbt_cli.parse_args

    def counted(args: Sequence[str], line: str | None = None) -> dbt_cli.ParsedStep:
        calls.append(line)
        return parse_args(args, line)

    monkeypatch.setattr(dbt_cli, "parse_args", counted)
    params = validate({"target": "dev", "steps": lines})
    assert step_targets(params) == {"prod"}
    invocations = plan_invocations(params, "dev", state_dir=None)
    assert [i.label for i in invocations] == lines
    assert calls == lines  # validation read each line; the targets and the plan used what it read


def test_api_form_keeps_what_differs_from_the_defaults_and_the_target() -> None:
    raw = {"target": "default", "steps": ["dbt build"], "threads": 4, "per_node_tasks": True, "vars": None}
    params = validate(raw)
    assert params.to_api() == {"steps": ["dbt build"], "target": "default", "threads": 4}
    assert list(params.to_api()) == sorted(params.to_api())
    assert validate(params.to_api()) == params
