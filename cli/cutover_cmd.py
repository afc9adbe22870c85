"""`dbt2prefect cutover | rollback | status`: switch jobs from dbt Cloud to Prefect and back, with a ledger."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from cli.common import (
    FormatOption,
    JsonFlag,
    ParityDir,
    TenantFile,
    console,
    err_console,
    handle_errors,
    output_format,
    render_rows,
    workspace_from,
)

if TYPE_CHECKING:
    from migration.status import JobStatusRow, StatusReport
    from migration.switch_context import SwitchReport

JobOption = Annotated[
    list[int] | None,
    typer.Option(
        "--job",
        min=1,
        metavar="<job-id>",
        help="dbt Cloud job id (repeat); --all for every job with a schedule in the plan.",
    ),
]
LedgerUrl = Annotated[
    str | None,
    typer.Option(
        "--ledger-url",
        envvar="DBT2PREFECT_LEDGER_URL",
        help="Ledger folder or fsspec URL (default: tenant ledger_url).",
    ),
]
STATUS_NOT_RUNNING_ONCE = 4
"""`status` exit code: a job runs nowhere or twice, has two schedules, or a switch of it is unfinished (1: other disagreements; 2 and
3 are bad input and a failed service, as for every command)."""

AllJobs = Annotated[bool, typer.Option("--all", help="Cut over every job with a schedule in the plan.")]
DryRun = Annotated[
    bool,
    typer.Option("--dry-run", help="Print what would be switched, per job, and change nothing (no ledger record)."),
]
By = Annotated[str | None, typer.Option("--by", help="Who runs this, for the ledger (default: the OS user).")]


def register(app: typer.Typer) -> None:
    app.command("cutover")(cutover)
    app.command("rollback")(rollback)
    app.command("status")(status)


def _render(report: SwitchReport) -> None:
    if report.dry_run:
        _render_dry_run(report)
        return
    table = Table(title=f"{report.operation.capitalize()}")
    for column in ("job", "name", "action", "ledger state", "read-back"):
        table.add_column(column, overflow="fold")
    for job in report.jobs:
        check = (
            "-" if job.verification is None else ("ok" if job.verification.ok else "; ".join(job.verification.problems))
        )
        table.add_row(str(job.job_id), escape(job.job_name), job.action, job.state.value, escape(check))
    console.print(table)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def _render_dry_run(report: SwitchReport) -> None:
    """Per job, what the command would switch, one line per change (wrapped between words at any width)."""
    console.print(Text(f"{report.operation.capitalize()} dry run: nothing changed.", style="bold"))
    for job in report.jobs:
        console.print()
        head = Text.assemble(("job " + str(job.job_id), "bold"), f"  {job.job_name}: {job.action}")
        console.print(head.append(f" (ledger: {job.state.value})"))
        for change in job.changes:
            console.print(Padding(Text(change), (0, 0, 0, 4), expand=False))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


@handle_errors
def cutover(
    job: JobOption = None,
    all_jobs: AllJobs = False,
    dry_run: DryRun = False,
    force: Annotated[
        bool, typer.Option("--force", help="Cut over without a PASS parity verdict or shadow streak.")
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why --force; recorded in the ledger.")] = None,
    by: By = None,
    report_dir: ParityDir = None,
    ledger_url: LedgerUrl = None,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Turn dbt Cloud schedule triggers off and the jobs' Prefect schedules on, ledger entry first.

    Name the jobs with --job (repeat), or pass --all for every job with a schedule in the plan; neither, or
    both, is bad input (exit 2). Refuses (exit 1, nothing changed) unless each job's latest parity verdict is
    PASS (a job with shadow pairs: K consecutive PASS pairs over at least D days, [tenant.shadow]) and its
    schedule is applied as planned. Rerun after any failure: finished steps are not repeated.
    --dry-run checks the same and prints, per job, what would be switched (dbt Cloud schedule, Prefect
    schedule, automations, ledger records) without changing anything.
    """
    from migration.cutover import CutoverRequest
    from migration.errors import CutoverRequestError

    if bool(job) == all_jobs:
        raise CutoverRequestError(
            "cutover needs the jobs to switch: pass --job N (repeat it for several jobs), or --all for every job "
            "with a schedule in the plan"
            if not job
            else "pass either --job or --all, not both"
        )
    CutoverRequest(job_ids=tuple(job or ()), force=force, reason=reason)  # bad input: before the tenant is read
    with workspace_from(tenant_file, ledger_url=ledger_url, report_dir=report_dir) as workspace:
        report = workspace.cutover(job or (), force=force, reason=reason, by=by, dry_run=dry_run)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _render(report)


