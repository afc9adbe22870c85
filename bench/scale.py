"""run_dbt_wg at scale: a generated project of N models (bench/generate_project.py), one run of each variant.

Against a local Prefect server that this script starts on loopback, with a counting middleware (requests per
route, slowest response) and a probe that loads the UI page and lists flow runs every 2 s while a flow runs:
  bare dbt        `dbt build` in a subprocess, target local
  flow lean       `dbt2prefect run --lean` (per_node_tasks=False), target parity
  flow per-node   `dbt2prefect run --node-task-runs all` (a task run per dbt node), target parity; it reuses the
                  partial parse the lean run stored (same project and target), while bare dbt and the lean run parse
                  from scratch
  flow states     `dbt2prefect run --node-task-runs states` (a task run per dbt node, recorded from dbt's events),
                  target parity; only with `--flow states`
  flow exceptions `dbt2prefect run --node-task-runs exceptions` (task runs only for failed, warned, slow nodes),
                  target parity; only with `--flow exceptions`
  flow auto       `dbt2prefect run --node-task-runs auto` (one of the two above, by project size and budget), target
                  parity; only with `--flow auto`
Then parity of the bare run (local database) against the per-node run (parity database), through compare_job with
every check (node sets, statuses, row counts, schema, value fingerprints), and selector resolution of 50
selections on one parsed manifest. Peak memory is the resident set of each process tree, sampled every 0.25 s;
CPU is the user + system time of each command (with the processes it waited for) and of the server meanwhile.

Usage: .venv/bin/python bench/scale.py --models 1000 [--flow lean] [--flow per-node] [--flow states] [--flow exceptions] [--no-parity]
       [--no-selection]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from bench.flow_overhead import free_port, wait_healthy  # noqa: E402
from bench.generate_project import DOMAINS, generate  # noqa: E402

SERVER = """
import re, sys, time, json
from collections import Counter
import uvicorn
from prefect.server.api.server import create_app

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

class Counting:
    def __init__(self, app):
        self.app, self.routes, self.slowest = app, Counter(), (0.0, "")
    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            route = "WS " + scope["path"]
            async def counted():
                message = await receive()
                if message["type"] == "websocket.receive":
                    self.routes[route] += 1
                return message
            return await self.app(scope, counted, send)
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == "/__bench__/stats":
            body = json.dumps({"routes": self.routes, "slowest": self.slowest}).encode()
            if scope["method"] == "POST":
                self.routes, self.slowest = Counter(), (0.0, "")
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
            return await send({"type": "http.response.body", "body": body})
        probe = any(k == b"x-bench-probe" for k, _ in scope["headers"])
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            if not probe:
                route = scope["method"] + " " + UUID.sub("{id}", scope["path"])
                self.routes[route] += 1
                self.slowest = max(self.slowest, (time.perf_counter() - started, route))

