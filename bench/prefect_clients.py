"""How many Prefect clients one cutover, and one rollback, of one job open: counts `get_client()` calls.

Starts a temporary Prefect server and a sandbox dbt Cloud account, applies the plan, then cuts the nightly job
over and rolls it back as `dbt2prefect cutover` and `rollback` do (one gateway per command, see
`dbt2prefect.prefect_gateway`), printing the number of clients each opened.

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

    from dbt2prefect.prefect_gateway import connect_prefect
    from dbt2prefect.tenant import load_tenant
    from migration.apply import apply_deployment, flow_parameter_schema
    from migration.cutover import CutoverRequest, cutover, jobs_as_planned
    from migration.dbt_cloud.client import DbtCloudClient
    from migration.deployment import build_deployment
    from migration.ledger import Ledger
    from migration.prefect_switch import PrefectSchedules
    from migration.rollback import rollback
    from migration.switch_context import SwitchContext
    from migration.translate import build_plan
    from parity.model import JobParity, ParityReport, RunRef, Verdict
    from parity.store import load_latest_verdicts, write_report
    from sandbox.dbt_cloud import SandboxDbtCloud
    from sandbox.stack import on_process_pool

    calls = counting_clients()
    root = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    with prefect_test_harness(server_startup_timeout=300), SandboxDbtCloud.start() as cloud:
        base = load_tenant()
        tenant = on_process_pool(
            base,
            "wg-bench-process",
            deployment_name=f"dbt_wg_bench_{uuid.uuid4().hex[:6]}",
            ledger_url=str(root / "ledger"),
            dbt_cloud=base.dbt_cloud.model_copy(update={"host": cloud.url, "account_id": cloud.account_id}),
        )
        verdict = JobParity(
            job_id=NIGHTLY,
            verdict=Verdict.PASS,
            baseline=RunRef(system="dbt_cloud", run_id="1"),
            candidate=RunRef(system="prefect", run_id="bench"),
        )
        write_report(ParityReport.from_jobs(tenant.name, [verdict]), root / "parity")
        ledger = Ledger(tenant.ledger_url, tenant.name)
        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
            jobs = list(client.iter_jobs(state="all"))
            spec = build_deployment(build_plan(jobs, tenant), tenant)
            calls["clients"] = 0
            apply_deployment(spec, create_pool=True, parameter_schema=flow_parameter_schema(tenant.entrypoint))
            print(f"apply: {calls['clients']} Prefect client(s)")
            for operation in ("cutover", "rollback"):
                calls["clients"] = 0
                with connect_prefect() as prefect:  # as the CLI's session opens it, once per command
                    schedules = PrefectSchedules(f"{tenant.flow_name}/{tenant.deployment_name}", prefect)
                    ctx = SwitchContext(tenant.name, client, schedules, ledger, "bench")
                    if operation == "cutover":
                        jobs = list(client.iter_jobs(state="all"))
                        plan = build_plan(jobs_as_planned(jobs, ledger), tenant)
                        verdicts = load_latest_verdicts(root / "parity")
                        cutover(plan, jobs, verdicts, ctx, CutoverRequest(job_ids=(NIGHTLY,)))
                    else:
                        rollback((NIGHTLY,), ctx)
                print(f"{operation} of one job: {calls['clients']} Prefect client(s)")


if __name__ == "__main__":
    main()
