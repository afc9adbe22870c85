"""`dbt2prefect demo`: the whole migration rehearsed on the sandbox, one line per step."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.status import Status

from cli.common import TenantFile, console, err_console, handle_errors, terminate_as_interrupt

if TYPE_CHECKING:
    from migration.plan import MigrationPlan
    from sandbox.demo import DemoResult, StepResult


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@contextlib.contextmanager
def _quiet_prefect_console(level: int = logging.ERROR) -> Iterator[None]:
    """Prefect's console log lines would bury the step lines; its API log handler (the UI's logs) is untouched."""
    import prefect.main  # noqa: F401  (configures Prefect's logging, as the first flow run would)
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [
        logging.getLogger(),
        *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)),
    ]
    handlers = {h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)}
    saved = {h: h.level for h in handlers}
    for handler in handlers:
        handler.setLevel(level)
    try:
        yield
    finally:
        for handler, previous in saved.items():
            handler.setLevel(previous)


def _render_plan_brief(plan: MigrationPlan) -> None:
    """The plan in the demo's flow of steps: a line per job (how it runs) and the findings counted by reason; the
    whole plan, each finding with its manual step, is what `dbt2prefect plan` prints."""
    schedules = {s.slug: s for s in plan.schedules}
    for job in plan.jobs:
        schedule = schedules.get(job.schedule_slug or "")
        if schedule is not None:
            how = f"schedule {schedule.slug}, {schedule.description}"
        elif job.trigger_name is not None:
            how = f"trigger {job.trigger_name}"
        else:
            how = str(job.status).replace("_", " ")  # blocked, not migrated, on demand, ci workflow
        console.print(f"       job {job.job_id} {escape(job.job_name)}: {escape(how)}", highlight=False, soft_wrap=True)
    if plan.findings:
        by_reason = Counter(f"{f.severity.value} {f.reason_code}" for f in plan.findings)
        counted = ", ".join(
            f"{reason} x{count}" if count > 1 else reason for reason, count in sorted(by_reason.items())
        )
        console.print(
            f"       findings: {escape(counted)} (`dbt2prefect plan` lists each with its manual step)",
            highlight=False,
            soft_wrap=True,
        )


class _Screen:
    """Renders the demo's progress: a spinner while a step runs, then one line (and a line per planned job)."""

    def __init__(self) -> None:
        self._status: Status | None = None
        self._number = 0

    def started(self, key: str, title: str) -> None:
        self._number += 1
        self._status = console.status(f"{self._number:>2}. {escape(title)} ...")
        self._status.start()

    def stop(self) -> None:
        """Stop the spinner (a step ended, or the demo was interrupted)."""
        if self._status is not None:
            self._status.stop()
            self._status = None

    def finished(self, result: StepResult) -> None:
        from sandbox.demo import StepStatus

        self.stop()
        mark = "[green]✓[/]" if result.status is StepStatus.OK else "[bold red]✗[/]"
        console.print(
            f"{mark} {self._number:>2}. [bold]{escape(result.title)}[/] ({result.seconds:.1f} s): {escape(result.summary)}",
            highlight=False,
            soft_wrap=True,
        )
        if result.key == "plan" and result.value is not None:
            _render_plan_brief(result.value)
        if result.key in ("candidates", "scheduled_run", "chained_run") and result.value is not None:
            runs = result.value if isinstance(result.value, list) else [result.value]
            if result.key == "chained_run":
                runs = [run for chain in runs for run in (chain.upstream, chain.run)]
            for run in runs:
                console.print(
                    f"       job {run.job_id}: {run.run.state} in the Prefect UI: {run.ui_url}",
                    highlight=False,
                    soft_wrap=True,
                )
        if result.key == "shadow_runs" and result.value is not None:
            for shadowed in result.value:
                console.print(
                    f"       dbt Cloud run {shadowed.dbt_cloud_run_id}: shadow run {shadowed.shadow_run.run.name} "
                    f"{shadowed.shadow_run.run.state}, pair {shadowed.pair.verdict.value}: {shadowed.shadow_run.ui_url}",
                    highlight=False,
                    soft_wrap=True,
                )


def _render_end(result: DemoResult) -> None:
    failed = result.failed
    if failed is not None:
        err_console.print(
            f"[bold red]demo failed[/] at step '{escape(failed.title)}' ({failed.key}) after {result.seconds:.0f} s",
            highlight=False,
        )
        return
    console.print(f"[bold green]demo passed[/]: {len(result.steps)} steps in {result.seconds:.0f} s", highlight=False)


@handle_errors
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the servers up (until Ctrl-C) to look at the Prefect UI.")
    ] = False,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Work folder, emptied first (default: .dbt2prefect/demo).")
    ] = None,
    tenant_file: TenantFile = None,
) -> None:
    """Rehearse the migration end to end on the sandbox, then stop what it started.

    Raw data, the sandbox dbt Cloud API and a Prefect server on loopback, dbt Cloud baseline jobs, a process worker, export, plan, apply, deployment runs of each job on the parity target executed by the worker, parity, cutover, one activated schedule fired and run by the worker, a run of each job that others are chained to and the runs their triggers start, the notifications those runs send, status, rollback, status; then the shadow period of one job: its dbt Cloud runs' signed webhooks start shadow runs on the worker, their PASS pairs earn its cutover, and a broken change after cutover is rolled back by the guard. Exits 1 naming the failing step. --tenant-file rehearses another tenant: its [tenant.sandbox] settings name its jobs file, its raw data and the jobs to compare.
    """
    from sandbox.demo import run_demo

    # SIGTERM (a service manager, `kill`, CI cancelling the job) stops the demo as Ctrl-C does: the servers and
    # the worker it started are stopped and its temporary folders removed, then exit 143 (Ctrl-C: 130); with --keep,
    # once the demo is done, either stops the servers and exits 0.
    with terminate_as_interrupt():
        screen = _Screen()
        try:
            with _quiet_prefect_console():
                result = run_demo(workdir, keep=keep, observer=screen, tenant_file=tenant_file)
        finally:
            screen.stop()
        _render_end(result)
        _keep_up(result, keep)
    if not result.ok:
        raise typer.Exit(1)


def _keep_up(result: DemoResult, keep: bool) -> None:
    """With --keep, wait for Ctrl-C or SIGTERM, then stop the servers; without it, they are already stopped."""
    try:
        if keep and result.stack is not None:
            from cli.sandbox_cmd import print_stack

            stack = result.stack
            print_stack(stack, token_given=False)
            console.print("Press Ctrl-C to stop the servers.", highlight=False)
            try:
                while stack.prefect.running():
                    time.sleep(1.0)
            except KeyboardInterrupt:
                console.print("stopping the sandbox")
    finally:
        result.close()
