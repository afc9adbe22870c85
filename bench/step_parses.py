"""How many times dbt's parser reads each step of a `run_dbt_wg` run of 3 steps.

A run validates its parameters (`validate`), finds the targets its steps set (`step_targets`) and plans its dbt
invocations (`plan_invocations`), in that order, before dbt starts (see `dbt2prefect.run_job.execute`). The script
does the same in a new process, counts the calls of `dbt2prefect.dbt_cli.parse_args` (where dbt's click parser
runs) and prints them per step. `--before PATH` measures another checkout too (for example an older commit
exported to a folder, run with the same interpreter) and prints the ratio of the two counts.

Usage: .venv/bin/python bench/step_parses.py [--before PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

STEPS = ["dbt seed", "dbt build --select staging+ --exclude tag:slow", "dbt test --select marts --target prod"]

RUN = """
import json, sys
from dbt2prefect import dbt_cli
from dbt2prefect.params import plan_invocations, step_targets, validate

calls = 0
parse_args = dbt_cli.parse_args


def counting(*args, **kwargs):
    global calls
    calls += 1
    return parse_args(*args, **kwargs)


dbt_cli.parse_args = counting
params = validate({"target": "prod", "threads": 4, "steps": json.loads(sys.argv[1])})
step_targets(params)
invocations = plan_invocations(params, "prod", state_dir=None)
print(json.dumps({"calls": calls, "invocations": len(invocations)}))
"""


def count(repo: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(STEPS)],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to compare with")
    options = parser.parse_args()
    checkouts = {"now": Path(__file__).resolve().parent.parent}
    if options.before is not None:
        checkouts = {"before": options.before, **checkouts}
    calls = {}
    for name, repo in checkouts.items():
        result = count(repo)
        calls[name] = result["calls"]
        print(
            f"{name}: {len(STEPS)} steps, {result['invocations']} dbt invocations planned: {result['calls']} parser "
            f"calls, {result['calls'] / len(STEPS):.1f} per step"
        )
    if "before" in calls:
        print(f"ratio before/now: {calls['before'] / calls['now']:.1f}x")


if __name__ == "__main__":
    main()
