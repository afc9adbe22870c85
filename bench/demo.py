"""The demo's budget: wall time of `dbt2prefect demo` and of each step, against a 3-minute goal.

Run: .venv/bin/python bench/demo.py [--runs N]
Each run starts from an empty work folder (servers, worker, dbt builds and all). Prints each step's seconds and,
per run, the total and its ratio to the 180 s budget. The suite does not time the demo (tests assert no
durations); this is where its speed is measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the step table, not every flow run's log lines

from sandbox.demo import run_demo

BUDGET_SECONDS = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    totals = []
    for number in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="dbt2prefect-bench-demo-") as folder:
            result = run_demo(Path(folder) / "work")
        if not result.ok:
            failed = result.failed
            raise SystemExit(f"run {number}: the demo failed at {failed.key if failed else '?'}")
        totals.append(result.seconds)
        print(f"run {number}: {result.seconds:.1f} s ({result.seconds / BUDGET_SECONDS:.2f}x the budget)")
        for step in result.steps:
            print(f"  {step.key:<22} {step.seconds:6.1f} s")
    median = statistics.median(totals)
    print(
        f"median {median:.1f} s over {len(totals)} run(s): {median / BUDGET_SECONDS:.2f}x the {BUDGET_SECONDS:.0f} s budget"
    )


if __name__ == "__main__":
    main()
