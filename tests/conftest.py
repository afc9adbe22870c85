"""Session-wide test setup: a private PREFECT_HOME and one Prefect test API for the whole session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    "tests/migration/test_cutover_faults.py",
    "tests/flows/test_dbt_wg_flow.py",
    "tests/docs/test_runbook.py",
    "tests/flows/test_deployment_runs.py",
    "tests/flows/test_parity_flow.py",
    "tests/flows/test_chained_jobs.py",
    "tests/docs/test_tenant_guide.py",
    "tests/flows/test_doctor.py",
)
"""The modules that take longest (end-to-end runs): started first, so the two pytest-xdist workers finish together."""

E2E_FIXTURES = frozenset({"prefect_api", "tenant_copy", "process_worker", "built_tenant", "quality_tenant"})
"""Session fixtures that start a Prefect server or build dbt databases: a test using any of them is marked `e2e`."""

SHARED_FIXTURES = {"tenant_copy": "tenant-copy", "process_worker": "tenant-copy", "built_tenant": "built-tenant"}
"""Per-worker session fixtures that are expensive to build (a tenant copy with its worker process, two dbt-built
databases): every module using one is in one `xdist_group`, so `--dist loadgroup` builds each once per session."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e = pytest.mark.e2e
    groups: dict[str, str] = {}
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        # `slow` (a real dbt build) implies `e2e`; modules that start their own servers mark themselves.
        if item.get_closest_marker("slow") or E2E_FIXTURES.intersection(fixtures):
            item.add_marker(e2e)
        shared = [group for name, group in SHARED_FIXTURES.items() if name in fixtures]
        if shared:
            groups.setdefault(_module(item), shared[0])
    for item in items:
        # One group per module unless it shares a session fixture: `--dist loadgroup` then keeps a module's
        # tests (and its module-scoped fixtures) on one worker, as `--dist loadfile` does. A test's own
        # `xdist_group` mark wins.
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(groups.get(_module(item), _module(item))))

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