@handle_errors
def rollback(
    job: Annotated[
        list[int] | None,
        typer.Option(
            "--job", min=1, metavar="<job-id>", help="dbt Cloud job id (repeat); default: every job in the ledger."
        ),
    ] = None,
    dry_run: DryRun = False,
    by: By = None,
    ledger_url: LedgerUrl = None,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Pause the jobs' Prefect schedules and restore their dbt Cloud definitions exactly as the ledger recorded.

    --dry-run prints, per job, what would be switched (Prefect schedule, automations, dbt Cloud job, ledger
    records) without changing anything.
    """
    with workspace_from(tenant_file, ledger_url=ledger_url) as workspace:
        report = workspace.rollback(job or (), by=by, dry_run=dry_run)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _render(report)


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


@handle_errors
def status(
    report_dir: ParityDir = None,
    ledger_url: LedgerUrl = None,
    json_output: JsonFlag = False,
    format_: FormatOption = None,
    tenant_file: TenantFile = None,
) -> None:
    """Per job: where it runs, next run, both schedules and last runs, automations, parity, shadow, ledger state.

    "runs on" is dbt Cloud, Prefect, both or nowhere (its own schedule, or for a chained job its trigger after the
    job it runs after); its notification automations and chained-job trigger are on, off or missing on Prefect.
    "shadow" (shown once a job has shadow pairs) is its streak of consecutive PASS pairs and the days it covers,
    against what cutover needs ([tenant.shadow] required_passes and required_days), e.g. "2/3 PASS, 0.4/1 days".
    The table becomes one block per job when it would not fit the terminal (COLUMNS).

    Exit codes: 4 when a job runs nowhere or on both sides, has more than one schedule on Prefect (`apply` removes
    the second), or its cutover or rollback is unfinished (ledger state "in progress"); else 1 when a Prefect schedule's active flag disagrees with the ledger (e.g. after redeploying
    an old file) or a cut-over job's automations are missing or off on Prefect; 3 when dbt Cloud or Prefect cannot
    be read; else 0. Each problem is printed to stderr with its fix. `--format markdown|csv` writes one row per job.
    """
    chosen = output_format(format_, json_output)
    with workspace_from(tenant_file, ledger_url=ledger_url, report_dir=report_dir) as workspace:
        report = workspace.status()
    if chosen == "json":
        typer.echo(report.model_dump_json(indent=2))
    elif chosen == "table":
        _render_status(report)
    else:
        typer.echo(render_rows(_status_rows(report), chosen), nl=False)
    if chosen != "json":
        for row in report.jobs:
            for problem in (row.runs_problem, row.disagreement):
                if problem:
                    err_console.print(f"[bold red]job {row.job_id}:[/] {escape(problem)}", highlight=False)
    if report.not_running_once():
        raise typer.Exit(STATUS_NOT_RUNNING_ONCE)
    if report.disagreements():
        raise typer.Exit(1)


_ON_OFF = {None: "", True: "on", False: "off"}


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def _status_rows(report: StatusReport) -> list[dict[str, object]]:
    """One row per job, one field per column (times in ISO 8601, empty when unknown), for spreadsheets."""
    rows: list[dict[str, object]] = []
    for row in report.jobs:
        cloud_run, prefect_run = row.dbt_cloud_last_run, row.prefect_last_run
        rows.append(
            {
                "job_id": row.job_id,
                "job_name": row.job_name,
                "dbt_cloud_schedule": _ON_OFF[row.dbt_cloud_schedule_on],
                "prefect_schedule": row.prefect_schedule,
                "parity": row.parity_verdict or "",
                "parity_time": _iso(row.parity_time),
                "dbt_cloud_last_run": cloud_run.status if cloud_run else "",
                "dbt_cloud_last_run_time": _iso(cloud_run.finished_at or cloud_run.created_at) if cloud_run else "",
                "prefect_last_run": (prefect_run.state or "?") if prefect_run else "",
                "prefect_last_run_time": _iso(prefect_run.start_time) if prefect_run else "",
                "ledger": row.ledger_state.value,
                "ledger_updated": _iso(row.ledger_updated),
                "runs_on": row.runs_on or "",
                "triggered_by": row.triggered_by or "",
                "trigger": row.trigger or "",
                "automations": row.automations or "",
                "guard": row.guard or "",
                "next_run": _iso(row.next_run),
                "shadow": row.readiness.summary() if row.readiness else "",
                "shadow_ready": ("yes" if row.readiness.ready else "no") if row.readiness else "",
                "runs_problem": row.runs_problem or "",
                "disagreement": row.disagreement or "",
            }
        )
    return rows


def _last_cloud(row: JobStatusRow) -> str:
    run = row.dbt_cloud_last_run
    return "-" if run is None else f"{run.status} {_when(run.finished_at or run.created_at)}"


def _last_prefect(row: JobStatusRow) -> str:
    run = row.prefect_last_run
    return "-" if run is None else f"{run.state or '?'} {_when(run.start_time)}"


_RUNS_ON_STYLE = {"both": "bold red", "nowhere": "bold red", "Prefect": "green"}


def _runs_on(row: JobStatusRow) -> Text:
    """Where the job runs, e.g. 'Prefect', 'nowhere', 'Prefect (triggered by job 123)', 'on demand'."""
    text = Text(row.runs_on or "on demand", style=_RUNS_ON_STYLE.get(row.runs_on or "", ""))
    if row.triggered_by is not None:
        how = "chained to" if row.runs_on == "nowhere" else "triggered by"
        text.append(f" ({how} job {row.triggered_by})")
    return text


def _automations(row: JobStatusRow) -> str:
    parts = []
    if row.trigger is not None:
        parts.append(f"trigger {row.trigger}")
    if row.automations is not None:
        parts.append(f"alerts {row.automations}")
    if row.guard is not None:
        parts.append(f"guard {row.guard}")
    return ", ".join(parts) or "-"


def _shadow(row: JobStatusRow) -> Text:
    """The job's shadow streak against what cutover needs, e.g. '2/3 PASS, 0.4/1 days (last FAIL run 123)'."""
    readiness = row.readiness
    if readiness is None:
        return Text("-")
    text = Text(readiness.summary(), style="green" if readiness.ready else "")
    if readiness.ready:
        text.append(" ready")
    elif readiness.last_fail is not None:
        text.append(f" (last FAIL run {readiness.last_fail.dbt_cloud_run_id})", style="red")
    return text


