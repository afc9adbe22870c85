"""`dbt2prefect doctor`: is dbt Cloud, Prefect, every target's warehouse and the stores ready? Exit 0 yes, 1 no."""

from __future__ import annotations

import typer
from rich.markup import escape

from cli.common import JsonFlag, TenantFile, console, handle_errors, workspace_from

_MARK = {"ok": "[green]ok[/]  ", "fail": "[bold red]FAIL[/]", "skipped": "[dim]skip[/]"}


def register(app: typer.Typer) -> None:
    app.command(
        "doctor",
        short_help="Check that dbt Cloud, Prefect, the profile and notification blocks, the artifact store and "
        "the ledger answer.",
    )(doctor)


@handle_errors
def doctor(json_output: JsonFlag = False, tenant_file: TenantFile = None) -> None:
    """Check dbt Cloud (host, token, account), Prefect (API, work pool, a worker polling it), the profile block of
    every target (its warehouse answers `select 1`), each notification block of [tenant.notifications] (it exists
    and can notify), and that the artifact store and the ledger are writable.

    Each failure comes with a one-line fix. Exits 0 when nothing fails, 1 otherwise.
    """
    with workspace_from(tenant_file) as workspace:
        report = workspace.doctor()
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
    else:
        for check in report.checks:
            console.print(f"{_MARK[check.status.value]} {escape(check.name)}: {escape(check.detail)}", highlight=False)
            if check.fix:
                console.print(f"      fix: {escape(check.fix)}", highlight=False)
        failed = sum(1 for c in report.checks if c.status.value == "fail")
        console.print(f"{failed} check(s) failed." if failed else "All checks passed.")
    raise typer.Exit(0 if report.ok else 1)
