"""Start and stop the sandbox dbt Cloud server on a free loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.dbt_cloud.app import SandboxApp, create_app
from sandbox.dbt_cloud.faults import FaultSettings


class SandboxDbtCloud:
    """A running sandbox server. Use `SandboxDbtCloud.start(...)`, as a context manager or with `.stop()`.

    Attributes:
        url: base URL (`http://127.0.0.1:PORT`), the client's host setting.
        token: the token the server accepts.
        app: the `SandboxApp` (state, faults, `run_job`).
    """

    def __init__(self, app: SandboxApp, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def __repr__(self) -> str:
        return f"SandboxDbtCloud(url={self.url!r}, account_id={self.account_id})"

    @property
    def token(self) -> str:
        return self.app.token

    @property
    def account_id(self) -> int:
        return self.app.state.account_id

    @classmethod
    def start(
        cls,
        jobs_file: Path | None = None,
        *,
        app: SandboxApp | None = None,
        port: int = 0,
        startup_timeout: float = 10.0,
        **app_options: Any,
    ) -> SandboxDbtCloud:
        """Serve a sandbox account (a new `create_app(jobs_file, **app_options)` unless `app` is given)."""
        sandbox_app = app or create_app(jobs_file, **app_options)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(
            sandbox_app, http="h11", lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="sandbox-dbt-cloud")
        thread.start()
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"sandbox dbt Cloud server did not start on 127.0.0.1:{bound_port}")
            time.sleep(0.02)
        return cls(sandbox_app, server, thread, bound_port)

    def set_faults(self, settings: FaultSettings | None = None, **changes: Any) -> FaultSettings:
        """Change fault injection at runtime (same as POST /_sandbox/faults)."""
        return self.app.faults.configure(settings, **changes)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for running jobs."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self.app.close()

    def __enter__(self) -> SandboxDbtCloud:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
