"""A real `prefect worker start` process on the sandbox's Prefect server: it runs deployment runs as production does.

The worker runs in a folder of its own (not the repository), so a deployment run finds its code only through
the deployment's pull steps, exactly as a worker of a Prefect Cloud pool does. Its host environment is the
caller's without what points into the operator's checkout (the tenant file, the run folders, PYTHONPATH): each
flow run works in a temporary folder under the worker's folder (its clone goes there) and keeps its private run
folders in `runs/` there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from sandbox.process import ChildProcess, spawn

POLL_SECONDS = 1.0
"""How often the sandbox worker asks for runs (Prefect's default is 10 s; a rehearsal should not wait)."""

IDLE_GRACE_SECONDS = 2.0
"""How long a stopping worker without flow-run processes may take to exit on its own before it is stopped."""


OPERATOR_ONLY = ("DBT2PREFECT_TENANT_FILE", "DBT2PREFECT_RUNS_DIR", "PYTHONPATH")
"""Variables of the caller that name its own files: a worker host has none of them (a flow run imports the code
of its clone and reads the tenant file its deployment names)."""


def _worker_environment(api_url: str, folder: Path, extra: Mapping[str, str]) -> dict[str, str]:
    # Only what a worker host would have: no client profile or Cloud key of the caller's shell, none of its files.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_API_", "PREFECT_PROFILE")) and k not in OPERATOR_ONLY
    }
    env.update(
        {
            "DBT2PREFECT_RUNS_DIR": str(folder / "runs"),
            "TMPDIR": str(folder / "tmp"),
            "PREFECT_API_URL": api_url,
            "PREFECT_WORKER_QUERY_SECONDS": str(POLL_SECONDS),
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    env.update(extra)
    return env


class ProcessWorker(ChildProcess):
    """A process worker polling one work pool. Use `ProcessWorker.start(...)`, then `wait_ready()`."""

    def __init__(self, process: subprocess.Popen[bytes], pool: str, api_url: str, name: str, log_path: Path) -> None:
        super().__init__(process, log_path)
        self.pool = pool
        self.api_url = api_url
        self.name = name

    def __repr__(self) -> str:
        return f"ProcessWorker(pool={self.pool!r}, pid={self.pid})"

    @property
    def folder(self) -> Path:
        """The folder the worker runs in (its log is next to it)."""
        return self.log_path.with_name(self.log_path.stem)

    @classmethod
    def start(
        cls,
        *,
        pool: str,
        api_url: str,
        folder: Path,
        env: Mapping[str, str] | None = None,
        name: str = "sandbox-worker",
    ) -> ProcessWorker:
        """Start `prefect worker start --pool POOL --type process` in `folder` (created, best empty).

        Args:
            env: extra environment of the worker host; flow runs inherit it (deployment job variables win).
                Flow runs work in temporary folders under `folder/tmp` and keep their run folders in
                `folder/runs` unless `env` says otherwise.

        Raises:
            ServerStartError: the process could not be started.
        """
        (folder / "tmp").mkdir(parents=True, exist_ok=True)
        log_path = folder.parent / f"{folder.name}.log"
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        command += ["--name", name]
        process = spawn(
            command,
            log_path=log_path,
            env=_worker_environment(api_url, folder, env or {}),
            what="prefect worker start",
            cwd=folder,
        )
        return cls(process, pool, api_url, name, log_path)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the worker: SIGTERM, then SIGKILL after `timeout` while flow runs are still running in it.

        On SIGTERM Prefect's worker stops asking for runs and waits for its flow-run processes; a second SIGTERM
        is its own escalation to SIGKILL. After runs that ended, the worker can stay idle in that wait for good
        (seen after the demo's story), so once it has no flow-run process left for `IDLE_GRACE_SECONDS` the second
        SIGTERM is sent: the wait protects running flow runs, and there are none. Where child processes cannot
        be read (no /proc), the full `timeout` applies as before.
        """
        if self._process.poll() is not None:
            return
        self._process.terminate()
        deadline = time.monotonic() + timeout
        idle_since: float | None = None
        escalated = False
        while not escalated and self._process.poll() is None and time.monotonic() < deadline:
            now = time.monotonic()
            idle_since = (idle_since or now) if _children(self.pid) == 0 else None
            escalated = idle_since is not None and now - idle_since >= IDLE_GRACE_SECONDS
            if escalated:
                self._process.send_signal(signal.SIGTERM)
            else:
                time.sleep(0.1)
        try:
            self._process.wait(IDLE_GRACE_SECONDS if escalated else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the worker has registered with its pool (its first heartbeat).

        Raises:
            ServerStartError: the process exited or did not register within `timeout` (log tail in the message).
        """
        url = f"{self.api_url}/work_pools/{self.pool}/workers/filter"

        def registered(client: httpx.Client) -> bool:
            response = client.post(url, json={})
            return response.status_code == 200 and any(w.get("name") == self.name for w in response.json())

        self.wait_until(registered, timeout=timeout, what=f"the Prefect worker for pool {self.pool!r}", interval=0.5)


def _children(pid: int) -> int | None:
    """How many processes `pid` is the parent of, from /proc; None where /proc cannot be read."""
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    count = 0
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        if len(fields) > 1 and fields[1] == str(pid):
            count += 1
    return count
