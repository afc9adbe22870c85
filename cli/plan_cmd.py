"""`dbt2prefect plan | apply | emit`: dbt Cloud jobs → the tenant's Prefect deployment and its schedules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from cli.common import (
    FormatOption,
    JsonFlag,
    TenantFile,
    console,
    err_console,
    handle_errors,
    output_format,
    render_rows,
    workspace_from,
)
from dbt2prefect.tenant import REPO_ROOT
from migration.plan import MigrationPlan, Severity

if TYPE_CHECKING:
    from migration.apply import ApplyDiff

FromFile = Annotated[
    Path | None,
    typer.Option(
        "--from-file",
        help="Inventory from `dbt2prefect export`, or a saved GET /jobs/ response; default: read dbt Cloud live.",
    ),
]
_SEVERITY_STYLE = {Severity.BLOCKER: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
    app.command("apply")(apply)
    app.command("emit")(emit)


def _parameters_lines(parameters: dict[str, object] | None) -> list[str]:
    if parameters is None:
        return []
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in parameters.items()]


def _block(title: str, fields: list[tuple[str, str]]) -> None:
    """A title line, then `name: value` rows; long values wrap inside their column, under the value."""
    console.print()
    console.print(title, highlight=False)
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in fields:
        grid.add_row(f"{name}:", value)
    console.print(Padding(grid, (0, 0, 0, 2)), highlight=False)


def _render_plan(plan: MigrationPlan) -> None:
    """One block per job and per finding: readable at 80 columns, job ids never broken across lines."""
    schedules = {s.slug: s for s in plan.schedules}
    console.print(
        f"[bold]Deployment {escape(plan.flow_name)}/{escape(plan.deployment_name)}[/] (work pool {escape(plan.work_pool)})",
        highlight=False,
    )
    for job in plan.jobs:
        fields: list[tuple[str, str]] = []
        schedule = schedules.get(job.schedule_slug or "")
        if schedule is not None:
            expression = schedule.cron or (schedule.rrule or "").replace("\n", " ")
            if not schedule.day_or:
                expression += " (day AND weekday)"
            proof = schedule.proof
            same = "same as" if proof.equivalent else "DIFFERENT from"
            fields.append(("schedule", f"{schedule.slug}: {escape(schedule.description)}"))
            fields.append(("cron (UTC)", f"{escape(expression)}, {same} dbt Cloud over {proof.checked} fire times"))
        if job.trigger_name is not None:
            fields.append(("trigger", escape(job.trigger_name)))
        parameters = "\n".join(escape(line) for line in _parameters_lines(job.parameters))
        fields.append(("parameters", parameters or "-"))
        _block(f"[bold]job {job.job_id}[/] {escape(job.job_name)} [dim]({job.status})[/]", fields)
    if not plan.findings:
        console.print("\nNo findings.")
        return
    acknowledged = set(plan.acknowledged)
    console.print(f"\n[bold]Findings[/] ({len(plan.findings)})", highlight=False)
    for f in plan.findings:
        severity = f.severity.value + (" (acknowledged)" if f.key in acknowledged else "")
        style = _SEVERITY_STYLE[f.severity]
        _block(
            f"[{style}]{severity}[/] {f.reason_code} [dim]job {f.job_id}[/] {escape(f.job_name)}",
            [("message", escape(f.message)), ("manual step", escape(f.manual_step))],
        )


def _plan_rows(plan: MigrationPlan) -> list[dict[str, object]]:
    schedules = {s.slug: s for s in plan.schedules}
    rows: list[dict[str, object]] = []
    for job in plan.jobs:
        schedule = schedules.get(job.schedule_slug or "")
        findings = [f for f in plan.findings if f.job_id == job.job_id]
        rows.append(
            {
                "job_id": job.job_id,
                "job_name": job.job_name,
                "status": job.status,
                "schedule": schedule.slug if schedule else job.trigger_name or "",
                "cron_utc": (schedule.cron or schedule.rrule or "") if schedule else "",
                "when": schedule.description if schedule else "",
                "parameters": json.dumps(job.parameters, sort_keys=True) if job.parameters is not None else "",
                "findings": " ".join(f"{f.severity.value}:{f.reason_code}" for f in findings),
            }
        )
    return rows


def _blocked(plan: MigrationPlan, hint: str = "") -> bool:
    blocking = plan.blocking()
    if blocking:
        err_console.print(
            f"{len(blocking)} blocker finding(s) not acknowledged: {', '.join(f.key for f in blocking)}. "
            "Resolve them, or after review add them to `acknowledged_findings` in the tenant settings." + hint,
            markup=False,
        )
    return bool(blocking)


@handle_errors
def plan(
    from_file: FromFile = None,
    json_output: JsonFlag = False,
    format_: FormatOption = None,
    tenant_file: TenantFile = None,
) -> None:
    """Translate the dbt Cloud jobs into one deployment with a schedule per job, and list the findings.

    Exits 1 when a blocker finding is not acknowledged in the tenant settings. `--format markdown|csv` writes one
    row per job (findings as reason codes); `json` the whole plan.
    """
    chosen = output_format(format_, json_output)
    with workspace_from(tenant_file) as workspace:
        migration_plan = workspace.plan(from_file)
    if chosen == "json":
        typer.echo(json.dumps(migration_plan.to_json_dict(), indent=2, sort_keys=True))
    elif chosen == "table":
        _render_plan(migration_plan)
    else:
        typer.echo(render_rows(_plan_rows(migration_plan), chosen), nl=False)
    if _blocked(migration_plan):
        raise typer.Exit(1)


def _render_diff(diff: ApplyDiff) -> None:
    title = f"Deployment {diff.deployment.name}: {diff.deployment.status}"
    if diff.automations_only:
        title = f"Notification automations of deployment {diff.deployment.name}"
    table = Table(title=title)
    for column in ("schedule / automation", "change", "fields / reason", "active"):
        table.add_column(column)
    for change in [*diff.schedules, *diff.triggers, *diff.notifications, *diff.guard_triggers]:
        active = "-" if change.active is None else str(change.active).lower()
        why = ", ".join([*change.fields, *([change.reason] if change.reason else [])])
        table.add_row(escape(change.slug), change.status, escape(why), active)
    console.print(table)
    if diff.guard is not None:
        fields = f" ({', '.join(diff.guard.fields)})" if diff.guard.fields else ""
        console.print(f"Guard deployment {escape(diff.guard.name)}: {diff.guard.status}{escape(fields)}")


@handle_errors
def apply(
    from_file: FromFile = None,
    activate: Annotated[
        bool,
        typer.Option(help="Create new schedules active (default: as the cutover ledger says, so off until cutover)."),
    ] = False,
    prune: Annotated[bool, typer.Option(help="Delete job-<id> schedules whose job left the plan.")] = False,
    create_pool: Annotated[
        bool, typer.Option(help="Create the work pool (of the tenant's runtime.pool_type) if it does not exist.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Show the diff only.")] = False,
    automations_only: Annotated[
        bool,
        typer.Option(
            "--automations-only",
            help="Only the notification automations and the guard's deployment and triggers: after `prefect "
            "deploy` of the emitted prefect.yaml, which does not carry them.",
        ),
    ] = False,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Create or update the deployment, its code storage and its schedules (matched by the job id in their slug) through the Prefect API.

    New schedules start as the cutover ledger says (off until cutover); existing schedules keep their active flag;
    a schedule whose slug names its job otherwise (the job was renamed) is renamed in place; a job's second
    schedule (left by `prefect deploy` beside an older slug of the job) is removed, so each job has one; schedules
    without a job-<id> slug are never touched. With --automations-only, only the notification
    automations (the part of the deployment that `prefect deploy` of the emitted file does not create).

    What is written is exactly the diff shown: when the Prefect API changes between showing it and writing it
    (another apply, a cutover, a change by hand), apply names what changed and exits 2 without writing anything.
    """
    with workspace_from(tenant_file) as workspace:
        migration_plan = workspace.plan(from_file)
        if _blocked(migration_plan):
            raise typer.Exit(1)
        spec = workspace.deployment(migration_plan, activate=activate)
        preview = workspace.apply(spec, prune=prune, dry_run=True, automations_only=automations_only)
        if not json_output:
            _render_diff(preview)
        if dry_run or not preview.has_changes:
            if json_output:
                typer.echo(preview.model_dump_json(indent=2))
            else:
                console.print("Nothing to change." if not preview.has_changes else "Dry run: nothing written.")
            return
        # What is written is the diff shown: refused (nothing written) if the Prefect API changed meanwhile.
        result = workspace.apply(
            spec, prune=prune, create_pool=create_pool, automations_only=automations_only, shown=preview
        )
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
        return
    parts = {"schedules": result.schedules, "triggers": result.triggers, "notifications": result.notifications}
    if result.guard is not None:
        parts["guard triggers"] = result.guard_triggers
    if result.automations_only:
        parts = {"notifications": result.notifications}
        if result.guard is not None:
            parts["guard triggers"] = result.guard_triggers
    summary = "; ".join(
        f"{what} "
        + ", ".join(f"{sum(1 for c in changes if c.status == s)} {s}" for s in ("added", "changed", "removed"))
        for what, changes in parts.items()
    )
    done = "" if result.automations_only else f"deployment {result.deployment.status}; "
    if result.guard is not None:
        done += f"guard deployment {result.guard.status}; "
    console.print(f"Applied: {done}{summary}.")
    if not activate:
        console.print("New schedules and automations are inactive until cutover (the ledger's flag).")
    console.print(f"Runs need a worker polling work pool {spec.work_pool!r} (see README, 'Run it on Prefect Cloud').")


