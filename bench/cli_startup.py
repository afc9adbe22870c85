"""CPU time of short `dbt2prefect` commands: --version, --help and a plan of a saved inventory.

Each command runs as `python -m cli` in a new process, RUNS times; the script prints the median CPU
seconds (user + system) of each and the load average, which matters on a shared machine. `--repo` measures
another checkout (for example an older commit exported to a folder) with the same interpreter.

Usage: .venv/bin/python bench/cli_startup.py [--runs 3] [--repo PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

COMMANDS = (
    ["--version"],
    ["--help"],
    ["plan", "--from-file", "sandbox/dbt_cloud/seed_jobs.json", "--json"],
)


def cpu_seconds(args: list[str], repo: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    options = parser.parse_args()
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for args in COMMANDS:
        times = [cpu_seconds(args, options.repo) for _ in range(options.runs)]
        print(f"dbt2prefect {' '.join(args):60} median {statistics.median(times):.2f} s CPU over {options.runs} runs")


if __name__ == "__main__":
    main()
