"""README's "Add your team's project" cannot rot: its runnable commands run on a copy of the test suite's second
tenant laid out as the section says (`tenants/<name>/`, `tenants/<name>.toml`, its jobs and parity files).

The section's rehearsal (`make demo TENANT_FILE=...`) is the path `tests/flows/test_second_tenant.py` takes on the
same tenant, step by step on the session's Prefect server and worker; it is too slow to run twice.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from dbt2prefect.names import schedule_job_id
from dbt2prefect.tenant import REPO_ROOT
from tests.docs.test_runbook import run_block, runnable_blocks

README = REPO_ROOT / "README.md"
TENANTS = REPO_ROOT / "tests" / "tenants"


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.MULTILINE | re.DOTALL)
    assert match is not None, f"README has no section {title!r}"
    return re.sub(r"^   ", "", match.group(1), flags=re.MULTILINE)  # blocks inside the numbered steps


@pytest.mark.e2e  # runs the documented commands, dbt among them, as processes
def test_the_add_a_tenant_commands_run_on_a_tenant_laid_out_as_the_readme_says(tmp_path: Path) -> None:
    section = _section(README.read_text(encoding="utf-8"), "Add your team's project")
    blocks = runnable_blocks(section)
    assert blocks and "dbt2prefect plan" in blocks[0]
    tenants = tmp_path / "tenants"
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "package-lock.yml")
    for name in ("shop", "shop_utils"):
        shutil.copytree(TENANTS / name, tenants / name, ignore=ignore)
    for name in ("shop.toml", "shop.jobs.json", "shop.parity.toml"):
        shutil.copy(TENANTS / name, tenants / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "TENANT": "shop",
        "COLUMNS": "200",
    }
    env.pop("DBT2PREFECT_TENANT_FILE", None)
    for number, block in enumerate(blocks, start=1):
        done = run_block(block, tmp_path, env)
        assert done.returncode == 0, f"block {number} failed:\n{block}\n{done.stdout}\n{done.stderr}"
        if "dbt2prefect plan" in block:
            assert "job-5001" in done.stdout and "job-5002" in done.stdout, done.stdout
    emitted = yaml.safe_load((tenants / "shop.prefect.yaml").read_text(encoding="utf-8"))
    (deployment,) = emitted["deployments"]
    assert deployment["name"] == "shop_dbt" and deployment["work_pool"]["name"] == "shop-process"
    assert sorted(schedule_job_id(s["slug"]) for s in deployment["schedules"]) == [5001, 5002]
