"""Stopping the sandbox worker: Prefect's worker waits for its flow-run processes on the first SIGTERM and is
killed by the second; the sandbox sends the second only once no flow-run process is left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sandbox.worker import ProcessWorker, _children

# Stands in for `prefect worker start`: the first SIGTERM is taken as "stop polling, wait for the runs", the
# second ends the process with exit code 3, and says whether its child (the "flow run") was still running.
FAKE_WORKER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(float(sys.argv[1]))", sys.argv[1]])
terms = []
def on_term(signum, frame):
    terms.append(signum)
    if len(terms) == 2:
        print("second SIGTERM; child running:", child.poll() is None, flush=True)
        sys.exit(3)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    child.poll()
    time.sleep(0.05)
"""


def _fake_worker(tmp_path: Path, child_seconds: float) -> ProcessWorker:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", FAKE_WORKER, str(child_seconds)], stdout=out)
    worker = ProcessWorker(process, "pool", "http://127.0.0.1:9", "fake", log)
    worker.wait_until(lambda _client: "ready" in log.read_text(), timeout=60, what="the fake worker")
    return worker


def test_a_worker_whose_runs_ended_gets_the_second_sigterm(tmp_path: Path) -> None:
    worker = _fake_worker(tmp_path, child_seconds=0)
    worker.stop(timeout=60)
    assert worker.exit_code() == 3  # ended by the second SIGTERM, not killed
    assert "second SIGTERM; child running: False" in worker.log_path.read_text()


def test_a_worker_with_a_running_flow_run_is_not_hurried(tmp_path: Path) -> None:
    worker = _fake_worker(tmp_path, child_seconds=4)
    worker.stop(timeout=60)
    assert worker.exit_code() == 3
    assert "second SIGTERM; child running: False" in worker.log_path.read_text()


def test_children_are_counted_from_proc() -> None:
    before = _children(os.getpid())
    assert before is not None
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            assert _children(os.getpid()) == before + 1
            assert _children(child.pid) == 0
        finally:
            child.kill()
