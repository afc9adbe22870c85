"""SIGTERM to `dbt2prefect demo` stops what the demo started, as Ctrl-C does (issue 31, point 4)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbt2prefect.tenant import REPO_ROOT

SHOP = REPO_ROOT / "tests" / "tenants" / "shop.toml"

pytestmark = pytest.mark.e2e  # it starts the demo's servers and worker


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside `folder` (the demo's worker runs in a folder of the workdir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cwd = (proc / "cwd").resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if proc.name.isdigit() and cwd.is_relative_to(folder.resolve()):
            pids.append(int(proc.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("keep", [False, True])
def test_sigterm_stops_the_demos_prefect_server_and_removes_its_temporary_folders(keep: bool, tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DBT2PREFECT_"))}
    env.update(TMPDIR=str(temp), COLUMNS="300", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli", "demo", "--workdir", str(tmp_path / "demo")]
        + ["--tenant-file", str(SHOP)]  # the smaller tenant: its one job's baseline is quick
        + (["--keep"] if keep else []),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # as a service manager or CI runner starts it: the signal is for the demo alone
    )
    assert demo.stdout is not None
    lines: list[str] = []
    server_pid = None
    try:
        for line in demo.stdout:
            lines.append(line)
            found = re.search(r"Prefect server starting on \S+ \(pid (\d+)\)", line)
            if found:
                server_pid = int(found.group(1))
            # Without --keep: during the baselines (the sandbox dbt Cloud runs dbt in temporary folders). With it:
            # once the stack is complete, which --keep would otherwise leave running.
            if server_pid is not None and (not keep or "Wait for the Prefect API" in line):
                break
        assert server_pid is not None, "".join(lines)
        assert _alive(server_pid)
        time.sleep(3)
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
    output = "".join(lines) + rest
    assert demo.returncode == 143, output  # 128 + SIGTERM, as a shell reports it
    assert "terminated (SIGTERM)" in output and "Traceback" not in output
    deadline = time.monotonic() + 30
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server_pid), "the demo's Prefect server outlived it"
    while _processes_in(tmp_path / "demo") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_in(tmp_path / "demo") == [], "a process the demo started (its worker) outlived it"
    assert sorted(p.name for p in temp.iterdir() if p.name.startswith("dbt-cloud-sandbox")) == []
