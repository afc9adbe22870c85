"""Reading a job's building steps with dbt's own parser (no project parse needed)."""

from __future__ import annotations

from parity.selection import parse_step_args, pick_step, selections_from_parameters


def test_multi_step_job_yields_its_building_steps_in_order() -> None:
    params = {
        "steps": ["dbt seed --select tag:daily", 'dbt run -s tag:finance --vars \'{"run_date": "2024-01-01"}\''],
        "generate_docs": True,
        "source_freshness": True,
        "target": "prod",
    }
    steps = selections_from_parameters(params, target="parity")
    assert [(s.command, s.select) for s in steps] == [("seed", ("tag:daily",)), ("run", ("tag:finance",))]
    assert steps[1].vars == '{"run_date": "2024-01-01"}'
    assert pick_step(steps, "run") is steps[1]
    assert pick_step(steps, "build") is steps[1]  # no build step: the last building step


def test_resource_type_flags_narrow_what_a_build_executes() -> None:
    step = parse_step_args(["build", "--select", "a", "b", "--resource-type", "model", "--resource-type", "test"])
    assert step is not None and step.select == ("a", "b")
    assert step.executed_types() == {"model", "test"}
    assert parse_step_args(["docs", "generate"]) is None
