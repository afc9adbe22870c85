"""docs/runbook.md cannot rot: every `bash runnable` block runs, in order, against the sandbox.

The blocks run in `bash -euo pipefail` subprocesses with the environment variables the runbook documents pointing
at the sandbox dbt Cloud server and the session's Prefect test API. Blocks without the marker are documented only:
the runbook's `dbt2prefect parity` block runs real dbt builds on both sides, too slow and too heavy for this test
(parity has its own end-to-end tests), so the parity verdicts it would produce are written here with parity's own
report store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.payloads import job_update_payload
from migration.ledger import Ledger, LedgerState
from migration.translate import build_plan
from parity.model import JobParity, ParityReport, RunRef, Verdict
from parity.store import write_report
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.notification_sink import NotificationSink, register_notification_blocks, sandbox_notification_blocks
from sandbox.stack import derive_tenant_file, sandbox_deployment_settings

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
BLOCK = re.compile(r"^```(bash|console) runnable\n(.*?)^```", re.MULTILINE | re.DOTALL)
JOB_ID = 70403103936332
WORK_POOL = "wg-test-process"


def runnable_blocks(text: str) -> list[str]:
    """The commands of every runnable block (console blocks: lines after a `$ ` prompt)."""
    blocks = []
    for kind, body in BLOCK.findall(text):
        if kind == "console":
            body = "\n".join(line[2:] for line in body.splitlines() if line.startswith("$ "))
        blocks.append(body)
    return blocks


def run_block(block: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """One runnable block in `bash -euo pipefail`, as a person pastes it into a shell."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_runbook_has_runnable_blocks_for_every_stage() -> None:
    commands = "\n".join(runnable_blocks(RUNBOOK.read_text()))
    for needed in ("dbt2prefect apply", "dbt2prefect cutover", "dbt2prefect status", "dbt2prefect rollback"):
        assert needed in commands


def _tenant_file(tmp_path: Path, cloud: SandboxDbtCloud, deployment: str) -> Path:
    tenant = load_tenant()
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        jobs = list(client.iter_jobs(state="all"))
    blockers = [f.key for f in build_plan(jobs, tenant).blocking()]
    overrides = {
        "deployment_name": deployment,
        "ledger_url": str(tmp_path / "ledger"),
        "artifact_store_url": str(tmp_path / "artifacts"),
        "dbt_cloud": {"host": cloud.url, "account_id": cloud.account_id},
        "acknowledged_findings": blockers,
        "notifications": sandbox_notification_blocks(tenant),
        **sandbox_deployment_settings(WORK_POOL),
    }
    return derive_tenant_file(tmp_path / "tenant.toml", overrides=overrides)


async def _ensure_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))


@pytest.mark.usefixtures("prefect_api")
def test_runbook_commands_run_against_the_sandbox(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    asyncio.run(_ensure_pool())  # in production the pool exists before the runbook starts
    with SandboxDbtCloud.start() as cloud, NotificationSink.start() as sink:
        # In production the tenant's notification blocks exist before `apply` (see "Notifications").
        register_notification_blocks(load_tenant(), sink)
        deployment = f"dbt_wg_runbook_{uuid.uuid4().hex[:8]}"
        parity_dir = tmp_path / "parity"
        write_report(
            ParityReport.from_jobs(
                "dbt_williamgrant",
                [
                    JobParity(
                        job_id=JOB_ID,
                        verdict=Verdict.PASS,
                        baseline=RunRef(system="dbt_cloud", run_id="1"),
                        candidate=RunRef(system="prefect", run_id="runbook"),
                    )
                ],
            ),
            parity_dir,
        )
        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
            original = client.get_job_dict(JOB_ID)
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DBT2PREFECT_TENANT_FILE": str(_tenant_file(tmp_path, cloud, deployment)),
            "DBT_CLOUD_API_TOKEN": cloud.token,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "DBT2PREFECT_PARITY_DIR": str(parity_dir),
            "JOB_ID": str(JOB_ID),
            "COLUMNS": "200",
        }
        blocks = runnable_blocks(RUNBOOK.read_text())
        for number, block in enumerate(blocks, start=1):
            done = run_block(block, tmp_path, env)
            assert done.returncode == 0, f"runbook block {number} failed:\n{block}\n{done.stdout}\n{done.stderr}"
            assert cloud.token not in done.stdout + done.stderr
            if "dbt2prefect cutover" in block and "--force" not in block:
                assert "70403103936373" in done.stderr  # the chained job's warning
        status = json.loads((tmp_path / "status.json").read_text())
        row = next(r for r in status["jobs"] if r["job_id"] == JOB_ID)
        assert (row["dbt_cloud_schedule_on"], row["prefect_schedule"], row["ledger_state"]) == (
            False,
            "active",
            "cut over",
        )
        assert row["parity_verdict"] == "PASS"
        with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
            assert job_update_payload(client.get_job_dict(JOB_ID)) == job_update_payload(original)
        ledger = Ledger(str(tmp_path / "ledger"), "dbt_williamgrant")
        assert ledger.state(JOB_ID) == LedgerState.ROLLED_BACK
        forced = [r for r in ledger.records(JOB_ID) if r.forced]
        assert forced and forced[0].by == "on-call"
