"""prefect.yaml rendering, read back with Prefect's own prefect.yaml schedule parser, and the drift check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.emit import (
    REGENERATE,
    ConstraintsError,
    pinned_versions,
    quickstart_command,
    render_prefect_yaml,
)
from migration.export import load_inventory
from migration.plan import MigrationPlan
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
COMMITTED = REPO_ROOT / "tenants" / "dbt_williamgrant.prefect.yaml"
EDGE_CASES = Path(__file__).parent / "fixtures" / "jobs_edge_cases.json"


def _versions() -> dict[str, str]:
    return pinned_versions((REPO_ROOT / "constraints.txt").read_text())


def _plan(path: Path) -> MigrationPlan:
    inventory = load_inventory(path)
    return build_plan(inventory.job_models(), load_tenant(), inventory.environment_models())


def test_committed_prefect_yaml_matches_the_seed_jobs() -> None:
    tenant = load_tenant()
    expected = render_prefect_yaml(_plan(SEED), _versions(), python=tenant.image_python)
    assert COMMITTED.read_text() == expected, f"{COMMITTED} is out of date; regenerate with `.venv/bin/{REGENERATE}`"


def test_prefect_reads_back_the_planned_schedules() -> None:
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    plan = _plan(EDGE_CASES)
    document = yaml.safe_load(render_prefect_yaml(plan, _versions()))
    (deployment,) = document["deployments"]
    assert deployment["entrypoint"] == "flows/dbt_wg_flow.py:run_dbt_wg"
    assert deployment["work_pool"]["job_variables"]["image"] == "prefecthq/prefect-client:3-python3.12"
    read_back = {entry["slug"]: _schedule_config_to_deployment_schedule(entry) for entry in deployment["schedules"]}
    assert list(read_back) == [s.slug for s in plan.schedules]
    for planned in plan.schedules:
        got = read_back[planned.slug]
        assert got["active"] is False
        assert got["parameters"] == planned.parameters
        assert got["schedule"].timezone == "UTC"
        if planned.rrule is not None:
            assert got["schedule"].rrule == planned.rrule
        else:
            assert (got["schedule"].cron, got["schedule"].day_or) == (planned.cron, planned.day_or)


def test_activate_writes_active_schedules() -> None:
    document = yaml.safe_load(render_prefect_yaml(_plan(EDGE_CASES), _versions(), activate=True))
    assert {s["active"] for s in document["deployments"][0]["schedules"]} == {True}


def test_output_is_deterministic() -> None:
    assert render_prefect_yaml(_plan(SEED), _versions()) == render_prefect_yaml(_plan(SEED), _versions())


def test_packages_are_pinned_from_constraints() -> None:
    versions = _versions()
    assert versions["prefect"] == "3.9.1" and versions["prefect-dbt"] == "0.7.25"
    with pytest.raises(ConstraintsError, match="dbt-core"):
        pinned_versions("prefect==3.9.1\n")


def test_quickstart_line_has_no_schedule() -> None:
    line = quickstart_command(_plan(SEED), _versions())
    assert line.startswith("uvx prefect-cloud deploy flows/dbt_wg_flow.py:run_dbt_wg ")
    assert "--with prefect-dbt==0.7.25" in line and "--with-python 3.12" in line
    assert "schedule" not in line
