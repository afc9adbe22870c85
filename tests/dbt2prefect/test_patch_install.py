"""Where the heartbeat replacement is made, and how a skipped replacement is reported (no Prefect server needed)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import prefect
import pytest
from prefect import flow_engine

from dbt2prefect import compat, prefect_heartbeat
from dbt2prefect.tenant import REPO_ROOT

PROBE = f"""
import importlib, os
from prefect import flow_engine
from dbt2prefect.prefect_heartbeat import send_heartbeats
import flows.dbt_wg_flow
print(flow_engine._send_heartbeats is send_heartbeats)
os.environ["{prefect_heartbeat.FLOW_RUN_ENV}"] = "8f7c3f3e-4a59-4b57-9d59-5a5b2c1d0e11"  # as Prefect sets it
importlib.reload(flows.dbt_wg_flow)
print(flow_engine._send_heartbeats is send_heartbeats)
"""


@pytest.mark.e2e  # a flow-run process of its own
def test_importing_the_flow_module_patches_prefect_only_in_a_flow_run_process() -> None:
    env = {k: v for k, v in os.environ.items() if k != prefect_heartbeat.FLOW_RUN_ENV}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The CLI imports the flow to read its parameters: Prefect stays as it is there. The process a worker starts
    # for a deployment's flow run (Prefect sets the run's id) gets the replacement when it loads the flow.
    assert done.stdout.split() == ["False", "True"]


@pytest.fixture
def heartbeat_restored() -> Iterator[None]:
    """Put the heartbeat back as this process had it before the test."""
    was_installed = flow_engine._send_heartbeats is prefect_heartbeat.send_heartbeats
    yield
    prefect_heartbeat.uninstall()
    if was_installed:
        assert prefect_heartbeat.install() is True


@pytest.mark.usefixtures("heartbeat_restored")
def test_a_replacement_skipped_on_an_unknown_version_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prefect_heartbeat.uninstall()
    monkeypatch.setattr(prefect, "__version__", "3.10.0")
    monkeypatch.setattr(compat, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="dbt2prefect.compat"):
        assert prefect_heartbeat.install() is False
        assert prefect_heartbeat.install() is False  # said once per process
    assert flow_engine._send_heartbeats is not prefect_heartbeat.send_heartbeats
    [record] = [r for r in caplog.records if r.name == "dbt2prefect.compat"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "prefect_heartbeat is not applied (written for prefect 3.9.*, installed 3.10.0): the stock code path runs"
    )
