"""The sandbox's object storage: an S3 API on loopback (moto's server), standing in for S3, GCS or ADLS.

Production keeps run artifacts, the cutover ledger and parity's pointers in object storage, reached through fsspec
with credentials and an address from the environment. The sandbox changes only those: `environment()` is what the
operator, the worker and CI get (botocore reads `AWS_ENDPOINT_URL_S3`), and the URLs stay `s3://...`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from sandbox.process import ChildProcess, spawn

BUCKET = "dbt2prefect-sandbox"
"""The bucket the sandbox's artifact store, ledger and parity pointers live in."""

_CREDENTIALS = {
    # moto accepts any key; these name themselves so nobody mistakes them for real ones.
    "AWS_ACCESS_KEY_ID": "sandbox-access-key",
    "AWS_SECRET_ACCESS_KEY": "sandbox-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Api(ChildProcess):
    """A `python -m moto.server` subprocess on loopback; its state lives in memory and ends with it.

    Use `S3Api.start(...)`, then `wait_ready()`; `stop()` ends the process (also as a context manager).
    """

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int, log_path: Path) -> None:
        super().__init__(process, log_path)
        self.host = host
        self.port = port

    def __repr__(self) -> str:
        return f"S3Api(endpoint_url={self.endpoint_url!r}, pid={self.pid})"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The variables that point boto3/s3fs at this API (an address and placeholder credentials, no secret)."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint_url, **_CREDENTIALS}

    @classmethod
    def start(cls, home: Path, *, port: int = 0, host: str = "127.0.0.1") -> S3Api:
        """Start the server process without waiting for it (call `wait_ready`).

        Raises:
            PortInUseError: `port` is taken.
            ServerStartError: the process could not be started.
        """
        from sandbox.stack import check_port_free, free_port

        if port:
            check_port_free(port, "--s3-port", host)
        chosen = port or free_port(host)
        home.mkdir(parents=True, exist_ok=True)
        log_path = home / "s3-api.log"
        command = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(chosen)]
        process = spawn(command, log_path=log_path, env=_server_environment(), what="moto.server")
        return cls(process, host, chosen, log_path)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the API lists buckets.

        Raises:
            ServerStartError: the process exited or did not answer within `timeout` (its log's tail is in the message).
        """

        def ready(client: httpx.Client) -> bool:
            return client.get(self.endpoint_url).status_code == 200

        self.wait_until(ready, timeout=timeout, what=f"the S3 API on {self.endpoint_url}")

    def create_bucket(self, name: str = BUCKET) -> str:
        """Create bucket `name` (idempotent) and return its `s3://` URL."""
        response = httpx.put(f"{self.endpoint_url}/{name}", timeout=10.0)
        if response.status_code not in (200, 409):
            response.raise_for_status()
        return f"s3://{name}"


def _server_environment() -> dict[str, str]:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(_CREDENTIALS)
    return env
