"""The deployment's description: a Markdown table of its jobs, every cell inert (no HTML reaches the Prefect UI)."""

from __future__ import annotations

from markdown_it import MarkdownIt

from dbt2prefect.params import RunParameters
from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.deployment import build_deployment, command_summary, deployment_description, pinned_versions
from migration.export import load_inventory
from migration.plan import MigrationPlan
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"


def _plan() -> MigrationPlan:
    inventory = load_inventory(SEED)
    return build_plan(inventory.job_models(), load_tenant(), inventory.environment_models())


def _table_rows(description: str) -> list[list[str]]:
    """The rendered table's body cells, as a Markdown renderer with HTML on (as the Prefect UI) reads them."""
    tokens = MarkdownIt("commonmark", {"html": True}).enable("table").parse(description)
    assert not [t for t in tokens if t.type in ("html_inline", "html_block")], "HTML reached the renderer"
    rows: list[list[str]] = []
    in_body = False
    for token in tokens:
        if token.type == "tbody_open":
            in_body = True
        elif token.type == "tr_open" and in_body:
            rows.append([])
        elif token.type == "inline" and in_body:
            rows[-1].append(token.content)
    return rows


def test_the_description_lists_every_scheduled_and_chained_job() -> None:
    plan = _plan()
    spec = build_deployment(plan, load_tenant(), versions=pinned_versions((REPO_ROOT / "constraints.txt").read_text()))
    rows = _table_rows(spec.description)
    assert {int(row[0]) for row in rows} == {s.job_id for s in plan.schedules} | {t.job_id for t in plan.triggers}
    for schedule in plan.schedules:
        (row,) = [r for r in rows if r[2] == schedule.slug]
        assert row[1] == schedule.job_name and row[3] == f"cron {schedule.cron}"
        assert row[4] == schedule.run_parameters.target and row[5].startswith("dbt ")
    for trigger in plan.triggers:
        (row,) = [r for r in rows if r[2] == trigger.name]
        assert row[3].startswith(f"after job {trigger.upstream_job_id} (")


def test_html_looking_text_stays_text() -> None:
    plan = _plan()
    first = plan.schedules[0]
    hostile = first.model_copy(
        update={
            "job_name": "<img src=x onerror=alert(1)> | nightly",
            "run_parameters": RunParameters(command="run", select="tag:<daily>", target="prod"),
        }
    )
    description = deployment_description(plan.model_copy(update={"schedules": [hostile], "triggers": []}))
    assert "slug job-&lt;id&gt;" in description
    ((job_id, name, slug, runs, target, command),) = _table_rows(description)
    assert (job_id, slug, runs, target) == (str(first.job_id), first.slug, f"cron {first.cron}", "prod")
    # Entities in the cell's source: the page shows the name as written, not as an image; `|` stays in its cell.
    assert name == "&lt;img src=x onerror=alert(1)&gt; | nightly"
    assert command == "dbt run --select tag:&lt;daily&gt;"


def test_command_summary_names_steps_and_checkboxes() -> None:
    steps = RunParameters(steps=["dbt seed", "dbt build --select tag:nightly"], generate_docs=True)
    assert command_summary(steps) == "dbt seed; dbt build --select tag:nightly; dbt docs generate (may fail)"
    flags = RunParameters(command="build", exclude="tag:slow", full_refresh=True, source_freshness=True)
    assert command_summary(flags) == "dbt source freshness (may fail); dbt build --exclude tag:slow --full-refresh"
