"""Whole-process time of `run_dbt_wg` build against bare `dbt build` on the tenant project.

Same project, same target (`local`, DuckDB), same data; the flow talks to a local Prefect server that this script
starts on loopback. Each variant runs once to warm up (partial parse, OS caches), then RUNS times; the script prints
the median of each and the ratios to bare dbt. Variants:
  bare dbt   `dbt build` in a subprocess (its own target path, reused, so partial parsing applies)
  flow       `dbt2prefect run` with per-node task runs (PrefectDbtRunner inside the flow)
  flow lean  `dbt2prefect run --lean` (no per-node task runs; summary and artifacts kept)

Usage: .venv/bin/python bench/flow_overhead.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"Prefect server at {url} did not become healthy")


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    from sandbox.datagen import generate

    work = Path(tempfile.mkdtemp(prefix="dbt2prefect-bench-"))
    generate(work / "warehouse")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT2PREFECT_WAREHOUSE_DIR": str(work / "warehouse"),
        "DBT2PREFECT_RUNS_DIR": str(work / "runs"),
    }
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(api)
        env["PREFECT_API_URL"] = api
        project = REPO / "tenants" / "dbt_williamgrant"
        profiles = project / "profiles"
        bare = [
            str(BIN / "dbt"), "build", "--project-dir", str(project), "--profiles-dir", str(profiles),
            "--target", "local", "--target-path", str(work / "bare-target"), "--log-path", str(work / "bare-logs"),
        ]  # fmt: skip
        flow = [str(BIN / "dbt2prefect"), "run", "--target", "local", "--profiles-strategy", "local"]
        variants = {"bare dbt": bare, "flow": flow, "flow lean": [*flow, "--lean"]}
        times: dict[str, list[float]] = {name: [] for name in variants}
        for command in variants.values():
            timed(command, env, work)  # warm-up
        for _ in range(args.runs):
            for name, command in variants.items():
                times[name].append(timed(command, env, work))
    finally:
        server.terminate()
        server.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"tenant project, target local (DuckDB), {args.runs} runs after one warm-up each, 2 cores")
    for name, values in times.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:10s} median {medians[name]:6.2f} s   runs [{runs}]")
    print(f"ratio flow / bare dbt      {medians['flow'] / medians['bare dbt']:.2f}x   (goal <= 1.5x)")
    print(f"ratio flow lean / bare dbt {medians['flow lean'] / medians['bare dbt']:.2f}x   (goal <= 1.1x)")


if __name__ == "__main__":
    main()
