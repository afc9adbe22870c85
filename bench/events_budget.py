"""Events and log lines one `run_dbt_wg` build sends to Prefect: per node, and the peak in any 60 s.

Prefect Cloud counts every log line and every event in one per-minute "logs + events" bucket per account (see
docs/performance.md, "Events and logs budget"). This script generates a project of N models
(bench/generate_project.py), starts a local Prefect server on loopback (temporary PREFECT_HOME), runs
`dbt2prefect run` once on it (a task run per node by default, `--node-task-runs states` for every node's task run
recorded from dbt's events, `--node-task-runs exceptions` for task runs only for failed, warned and slow nodes,
`--node-task-runs auto` for the default choice among them, `--lean` for the lean mode) with the budget
`[tenant.observability] logs_events_per_minute` set to `--budget`, then reads back from the server's API
- the events of the run's time span (POST /events/filter, every page), by name,
- the log lines of the flow run and its task runs (POST /logs/filter on the flow run id, every page),
and reports both per node of run_results.json and the largest count in any 60 s window (and in any calendar minute).
The websocket messages the server received on /events/in are counted too, as a check of what the client sent.

Usage: .venv/bin/python bench/events_budget.py --models 200 [--budget 2000] [--lean | --node-task-runs states]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.flow_overhead import free_port, wait_healthy  # noqa: E402
from bench.scale import SERVER, BenchProject, stats  # noqa: E402

PAGE = 200
EVENTS_PAGE = 50
"""The most events the server returns per page."""


def prefect_http(api_url: str) -> httpx.Client:
    """An HTTP client of the Prefect API at `api_url` that retries as Prefect's own client does (429, 502, 503 and
    timeouts, with back-off): a SQLite server answers 503 while its database is busy."""
    from prefect.client.base import PrefectHttpxSyncClient

    return PrefectHttpxSyncClient(base_url=api_url, timeout=60)


def read_events(
    client: httpx.Client, since: datetime, until: datetime, resource: str | None = None
) -> list[dict[str, Any]]:
    """Every event the server stored that occurred in [since, until] (about `resource` or related to it, when
    given, e.g. 'prefect.flow-run.<id>'), following the filter's pages."""
    wanted: dict[str, Any] = {"occurred": {"since": since.isoformat(), "until": until.isoformat()}}
    if resource is not None:
        wanted["any_resource"] = {"id": [resource]}
    body = {"filter": wanted, "limit": EVENTS_PAGE}
    page = client.post("/events/filter", json=body).raise_for_status().json()
    events = list(page["events"])
    while page.get("next_page"):
        page = client.get(page["next_page"]).raise_for_status().json()
        events += page["events"]
    return events


