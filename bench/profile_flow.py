"""Where the time of one run goes: bare `dbt build`, `dbt2prefect run --lean` or a per-node run, under cProfile.

The variant runs in a child process of this script, profiled from its first import to its exit: the main thread on
the wall clock (its phases add up to the run's wall time) and, with --threads, every other thread (dbt's node
threads, prefect-dbt's callback and task threads, Prefect's event loop) with a profiler of its own on its own CPU
clock, so that threads which mostly wait do not count their waiting. Reading a thread's CPU clock at every call
costs a system call: with --threads a 1,000-model bare build runs several times slower. The report gives
  - the main thread's landmarks (cumulative wall seconds): imports, dbt's parse and node execution, artifact
    writing, the flow's own work around dbt (node results, summary, artifact store, Prefect artifacts);
  - self time by package for the main thread (wall) and for the other threads (CPU), a C function's time
    charged to the package that called it;
  - the functions with the most self time.
cProfile slows Python code down (often 1.5-2x for dbt), so absolute figures are above an unprofiled run's; the
shares are what to read. The raw profiles (main.prof, threads.prof) stay in the work folder for pstats or snakeviz.

Usage: PYTHONPATH=. .venv/bin/python bench/profile_flow.py --models 1000 --variant lean [--variant bare ...] [--threads]
"""

from __future__ import annotations

import argparse
import atexit
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

Func = tuple[str, int, str]

