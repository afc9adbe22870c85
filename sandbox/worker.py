"""A real `prefect worker start` process on the sandbox's Prefect server: it runs deployment runs as production does.

The worker runs in a folder of its own (not the repository), so a deployment run finds its code only through
the deployment's pull steps, exactly as a worker of a Prefect Cloud pool does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from sandbox.errors import ServerStartError

POLL_SECONDS = 1.0
"""How often the sandbox worker asks for runs (Prefect's default is 10 s; a rehearsal should not wait)."""


def _worker_environment(api_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    # Only what a worker host would have: no client profile or Cloud key of the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "PREFECT_PROFILE"))}
    env.update(
        {
            "PREFECT_API_URL": api_url,
            "PREFECT_WORKER_QUERY_SECONDS": str(POLL_SECONDS),
            "PREFECT_WORKER_PREFETCH_SECONDS": "5",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    env.update(extra)
    return env


class ProcessWorker:
    """A process worker polling one work pool. Use `ProcessWorker.start(...)`, then `wait_ready()`."""

    def __init__(self, process: subprocess.Popen[bytes], pool: str, api_url: str, name: str, log_path: Path) -> None:
        self._process = process
        self.pool = pool
        self.api_url = api_url
        self.name = name
        self.log_path = log_path

    def __repr__(self) -> str:
        return f"ProcessWorker(pool={self.pool!r}, pid={self.pid})"

    @property
    def pid(self) -> int:
        return self._process.pid

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

        Raises:
            ServerStartError: the process could not be started.
        """
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder.parent / f"{folder.name}.log"
        command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        command += ["--name", name]
        with log_path.open("wb") as log:
            try:
                process = subprocess.Popen(
                    command,
                    cwd=folder,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=_worker_environment(api_url, env or {}),
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerStartError(f"cannot start `prefect worker start`: {exc}") from None
        return cls(process, pool, api_url, name, log_path)

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the worker has registered with its pool (its first heartbeat).

        Raises:
            ServerStartError: the process exited or did not register within `timeout` (log tail in the message).
        """
        deadline = time.monotonic() + timeout
        url = f"{self.api_url}/work_pools/{self.pool}/workers/filter"
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self._process.poll() is not None:
                    raise ServerStartError(
                        f"the Prefect worker exited with code {self._process.returncode} before it registered; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                try:
                    response = client.post(url, json={})
                    if response.status_code == 200 and any(w.get("name") == self.name for w in response.json()):
                        return
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerStartError(
                        f"the Prefect worker for pool {self.pool!r} did not register within {timeout:.0f}s; "
                        f"log {self.log_path}:\n{self.log_tail()}"
                    )
                time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return self._process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the worker (SIGTERM, then SIGKILL); safe to call twice."""
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout)

    def __enter__(self) -> ProcessWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
