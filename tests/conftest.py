"""Session-wide test setup: a private PREFECT_HOME and one Prefect test API for the whole session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox.s3_api import S3Api

_HOME = Path(tempfile.mkdtemp(prefix="dbt2prefect-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO_ROOT = Path(__file__).resolve().parent.parent

LONGEST_FIRST = (
    "tests/sandbox/test_demo.py",
    "tests/flows/test_parity_flow.py",
    "tests/migration/test_status_cli.py",
    "tests/parity/test_slim_ci_workflow.py",
    "tests/flows/test_deployment_runs.py",
    "tests/migration/test_cutover_faults.py",
    "tests/flows/test_second_tenant.py",
    "tests/flows/test_dbt_wg_flow.py",
    "tests/sandbox/test_demo_sigterm.py",
    "tests/docs/test_runbook.py",
    "tests/flows/test_worker_loss.py",
    "tests/flows/test_guard_flow.py",
    "tests/flows/test_chained_jobs.py",
    "tests/dbt2prefect/test_dbt_packages.py",
    "tests/flows/test_run_outcome.py",
    "tests/parity/test_parity_noise.py",
    "tests/sandbox/test_tenant_project.py",
    "tests/parity/test_parity_values.py",
    "tests/docs/test_tenant_guide.py",
    "tests/sandbox/test_webhook_feed.py",
    "tests/flows/test_crash_before_start.py",
    "tests/flows/test_doctor.py",
)
"""The modules that take longest (end-to-end runs): started first, so the pytest-xdist workers finish together."""

E2E_FIXTURES = frozenset({"prefect_api", "tenant_copy", "process_worker", "built_tenant", "quality_tenant"})
"""Session fixtures that start a Prefect server or build dbt databases: a test using any of them is marked `e2e`."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e = pytest.mark.e2e
    for item in items:
        # `slow` (a real dbt build) implies `e2e`; modules that start their own servers mark themselves.
        if item.get_closest_marker("slow") or E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(e2e)

    def rank(item: pytest.Item) -> int:
        module = _module(item)
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order inside a module and among the others is kept


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.fixture(scope="session")
def s3_api() -> Iterator[S3Api]:
    """One S3 API on loopback (the sandbox's, moto's server) with bucket `sandbox.s3_api.BUCKET`; the session's
    environment points boto3/s3fs at it, as production's points them at S3."""
    from sandbox.s3_api import S3Api

    api = S3Api.start(_HOME / "s3-api")
    api.wait_ready()
    api.create_bucket()
    saved = {key: os.environ.get(key) for key in api.environment()}
    os.environ.update(api.environment())
    try:
        yield api
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        api.stop()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One real Prefect API (temporary SQLite database) shared by every test that needs it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
