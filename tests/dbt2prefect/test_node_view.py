"""The run's node view: "auto" resolved by the project's node count against the logs + events budget."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from dbt2prefect.dbt_run import StepOutcome
from dbt2prefect.node_view import NodeView, project_node_count, resolve
from dbt2prefect.params import validate
from dbt2prefect.state_task_runs import budget
from dbt2prefect.summary import summarize, to_markdown
from dbt2prefect.tenant import REPO_ROOT, ObservabilitySettings, load_tenant


def _budget(per_minute: int) -> Callable[[], int]:
    return lambda: per_minute


def test_an_explicit_view_is_used_as_set_and_needs_no_node_count() -> None:
    assert resolve(None, "all") == NodeView("all", '[tenant.observability] node_task_runs = "all"')
    assert resolve(None, "states") == NodeView("states", '[tenant.observability] node_task_runs = "states"')
    assert resolve(None, "exceptions") == NodeView("exceptions", '[tenant.observability] node_task_runs = "exceptions"')


@pytest.mark.parametrize("parameter, setting", [("all", "exceptions"), ("exceptions", "auto"), ("states", "auto")])
def test_the_run_parameter_overrides_the_tenant_setting(parameter: str, setting: str) -> None:
    view = resolve(parameter, setting, 10_000, _budget(2000))  # type: ignore[arg-type]
    assert view == NodeView(parameter, f'the run\'s parameter node_task_runs = "{parameter}"')  # type: ignore[arg-type]


def test_auto_is_states_while_every_node_fits_in_the_budget_even_in_one_minute() -> None:
    assert resolve(None, "auto", 145, _budget(2000)) == NodeView(
        "states", "auto: 145 nodes x 2 <= budget 2,000 per minute"
    )
    assert resolve(None, "auto", 1000, _budget(2000)).mode == "states"
    assert resolve(None, "auto", 1001, _budget(2000)).mode == "exceptions"
    assert resolve(None, "auto", 312, _budget(625)).mode == "states", "the budget of API requests, where they write"
    assert resolve(None, "auto", 313, _budget(625)).mode == "exceptions"


def test_auto_never_takes_all_whatever_the_budget() -> None:
    assert resolve(None, "auto", 10, _budget(40_000)).mode == "states"


def test_auto_is_exceptions_over_the_budget() -> None:
    view = resolve(None, "auto", 2712, _budget(2000))
    reason = "auto: 2,712 nodes x 2 > budget 2,000 per minute"
    assert view == NodeView("exceptions", reason)
    assert view.describe() == f"node view: exceptions ({reason})"


def test_auto_as_the_run_parameter_overrides_an_explicit_tenant_setting() -> None:
    assert resolve("auto", "all", 2712, _budget(2000)).mode == "exceptions"
    assert resolve("auto", "exceptions", 500, _budget(2000)).mode == "states"


def test_the_budget_is_not_asked_for_an_explicit_view() -> None:
    # Asking may warn that the states view's events do not apply here: not for a run that does not use it.
    view = resolve(None, "all", 10, lambda: pytest.fail("asked for the states budget"))
    assert view.mode == "all"


def test_auto_needs_the_node_count_and_the_budget() -> None:
    with pytest.raises(ValueError, match="node count"):
        resolve(None, "auto", budget=_budget(2000))
    with pytest.raises(ValueError, match="budget"):
        resolve(None, "auto", 10)


def test_auto_is_the_default_and_a_valid_parameter_but_not_in_the_lean_mode() -> None:
    assert ObservabilitySettings().node_task_runs == "auto"
    assert validate({"node_task_runs": "auto"}).node_task_runs == "auto"
    # The budget cannot be switched off (logs_events_per_minute >= 200); the lean mode has no node view at all.
    from dbt2prefect.errors import ParameterError

    with pytest.raises(ParameterError, match="node_task_runs must be left out"):
        validate({"node_task_runs": "auto", "per_node_tasks": False})


def test_the_summary_names_the_view_and_why() -> None:
    view = resolve(None, "auto", 1200, _budget(2000))
    summary = summarize(
        "dev", [StepOutcome(0, "dbt build", "build", [], Path("t"), fails_run=True)], True, node_view=view.describe()
    )
    text = to_markdown(summary, None)
    assert "\nnode view: exceptions (auto: 1,200 nodes x 2 > budget 2,000 per minute)\n" in text
    assert summary.to_record()["node_view"] == view.describe()
    lean = to_markdown(summarize("dev", [], True), None)
    assert "node view" not in lean


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _project(root: Path) -> Path:
    """A project with every kind of node the count reads, in non-default model and test folders."""
    project = root / "project"
    _write(
        project / "dbt_project.yml",
        'name: counted\nversion: "1.0"\nprofile: counted\nmodel-paths: ["transform"]\ntest-paths: ["checks"]\n',
    )
    _write(
        project / "profiles.yml",
        f"counted:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n      path: {root / 'w.duckdb'}\n",
    )
    _write(project / "transform" / "a.sql", "select 1 as id\n")
    _write(project / "transform" / "deep" / "b.sql", "select * from {{ ref('a') }}\n")
    _write(project / "transform" / "c.py", "def model(dbt, session):\n    return dbt.ref('a')\n")
    _write(
        project / "transform" / "_props.yml",
        """version: 2
