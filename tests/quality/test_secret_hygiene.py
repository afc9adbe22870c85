"""Secrets never leave the places meant for them (the token's Authorization header, a block's secret fields).

Recognisable fake secrets go through every path that touches one: export against the sandbox dbt Cloud server
(good token and a rejected one), `dbt2prefect blocks register` from SNOWFLAKE_* variables, and a real
`run_dbt_wg` run on target dev (DuckDB) with all the secrets set in the environment and a dbt Cloud secret
environment variable read from the Secret block that the plan's command saved. Then every file under the
test's folders, the run-artifact store, the Prefect artifacts and the flow-run logs (read back through the Prefect
client), the captured log records and the console output are scanned for them.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.profiles import DbtTargetProfile
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudAuthError
from migration.env_vars import store_secret_command
from sandbox.dbt_cloud import SandboxDbtCloud
from tests.snowflake_keys import pem_body_line, pem_key

FAKE_TOKEN = "dbtc_FAKEhygieneTOKEN0123456789abcdefXYZ"
WRONG_TOKEN = "dbtc_FAKEwrongTOKEN9876543210zyxwvuQRS"
FAKE_PASSWORD = "Pw-FAKE-hygiene-Snowflake-5up3r-s3cr3t"
FAKE_PASSPHRASE = "FAKE-hygiene-passphrase-42"
FAKE_PEM = pem_key(FAKE_PASSPHRASE)  # a real key: `blocks register` saves only keys dbt-snowflake can load
PEM_BODY = pem_body_line(FAKE_PEM)
FAKE_DBT_SECRET = "FAKE-hygiene-dbt-env-secret-0451"
DBT_SECRET_NAME = "DBT_ENV_SECRET_FX_API_KEY"
SECRETS = {
    "dbt Cloud token": FAKE_TOKEN,
    "rejected dbt Cloud token": WRONG_TOKEN,
    "Snowflake password": FAKE_PASSWORD,
    "private key": PEM_BODY,
    "key passphrase": FAKE_PASSPHRASE,
    "dbt Cloud secret environment variable": FAKE_DBT_SECRET,
}
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "wg-test.eu-west-1",
    "SNOWFLAKE_USER": "svc_dbt",
    "SNOWFLAKE_ROLE": "transformer",
    "SNOWFLAKE_WAREHOUSE": "transforming",
    "SNOWFLAKE_DATABASE": "analytics",
    "SNOWFLAKE_SCHEMA": "dbt_wg",
    "SNOWFLAKE_PASSWORD": FAKE_PASSWORD,
    "SNOWFLAKE_PRIVATE_KEY": FAKE_PEM,
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": FAKE_PASSPHRASE,
}
runner = CliRunner()


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def _file_leaks(root: Path) -> dict[str, list[str]]:
    """Every file under `root` (binary ones too, e.g. DuckDB databases) that holds a secret."""
    found: dict[str, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits = [name for name, value in SECRETS.items() if value.encode() in data]
            if hits:
                found[str(path)] = hits
    return found


class _Records(logging.Handler):
    """Collects every log record (formatted, with exception text) from the root and prefect loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def _capture_logs() -> Iterator[_Records]:
    """Collect log records at INFO and above while the block runs.

    Installed just before use: Prefect re-applies its logging configuration (handlers and levels) when it
    starts clients and servers, so a handler installed earlier may be gone by the time a flow runs.
    """
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "httpx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def secret_env(quality_tenant: Any) -> Iterator[None]:
    """All fake secrets in the process environment for the whole module (what a worker's env would hold)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DBT_CLOUD_API_TOKEN", FAKE_TOKEN)
    for key, value in SNOWFLAKE_ENV.items():
        mp.setenv(key, value)
    mp.delenv("SNOWFLAKE_PRIVATE_KEY_PATH", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def exported(quality_tenant: Any, secret_env: None) -> dict[str, Any]:
    """`dbt2prefect export` against a sandbox server that accepts only FAKE_TOKEN, then the same with a wrong one."""
    out = quality_tenant.root / "export" / "inventory.json"
    with SandboxDbtCloud.start(token=FAKE_TOKEN) as cloud, _capture_logs() as records:
        host = ["--host", cloud.url, "--account-id", str(cloud.account_id)]
        ok = runner.invoke(app, ["export", *host, "--output", str(out), "--json", "--workers", "2"])
        rejected = runner.invoke(
            app,
            ["export", *host, "--output", str(out.with_name("rejected.json"))],
            env={"DBT_CLOUD_API_TOKEN": WRONG_TOKEN},
        )
        with DbtCloudClient(cloud.url, cloud.account_id, WRONG_TOKEN) as client:
            try:
                client.get_job(next(iter(cloud.app.state.jobs)))
            except DbtCloudAuthError as exc:
                error: BaseException = exc
            texts = [repr(client), repr(client._http.auth)]
    return {"ok": ok, "rejected": rejected, "error": error, "out": out, "reprs": texts, "logs": records.lines}


def test_export_with_the_token_writes_a_clean_inventory(exported: dict[str, Any]) -> None:
    ok = exported["ok"]
    assert ok.exit_code == 0, ok.output
    assert len(json.loads(exported["out"].read_text())["jobs"]) == 9
    assert _leaks(ok.output) == [] and _leaks(exported["out"].read_text()) == []
    assert all(_leaks(text) == [] for text in exported["reprs"])
    assert any("HTTP Request: GET" in line for line in exported["logs"]), "httpx request logs were not captured"
    assert _leaks("\n".join(exported["logs"])) == []


def test_a_rejected_token_is_not_in_the_message_or_the_exception_chain(exported: dict[str, Any]) -> None:
    rejected = exported["rejected"]
    assert rejected.exit_code == 2 and "401" in rejected.output
    assert _leaks(rejected.output) == []
    assert not exported["out"].with_name("rejected.json").exists()
    error = exported["error"]
    chain = []
    cause: BaseException | None = error
    while cause is not None:  # the suppressed context too: a debugger or a log formatter can show it
        chain += [str(cause), repr(cause), "".join(traceback.format_exception(cause))]
        cause = cause.__cause__ or cause.__context__
    assert _leaks("\n".join(chain)) == []


@pytest.fixture(scope="module")
def registered(quality_tenant: Any, secret_env: None) -> dict[str, Any]:
    name = quality_tenant.settings.block_name("prod")
    result = runner.invoke(app, ["blocks", "register", "--target", "prod"])
    return {"name": name, "result": result, "block": DbtTargetProfile.load(name)}


def test_blocks_register_keeps_secrets_in_secret_fields_only(registered: dict[str, Any]) -> None:
    result, block = registered["result"], registered["block"]
    assert result.exit_code == 0, result.output
    assert _leaks(result.output) == []
    assert _leaks(repr(block)) == [] and _leaks(str(block)) == []
    assert _leaks(json.dumps(block.settings)) == []
    # Key-pair auth wins over the password, as the block's docstring says; the secrets sit in SecretStr fields.
    assert block.private_key.get_secret_value() == FAKE_PEM
    assert block.private_key_passphrase.get_secret_value() == FAKE_PASSPHRASE
    assert block.password is None
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(
            registered["name"], DbtTargetProfile.get_block_type_slug(), include_secrets=False
        )
    assert _leaks(repr(document)) == [] and _leaks(json.dumps(document.data, default=str)) == []


def _prefect_logs(flow_run_id: UUID) -> list[str]:
    """The flow run's logs (task-run logs included) as stored by the Prefect API."""
    APILogHandler().flush()  # sends the queued batch and waits for it
    with get_client(sync_client=True) as client:
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
        seen, deadline = -1, time.monotonic() + 20
        # Logs arrive in batches; read until two reads agree.
        while True:
            logs = client.read_logs(log_filter=log_filter, limit=200)
            if len(logs) == seen or time.monotonic() > deadline:
                break
            seen = len(logs)
            time.sleep(0.5)
        offset, texts = 0, []
        while page := client.read_logs(log_filter=log_filter, limit=200, offset=offset):
            texts += [f"{log.name} {log.message}" for log in page]
            offset += len(page)
    return texts


