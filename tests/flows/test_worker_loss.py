"""A deployment run whose worker is SIGKILLed mid-run ends Crashed within the heartbeat window.

The run's process outlives its worker (an orphan). Prefect's zombie detection (an automation that marks a flow run
Crashed when its heartbeats stop) is the only thing that can end such a run, so the orphan must stop beating
when its worker is gone, whatever else it is stuck in. The test runs the real thing: a sandbox process worker of
its own (the session's worker stays up), a deployment of the flow on its pool, a run that is busy in dbt when the
worker is killed, and Prefect's zombie automation with a short window.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from migration.apply import apply_deployment
from migration.deployment import DeploymentSpec, build_deployment
from migration.export import load_inventory
from migration.translate import plan_inventory
from sandbox.stack import on_process_pool
from sandbox.worker import ProcessWorker
from tests.flows.test_deployment_runs import SEED

POOL = "wg-worker-loss"
HEARTBEAT_SECONDS = 30  # Prefect's minimum heartbeat interval
ZOMBIE_WINDOW = timedelta(seconds=45)
"""No heartbeat for this long marks a run Crashed (Prefect's recipe uses three missed beats; one and a half here)."""


def _zombie_automation() -> Any:
    """Prefect's documented zombie detection: a proactive trigger on missing flow-run heartbeats -> Crashed."""
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.states import StateType

    return AutomationCore(
        name="worker-loss-zombie-detection",
        trigger=EventTrigger(
            match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=ZOMBIE_WINDOW,
        ),
        actions=[
            ChangeFlowRunState(state=StateType.CRASHED, message="Flow run marked as crashed due to missing heartbeats.")
        ],
    )


@pytest.fixture(scope="module")
def lost_worker(tenant_copy: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessWorker]:
    from prefect.settings import get_current_settings

    folder = tmp_path_factory.mktemp("lost-worker") / "cwd"
    env = {
        "DBT2PREFECT_WAREHOUSE_DIR": str(tenant_copy.warehouse),
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
    }
    api_url = str(get_current_settings().api.url)
    with ProcessWorker.start(pool=POOL, api_url=api_url, folder=folder, env=env, name="lost-worker") as worker:
        yield worker


@pytest.fixture(scope="module")
def deployment(tenant_copy: Any) -> DeploymentSpec:
    tenant = on_process_pool(tenant_copy.settings, POOL).model_copy(update={"deployment_name": "dbt_wg_worker_loss"})
    spec = build_deployment(plan_inventory(load_inventory(SEED), tenant), tenant)
    apply_deployment(spec, create_pool=True)
    return spec


def _flow_run(run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def _start(spec: DeploymentSpec, parameters: dict[str, Any]) -> UUID:
    from prefect.client.orchestration import get_client

    async def go() -> UUID:
        async with get_client() as client:
            found = await client.read_deployment_by_name(spec.full_name)
            run = await client.create_flow_run_from_deployment(found.id, parameters=parameters)
            return run.id

    return asyncio.run(go())


def _wait(run_id: UUID, done: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = _flow_run(run_id)
        if done(run):
            return run
        time.sleep(1)
    raise AssertionError(f"{what}: the run is still {run.state_name} after {timeout:.0f} s")


def _process_of(run_id: UUID) -> int | None:
    """The pid of the process executing flow run `run_id` (its command line or environment names the run)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ:
            return int(entry.name)
    return None


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its new parent to reap it has ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_a_run_whose_worker_is_killed_ends_crashed(
    lost_worker: ProcessWorker, deployment: DeploymentSpec, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    async def create() -> UUID:
        async with get_client() as client:
            return await client.create_automation(_zombie_automation())

    automation_id = asyncio.run(create())
    lost_worker.wait_ready()
    # Long enough to be busy in dbt when the worker dies: three whole builds, one task run per node.
    run_id = _start(deployment, {"steps": ["dbt build", "dbt build", "dbt build"], "target": "dev"})
    try:
        _wait(run_id, lambda r: r.state_name == "Running", 300, "waiting for the worker to start the run")
        time.sleep(5)  # into dbt, past the first heartbeat
        orphan = _process_of(run_id)
        os.kill(lost_worker.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while lost_worker.running() and time.monotonic() < deadline:
            time.sleep(0.2)
        killed = time.monotonic()
        window = HEARTBEAT_SECONDS + ZOMBIE_WINDOW.total_seconds() + 60  # last beat, window, evaluation slack
        run = _wait(run_id, lambda r: r.state is not None and r.state.is_final(), window, "after the worker died")
        assert run.state_name == "Crashed", f"{run.state_name}: {run.state.message}\n{lost_worker.log_tail(40)}"
        assert time.monotonic() - killed <= window
        assert orphan is not None, "the flow run's process was not found"
        deadline = time.monotonic() + 60
        while _alive(orphan) and time.monotonic() < deadline:
            time.sleep(1)
        assert not _alive(orphan), f"the orphaned flow-run process {orphan} still runs"
    finally:

        async def delete() -> None:
            async with get_client() as client:
                await client.delete_automation(automation_id)

        asyncio.run(delete())


_RUN = """
import logging, os, pathlib, signal, sys, threading, types
from dbt2prefect import prefect_heartbeat

marker, ready = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
signal.signal(signal.SIGTERM, lambda signum, frame: (marker.write_text("SIGTERM"), os._exit(0)))
os.environ["PREFECT__FLOW_RUN_ID"] = "run-1"  # as a worker starts the process of one flow run
engine = types.SimpleNamespace(
    heartbeat_seconds=None, flow_run=types.SimpleNamespace(id="run-1", state=None), logger=logging.getLogger("run")
)
with prefect_heartbeat.send_heartbeats(engine):
    ready.write_text(str(os.getpid()))
    threading.Event().wait()  # stuck for good, as prefect-dbt's runner is once its output pipe is gone
"""
_WORKER = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', *sys.argv[1:]]); time.sleep(600)"


def test_an_orphaned_run_process_ends_itself_also_without_heartbeats(tmp_path: Path) -> None:
    # Fast and without Prefect: a stand-in worker process starts a stuck "flow-run process" and is SIGKILLed.
    marker, ready = tmp_path / "terminated", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, _RUN, str(marker), str(ready)], env=env)
    run_pid: int | None = None
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        run_pid = int(ready.read_text())
        time.sleep(2)
        assert not marker.exists(), "a run whose worker lives goes on"
        worker.kill()
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.read_text() == "SIGTERM"
    finally:
        worker.kill()
        if run_pid is not None and _alive(run_pid):
            os.kill(run_pid, signal.SIGKILL)