def _read_offset_pages(client: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object a `<path>` filter (`body`) matches, following offset pages of `PAGE`."""
    found: list[dict[str, Any]] = []
    while True:
        page = client.post(path, json={**body, "limit": PAGE, "offset": len(found)}).raise_for_status().json()
        found += page
        if len(page) < PAGE:
            return found


def read_logs(client: httpx.Client, flow_run_id: str) -> list[dict[str, Any]]:
    """Every log line of the flow run and of its task runs (they carry the flow run's id)."""
    return _read_offset_pages(client, "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}})


def read_task_runs(client: httpx.Client, flow_run_id: str) -> list[dict[str, Any]]:
    """Every task run of the flow run."""
    return _read_offset_pages(client, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})


def settled(read: Callable[[], list[dict[str, Any]]], pause: float = 1.0) -> list[dict[str, Any]]:
    """What `read` returns once two reads agree: the server records events and logs asynchronously, in batches."""
    previous: list[dict[str, Any]] | None = None
    for _ in range(60):
        found = read()
        if previous is not None and len(found) == len(previous):
            return found
        previous = found
        time.sleep(pause)
    return found


def peak_per_minute(times: list[datetime]) -> tuple[int, int]:
    """The most timestamps in any 60 s window, and in any calendar minute."""
    ordered = sorted(times)
    sliding, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= timedelta(seconds=60):
            start += 1
        sliding = max(sliding, end - start + 1)
    minutes = Counter(t.replace(second=0, microsecond=0) for t in ordered)
    return sliding, max(minutes.values(), default=0)


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--budget", type=int, default=None, help="logs_events_per_minute (default: the setting's)")
    parser.add_argument("--lean", action="store_true", help="the lean mode (no per-node task runs)")
    parser.add_argument(
        "--node-task-runs",
        choices=["all", "states", "exceptions", "auto"],
        default="all",
        help="which nodes get a task run: every node, every node recorded from dbt's events, the failed, warned "
        "and slow ones, or the choice by project size and budget (default all)",
    )
    parser.add_argument(
        "--slow-node-seconds",
        type=float,
        default=None,
        help="slow_node_seconds: with a small value, many nodes count as slow and get a task run in the exceptions view",
    )
    args = parser.parse_args()

    settings: dict[str, Any] = {}
    if args.budget is not None:
        settings["logs_events_per_minute"] = args.budget
    if args.slow_node_seconds is not None:
        settings["slow_node_seconds"] = args.slow_node_seconds
    bench = BenchProject.create(args.models, "dbt2prefect-events-", settings)
    env = dict(bench.env)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_healthy(api, timeout=180)
        env["PREFECT_API_URL"] = api
        mode = "lean" if args.lean else {"all": "per-node"}.get(args.node_task_runs, args.node_task_runs)
        command = bench.commands()[f"flow {mode}"]
        stats(api, reset=True)
        started = datetime.now().astimezone()
        run = subprocess.run(command, env=env, cwd=bench.work, capture_output=True, text=True, check=False)
        finished = datetime.now().astimezone()
        if run.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
            )
        sent = stats(api, reset=False)["routes"]
        with prefect_http(api) as client:
            flow_runs = client.post("/flow_runs/filter", json={"limit": 1, "sort": "START_TIME_DESC"}).json()
            flow_run_id = flow_runs[0]["id"]
            since, until = started - timedelta(seconds=5), finished + timedelta(seconds=30)
            events = settled(lambda: read_events(client, since, until), pause=2.0)
            logs = settled(lambda: read_logs(client, flow_run_id))
            artifacts = client.post("/artifacts/filter", json={"limit": 10}).json()
            task_runs = read_task_runs(client, flow_run_id)
    finally:
        server.terminate()
        server.wait(timeout=60)

    from app.workspace import Workspace

    store = Workspace.open(bench.tenant_file).store
    key = store.find_run("bench", "dbt_wg", flow_run_id)
    assert key is not None, "the flow run stored no artifacts"
    nodes = len(store.read_json(key, "run_results.json")["results"])
    times = [parse_time(e["occurred"]) for e in events] + [parse_time(line["timestamp"]) for line in logs]
    sliding, calendar = peak_per_minute(times)
    names = Counter(str(e["event"]) for e in events)
    websocket = sum(n for route, n in sent.items() if route.startswith("WS "))
    summary = next((a for a in artifacts if a.get("type") == "markdown"), None)
    seconds = (finished - started).total_seconds()
    slow = f", slow_node_seconds {args.slow_node_seconds:g}" if args.slow_node_seconds is not None else ""
    print(
        f"{args.models} models, {nodes} nodes, flow {mode}, budget {args.budget or 'default'}{slow}, "
        f"run {seconds:.0f} s"
    )
    requests = sum(n for route, n in sent.items() if not route.startswith("WS "))
    recording = sum(n for route, n in sent.items() if route.startswith("POST /api/task_runs"))
    print(f"API requests {requests} (task runs created or set: {recording})")
    states = Counter(str((run.get("state") or {}).get("name")) for run in task_runs)
    print(f"task runs {len(task_runs):6d}  by state: {dict(sorted(states.items()))}")
    print(f"events    {len(events):6d}  ({len(events) / nodes:.2f}/node; websocket messages received {websocket})")
    print(f"log lines {len(logs):6d}  ({len(logs) / nodes:.2f}/node)")
    print(f"together  {len(events) + len(logs):6d}  ({(len(events) + len(logs)) / nodes:.2f}/node)")
    print(f"peak      {sliding:6d} in any 60 s, {calendar} in a calendar minute")
    print(f"events by name: {json.dumps(names.most_common(12))}")
    levels = Counter(int(line["level"]) for line in logs)
    print(
        f"log lines by level: {dict(sorted(levels.items()))}; task-run lines {sum(1 for x in logs if x['task_run_id'])}"
    )
    section = str(summary.get("data")) if summary is not None else ""
    view = next((line for line in section.splitlines() if line.startswith("node view: ")), None)
    if view is not None:
        print(f"summary: {view}")
    if "## Left out of Prefect" in section:
        print("summary: " + section.split("## Left out of Prefect", 1)[1].strip().split("\n")[0][:400])


if __name__ == "__main__":
    main()
