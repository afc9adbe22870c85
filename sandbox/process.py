"""A long-running child process of the sandbox (a Prefect server, a worker): started in its own session with
its output in a log file, stopped in order, usable as a context manager."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from sandbox.errors import ServerStartError


def spawn(
    command: Sequence[str], *, log_path: Path, env: Mapping[str, str], what: str, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `command` with stdout and stderr in `log_path`, in a session of its own (Ctrl-C reaches only us).

    Raises:
        ServerStartError: the process could not be started (`what` names it).
    """
    with log_path.open("wb") as log:
        try:
            return subprocess.Popen(
                list(command),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
        except OSError as exc:
            raise ServerStartError(f"cannot start `{what}`: {exc}") from None


class ChildProcess:
    """What every sandbox child process offers: its pid, its log's tail, whether it runs, and `stop()`."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self._process = process
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self._process.pid

    def exit_code(self) -> int | None:
        """None while the process runs."""
        return self._process.poll()

    def running(self) -> bool:
        return self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_until(
        self, ready: Callable[[httpx.Client], bool], *, timeout: float, what: str, interval: float = 0.25
    ) -> None:
        """Poll `ready` (HTTP errors count as not ready) until it is true.

        The process is stopped when the wait does not succeed (an error, a timeout, an interrupt): the caller
        holds it only once it is ready.

        Raises:
            ServerStartError: the process exited, or `ready` stayed false for `timeout` seconds; the message says
                `what` was awaited and ends with the log's tail.
        """
        deadline = time.monotonic() + timeout
        try:
            with httpx.Client(timeout=5.0) as client:
                while True:
                    if self.exit_code() is not None:
                        raise ServerStartError(
                            f"{what}: the process exited with code {self.exit_code()}; "
                            f"log {self.log_path}:\n{self.log_tail()}"
                        )
                    try:
                        if ready(client):
                            return
                    except (httpx.HTTPError, ValueError):
                        pass
                    if time.monotonic() > deadline:
                        raise ServerStartError(
                            f"{what}: not ready after {timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
                        )
                    time.sleep(interval)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or failed while waiting: nobody holds the process yet to stop it.
            self.stop()
            raise

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after `timeout`); safe to call twice."""
        if self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
