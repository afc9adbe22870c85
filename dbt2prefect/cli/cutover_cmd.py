"""`dbt2prefect cutover | rollback | status`: switch jobs from dbt Cloud to Prefect and back, with a ledger."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dbt2prefect.cli.common import (
    FormatOption,
    JsonFlag,
    ParityDir,
    TenantFile,
    console,
    err_console,
    handle_errors,
    output_format,
    render_rows,
    tenant_from,
)
from dbt2prefect.tenant import TenantSettings
from migration.plan import MigrationPlan
from parity.model import Verdict

if TYPE_CHECKING:
    from migration.dbt_cloud.client import DbtCloudClient
    from migration.dbt_cloud.models import Job
    from migration.ledger import Ledger
    from migration.prefect_switch import PrefectSchedules
    from migration.status import StatusReport
    from migration.switch_context import SwitchReport

JobOption = Annotated[
    list[int] | None,
    typer.Option(
        "--job",
        min=1,
        metavar="<job-id>",
        help="dbt Cloud job id (repeat); default: every job with a schedule in the plan.",
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
By = Annotated[str | None, typer.Option("--by", help="Who runs this, for the ledger (default: the OS user).")]


def register(app: typer.Typer) -> None:
    app.command("cutover")(cutover)
    app.command("rollback")(rollback)
    app.command("status")(status)


@dataclass
class _Session:
    tenant: TenantSettings
    client: DbtCloudClient
    ledger: Ledger
    prefect: PrefectSchedules


@contextmanager
def _session(tenant_file: Path | None, ledger_url: str | None) -> Iterator[_Session]:
    from migration.dbt_cloud.auth import resolve_token
    from migration.dbt_cloud.client import DbtCloudClient
    from migration.dbt_cloud.settings import RetryPolicy
    from migration.ledger import Ledger
    from migration.prefect_switch import PrefectSchedules

    tenant = tenant_from(tenant_file)
    settings = tenant.dbt_cloud
    token, source = resolve_token(settings.token_env, tenant.blocks.dbt_cloud_token_block)
    ledger = Ledger(ledger_url or tenant.ledger_url, tenant.name)
    prefect = PrefectSchedules(f"{tenant.flow_name}/{tenant.deployment_name}")
    retry = RetryPolicy.for_rate_limit_minutes(settings.rate_limit_minutes)
    with DbtCloudClient(settings.host, settings.account_id, token, token_source=source, retry=retry) as client:
        yield _Session(tenant, client, ledger, prefect)


def _plan(session: _Session) -> tuple[list[Job], MigrationPlan]:
    """Every job of the account and the plan, with cut-over jobs taken as the ledger recorded them."""
    from migration.cutover import jobs_as_planned
    from migration.export import export_inventory
    from migration.translate import plan_inventory

    inventory = export_inventory(session.client, project_id=session.tenant.dbt_cloud.project_id, include_deleted=True)
    jobs = inventory.job_models()
    return jobs, plan_inventory(inventory, session.tenant, jobs_as_planned(jobs, session.ledger))


def _verdicts(report_dir: Path | None) -> dict[int, tuple[Verdict, datetime]]:
    from parity.store import DEFAULT_REPORT_ROOT, load_latest_verdicts

    return dict(load_latest_verdicts(report_dir or DEFAULT_REPORT_ROOT))


def _render(report: SwitchReport) -> None:
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


@handle_errors
def cutover(
    job: JobOption = None,
    force: Annotated[bool, typer.Option("--force", help="Cut over without a PASS parity verdict.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why --force; recorded in the ledger.")] = None,
    by: By = None,
    report_dir: ParityDir = None,
    ledger_url: LedgerUrl = None,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Turn dbt Cloud schedule triggers off and the jobs' Prefect schedules on, ledger entry first.

    Refuses (exit 1, nothing changed) unless each job's latest parity verdict is PASS and its schedule is
    applied as planned. Rerun after any failure: finished steps are not repeated.
    """
    from migration.cutover import CutoverRequest
    from migration.cutover import cutover as run_cutover
    from migration.switch_context import SwitchContext

    request = CutoverRequest(job_ids=tuple(job or ()), force=force, reason=reason)  # bad input: before any call
    with _session(tenant_file, ledger_url) as session:
        jobs, plan = _plan(session)
        ctx = SwitchContext(
            session.tenant.name, session.client, session.prefect, session.ledger, by or getpass.getuser()
        )
        report = run_cutover(plan, jobs, _verdicts(report_dir), ctx, request)
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
    by: By = None,
    ledger_url: LedgerUrl = None,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Pause the jobs' Prefect schedules and restore their dbt Cloud definitions exactly as the ledger recorded."""
    from migration.rollback import rollback as run_rollback
    from migration.switch_context import SwitchContext

    with _session(tenant_file, ledger_url) as session:
        ctx = SwitchContext(
            session.tenant.name, session.client, session.prefect, session.ledger, by or getpass.getuser()
        )
        report = run_rollback(tuple(job or ()), ctx)
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
    """Per job: dbt Cloud schedule on/off, Prefect schedule, parity verdict, last run on each side, ledger state.

    Exits 1 when a Prefect schedule's active flag disagrees with the ledger (e.g. after redeploying an old file),
    or a cut-over job's automations (notifications, chained jobs' triggers) are missing or off on Prefect.
    `--format markdown|csv` writes one row per job.
    """
    from migration.prefect_switch import PrefectTriggers
    from migration.status import collect_status

    chosen = output_format(format_, json_output)
    with _session(tenant_file, ledger_url) as session:
        _, plan = _plan(session)
        automations = PrefectTriggers(session.prefect.deployment).read_all()
        report = collect_status(
            plan, session.client, session.prefect, session.ledger, _verdicts(report_dir), automations
        )
    if chosen == "json":
        typer.echo(report.model_dump_json(indent=2))
    elif chosen == "table":
        _render_status(report)
    else:
        typer.echo(render_rows(_status_rows(report), chosen), nl=False)
    if chosen != "json":
        for row in report.disagreements():
            err_console.print(f"[bold red]job {row.job_id}:[/] {escape(row.disagreement or '')}", highlight=False)
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
                "disagreement": row.disagreement or "",
            }
        )
    return rows


