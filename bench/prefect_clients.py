"""How many Prefect clients apply, cutover, status and rollback of one job open: counts `get_client()` calls.

Starts a temporary Prefect server and a sandbox dbt Cloud account, then runs apply, the cutover of the nightly job,
status and its rollback, each in a workspace of its own as each CLI command opens one (one Prefect gateway per
command, see `dbt2prefect.prefect_gateway`), printing the number of clients each opened.

Usage: PYTHONPATH=. .venv/bin/python bench/prefect_clients.py
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="bench-prefect-")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

NIGHTLY = 70403103936332


def counting_clients() -> dict[str, int]:
    """Wrap Prefect's `get_client` so every call is counted (callers import it at call time)."""
    import prefect.client.orchestration as orchestration

    calls = {"clients": 0}
    real: Callable[..., Any] = orchestration.get_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["clients"] += 1
        return real(*args, **kwargs)

    orchestration.get_client = counted  # type: ignore[assignment]
    return calls


def main() -> None:
    from prefect.testing.utilities import prefect_test_harness

    from app.workspace import Workspace
    from dbt2prefect.tenant import load_tenant
    from parity.model import JobParity, ParityReport, RunRef, Verdict
    from parity.store import write_report
    from sandbox.dbt_cloud import SandboxDbtCloud
    from sandbox.stack import on_process_pool

    calls = counting_clients()
    root = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    with prefect_test_harness(server_startup_timeout=300), SandboxDbtCloud.start() as cloud:
        tenant = on_process_pool(
            load_tenant(),
            "wg-bench-process",
            deployment_name=f"dbt_wg_bench_{uuid.uuid4().hex[:6]}",
            ledger_url=str(root / "ledger"),
            notifications={},  # no notification blocks on the temporary server
        )
        verdict = JobParity(
            job_id=NIGHTLY,
            verdict=Verdict.PASS,
            baseline=RunRef(system="dbt_cloud", run_id="1"),
            candidate=RunRef(system="prefect", run_id="bench"),
        )
        write_report(ParityReport.from_jobs(tenant.name, [verdict]), root / "parity")
        options: dict[str, Any] = {
            "report_dir": root / "parity",
            "token": cloud.token,
            "dbt_cloud_host": cloud.url,
            "dbt_cloud_account_id": cloud.account_id,
        }
        commands: dict[str, Callable[[Workspace], object]] = {
            "apply": lambda workspace: workspace.apply(
                workspace.deployment(workspace.plan(), activate=False), create_pool=True
            ),
            "cutover of one job": lambda workspace: workspace.cutover([NIGHTLY]),
            "status": lambda workspace: workspace.status(),
            "rollback of one job": lambda workspace: workspace.rollback([NIGHTLY]),
        }
        for name, command in commands.items():
            calls["clients"] = 0
            with Workspace(tenant, **options) as workspace:  # as each CLI command opens it
                command(workspace)
            print(f"{name}: {calls['clients']} Prefect client(s)")


if __name__ == "__main__":
    main()
