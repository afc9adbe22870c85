"""How long a short flow run takes with Prefect's own heartbeat thread and with dbt2prefect's (prefect_heartbeat).

Prefect 3.9's heartbeat thread sleeps in one-second steps and is joined when the flow run ends; dbt2prefect's waits on
the stop event. The script runs a 0.2 s flow RUNS times with each, twice in alternation, against Prefect's test
server (a temporary SQLite database), and prints the medians.

Usage: .venv/bin/python bench/flow_exit.py [--runs 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prefect import flow, flow_engine
from prefect.testing.utilities import prefect_test_harness

from dbt2prefect import prefect_heartbeat


@flow
def short() -> int:
    time.sleep(0.2)
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    runs = parser.parse_args().runs
    stock = flow_engine._send_heartbeats
    with prefect_test_harness(server_startup_timeout=120):
        short()
        for label in ("stock", "dbt2prefect", "stock", "dbt2prefect"):
            flow_engine._send_heartbeats = stock if label == "stock" else prefect_heartbeat.send_heartbeats
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                short()
                times.append(time.perf_counter() - started)
            print(f"{label:12} median {statistics.median(times):.3f} s over {runs} flow runs")
        flow_engine._send_heartbeats = stock


if __name__ == "__main__":
    main()