def _render_status(report: StatusReport) -> None:
    table = Table(title=f"{report.tenant}: {report.deployment} (ledger {report.ledger})")
    for column in (
        "job",
        "dbt Cloud schedule",
        "Prefect schedule",
        "parity",
        "dbt Cloud last run",
        "Prefect last run",
        "ledger",
    ):
        table.add_column(column, overflow="fold")
    for row in report.jobs:
        cloud = "-" if row.dbt_cloud_schedule_on is None else ("[red]on[/]" if row.dbt_cloud_schedule_on else "off")
        prefect = {"active": "[green]active[/]", "paused": "paused"}.get(row.prefect_schedule, row.prefect_schedule)
        parity = "-" if row.parity_verdict is None else f"{row.parity_verdict} {_when(row.parity_time)}"
        last_cloud = (
            "-"
            if row.dbt_cloud_last_run is None
            else f"{row.dbt_cloud_last_run.status} {_when(row.dbt_cloud_last_run.finished_at or row.dbt_cloud_last_run.created_at)}"
        )
        last_prefect = (
            "-"
            if row.prefect_last_run is None
            else f"{row.prefect_last_run.state or '?'} {_when(row.prefect_last_run.start_time)}"
        )
        ledger = row.ledger_state.value + ("" if row.ledger_updated is None else f" {_when(row.ledger_updated)}")
        table.add_row(
            f"{row.job_id}\n{escape(row.job_name)}", cloud, prefect, parity, last_cloud, escape(last_prefect), ledger
        )
    console.print(table)