LANDMARKS: list[tuple[str, str, str]] = [
    ("imports (all modules, outermost)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("dbt invocation (dbtRunner.invoke)", "dbt/cli/main.py", "invoke"),
    ("  dbt parse (ManifestLoader.get_full_manifest)", "dbt/parser/manifest.py", "get_full_manifest"),
    ("  dbt partial-parse file write", "dbt/parser/manifest.py", "write_manifest_for_partial_parse"),
    ("  dbt node execution (execute_nodes)", "dbt/task/runnable.py", "execute_nodes"),
    ("  dbt manifest.json write (write_manifest)", "dbt/parser/manifest.py", "write_manifest"),
    ("  dbt run_results.json write", "dbt/artifacts/schemas/run/v5/run.py", "write"),
    ("prefect-dbt runner invoke", "prefect_dbt/core/runner.py", "invoke"),
    ("  prefect-dbt manifest load for tasks", "prefect_dbt/core/runner.py", "_set_manifest_from_project_dir"),
    ("Prefect: ensure API / settings", "dbt2prefect/prefect_api.py", "ensure_api"),
    ("Prefect: flow run (run_flow)", "prefect/flow_engine.py", "run_flow"),
    ("  flow body run_dbt_wg", "flows/dbt_wg_flow.py", "run_dbt_wg"),
    ("    dbt2prefect execute()", "dbt2prefect/run_job.py", "execute"),
    ("      project copy for packages (prepared_project)", "dbt2prefect/dbt_packages.py", "prepared_project"),
    ("      node results from run_results + manifest", "dbt2prefect/dbt_run.py", "_node_results"),
    ("      partial parse cache restore/keep", "dbt2prefect/dbt_run.py", "_keep_parse"),
    ("      stage artifacts (copies)", "dbt2prefect/run_job.py", "_stage_artifacts"),
    ("      artifact store save_run", "dbt2prefect/artifact_store.py", "save_run"),
    ("      run summary (summarize)", "dbt2prefect/summary.py", "summarize"),
    ("    summary markdown", "dbt2prefect/summary.py", "to_markdown"),
    ("    node table rows", "dbt2prefect/summary.py", "to_table"),
    ("    Prefect markdown artifact", "prefect/artifacts.py", "create_markdown_artifact"),
    ("    Prefect table artifact", "prefect/artifacts.py", "create_table_artifact"),
    ("logging: Prefect API log handler emit", "prefect/logging/handlers.py", "emit"),
]

THREAD_LANDMARKS: list[tuple[str, str, str]] = [
    ("dbt node runner (call_runner)", "dbt/task/runnable.py", "call_runner"),
    ("prefect-dbt callback worker (dbt events to tasks)", "prefect_dbt/core/runner.py", "_callback_worker"),
    ("  prefect-dbt task run for a node (_call_task)", "prefect_dbt/core/runner.py", "_call_task"),
    ("Prefect task engine (run_task_sync)", "prefect/task_engine.py", "run_task_sync"),
    ("  task state changes (set_state)", "prefect/task_engine.py", "set_state"),
    ("Prefect events: emit_event", "prefect/events/utilities.py", "emit_event"),
    ("Prefect events: websocket send (_emit)", "prefect/events/clients.py", "_emit"),
    ("Prefect logs: API log handler emit", "prefect/logging/handlers.py", "emit"),
    ("Prefect logs: batch POST (_handle_batch)", "prefect/logging/handlers.py", "_handle_batch"),
]
"""Landmarks of the other threads (CPU seconds, cumulative over all threads)."""

WAITS = (
    "acquire' of '_thread", "time.sleep", "poll' of 'select", "select.select", "method 'join'", "recv' of '_socket",
    "recv_into' of '_socket", "method 'control' of 'select",
)  # fmt: skip
"""C functions whose time is waiting (locks, sleeps, sockets), kept out of the package shares."""


def area(func: Func) -> str:
    """The package a function belongs to: site-packages' top folder, the project's top folder, stdlib module."""
    path = func[0]
    if path == "~":
        return "(C, no caller)"
    if path.startswith("<frozen"):
        return "import machinery"
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py").split(".")[0]
    if path.startswith(str(REPO)):
        return path[len(str(REPO)) + 1 :].split("/", 1)[0]
    if "/lib/python3" in path:
        module = path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
        return f"stdlib {module}"
    return path


def by_package(stats: pstats.Stats) -> tuple[Counter[str], float]:
    """Self time per package, a C function's charged to its callers' packages; and the time spent waiting."""
    totals: Counter[str] = Counter()
    waiting = 0.0
    for func, (_, _, tottime, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func[0] != "~":
            totals[area(func)] += tottime
            continue
        if any(w in func[2] for w in WAITS):
            waiting += tottime
            continue
        charged = 0.0
        for caller, value in callers.items():
            totals[area(caller)] += value[2]
            charged += value[2]
        if tottime > charged:
            totals["(C, no caller)"] += tottime - charged
    return totals, waiting


def landmark(stats: pstats.Stats, path_part: str, name: str) -> tuple[int, float]:
    calls, cumulative = 0, 0.0
    for func, (_, ncalls, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if func[2] == name and path_part in func[0]:
            calls += ncalls
            cumulative += cumtime
    return calls, cumulative


def top_self(stats: pstats.Stats, n: int) -> list[tuple[float, int, Func]]:
    rows = [(v[2], v[1], f) for f, v in stats.stats.items() if not any(w in f[2] for w in WAITS)]  # type: ignore[attr-defined]
    return sorted(rows, reverse=True)[:n]


def short(func: Func) -> str:
    path, line, name = func
    if path == "~":
        return name
    for marker in ("site-packages/", f"{REPO}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{line} {name}"


def report(folder: Path, top: int) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    main_stats = pstats.Stats(str(folder / "main.prof"))
    print(f"\n== {meta['variant']}: {meta['wall']:.1f} s wall (profiled), process CPU {meta['cpu']:.1f} s, "
          f"{meta['threads']} threads profiled; exit {meta['exit']}; load average {meta['load_before']} before, "
          f"{meta['load_after']} after")  # fmt: skip
    print("main thread, wall clock, cumulative (calls):")
    for label, path_part, name in LANDMARKS:
        calls, cumulative = landmark(main_stats, path_part, name)
        if calls:
            print(f"  {label:52s} {cumulative:8.1f} s  ({calls})")
    for title, stats_file in (("main thread, wall", "main.prof"), ("other threads, CPU", "threads.prof")):
        if not (folder / stats_file).is_file():
            continue
        stats = pstats.Stats(str(folder / stats_file))
        if stats_file == "threads.prof":
            print("other threads, CPU clock, cumulative (calls):")
            for label, path_part, name in THREAD_LANDMARKS:
                calls, cumulative = landmark(stats, path_part, name)
                if calls:
                    print(f"  {label:52s} {cumulative:8.1f} s  ({calls})")
        totals, waiting = by_package(stats)
        total = sum(totals.values())
        print(f"self time by package ({title}): {total:.1f} s outside waits (+ {waiting:.1f} s waiting)")
        for name, share in totals.most_common(12):
            print(f"  {name:28s} {share:8.1f} s  {share / total * 100:5.1f} %")
        print(f"top {top} functions by self time ({title}):")
        for seconds, calls, func in top_self(stats, top):
            print(f"  {seconds:7.2f} s {calls:9d}x  {short(func)}")
    print("profiles:", ", ".join(str(f) for f in (folder / "main.prof", folder / "threads.prof") if f.is_file()))


def child(variant: str, folder: Path, command: list[str], threads: bool) -> None:
    """Run `command` in this process under one profiler per thread; write main.prof, threads.prof, meta.json.

    The profiles are written by the exit handler registered first, which runs last: after Prefect's own handlers
    (which send the remaining logs and events), so the process's exit is part of the main thread's profile.
    """
    if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
        sys.path.pop(0)  # this script's folder: its modules must not shadow the run's imports
    load_before = os.getloadavg()
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    main = cProfile.Profile()
    exit_code: list[str | int | None] = [0]

    def start_thread_profile(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()

    def finish() -> None:
        main.disable()
        wall = time.perf_counter() - started
        main.dump_stats(folder / "main.prof")
        with lock:
            taken = list(profiles)
        if taken:
            merged = pstats.Stats(taken[0])
            for profile in taken[1:]:
                merged.add(profile)
            merged.dump_stats(folder / "threads.prof")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        meta = {
            "variant": variant, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "threads": len(taken) + 1,
            "exit": exit_code[0], "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }  # fmt: skip
        (folder / "meta.json").write_text(json.dumps(meta))

    atexit.register(finish)
    if threads:
        threading.setprofile(start_thread_profile)
    sys.argv = command
    started = time.perf_counter()
    main.enable()
    try:
        if variant == "bare":
            from dbt.cli.main import cli

            cli()
        else:
            from cli.app import main as cli_main

            cli_main()
    except SystemExit as exc:
        exit_code[0] = exc.code
    sys.exit(exit_code[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--variant", action="append", choices=["bare", "lean", "per-node"])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--threads", action="store_true", help="profile every thread on its CPU clock (slow)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help="print the report of an earlier run's profile folder")
    args, rest = parser.parse_known_args()
    if args.child:
        child(args.child, args.out, rest[1:] if rest[:1] == ["--"] else rest, args.threads)
        return
    if args.report:
        report(args.report, args.top)
        return
    sys.path.insert(0, str(REPO))
    from bench.flow_overhead import free_port, wait_healthy
    from bench.scale import SERVER, BenchProject

    bench = BenchProject.create(args.models, "dbt2prefect-profile-")
    work, env = bench.work, bench.env
    print(f"{args.models} models: {bench.counts}; work folder {work}", flush=True)
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    variants = args.variant or ["lean"]
    server = None
    if set(variants) - {"bare"}:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        env["PREFECT_API_URL"] = api
    commands = {"bare": "bare dbt", "lean": "flow lean", "per-node": "flow per-node"}
    try:
        if server is not None:
            wait_healthy(api, timeout=300)
        for variant in variants:
            folder = work / f"profile-{variant}"
            folder.mkdir()
            print(f"profiling {variant} ...", flush=True)
            subprocess.run(
                [sys.executable, __file__, "--child", variant, "--out", str(folder), *(["--threads"] if args.threads else []),
                 "--", *bench.commands()[commands[variant]]],
                env=env, cwd=work, check=True, stdout=(folder / "output.log").open("w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            report(folder, args.top)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