def _status_fields(row: JobStatusRow, shadow: bool = False) -> list[tuple[str, Text | str]]:
    """One job's fields, label -> value, as the table's columns and the blocks' lines show them (`shadow`: with
    the shadow streak, when any job is in the parallel-run period)."""
    cloud = _ON_OFF[row.dbt_cloud_schedule_on] or "-"
    parity = "-" if row.parity_verdict is None else f"{row.parity_verdict} {_when(row.parity_time)}"
    ledger = row.ledger_state.value + ("" if row.ledger_updated is None else f" {_when(row.ledger_updated)}")
    return [
        ("runs on", _runs_on(row)),
        ("next run", _when(row.next_run)),
        ("dbt Cloud", f"schedule {cloud}, last run {_last_cloud(row)}"),
        ("Prefect", f"schedule {row.prefect_schedule}, last run {_last_prefect(row)}"),
        ("automations", _automations(row)),
        ("parity", parity),
        *([("shadow", _shadow(row))] if shadow else []),
        ("ledger", ledger),
    ]


def _shadowing(report: StatusReport) -> bool:
    return any(row.readiness is not None for row in report.jobs)


def _status_table(report: StatusReport) -> Table:
    table = Table(title=f"{report.tenant}: {report.deployment} (ledger {report.ledger}; times in UTC)", show_lines=True)
    table.add_column("job", overflow="fold")
    shadow = _shadowing(report)
    for label, _ in _status_fields(report.jobs[0], shadow) if report.jobs else []:
        table.add_column(label, overflow="fold")
    for row in report.jobs:
        table.add_row(Text(f"{row.job_id}\n{row.job_name}"), *(value for _, value in _status_fields(row, shadow)))
    return table


def _render_status(report: StatusReport) -> None:
    """A table when it fits the terminal without breaking a word (ids included), else one block per job."""
    table = _status_table(report)
    # Measured without the terminal's limit: the narrowest the table can be without folding a word.
    if Measurement.get(console, console.options.update_width(10_000), table).minimum <= console.width:
        console.print(table)
        return
    console.print(Text(f"{report.tenant}: {report.deployment}", style="bold"))
    console.print(Text(f"ledger {report.ledger}; times in UTC"))
    for row in report.jobs:
        console.print()
        console.print(Text.assemble((str(row.job_id), "bold"), "  ", row.job_name))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for label, value in _status_fields(row, _shadowing(report)):
            grid.add_row(label, value)
        console.print(Padding(grid, (0, 0, 0, 2), expand=False))
