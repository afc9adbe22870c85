"""Session-wide test setup: a private PREFECT_HOME and one Prefect test API for the whole session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="dbt2prefect-tests-"))
os.environ["PREFECT_HOME"] = str(_HOME / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO_ROOT = Path(__file__).resolve().parent.parent

LONGEST_FIRST = (
    "tests/flows/test_second_tenant.py",
    "tests/sandbox/test_demo.py",
    "tests/docs/test_tenant_guide.py",
    "tests/docs/test_runbook.py",
    "tests/migration/test_cutover_faults.py",
    "tests/flows/test_dbt_wg_flow.py",
    "tests/flows/test_deployment_runs.py",
    "tests/flows/test_parity_flow.py",
    "tests/flows/test_chained_jobs.py",
    "tests/flows/test_doctor.py",
)
"""The modules that take longest (end-to-end runs): started first, so the two pytest-xdist workers finish together.

pytest-xdist gives each worker one unit of work (the first `tests/flows/`, one unit, see SHARED_FOLDERS; the second
the demo), then the next unit in this order whenever a worker has at most two tests of its units left."""

E2E_FIXTURES = frozenset({"prefect_api", "tenant_copy", "process_worker", "built_tenant", "quality_tenant"})
"""Session fixtures that start a Prefect server or build dbt databases: a test using any of them is marked `e2e`."""

SHARED_FOLDERS = ("tests/flows/", "tests/parity/")
"""Folders whose conftest has a per-worker session fixture that is expensive to build (tests/flows: the tenant copy
and its Prefect worker process; tests/parity: two dbt-built databases). With `--dist loadfile` each folder is one
unit of work, so one worker builds the fixture once instead of each worker that gets one of its modules."""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with each of SHARED_FOLDERS scheduled as one file."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return next((folder for folder in SHARED_FOLDERS if module.startswith(folder)), module)

    return SharedFixtureScheduling(config, log)


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
def prefect_api() -> Iterator[None]:
    """One real Prefect API (temporary SQLite database) shared by every test that needs it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