def _prefect_artifacts(flow_run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [json.dumps(a.model_dump(mode="json"), default=str) for a in artifacts]


@pytest.fixture(scope="module")
def secret_block(quality_tenant: Any) -> str:
    """The Secret block of a dbt Cloud secret, saved by the command the plan's `env_var_secret` finding gives."""
    from prefect.blocks.system import Secret
    from prefect.settings import get_current_settings

    name = "quality-wg-dbt-env-secret-fx-api-key-production"
    command = shlex.split(store_secret_command(DBT_SECRET_NAME, name))
    assert _leaks(" ".join(command)) == []  # the value is read from the environment, never on the command line
    env = {**os.environ, DBT_SECRET_NAME: FAKE_DBT_SECRET, "PREFECT_API_URL": str(get_current_settings().api.url)}
    assert command[0] == "dbt2prefect"
    done = subprocess.run(
        [sys.executable, "-m", "cli", *command[1:]], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _leaks(done.stdout + done.stderr) == []
    assert Secret.load(name).get() == FAKE_DBT_SECRET
    return name


def test_a_dev_run_and_everything_it_leaves_hold_no_secret(
    quality_tenant: Any,
    secret_env: None,
    exported: dict[str, Any],
    registered: dict[str, Any],
    secret_block: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flows.dbt_wg_flow import run_dbt_wg

    with _capture_logs() as records:
        state = run_dbt_wg(
            command="run",
            target="dev",
            select="+stg_erp__orders",
            env_vars={"DBT_WG_REGION": "uk"},
            secret_env_vars={DBT_SECRET_NAME: secret_block},
            return_state=True,
        )
    assert state.is_completed(), state.message
    assert DBT_SECRET_NAME not in os.environ, "the secret is set for dbt during the run only"
    result = state.result()
    flow_run_id = state.state_details.flow_run_id
    assert result["counts"].get("success", 0) >= 1

    console = capfd.readouterr()
    assert _leaks(console.out) == [] and _leaks(console.err) == []
    assert any("dbt on dev" in line for line in records.lines), "the run's own log records were not captured"
    assert _leaks("\n".join(records.lines)) == []

    logs = _prefect_logs(flow_run_id)
    assert any("dbt on dev" in line for line in logs), "the flow's logs did not reach the Prefect API"
    assert _leaks("\n".join(logs)) == []
    artifacts = _prefect_artifacts(flow_run_id)
    assert len(artifacts) >= 2 and _leaks("\n".join(artifacts)) == []

    store = Path(quality_tenant.settings.artifact_store_url)
    assert (store / "dbt_williamgrant" / "dbt_wg" / "dev" / result["flow_run_id"] / "run.json").is_file()
    # The tenant copy holds the project, warehouse, run folders, artifact store and the exported inventory.
    assert store.is_relative_to(quality_tenant.root) and exported["out"].is_relative_to(quality_tenant.root)
    assert _file_leaks(quality_tenant.root) == {}


def test_the_scan_finds_a_planted_secret(tmp_path: Path) -> None:
    # Guards the scan itself: a secret inside a binary file in a nested folder is reported.
    planted = tmp_path / "a" / "b.bin"
    planted.parent.mkdir()
    planted.write_bytes(b"\x00\x01" + FAKE_PEM.encode() + b"\xff")
    assert _file_leaks(tmp_path) == {str(planted): ["private key"]}
    assert _leaks(f"token={FAKE_TOKEN}") == ["dbt Cloud token"]