@handle_errors
def emit(
    from_file: FromFile = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Default: tenants/<tenant>.prefect.yaml.")
    ] = None,
    activate: Annotated[
        bool, typer.Option(help="Write every schedule active (default: as the cutover ledger says).")
    ] = False,
    allow_blockers: Annotated[
        bool,
        typer.Option(
            "--allow-blockers",
            help="Write the file although blocker findings are not acknowledged (they are still listed).",
        ),
    ] = False,
    ci_workflow: Annotated[
        Path | None,
        typer.Option(
            "--ci-workflow",
            help="GitHub Actions workflow for the CI and merge jobs. Default: <tenant>.dbt-ci.yml next to --output.",
        ),
    ] = None,
    example: Annotated[
        bool,
        typer.Option(
            "--example",
            help="Write the files although [tenant.code_storage] repository is the shipped placeholder "
            "(an example to read: it cannot be deployed).",
        ),
    ] = False,
    tenant_file: TenantFile = None,
) -> None:
    """Write prefect.yaml for the deployment and print the closest `uvx prefect-cloud deploy` line.

    The dbt Cloud CI and merge jobs go into a GitHub Actions workflow (each job's own commands with `--defer
    --state` on the latest successful run in the artifact store, a schema per pull request), written to
    --ci-workflow. Both files' headers name the command that regenerates them, with the inventory used.

    Each schedule's `active` is the cutover ledger's, so `prefect deploy` of the file never changes who runs a job.
    Like `plan` and `apply`, exits 1 without writing anything when a blocker finding is not acknowledged in the
    tenant settings, unless --allow-blockers. Like `apply`, exits 2 without writing anything while
    [tenant.code_storage] repository is the shipped OWNER/REPO placeholder, unless --example.
    """
    from migration.ci_workflow import workflow_file_name
    from migration.emit import check_outputs, emit_command

    with workspace_from(tenant_file) as workspace:
        tenant = workspace.tenant
        migration_plan = workspace.plan(from_file)
        target = output or REPO_ROOT / "tenants" / f"{tenant.name}.prefect.yaml"
        workflow_target = ci_workflow or target.with_name(workflow_file_name(tenant.name))
        outputs = {"--output": target, **({"--ci-workflow": workflow_target} if migration_plan.ci_jobs else {})}
        inputs = {"the tenant settings file": tenant.settings_file, "the inventory (--from-file)": from_file}
        check_outputs(outputs, inputs)
        hint = "" if allow_blockers else " Nothing was written (--allow-blockers writes the file anyway)."
        if _blocked(migration_plan, hint) and not allow_blockers:
            raise typer.Exit(1)
        spec = workspace.deployment(migration_plan, activate=activate)
        source = emit_command(from_file, tenant_file, allow_blockers=allow_blockers, activate=activate, example=example)
        emitted = workspace.emit(
            migration_plan,
            spec,
            output=target,
            ci_workflow=workflow_target,
            source=source,
            tenant_file=tenant_file,
            example=example,
        )
    path = emitted.prefect_yaml
    on = sum(1 for s in spec.schedules if s.active)
    console.print(f"Wrote {path} ({len(spec.schedules)} schedule(s), {on} active as the ledger says).")
    if emitted.ci_workflow is not None:
        console.print(
            f"Wrote {emitted.ci_workflow} ({len(migration_plan.ci_jobs)} CI/merge job(s)); copy it to "
            ".github/workflows/ and add the repository secrets its header names."
        )
    console.print(f"Deploy it with: prefect deploy --prefect-file {path} --all")
    if spec.notifications:
        console.print(
            f"Then create its {len(spec.notifications)} notification automation(s), which prefect.yaml cannot "
            "carry (it holds only triggers that run the deployment): dbt2prefect apply --automations-only"
            + (f" --tenant-file {tenant_file}" if tenant_file else "")
        )
    quickstart = emitted.quickstart
    if quickstart is None:
        return
    console.print("Quickstart equivalent on Prefect Cloud (no schedules, the workspace's first managed pool):")
    console.print(quickstart, markup=False, soft_wrap=True)
    err_console.print(
        "[yellow]warning:[/] prefect-cloud deploys to the first managed work pool it finds (not necessarily "
        f"{spec.work_pool!r}); a private repository needs `--credentials <GitHub token>`. `prefect-cloud schedule` "
        "deletes ALL schedules of the deployment before adding one (in your local timezone): apply schedules from "
        "this prefect.yaml (`prefect deploy`) or with `dbt2prefect apply`."
    )
