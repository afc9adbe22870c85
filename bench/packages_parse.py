"""Parse time of a project with packages, first run vs second run (dbt's partial parsing kept between runs).

A generated project (bench/generate_project.py) with a `local:` package of macros, run twice through the flow's
body (`execute`, lean, `dbt ls`: parsing is nearly all of its time) in a fresh runs folder. dbt writes how long
it parsed in each run's dbt.log ("Performance info" is only for `dbt parse`; the log's "Partial parsing" lines say
which kind of parse ran); the script prints both runs' wall times and parse kinds.

Usage: .venv/bin/python bench/packages_parse.py --models 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.generate_project import PROFILE, generate

PACKAGE = """name: bench_macros
version: "1.0"
config-version: 2
"""


def _tenant_file(work: Path, project: Path) -> Path:
    settings = work / "bench.toml"
    settings.write_text(
        f"""[tenant]
name = "bench"
project_dir = "{project}"
profile_name = "{PROFILE}"
deployment_name = "bench_dbt"
default_target = "local"
targets = ["local", "parity"]
local_profiles_dir = "{project / "profiles"}"
artifact_store_url = "{work / "store"}"
ledger_url = "{work / "ledger"}"

[tenant.blocks]
profile_prefix = "bench"
dbt_cloud_token_block = "bench-token"
""",
        encoding="utf-8",
    )
    return settings


def _parse_kind(log: str) -> str:
    if "Unable to do partial parsing" in log:
        return "full parse"
    if "Partial parsing enabled" in log:
        return "partial parse"
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-packages-parse-"))
    project = work / "project"
    generate(project, args.models, work / "warehouse")
    package = work / "bench_macros"
    (package / "macros").mkdir(parents=True)
    (package / "dbt_project.yml").write_text(PACKAGE, encoding="utf-8")
    (package / "macros" / "cents.sql").write_text("{% macro cents(x) %}({{ x }} / 100.0){% endmacro %}\n")
    (project / "packages.yml").write_text(f"packages:\n  - local: {package}\n", encoding="utf-8")
    os.environ["DBT2PREFECT_RUNS_DIR"] = str(work / "runs")
    os.environ["DBT2PREFECT_WAREHOUSE_DIR"] = str(work / "warehouse")
    os.environ["DBT_QUIET"] = "true"  # not the node list on the screen; dbt.log keeps everything

    from dbt2prefect.dbt_run import lean_invoker
    from dbt2prefect.params import validate
    from dbt2prefect.run_job import execute
    from dbt2prefect.tenant import load_tenant

    tenant = load_tenant(_tenant_file(work, project))
    params = validate({"command": "ls", "profiles_strategy": "local", "target": "local"})
    print(f"project: {args.models} models and a local package, in {work}")
    for run in ("first", "second"):
        started = time.perf_counter()
        outcome = execute(params, tenant, f"{run}-run", invoker=lean_invoker)
        seconds = time.perf_counter() - started
        log = (work / "store" / "bench" / "bench_dbt" / "local" / f"{run}-run" / "dbt.log").read_text()
        print(f"{run} run: {seconds:.1f} s ({_parse_kind(log)}), success={outcome.success}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
