"""`dbt2prefect doctor` against the real parts: the sandbox dbt Cloud server over HTTP, the session's Prefect
server and its polling worker (here, next to the worker fixture), DuckDB warehouses and local stores."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.profiles import block_from_env
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import derive_tenant_file
from sandbox.warehouse import duckdb_output
from sandbox.worker import ProcessWorker
from tests.flows.conftest import WORKER_POOL, TenantCopy

runner = CliRunner()
IDLE_POOL = "wg-doctor-idle"
WRONG_TOKEN = "dbtc_doctor_wrong_token_7731"


def _doctor(tenant_file: Path, env: dict[str, str], exit_code: int) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["doctor", "--json", "--tenant-file", str(tenant_file)], env=env)
    assert result.exit_code == exit_code, result.output
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


async def _create_idle_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=IDLE_POOL, type="process"), overwrite=True)


def _register_block(target: str, folder: Path, *, create: bool = True) -> None:
    """Block `doctor-<target>` (private to this module) on a DuckDB file in `folder`, created unless told not to."""
    output = duckdb_output(target, folder)
    if create:
        duckdb.connect(output["path"]).close()  # what dbt's first run on the target leaves
    block_from_env("duckdb", {}, output).save(f"doctor-{target}", overwrite=True)


def test_doctor_passes_on_a_ready_stack_and_names_each_broken_part_with_its_fix(
    tenant_copy: TenantCopy, process_worker: ProcessWorker, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    shutil.copy(tenant_copy.warehouse / "raw.duckdb", warehouse / "raw.duckdb")
    for target in ("dev", "prod", "parity"):
        _register_block(target, warehouse)
    asyncio.run(_create_idle_pool())
    (tmp_path / "a-file").write_text("not a folder")
    CustomWebhookNotificationBlock(name="doctor", url="http://127.0.0.1:9/doctor").save("doctor-alerts", overwrite=True)
    alerts = {"slack:#doctor": "custom-webhook/doctor-alerts"}
    with SandboxDbtCloud.start() as cloud:

        def tenant_file(name: str, **overrides: Any) -> Path:
            settings = {
                "blocks": {"profile_prefix": "doctor", "dbt_cloud_token_block": "doctor-no-such-block"},
                "artifact_store_url": str(tmp_path / "artifacts"),
                "ledger_url": str(tmp_path / "ledger"),
                **overrides,
            }
            settings["dbt_cloud"] = {
                "host": cloud.url,
                "account_id": cloud.account_id,
                **overrides.get("dbt_cloud", {}),
            }
            return derive_tenant_file(tmp_path / f"{name}.toml", tenant_copy.settings_file, overrides=settings)

        good = {"DBT_CLOUD_API_TOKEN": cloud.token}
        healthy = _doctor(tenant_file("healthy", work_pool=WORKER_POOL, notifications=alerts), good, exit_code=0)
        assert healthy.pop("profile local")["status"] == "skipped"  # no block; only the local profiles.yml has it
        assert {name: c["status"] for name, c in healthy.items()} == {
            "dbt Cloud host": "ok",
            "dbt Cloud token": "ok",
            "dbt Cloud account": "ok",
            "Prefect API": "ok",
            "work pool": "ok",
            "worker": "ok",
            "profile dev": "ok",
            "profile prod": "ok",
            "profile parity": "ok",
            "notification slack:#doctor": "ok",
            "artifact store": "ok",
            "ledger": "ok",
            "parity reports": "ok",
        }, healthy
        assert "1 polling" in healthy["worker"]["detail"] and "select 1" in healthy["profile dev"]["detail"]
        assert (tmp_path / "ledger" / "dbt_williamgrant").is_dir()
        assert not list((tmp_path / "ledger" / "dbt_williamgrant").iterdir()), "the probe file is removed"

        _register_block("parity", tmp_path / "elsewhere", create=False)  # a database no run has created
        broken = tenant_file(
            "broken",
            work_pool="wg-doctor-missing",
            ledger_url=str(tmp_path / "a-file" / "ledger"),
            notifications={"slack:#doctor": "custom-webhook/doctor-absent"},
        )
        result = runner.invoke(app, ["doctor", "--tenant-file", str(broken)], env={"DBT_CLOUD_API_TOKEN": WRONG_TOKEN})
        assert result.exit_code == 1 and "check(s) failed" in result.stdout
        checks = _doctor(broken, {"DBT_CLOUD_API_TOKEN": WRONG_TOKEN}, exit_code=1)
        assert checks["dbt Cloud host"]["status"] == "ok"
        assert (
            checks["dbt Cloud token"]["status"] == "fail" and "DBT_CLOUD_API_TOKEN" in checks["dbt Cloud token"]["fix"]
        )
        assert checks["dbt Cloud account"]["status"] == "skipped"
        assert checks["work pool"]["status"] == "fail" and "--create-pool" in checks["work pool"]["fix"]
        assert checks["worker"]["status"] == "skipped"
        assert checks["ledger"]["status"] == "fail" and "ledger_url" in checks["ledger"]["fix"]
        assert checks["artifact store"]["status"] == "ok"
        assert "does not exist" in checks["profile parity"]["detail"]
        assert "blocks register --target parity" in checks["profile parity"]["fix"]
        missing = checks["notification slack:#doctor"]
        assert missing["status"] == "fail" and "'custom-webhook/doctor-absent' does not exist" in missing["detail"]
        assert "prefect block create custom-webhook" in missing["fix"]
        assert all(c["fix"] and "\n" not in c["fix"] for c in checks.values() if c["status"] == "fail")
        assert WRONG_TOKEN not in result.stdout + json.dumps(checks)

        idle = tenant_file(
            "idle", work_pool=IDLE_POOL, dbt_cloud={"account_id": cloud.account_id + 1}, notifications=alerts
        )
        checks = _doctor(idle, good, exit_code=1)
        assert checks["work pool"]["status"] == "ok"
        assert checks["worker"]["status"] == "fail" and "no worker has ever polled it" in checks["worker"]["detail"]
        assert f"prefect worker start --pool {IDLE_POOL}" == checks["worker"]["fix"].split(": ", 1)[1].strip("`")
        assert checks["dbt Cloud token"]["status"] == "ok"
        assert checks["dbt Cloud account"]["status"] == "fail" and "account_id" in checks["dbt Cloud account"]["fix"]