uvicorn.run(Counting(create_app(final=True)), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@dataclass(frozen=True)
class BenchProject:
    """A generated project in a new work folder, with the tenant file and environment every variant runs with."""

    work: Path
    project: Path
    warehouse: Path
    counts: dict[str, int]
    tenant_file: Path
    env: dict[str, str]

    @classmethod
    def create(cls, models: int, prefix: str, observability: Mapping[str, Any] | None = None) -> BenchProject:
        """`observability`: settings of `[tenant.observability]` that replace the tenant's."""
        from dbt2prefect.tenant import load_tenant
        from sandbox.stack import derive_tenant_file

        work = Path(tempfile.mkdtemp(prefix=prefix))
        project, warehouse = work / "project", work / "warehouse"
        counts = generate(project, models, warehouse)
        tenant_file = derive_tenant_file(
            work / "bench.toml",
            overrides={
                "name": "bench", "project_dir": str(project), "profile_name": "bench",
                "local_profiles_dir": str(project / "profiles"), "targets": ["local", "parity"],
                "default_target": "local", "artifact_store_url": str(work / "artifacts"),
                "ledger_url": str(work / "ledger"), "dbt_cloud_environments": {}, "acknowledged_findings": [],
                "observability": {**load_tenant().observability.model_dump(), **(observability or {})},
            },
        )  # fmt: skip
        env = {
            **os.environ,
            "PREFECT_HOME": str(work / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT2PREFECT_RUNS_DIR": str(work / "runs"),
            "PYTHONPATH": str(REPO),
        }
        return cls(work, project, warehouse, counts, tenant_file, env)

    def commands(self) -> dict[str, list[str]]:
        """The command line of each variant: bare dbt on target local, the flow variants on target parity."""
        bare = [
            str(BIN / "dbt"), "build", "--project-dir", str(self.project), "--profiles-dir",
            str(self.project / "profiles"), "--target", "local", "--target-path", str(self.work / "bare-target"),
            "--log-path", str(self.work / "bare-logs"),
        ]  # fmt: skip
        flow = [
            str(BIN / "dbt2prefect"), "run", "--tenant-file", str(self.tenant_file), "--profiles-strategy", "local",
            "--target", "parity",
        ]  # fmt: skip
        return {
            "bare dbt": bare,
            "flow lean": [*flow, "--lean"],
            "flow per-node": [*flow, "--node-task-runs", "all"],
            "flow states": [*flow, "--node-task-runs", "states"],
            "flow exceptions": [*flow, "--node-task-runs", "exceptions"],
            "flow auto": [*flow, "--node-task-runs", "auto"],
        }


def tree_rss(process: psutil.Process) -> int:
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in members:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += member.memory_info().rss
    return total


class Sampler(threading.Thread):
    """Peak resident memory of the server's and the command's process trees; the probe's slowest answers."""

    def __init__(self, server: psutil.Process, command: psutil.Process, api: str | None) -> None:
        super().__init__(daemon=True)
        self.server, self.command, self.api = server, command, api
        self.server_peak = self.command_peak = 0
        self.probe_slowest: dict[str, float] = {}
        self.stop = threading.Event()

    def probe(self, name: str, request: urllib.request.Request) -> None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        except OSError:
            self.probe_slowest[f"{name} (failed)"] = time.perf_counter() - started
            return
        self.probe_slowest[name] = max(self.probe_slowest.get(name, 0.0), time.perf_counter() - started)

    def run(self) -> None:
        last_probe = 0.0
        while not self.stop.is_set():
            self.server_peak = max(self.server_peak, tree_rss(self.server))
            self.command_peak = max(self.command_peak, tree_rss(self.command))
            if self.api and time.monotonic() - last_probe > 2:
                last_probe = time.monotonic()
                headers = {"x-bench-probe": "1", "content-type": "application/json"}
                root = self.api.removesuffix("/api")
                self.probe("UI page", urllib.request.Request(f"{root}/", headers=headers))
                body = json.dumps({"limit": 50}).encode()
                self.probe(
                    "list flow runs",
                    urllib.request.Request(f"{self.api}/flow_runs/filter", body, headers, method="POST"),
                )
            time.sleep(0.25)


def stats(api: str, reset: bool) -> dict[str, Any]:
    root = api.removesuffix("/api")
    request = urllib.request.Request(f"{root}/__bench__/stats", method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


def measured(
    command: list[str], env: dict[str, str], cwd: Path, server: psutil.Process, api: str | None
) -> dict[str, Any]:
    server_cpu = sum(server.cpu_times()[:2])
    children_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(server, psutil.Process(process.pid), api)
    sampler.start()
    output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    # CPU seconds of the command and the processes it waited for, and of the server meanwhile: less sensitive to
    # the machine's load than wall time, which on a shared machine moves with everyone else's work.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children_cpu.ru_utime - children_cpu.ru_stime
    server_cpu = sum(server.cpu_times()[:2]) - server_cpu
    sampler.stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return {"seconds": elapsed, "cpu": cpu, "server_cpu": server_cpu, "peak_rss": sampler.command_peak,
            "server_peak": sampler.server_peak, "probe": sampler.probe_slowest}  # fmt: skip


def node_count(run_results: Path) -> int:
    return len(json.loads(run_results.read_text())["results"])


def selections(project: Path) -> list[Any]:
    from parity.selection import StepSelection

    models = sorted(p.stem for p in (project / "models").rglob("*.sql"))
    chosen = [StepSelection("build", select=(f"tag:{t}",)) for t in ("daily", "finance", "weekly")]
    chosen += [StepSelection("build", selector=s) for s in ("nightly", "finance", "weekly_marts")]
    chosen += [StepSelection("run", select=(f"path:models/marts/{d}",)) for d in DOMAINS]
    chosen += [StepSelection("test", select=("staging",)), StepSelection("seed"), StepSelection("snapshot")]
    chosen += [StepSelection("build", select=("tag:daily",), exclude=("tag:finance",))]
    step = max(1, len(models) // 19)
    for name in models[::step][:19]:
        chosen += [StepSelection("build", select=(f"+{name}",)), StepSelection("build", select=(f"{name}+",))]
    return chosen[:50]


def parity(work: Path, warehouse: Path, tenant_file: Path) -> str:
    """Parity of the bare run (database local) against the per-node run (database parity), every check."""
    from app.workspace import Workspace
    from dbt2prefect.warehouse import DuckDBWarehouse
    from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
    from parity.compare import JobInputs, compare_job
    from parity.model import RunRef
    from parity.settings import ParitySettings

    store = Workspace.open(tenant_file).store  # the bench tenant's store: <work>/artifacts
    key = store.latest("bench", "dbt_wg", "parity")
    folder = store.local_path(key) if key is not None else None
    assert key is not None and folder is not None, "the per-node flow run stored no artifacts"
    bare_art = RunArtifacts(
        label="baseline",
        manifest=parse_manifest(json.loads((work / "bare-target" / "manifest.json").read_text())),
        run_results=parse_run_results(json.loads((work / "bare-target" / "run_results.json").read_text())),
        target="local",
    )
    flow_art = RunArtifacts(
        label="candidate",
        manifest=parse_manifest(json.loads((folder / "manifest.json").read_text())),
        run_results=parse_run_results(json.loads((folder / "run_results.json").read_text())),
        target="parity",
    )
    inputs = JobInputs(
        1, bare_art, RunRef(system="files", run_id="bare"), flow_art, RunRef(system="files", run_id=key.flow_run_id)
    )
    started = time.perf_counter()
    with DuckDBWarehouse(warehouse / "local.duckdb") as base, DuckDBWarehouse(warehouse / "parity.duckdb") as cand:
        job = compare_job(inputs, ParitySettings(), base, cand)
    seconds = time.perf_counter() - started
    return (
        f"parity bare vs per-node: {job.verdict.value} in {seconds:.1f} s, queries per database "
        f"{job.queries_issued} (drill-down {job.drill_down_queries}); {job.nodes_matched} nodes matched, "
        f"{len(job.row_counts)} row counts, {len(job.value_checks)} value checks, errors {[f.reason for f in job.errors()][:5]}"
    )


def selection(project: Path, work: Path) -> str:
    """Resolution of 50 selections on one parsed manifest (a first, full parse)."""
    from parity.selection import SelectionResolver

    chosen = selections(project)
    started = time.perf_counter()
    with SelectionResolver(project, cache_dir=work / "selection-cache") as resolver:
        resolver.manifest("local")
        parsed = time.perf_counter()
        sizes = [len(resolver.resolve(step, "local")) for step in chosen]
    finished = time.perf_counter()
    return (
        f"selector resolution: {len(chosen)} selections in {finished - started:.1f} s = {parsed - started:.1f} s parse "
        f"+ {finished - parsed:.2f} s resolving ({(finished - parsed) / len(chosen) * 1000:.0f} ms each); "
        f"nodes per selection min {min(sizes)} max {max(sizes)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument(
        "--flow",
        action="append",
        choices=["lean", "per-node", "states", "exceptions", "auto"],
        help="flow variants to run (default lean and per-node; repeatable)",
    )
    parser.add_argument("--no-parity", action="store_true", help="skip parity of bare dbt against the per-node run")
    parser.add_argument("--no-selection", action="store_true", help="skip the selector resolution")
    parser.add_argument(
        "--budget",
        type=int,
        default=None,
        help="logs_events_per_minute and api_requests_per_minute of the run (default: the tenant's, which leave "
        "nodes of a large project without a task run; a budget over 7 per node measures every node's task run)",
    )
    args = parser.parse_args()
    flows = args.flow or ["lean", "per-node"]

    load = os.getloadavg()
    budget = (
        {} if args.budget is None else {"logs_events_per_minute": args.budget, "api_requests_per_minute": args.budget}
    )
    bench = BenchProject.create(args.models, "dbt2prefect-scale-", budget)
    work, project, warehouse, counts, env = bench.work, bench.project, bench.warehouse, bench.counts, bench.env
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = psutil.Process(server_process.pid)
    results: dict[str, dict[str, Any]] = {}
    try:
        wait_healthy(api, timeout=180)
        env["PREFECT_API_URL"] = api
        variants = {
            name: (command, None if name == "bare dbt" else api)
            for name, command in bench.commands().items()
            if name == "bare dbt" or name.split()[1] in flows
        }
        for name, (command, probe_api) in variants.items():
            stats(api, reset=True)
            print(f"running {name} ...", flush=True)
            results[name] = measured(command, env, work, server, probe_api)
            results[name]["requests"] = stats(api, reset=False)
            print(f"  {results[name]['seconds']:.1f} s", flush=True)
    finally:
        server_process.terminate()
        server_process.wait(timeout=60)

    nodes = node_count(work / "bare-target" / "run_results.json")
    parity_line = (
        parity(work, warehouse, bench.tenant_file) if "flow per-node" in results and not args.no_parity else None
    )
    selection_line = selection(project, work) if not args.no_selection else None

    mib = 1024 * 1024
    bare_s = results["bare dbt"]["seconds"]
    bare_cpu = results["bare dbt"]["cpu"]
    print(f"\n{args.models} models: {counts}; {nodes} nodes in run_results; load average before: {load}")
    for name, r in results.items():
        requests = r["requests"]
        total = sum(n for route, n in requests["routes"].items() if not route.startswith("WS "))
        messages = sum(n for route, n in requests["routes"].items() if route.startswith("WS "))
        line = f"{name:14s} {r['seconds']:7.1f} s  ratio {r['seconds'] / bare_s:5.2f}x"
        line += (
            f"  overhead/node {(r['seconds'] - bare_s) / nodes * 1000:6.1f} ms  peak RSS {r['peak_rss'] / mib:6.0f} MiB"
        )
        line += (
            f"\n{'':14s} CPU {r['cpu']:7.1f} s (ratio {r['cpu'] / bare_cpu:5.2f}x), server CPU {r['server_cpu']:.1f} s"
        )
        if name != "bare dbt":
            slowest_s, slowest_route = requests["slowest"]
            line += f"\n{'':14s} API requests {total} ({total / nodes:.2f}/node) + websocket messages {messages} ({messages / nodes:.2f}/node), server peak RSS {r['server_peak'] / mib:.0f} MiB,"
            line += f" slowest API response {slowest_s:.2f} s ({slowest_route}); probe slowest {r['probe']}"
            top = Counter(requests["routes"]).most_common(4)
            line += f"\n{'':14s} top routes {top}"
        print(line)
    for extra in (parity_line, selection_line):
        if extra is not None:
            print(extra)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
