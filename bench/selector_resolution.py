"""Resolve >= 20 selections on the tenant project: one process on one parsed manifest vs one `dbt ls` per selection.

Run: .venv/bin/python bench/selector_resolution.py
Prints both times, the ratio and whether the node sets are identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from parity.selection import SelectionResolver, StepSelection

PROJECT = Path(__file__).resolve().parent.parent / "tenants" / "dbt_williamgrant"
SELECTIONS = [
    StepSelection("build", select=("tag:daily",)),
    StepSelection("build", select=("tag:hourly",)),
    StepSelection("build", select=("tag:finance",)),
    StepSelection("build", select=("tag:weekly",)),
    StepSelection("build", selector="nightly"),
    StepSelection("build", selector="hourly_finance"),
    StepSelection("build", selector="finance"),
    StepSelection("build", selector="supply_chain"),
    StepSelection("run", select=("marts",)),
    StepSelection("run", select=("staging",)),
    StepSelection("run", select=("intermediate",)),
    StepSelection("test", select=("marts",)),
    StepSelection("test", select=("tag:finance",)),
    StepSelection("seed", select=("tag:daily",)),
    StepSelection("snapshot"),
    StepSelection("build", select=("+fct_fx_rates",)),
    StepSelection("build", select=("stg_erp__orders+",)),
    StepSelection("build", select=("tag:daily",), exclude=("tag:finance",)),
    StepSelection("build", select=("marts",), exclude=("tag:weekly",)),
    StepSelection("run", select=("tag:daily", "tag:hourly")),
    StepSelection("build", select=("path:models/marts/sales",)),
    StepSelection("build", select=("resource_type:seed",)),
]
TARGET = "parity"


def ls_subprocess(step: StepSelection, profiles_dir: Path, work: Path) -> frozenset[str]:
    """The baseline approach: a separate `dbt ls` process per selection (each loads the project and its parse)."""
    dbt = Path(sys.executable).with_name("dbt")
    args = [str(dbt), "ls", "--project-dir", str(PROJECT), "--profiles-dir", str(profiles_dir), "--target", TARGET]
    args += ["--target-path", str(work / "target"), "--log-path", str(work / "logs"), "--quiet"]
    args += ["--output", "json", "--output-keys", "unique_id resource_type"]
    if step.select:
        args += ["--select", *step.select]
    if step.exclude:
        args += ["--exclude", *step.exclude]
    if step.selector:
        args += ["--selector", step.selector]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    types = step.executed_types()
    items = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return frozenset(i["unique_id"] for i in items if i["resource_type"] in types)


def main() -> None:
    cache = Path(tempfile.mkdtemp(prefix="dbt2prefect-selection-cache-"))
    # Warm-up, as the dbt ls processes below warm up after their first: dbt's partial parse of this project.
    with SelectionResolver(PROJECT, cache_dir=cache) as resolver:
        resolver.manifest(TARGET)
    started = time.perf_counter()
    with SelectionResolver(PROJECT, cache_dir=cache) as resolver:
        resolver.manifest(TARGET)
        parsed = time.perf_counter()
        in_process = [resolver.resolve(step, TARGET) for step in SELECTIONS]
        parses = resolver.parses
    finished = time.perf_counter()
    one_process, parse_time, resolve_time = finished - started, parsed - started, finished - parsed

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        profile = {
            "dbt_williamgrant": {
                "target": TARGET,
                "outputs": {TARGET: {"type": "duckdb", "path": str(work / "x.duckdb")}},
            }
        }
        (work / "profiles.yml").write_text(yaml.safe_dump(profile))
        ls_subprocess(SELECTIONS[0], work, work)  # warm-up: later processes reuse its partial parse
        started = time.perf_counter()
        separate = [ls_subprocess(step, work, work) for step in SELECTIONS]
        per_process = time.perf_counter() - started

    identical = in_process == separate
    print(f"selections resolved:              {len(SELECTIONS)}")
    print(f"one process, one manifest:        {one_process:.2f} s total = {parse_time:.2f} s for {parses} parse")
    print(f"                                  + {resolve_time:.2f} s for {len(SELECTIONS)} resolutions")
    print(f"one dbt ls process per selection: {per_process:.2f} s")
    print(f"ratio, total:                     {per_process / one_process:.1f}x")
    print(f"ratio, per resolution:            {per_process / resolve_time:.1f}x (the parse is paid once per run)")
    print(f"node sets identical:              {identical}")
    print(f"nodes per selection:              {[len(s) for s in in_process]}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