sources:
  - name: raw
    schema: main
    tables:
      - name: events
        data_tests: [dbt_utils_free]
        columns:
          - name: id
            data_tests: [not_null, unique]
models:
  - name: a
    data_tests:
      - dbt_utils_free
    columns:
      - name: id
        tests: [not_null]
  - name: b
    columns:
      - name: id
unit_tests:
  - name: b_passes_ids
    model: b
    given:
      - input: ref('a')
        rows:
          - {id: 1}
    expect:
      rows:
        - {id: 1}
""",
    )
    _write(project / "transform" / "broken.yml", "models: [\n")
    _write(project / "seeds" / "s.csv", "id\n1\n")
    _write(
        project / "seeds" / "_seeds.yml",
        "version: 2\nseeds:\n  - name: s\n    columns:\n      - name: id\n        data_tests: [unique]\n",
    )
    _write(
        project / "snapshots" / "two.sql",
        "{% snapshot snap_one %}\n{{ config(unique_key='id', strategy='check', check_cols='all', "
        "target_schema='main') }}\nselect * from {{ ref('a') }}\n{% endsnapshot %}\n"
        "{%- snapshot snap_two %}\n{{ config(unique_key='id', strategy='check', check_cols='all', "
        "target_schema='main') }}\nselect * from {{ ref('a') }}\n{% endsnapshot %}\n",
    )
    _write(
        project / "snapshots" / "_snapshots.yml",
        "snapshots:\n  - name: snap_yaml\n    relation: ref('a')\n    config:\n      unique_key: id\n"
        "      strategy: check\n      check_cols: all\n      schema: main\n",
    )
    _write(project / "checks" / "no_big_ids.sql", "select * from {{ ref('a') }} where id > 9\n")
    _write(
        project / "checks" / "generic" / "dbt_utils_free.sql",
        "{% test dbt_utils_free(model) %}select * from {{ model }} where false{% endtest %}\n",
    )
    return project


@pytest.mark.e2e  # real dbt parses
def test_the_node_count_is_what_dbt_parses(tmp_path: Path) -> None:
    """Models, seeds, snapshots (SQL blocks and YAML), singular, generic and unit tests, counted as dbt's parse
    counts them; a YAML file dbt would reject counts none."""
    from dbt.cli.main import dbtRunner

    project = _project(tmp_path)
    assert project_node_count(project) == 3 + 1 + 3 + 1 + 6 + 1  # models, seed, snapshots, tests (3 kinds)
    (project / "transform" / "broken.yml").unlink()  # dbt refuses to parse it
    args = ["parse", "--project-dir", str(project), "--profiles-dir", str(project)]
    result = dbtRunner().invoke([*args, "--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path)])
    assert result.success, result.exception
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text(encoding="utf-8"))
    built = [n for n in manifest["nodes"].values() if n["resource_type"] in {"model", "seed", "snapshot", "test"}]
    assert project_node_count(project) == len(built) + len(manifest["unit_tests"])


def test_the_sandbox_tenant_resolves_auto_to_every_node_with_a_task_run() -> None:
    tenant = load_tenant(REPO_ROOT / "tenants" / "dbt_williamgrant.toml")
    observability = tenant.observability
    assert observability.node_task_runs == "auto"
    count = project_node_count(tenant.project_dir)
    assert count > 100
    view = resolve(None, observability.node_task_runs, count, lambda: budget(observability)[0].per_minute)
    assert view.mode == "states"
