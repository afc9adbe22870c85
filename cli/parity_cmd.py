"""`dbt2prefect parity`: compare dbt Cloud baselines with Prefect runs; exit 0 PASS, 1 FAIL, 2 bad input."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

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
from dbt2prefect.errors import ParameterError
from dbt2prefect.params import ProfilesStrategy
from parity.model import ParityReport
from parity.render import what_to_do


def register(app: typer.Typer) -> None:
    app.command("parity")(parity)


def parse_candidate_runs(values: list[str]) -> dict[int, str]:
    """`JOB=FLOW_RUN_ID` pairs -> {job id: flow-run id}."""
    runs: dict[int, str] = {}
    for value in values:
        job, sep, run = value.partition("=")
        if not sep or not job.strip().isdigit() or not run.strip():
            raise ParameterError(
                f"--candidate-run {value!r}: expected JOB_ID=FLOW_RUN_ID or JOB_ID=latest, e.g. 70403103936332=3f2a..."
            )
        runs[int(job)] = run.strip()
    return runs


@handle_errors
def parity(
    job: Annotated[
        list[int] | None,
        typer.Option("--job", metavar="<job-id>", help="dbt Cloud job id (repeat); default all scheduled jobs."),
    ] = None,
    candidate_run: Annotated[
        list[str] | None,
        typer.Option(
            "--candidate-run",
            metavar="<job=run-id>",
            help="JOB=FLOW_RUN_ID of an existing run_dbt_wg run on the parity target, or JOB=latest for the "
            "job's last stored run there (repeat).",
        ),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Learn the build noise instead: compare each job's run on the parity target (--candidate-run or a "
            "new one) with a new run on [parity] calibration_target, same code; print the settings lines that leave "
            "the noise out. The report goes to <report dir>/calibration and never counts as a parity verdict.",
        ),
    ] = False,
    report_dir: ParityDir = None,
    profiles_strategy: Annotated[
        ProfilesStrategy,
        typer.Option("--profiles-strategy", help="Warehouse connections from blocks or local profiles."),
    ] = "blocks",
    dbt_cloud_host: Annotated[str | None, typer.Option(help="dbt Cloud host (default: tenant setting).")] = None,
    account_id: Annotated[int | None, typer.Option(help="dbt Cloud account id (default: tenant setting).")] = None,
    json_output: JsonFlag = False,
    format_: FormatOption = None,
    tenant_file: TenantFile = None,
) -> None:
    """Prove each migrated job builds the same nodes, statuses, row counts and values under Prefect as in dbt Cloud.

    Jobs without --candidate-run get a run_dbt_wg run on the parity target first (needs a Prefect API).
    `--format markdown|csv` writes one row per job with its counts of differences.
    """
    from flows.parity_flow import start_candidate

    chosen = output_format(format_, json_output)
    runs = parse_candidate_runs(candidate_run or [])
    with workspace_from(
        tenant_file, report_dir=report_dir, dbt_cloud_host=dbt_cloud_host, dbt_cloud_account_id=account_id
    ) as workspace:
        tenant = workspace.tenant
        report = workspace.parity_report(
            job or None, runs, profiles_strategy, start_candidate=start_candidate, calibrate=calibrate
        )
        # A calibration compares two candidate runs: its verdict must never become a job's parity verdict for cutover.
        folder = workspace.write_parity_report(report, calibration=calibrate)
    if chosen == "json":
        typer.echo(report.model_dump_json(indent=2))
    elif chosen == "table":
        _render_table(report, tenant.name)
        for item in report.jobs:
            if item.calibration is not None and item.calibration.entries:
                console.print(f"Job {item.job_id}: add to {tenant.name}.parity.toml:", markup=False)
                console.print(item.calibration.settings_lines(), markup=False, highlight=False)
        console.print(f"Report: {folder}/report.html", markup=False)
    else:
        typer.echo(render_rows(_parity_rows(report), chosen), nl=False)
        err_console.print(f"Report: {folder}/report.html", markup=False)
    raise typer.Exit(0 if report.verdict.value == "PASS" else 1)


def _parity_rows(report: ParityReport) -> list[dict[str, object]]:
    """One row per job: its verdict and how many differences of each kind the report holds."""
    return [
        {
            "job_id": item.job_id,
            "job_name": item.job_name,
            "verdict": item.verdict.value,
            "errors": len(item.errors()),
            "node_set_diffs": len(item.node_sets),
            "status_diffs": len(item.statuses),
            "row_counts_off": sum(1 for r in item.row_counts if r.status.value != "equal"),
            "values_differ": sum(1 for r in item.value_checks if r.status.value == "different"),
        }
        for item in report.jobs
    ]


def _render_table(report: ParityReport, tenant: str) -> None:
    """The same rows as --format csv, as a table, then the first errors of each job."""
    table = Table(title=escape(f"Parity {tenant}: {report.verdict.value}"))
    rows = _parity_rows(report)
    for column in rows[0] if rows else ("job_id",):
        table.add_column(column.replace("_", " "))
    for row in rows:
        colour = "green" if row["verdict"] == "PASS" else "red"
        cells = [escape(str(value)) for value in row.values()]
        cells[2] = f"[{colour}]{cells[2]}[/]"
        table.add_row(*cells)
    console.print(table)
    for item in report.jobs:
        for finding in item.errors()[:10]:
            console.print(
                f"  job {item.job_id} [red]{escape(str(finding.reason))}[/] {escape(finding.message)}",
                highlight=False,
            )
            console.print(f"    what to do: {escape(what_to_do(finding))}", highlight=False)
