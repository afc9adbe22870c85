"""`dbt2prefect parity`: compare dbt Cloud baselines with Prefect runs; exit 0 PASS, 1 FAIL, 2 bad input."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dbt2prefect.cli.common import JsonFlag, ParityDir, TenantFile, console, handle_errors, tenant_from
from dbt2prefect.errors import ParameterError
from dbt2prefect.params import ProfilesStrategy


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
        list[int] | None, typer.Option("--job", help="dbt Cloud job id (repeat); default all scheduled jobs.")
    ] = None,
    candidate_run: Annotated[
        list[str] | None,
        typer.Option(
            "--candidate-run",
            help="JOB=FLOW_RUN_ID of an existing run_dbt_wg run on the parity target, or JOB=latest for the "
            "job's last stored run there (repeat).",
        ),
    ] = None,
    report_dir: ParityDir = None,
    profiles_strategy: Annotated[
        ProfilesStrategy,
        typer.Option("--profiles-strategy", help="Warehouse connections from blocks or local profiles."),
    ] = "blocks",
    dbt_cloud_host: Annotated[str | None, typer.Option(help="dbt Cloud host (default: tenant setting).")] = None,
    account_id: Annotated[int | None, typer.Option(help="dbt Cloud account id (default: tenant setting).")] = None,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Prove each migrated job builds the same nodes, statuses, row counts and values under Prefect as in dbt Cloud.

    Jobs without --candidate-run get a run_dbt_wg run on the parity target first (needs a Prefect API).
    """
    from flows.parity_flow import build_report
    from parity.store import DEFAULT_REPORT_ROOT, write_report

    runs = parse_candidate_runs(candidate_run or [])
    tenant = tenant_from(tenant_file)
    report = build_report(
        tenant,
        job or None,
        runs,
        profiles_strategy,
        dbt_cloud_host,
        account_id,
    )
    folder = write_report(report, report_dir or DEFAULT_REPORT_ROOT)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        table = Table(title=escape(f"Parity {tenant.name}: {report.verdict.value}"))
        columns = (
            "job",
            "name",
            "verdict",
            "errors",
            "node-set diffs",
            "status diffs",
            "row counts off",
            "values differ",
        )
        for column in columns:
            table.add_column(column)
        for item in report.jobs:
            off = sum(1 for r in item.row_counts if r.status.value != "equal")
            differ = sum(1 for r in item.value_checks if r.status.value == "different")
            colour = "green" if item.verdict.value == "PASS" else "red"
            table.add_row(
                str(item.job_id),
                escape(item.job_name),
                f"[{colour}]{item.verdict.value}[/]",
                str(len(item.errors())),
                str(len(item.node_sets)),
                str(len(item.statuses)),
                str(off),
                str(differ),
            )
        console.print(table)
        for item in report.jobs:
            for finding in item.errors()[:10]:
                console.print(
                    f"  job {item.job_id} [red]{escape(str(finding.reason))}[/] {escape(finding.message)}",
                    highlight=False,
                )
        console.print(f"Report: {folder / 'report.html'}", markup=False)
    raise typer.Exit(0 if report.verdict.value == "PASS" else 1)
